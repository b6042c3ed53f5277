/**
 * The cluster: the hosts whose netd daemons share global (overlay) networks through etcd. This host's
 * side of it:
 *
 * - It is the controller's GlobalScope (cnm/global-scope.ts): it claims new global networks (name, id,
 *   VXLAN id in one create-if-absent transaction), removes them when no host has endpoints on them, and
 *   leases address blocks (blocks.ts).
 * - It observes the controller (cnm/observer.ts): each endpoint on a global network is published under this
 *   host's lease, and withdrawn at detach. Writes made while etcd is away are queued by the store and
 *   written when it is back; attach and detach never wait for them.
 * - It follows everything under /netd/v1/ with one watch (cluster-view.ts): other hosts' networks are
 *   made here, their endpoints become forwarding entries (the overlay driver's peer tables) and names.
 *
 * etcd being away stops none of what exists: the kernel keeps every entry, and attaches go on in the
 * blocks this host holds. The key layout is in records.ts.
 */
import { hostname } from 'node:os';
import { ConflictError, ForbiddenError, StoreUnavailableError } from '../errors.js';
import type { Logger } from '../log.js';
import type { IPAddress, Prefix } from '../net/index.js';
import type { Ipam } from '../ipam/ipam.js';
import type { GlobalScope, NetworkClaim } from '../cnm/global-scope.js';
import type { NetworkCreateRequest, NetworkRecord } from '../cnm/network.js';
import type { EndpointRecord } from '../cnm/endpoint.js';
import type { NetworkObserver, ObservedNetwork } from '../cnm/observer.js';
import type { Controller } from '../cnm/controller.js';
import { newId } from '../cnm/context.js';
import { OPT_VNI } from '../drivers/overlay/overlay-driver.js';
import type { EtcdStore } from './etcd-store.js';
import { BlockLeases } from './blocks.js';
import { ClusterView, type ClusterViewDeps, type HostStatus } from './cluster-view.js';
import { keys, parseJson, removeNetworkKeys, isEndpointEntry, isNetworkEntry, type EndpointEntry, type HostRecord, type NetworkEntry } from './records.js';

export interface ClusterDeps extends Omit<ClusterViewDeps, 'hostId' | 'controller'> {
  store: EtcdStore;
  ipam: Ipam;
  /** This host's stable id (host-id.ts) and its underlay address. */
  hostId: string;
  advertise: IPAddress;
  /** Where the blocks this host holds are kept (in the data root). */
  blocksFile: string;
  /** How long a dead host's blocks stay its own (and a cut-off host still uses its blocks). */
  blockGraceMs: number;
  log: Logger;
}

/** VXLAN ids netd hands out: above the range people configure by hand (like Docker's overlay, from 4096). */
const VNI_FIRST = 4096;
const VNI_LAST = 2 ** 24 - 1;

export interface ClusterStatus {
  host: { id: string; advertise: string };
  store: { up: boolean; pendingWrites: number };
  hosts: HostStatus[];
}

export class Cluster implements GlobalScope, NetworkObserver {
  private readonly blocks: BlockLeases;
  /** Made at start, when the controller has restored its state. */
  private view?: ClusterView;
  /** The block list (as BlockLeases holds it) last handed to IPAM, per network. */
  private readonly applied = new Map<string, readonly Prefix[]>();

  constructor(private readonly deps: ClusterDeps) {
    this.blocks = new BlockLeases({ store: deps.store, hostId: deps.hostId, file: deps.blocksFile, log: deps.log, graceMs: deps.blockGraceMs });
  }

  /** Announces this host (under its lease) and starts following the cluster. */
  start(controller: Controller): void {
    this.view = new ClusterView({ ...this.deps, controller, forgetBlocks: (id) => this.blocks.forget(id), resynced: () => this.blocks.invalidate() });
    const record: HostRecord = { advertise: this.deps.advertise.toString(), name: hostname(), started: new Date().toISOString() };
    void this.deps.store.leasedPut(keys.host(this.deps.hostId), JSON.stringify(record));
    this.view.start();
  }

  async close(): Promise<void> {
    await this.view?.close();
  }

  status(): ClusterStatus {
    return {
      host: { id: this.deps.hostId, advertise: this.deps.advertise.toString() },
      store: { up: this.deps.store.up, pendingWrites: this.deps.store.pendingWrites },
      hosts: this.view?.hosts() ?? [],
    };
  }

  // ---------------------------------------------------------------- GlobalScope

  async claimNetwork(req: NetworkCreateRequest & { subnet: Prefix }): Promise<NetworkClaim> {
    const { store } = this.deps;
    const overlapping = this.view?.networkOverlapping(req.subnet);
    if (overlapping) throw new ConflictError(`subnet ${req.subnet} overlaps the cluster's network ${overlapping.name} (${overlapping.subnet})`);
    const id = newId();
    const gateway = req.gateway ?? req.subnet.at(1n);
    for (let attempt = 0; attempt < 5; attempt++) {
      const vni = VNI_FIRST + Math.floor(Math.random() * (VNI_LAST - VNI_FIRST));
      const options = { [OPT_VNI]: String(vni) };
      const entry: NetworkEntry = {
        name: req.name,
        subnet: req.subnet.toString(),
        gateway: gateway.toString(),
        vni,
        internal: Boolean(req.internal),
        options: { ...(req.options ?? {}), ...options },
        labels: req.labels ?? {},
        created: new Date().toISOString(),
        by: this.deps.hostId,
        state: 'active',
      };
      const claimed = await store.createIfAbsent([
          { key: keys.networkName(req.name), value: id },
          { key: keys.vni(vni), value: id },
          { key: keys.network(id), value: JSON.stringify(entry) },
        ]);
      if (claimed) return { id, options, gateway };
      if (await store.get(keys.networkName(req.name))) {
        throw new ConflictError(`network with name ${req.name} already exists in the cluster`);
      }
      // The VXLAN id was taken: another one.
    }
    throw new ConflictError('could not find a free VXLAN id; try again');
  }

  async unclaimNetwork(claim: NetworkClaim, name: string): Promise<void> {
    const entry = await this.deps.store.get(keys.network(claim.id));
    const vni = parseJson<NetworkEntry>(entry?.value, isNetworkEntry)?.vni;
    await this.deps.store.deletePrefixWhen(keys.network(claim.id), entry?.modRevision ?? 0n, [keys.network(claim.id), keys.networkName(name), ...(vni ? [keys.vni(vni)] : [])], [keys.blocks(claim.id)]);
  }

  async releaseNetwork(network: NetworkRecord): Promise<{ commit(): Promise<void>; abort(): Promise<void> }> {
    const { store } = this.deps;
    const key = keys.network(network.id);
    const kv = await store.get(key);
    const entry = parseJson<NetworkEntry>(kv?.value, isNetworkEntry);
    if (!kv || !entry) return { commit: async () => undefined, abort: async () => undefined };
    const deleting = JSON.stringify({ ...entry, state: 'deleting', deletingBy: this.deps.hostId });
    if (!(await store.replaceIf(key, deleting, kv.modRevision))) {
      throw new ConflictError(`network ${network.name} changed in the cluster meanwhile; try again`);
    }
    const marked = await store.get(key);
    const restore = async () => {
      if (marked) await store.replaceIf(key, JSON.stringify({ ...entry, state: 'active', deletingBy: undefined }), marked.modRevision);
    };
    const listed = await store.list(keys.endpoints(network.id));
    const elsewhere = new Map<string, number>();
    for (const e of listed.kvs) {
      const ep = parseJson<EndpointEntry>(e.value, isEndpointEntry);
      if (ep && ep.host !== this.deps.hostId) elsewhere.set(ep.host, (elsewhere.get(ep.host) ?? 0) + 1);
    }
    if (elsewhere.size > 0) {
      await restore();
      const hosts = [...elsewhere].map(([h, n]) => `${(this.view?.hostLabel(h) ?? h.slice(0, 12))} (${n})`).join(', ');
      throw new ForbiddenError(`network ${network.name} has active endpoints on other hosts: ${hosts}; detach them first`);
    }
    return {
      commit: async () => {
        if (!(await removeNetworkKeys(store, network.id, entry, marked?.modRevision ?? 0n))) this.deps.log.warn({ op: 'rm-network', network: network.id }, 'the network changed in the cluster while it was removed here');
        this.blocks.forget(network.id);
      },
      abort: restore,
    };
  }

  async ensureAddress(network: NetworkRecord, subnet: Prefix): Promise<void> {
    const { ipam } = this.deps;
    if (this.view?.isGoing(network.id)) throw new ForbiddenError(`network ${network.name} is being removed`);
    if (!(await this.blocks.usable(network.id))) {
      ipam.setBlocks(subnet, []);
      this.applied.delete(network.id);
      throw new StoreUnavailableError(`the cluster store (etcd) has been unreachable for longer than the block grace period: the address blocks of ${network.name} this host held may be other hosts' by now`);
    }
    // The blocks as validated (one may have been dropped: another host holds it now).
    this.applyBlocks(network.id, subnet);
    if (ipam.hasFreeAddress(subnet)) return;
    if (!this.deps.store.up) {
      throw new StoreUnavailableError(`no free address left in the blocks this host holds on ${network.name}, and the cluster store (etcd) cannot be reached to claim another`);
    }
    await this.blocks.claim(network.id, subnet);
    this.applyBlocks(network.id, subnet);
  }

  /** Hands IPAM this host's blocks of a network when they changed since the last time (not on every attach). */
  private applyBlocks(networkId: string, subnet: Prefix): void {
    const blocks = this.blocks.of(networkId);
    if (this.applied.get(networkId) === blocks) return;
    this.deps.ipam.setBlocks(subnet, blocks);
    this.applied.set(networkId, blocks);
  }

  // ---------------------------------------------------------------- NetworkObserver

  /** A global network here (created, adopted, or restored at start): its blocks back in IPAM, its peers set. */
  networkCreated(network: ObservedNetwork): void {
    if (network.scope !== 'global') return;
    const subnet = network.ipv4[0]?.subnet;
    if (subnet) this.applyBlocks(network.id, subnet);
    this.view?.networkHere(network.id);
  }

  endpointJoined(network: ObservedNetwork, endpoint: EndpointRecord): void {
    if (network.scope !== 'global' || !endpoint.ipv4 || !endpoint.mac) return;
    const entry: EndpointEntry = {
      host: this.deps.hostId,
      vtep: this.deps.advertise.toString(),
      ip: endpoint.ipv4.address.toString(),
      mac: endpoint.mac.toString(),
      name: endpoint.name,
      aliases: endpoint.aliases,
      sandbox: endpoint.sandboxId,
    };
    void this.deps.store.leasedPut(keys.endpoint(network.id, endpoint.id), JSON.stringify(entry));
  }

  endpointLeft(network: ObservedNetwork, endpoint: EndpointRecord): void {
    if (network.scope !== 'global') return;
    void this.deps.store.leasedDelete(keys.endpoint(network.id, endpoint.id));
  }
}


