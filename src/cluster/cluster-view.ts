/**
 * This host's view of the cluster: one watch on everything under /netd/v1/ (etcd-store.ts's watch: a full
 * list first, then changes from the list's revision; a full list again after a compaction or an outage)
 * kept in a cache, and turned into this host's state:
 *
 * - a global network another host created is made here (Controller.adoptNetwork); one the cluster removed
 *   goes (Controller.forgetNetwork);
 * - another host's endpoint on a network this host has becomes a peer of the overlay driver (its FDB and
 *   neighbour entries) and names in the network's DNS table; when its key goes (a detach, or its host's
 *   lease expired) both go;
 * - after a full list, each network's peers are resynced: whatever the kernel has that the list does not
 *   is deleted ("replace, never only add"; a host whose address changed is reached at its new one).
 *
 * Changes are applied one at a time, in the order etcd gave them.
 */
import type { Logger } from '../log.js';
import { IPAddress, MAC, Prefix } from '../net/index.js';
import type { Controller } from '../cnm/controller.js';
import type { DnsService } from '../dns/dns-service.js';
import { namesOf } from '../dns/records.js';
import type { OverlayDriver } from '../drivers/overlay/overlay-driver.js';
import type { Peer } from '../drivers/overlay/peer-table.js';
import type { EtcdStore, PrefixWatch, Snapshot, WatchEvent } from './etcd-store.js';
import { ROOT, keys, parseJson, parseKey, removeNetworkKeys, isBlockRecord, isEndpointEntry, isHostRecord, isNetworkEntry, type BlockRecord, type EndpointEntry, type HostRecord, type NetworkEntry } from './records.js';

export interface ClusterViewDeps {
  store: EtcdStore;
  controller: Controller;
  overlay: OverlayDriver;
  dns?: DnsService;
  hostId: string;
  log: Logger;
  /** A network the cluster removed: the blocks this host held on it are forgotten. */
  forgetBlocks?(networkId: string): void;
  /** After each full read of etcd (the start, or after an outage). */
  resynced?(): void;
  /** How long after a host died its address blocks go back to the pool. */
  blockGraceMs: number;
}

export interface HostStatus {
  id: string;
  name: string;
  advertise: string;
  /** Its lease is alive (its key is there). */
  alive: boolean;
  self: boolean;
  /** Endpoints per network name. */
  endpoints: Record<string, number>;
}

export class ClusterView {
  private readonly cache = new Map<string, { value: string; modRevision: bigint }>();
  /** Dead hosts whose blocks go back to the pool when the grace period ends. */
  private readonly reclaims = new Map<string, NodeJS.Timeout>();
  /** Hosts seen alive since start, for `netd cluster` to show them once they are gone. */
  private readonly seen = new Map<string, HostRecord>();
  private work: Promise<void> = Promise.resolve();
  private watchHandle?: PrefixWatch;

  constructor(private readonly deps: ClusterViewDeps) {}

  start(): void {
    this.watchHandle = this.deps.store.watch(ROOT, {
      onResync: (snapshot) => this.enqueue(() => this.resync(snapshot)),
      onEvents: (events) => this.enqueue(() => this.apply(events)),
    });
  }

  async close(): Promise<void> {
    for (const t of this.reclaims.values()) clearTimeout(t);
    this.reclaims.clear();
    await this.watchHandle?.stop();
    await this.work;
  }

  /** Runs after what is queued; a failure is logged and does not stop later changes. */
  private enqueue(fn: () => Promise<void>): void {
    this.work = this.work.then(fn).catch((err: unknown) => this.deps.log.error({ op: 'cluster', err }, 'applying the cluster\'s state failed'));
  }

  // ---------------------------------------------------------------- queries

  private entries<T>(prefix: string, check: (v: Record<string, unknown>) => boolean): [string, T][] {
    const out: [string, T][] = [];
    for (const [k, { value }] of this.cache) {
      if (!k.startsWith(prefix)) continue;
      const parsed = parseJson<T>(value, check);
      if (parsed) out.push([k, parsed]);
    }
    return out;
  }

  networkOverlapping(subnet: Prefix): NetworkEntry | undefined {
    return this.entries<NetworkEntry>(`${ROOT}networks/`, isNetworkEntry)
      .map(([, n]) => n)
      .find((n) => Prefix.parse(n.subnet).overlaps(subnet));
  }

  isGoing(networkId: string): boolean {
    return parseJson<NetworkEntry>(this.cache.get(keys.network(networkId))?.value, isNetworkEntry)?.state === 'deleting';
  }

  hostLabel(id: string): string {
    const h = parseJson<HostRecord>(this.cache.get(keys.host(id))?.value, isHostRecord) ?? this.seen.get(id);
    return h ? `${h.name} (${h.advertise})` : id.slice(0, 12);
  }

  hosts(): HostStatus[] {
    const names = new Map<string, string>();
    for (const [k, n] of this.entries<NetworkEntry>(`${ROOT}networks/`, isNetworkEntry)) {
      const p = parseKey(k);
      if (p.kind === 'network') names.set(p.network, n.name);
    }
    const out = new Map<string, HostStatus>();
    const ensure = (id: string, h: HostRecord | undefined, alive: boolean) => {
      let s = out.get(id);
      if (!s) out.set(id, (s = { id, name: h?.name ?? '', advertise: h?.advertise ?? '', alive, self: id === this.deps.hostId, endpoints: {} }));
      return s;
    };
    for (const [k, h] of this.entries<HostRecord>(`${ROOT}hosts/`, isHostRecord)) {
      const p = parseKey(k);
      if (p.kind === 'host') ensure(p.host, h, true);
    }
    for (const [id, h] of this.seen) ensure(id, h, false);
    for (const [k, e] of this.entries<EndpointEntry>(`${ROOT}endpoints/`, isEndpointEntry)) {
      const p = parseKey(k);
      if (p.kind !== 'endpoint') continue;
      const s = ensure(e.host, undefined, false);
      const name = names.get(p.network) ?? p.network.slice(0, 12);
      s.endpoints[name] = (s.endpoints[name] ?? 0) + 1;
    }
    return [...out.values()].sort((a, b) => (a.self === b.self ? a.name.localeCompare(b.name) : a.self ? -1 : 1));
  }

  // ---------------------------------------------------------------- applying

  private async resync(snapshot: Snapshot): Promise<void> {
    this.cache.clear();
    for (const kv of snapshot.kvs) this.cache.set(kv.key, { value: kv.value, modRevision: kv.modRevision });
    this.rememberHosts();
    this.deps.resynced?.();
    this.scheduleReclaims();
    const here = new Set(this.deps.controller.networks().filter((n) => n.scope === 'global').map((n) => n.id));
    const there = new Set<string>();
    for (const [k, entry] of this.entries<NetworkEntry>(`${ROOT}networks/`, isNetworkEntry)) {
      const p = parseKey(k);
      if (p.kind !== 'network') continue;
      there.add(p.network);
      if (!here.has(p.network)) await this.adopt(p.network, entry);
    }
    for (const id of here) if (!there.has(id)) await this.forget(id);
    for (const n of this.deps.controller.networks()) if (n.scope === 'global' && there.has(n.id)) await this.resyncNetwork(n.id);
    this.deps.log.info({ op: 'cluster-resync', revision: String(snapshot.revision), keys: snapshot.kvs.length }, 'cluster state read');
  }

  private rememberHosts(): void {
    for (const [k, h] of this.entries<HostRecord>(`${ROOT}hosts/`, isHostRecord)) {
      const p = parseKey(k);
      if (p.kind === 'host') this.seen.set(p.host, h);
    }
  }

  /** A network is here now (made, adopted or restored): its remote endpoints become peers. */
  networkHere(networkId: string): void {
    if (this.cache.has(keys.network(networkId))) this.enqueue(() => this.resyncNetwork(networkId));
  }

  private remoteEndpoints(networkId: string): [string, EndpointEntry][] {
    return this.entries<EndpointEntry>(keys.endpoints(networkId), isEndpointEntry)
      .filter(([, e]) => e.host !== this.deps.hostId)
      .flatMap(([k, e]) => {
        const p = parseKey(k);
        return p.kind === 'endpoint' ? [[p.endpoint, e] as [string, EndpointEntry]] : [];
      });
  }

  private async resyncNetwork(networkId: string): Promise<void> {
    const table = this.deps.overlay.peers(networkId);
    if (!table) return;
    const remote = this.remoteEndpoints(networkId);
    await table.resync(remote.map(([id, e]) => peerOf(id, e)));
    const dns = this.deps.dns;
    if (dns) {
      for (const [id, e] of remote) dns.remoteJoined(networkId, namesEntry(id, e));
      for (const id of this.namesGone(networkId, new Set(remote.map(([id]) => id)))) dns.remoteLeft(networkId, id);
    }
  }

  /** Remote endpoints' names this host answers that the cluster no longer has. */
  private readonly remoteNames = new Map<string, Set<string>>();
  private namesGone(networkId: string, now: Set<string>): string[] {
    const before = this.remoteNames.get(networkId) ?? new Set<string>();
    this.remoteNames.set(networkId, now);
    return [...before].filter((id) => !now.has(id));
  }

  private async apply(events: WatchEvent[]): Promise<void> {
    for (const ev of events) {
      if (ev.type === 'put' && ev.value !== undefined) this.cache.set(ev.key, { value: ev.value, modRevision: ev.modRevision });
      else this.cache.delete(ev.key);
      const p = parseKey(ev.key);
      if (p.kind === 'host' && ev.type === 'put') this.rememberHosts();
      if (p.kind === 'host') this.scheduleReclaims();
      if (p.kind === 'network') await this.networkChanged(p.network, ev);
      if (p.kind === 'endpoint') await this.endpointChanged(p.network, p.endpoint, ev);
    }
  }

  // ---------------------------------------------------------------- dead hosts' blocks

  /** Hosts that hold blocks but have no live record: their blocks go back to the pool after the grace period. */
  private scheduleReclaims(): void {
    const holders = new Set<string>();
    for (const [k, b] of this.entries<BlockRecord>(`${ROOT}blocks/`, isBlockRecord)) if (parseKey(k).kind === 'block') holders.add(b.host);
    for (const host of holders) {
      const alive = this.cache.has(keys.host(host));
      const pending = this.reclaims.get(host);
      if (alive && pending) {
        clearTimeout(pending);
        this.reclaims.delete(host);
      } else if (!alive && !pending && host !== this.deps.hostId) {
        const timer = setTimeout(() => this.enqueue(() => this.reclaim(host)), this.deps.blockGraceMs);
        timer.unref();
        this.reclaims.set(host, timer);
      }
    }
  }

  /** The grace period is over: the dead host's blocks without endpoints go (compare-and-delete: one host does it). */
  private async reclaim(host: string): Promise<void> {
    this.reclaims.delete(host);
    if (this.cache.has(keys.host(host))) return;
    const busy = this.entries<EndpointEntry>(`${ROOT}endpoints/`, isEndpointEntry).some(([, e]) => e.host === host);
    if (busy) return;
    let freed = 0;
    for (const [k, { value, modRevision }] of [...this.cache]) {
      if (parseKey(k).kind !== 'block' || parseJson<BlockRecord>(value, isBlockRecord)?.host !== host) continue;
      if (await this.deps.store.deleteIf(k, modRevision)) freed++;
    }
    if (freed > 0) this.deps.log.info({ op: 'reclaim-blocks', host, blocks: freed }, 'a dead host\'s address blocks went back to the pool');
  }

  private async networkChanged(networkId: string, ev: WatchEvent): Promise<void> {
    if (ev.type === 'delete') return this.forget(networkId);
    const entry = parseJson<NetworkEntry>(ev.value, isNetworkEntry);
    if (entry && !this.deps.controller.networks().some((n) => n.id === networkId)) await this.adopt(networkId, entry);
  }

  private async endpointChanged(networkId: string, endpointId: string, ev: WatchEvent): Promise<void> {
    const table = this.deps.overlay.peers(networkId);
    const dns = this.deps.dns;
    if (ev.type === 'put') {
      const e = parseJson<EndpointEntry>(ev.value, isEndpointEntry);
      if (!e || e.host === this.deps.hostId) return;
      await table?.set(peerOf(endpointId, e));
      dns?.remoteJoined(networkId, namesEntry(endpointId, e));
      this.remoteNames.get(networkId)?.add(endpointId) ?? this.remoteNames.set(networkId, new Set([endpointId]));
      return;
    }
    const prev = parseJson<EndpointEntry>(ev.prevValue, isEndpointEntry);
    if (prev && prev.host === this.deps.hostId) return;
    await table?.remove(endpointId);
    dns?.remoteLeft(networkId, endpointId);
    this.remoteNames.get(networkId)?.delete(endpointId);
  }

  private async adopt(networkId: string, entry: NetworkEntry): Promise<void> {
    if (entry.state === 'deleting') {
      // This host was removing it and stopped before the cluster's keys went (it has it no more): finish.
      const mod = this.cache.get(keys.network(networkId))?.modRevision;
      if (entry.deletingBy === this.deps.hostId && mod !== undefined && (await removeNetworkKeys(this.deps.store, networkId, entry, mod))) {
        this.deps.log.info({ op: 'rm-network', network: networkId, name: entry.name }, 'removal of a global network completed in the cluster');
      }
      return;
    }
    try {
      await this.deps.controller.adoptNetwork({
        id: networkId,
        name: entry.name,
        driver: this.deps.overlay.type,
        subnet: Prefix.parse(entry.subnet),
        gateway: IPAddress.parse(entry.gateway),
        internal: entry.internal,
        options: entry.options,
        labels: entry.labels ?? {},
      });
      this.deps.log.info({ op: 'adopt-network', network: networkId, name: entry.name }, 'global network made here');
    } catch (err) {
      this.deps.log.error({ op: 'adopt-network', network: networkId, name: entry.name, err }, 'could not make a global network of the cluster here');
    }
  }

  private async forget(networkId: string): Promise<void> {
    const gone = await this.deps.controller.forgetNetwork(networkId);
    if (!gone) this.deps.log.warn({ op: 'forget-network', network: networkId }, 'the cluster removed a network this host still has endpoints on; it stays here');
    this.deps.forgetBlocks?.(networkId);
    this.remoteNames.delete(networkId);
  }
}

function peerOf(endpointId: string, e: EndpointEntry): Peer {
  return { endpointId, ip4: IPAddress.parse(e.ip), mac: MAC.parse(e.mac), vtep: IPAddress.parse(e.vtep) };
}

function namesEntry(endpointId: string, e: EndpointEntry) {
  return { endpointId, sandboxId: e.sandbox, name: e.name, names: namesOf({ id: endpointId, name: e.name, sandboxId: e.sandbox, aliases: e.aliases }), ipv4: e.ip };
}
