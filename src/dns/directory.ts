/**
 * Which names a client may see. Every network has its own NameTable; a query is answered from the
 * tables of the networks the asking container is on (the network it asked through first), so a
 * container on network A never learns names that exist only on network B, while a container on both
 * resolves names of either (each answering with the address on that network), as with Docker.
 *
 * The client is recognised by its source address on the network it asked through. A source the
 * network has not assigned to any endpoint sees that network's names only.
 */
import { BlockList } from 'node:net';
import { IPAddress, Prefix } from '../net/index.js';
import { NameTable, normalise, type EndpointNames, type NameEntry } from './records.js';

export interface NetworkInfo {
  id: string;
  name: string;
  /** User-defined networks answer names; the default `bridge` network only forwards, as in Docker. */
  resolvesNames: boolean;
  /** Internal networks have no way out, so queries from them are not forwarded (unless the container has another way out). */
  internal: boolean;
  /** The network's subnets. */
  subnets: Prefix[];
}

export type Resolution =
  /** Local endpoints answering to the name (possibly without an address of the asked family). */
  | { kind: 'found'; entries: readonly NameEntry[] }
  /** A reverse name of a local endpoint: its fully qualified name. */
  | { kind: 'ptr'; target: string }
  /** A name netd is authoritative for that does not exist. */
  | { kind: 'nxdomain' }
  /** Not netd's: forward it (when allowed). */
  | { kind: 'miss' };

interface NetworkState {
  info: NetworkInfo;
  /** A short number naming the network in scope keys. */
  serial: number;
  lowerName: string;
  table: NameTable;
  subnets: BlockList;
  /** Memo of isClient by source address (subnets only change with a new state). */
  clients: Map<string, boolean>;
  /** Memo of scopeKey by source address, for the current generation. */
  scopes: Map<string, string>;
}

/** Entries each memo keeps at most (a spoofing flood of sources only restarts it). */
const MAX_MEMO = 4096;

export class NameDirectory {
  private readonly networks = new Map<string, NetworkState>();
  /** sandbox id → ids of the networks it has endpoints on. */
  private readonly sandboxNetworks = new Map<string, Set<string>>();
  private serials = 0;
  private changes = 0;

  /** Moves on every change that can change an answer (the answer cache follows it). */
  get generation(): number {
    return this.changes;
  }

  private changed(): void {
    this.changes++;
    for (const s of this.networks.values()) s.scopes.clear();
  }

  addNetwork(info: NetworkInfo): void {
    const subnets = new BlockList();
    for (const p of info.subnets) subnets.addSubnet(p.address.toString(), p.length, blockFamily(p.address));
    const existing = this.networks.get(info.id);
    this.networks.set(info.id, {
      info,
      serial: existing?.serial ?? ++this.serials,
      lowerName: info.name.toLowerCase(),
      table: existing?.table ?? new NameTable(),
      subnets,
      clients: new Map(),
      scopes: new Map(),
    });
    this.changed();
  }

  removeNetwork(id: string): void {
    const state = this.networks.get(id);
    if (!state) return;
    for (const networks of this.sandboxNetworks.values()) networks.delete(id);
    this.networks.delete(id);
    this.changed();
  }

  network(id: string): NetworkInfo | undefined {
    return this.networks.get(id)?.info;
  }

  join(networkId: string, ep: EndpointNames): void {
    const state = this.networks.get(networkId);
    if (!state) return;
    state.table.add(ep);
    let set = this.sandboxNetworks.get(ep.sandboxId);
    if (!set) this.sandboxNetworks.set(ep.sandboxId, (set = new Set()));
    set.add(networkId);
    this.changed();
  }

  leave(networkId: string, endpointId: string): void {
    const state = this.networks.get(networkId);
    const ep = state?.table.endpoint(endpointId);
    if (!state || !ep) return;
    state.table.remove(endpointId);
    const set = this.sandboxNetworks.get(ep.sandboxId);
    set?.delete(networkId);
    if (set && set.size === 0) this.sandboxNetworks.delete(ep.sandboxId);
    this.changed();
  }

  /** Whether a source address belongs to the network (the only clients its listeners serve). */
  isClient(networkId: string, address: string): boolean {
    const state = this.networks.get(networkId);
    if (!state) return false;
    const known = state.clients.get(address);
    if (known !== undefined) return known;
    // A v4-mapped source (dual-stack socket) is checked as the IPv4 address it is.
    const a = IPAddress.tryParse(address)?.unmapped();
    const inside = a !== undefined && state.subnets.check(a.toString(), blockFamily(a));
    if (state.clients.size >= MAX_MEMO) state.clients.clear();
    state.clients.set(address, inside);
    return inside;
  }

  /**
   * What a client asking through `networkId` may see, as a short key (the networks of `scope`, in order):
   * equal keys resolve every name alike. Undefined when the client sees no names at all.
   */
  scopeKey(networkId: string, client: string): string | undefined {
    const own = this.networks.get(networkId);
    if (!own) return undefined;
    let key = own.scopes.get(client);
    if (key === undefined) {
      key = this.scope(networkId, client)
        .map((s) => s.serial)
        .join(',');
      if (own.scopes.size >= MAX_MEMO) own.scopes.clear();
      own.scopes.set(client, key);
    }
    return key === '' ? undefined : key;
  }

  /** The endpoint of a network holding a name (container name, not alias), e.g. for `--link`. */
  endpointNamed(networkId: string, name: string): NameEntry | undefined {
    const n = normalise(name);
    return this.networks.get(networkId)?.table.lookup(n).find((e) => normalise(e.name) === n);
  }

  /** The networks whose names a client asking through `networkId` sees, that network first. */
  private scope(networkId: string, client: string): NetworkState[] {
    const own = this.networks.get(networkId);
    if (!own) return [];
    const out = [own];
    const sandboxId = own.table.byAddress(client)?.sandboxId;
    for (const id of sandboxId ? (this.sandboxNetworks.get(sandboxId) ?? []) : []) {
      const s = this.networks.get(id);
      if (s && s !== own) out.push(s);
    }
    return out.filter((s) => s.info.resolvesNames);
  }

  /** May a query from this client be forwarded upstream? Not from a container whose networks are all internal. */
  mayForward(networkId: string, client: string): boolean {
    const own = this.networks.get(networkId);
    if (!own) return false;
    if (!own.info.internal) return true;
    const sandboxId = own.table.byAddress(client)?.sandboxId;
    for (const id of sandboxId ? (this.sandboxNetworks.get(sandboxId) ?? []) : []) {
      if (this.networks.get(id)?.info.internal === false) return true;
    }
    return false;
  }

  /** Resolves a question's name for a client; `reverse` for PTR questions. */
  resolve(networkId: string, client: string, qname: string, reverse: boolean): Resolution {
    const scope = this.scope(networkId, client);
    if (scope.length === 0) return { kind: 'miss' };
    const name = normalise(qname);
    if (reverse) return this.resolveReverse(scope, name);
    for (const s of scope) {
      const direct = s.table.lookup(name);
      if (direct.length > 0) return { kind: 'found', entries: direct };
      // `name.network` names the container on that network.
      const suffix = `.${s.lowerName}`;
      if (name.endsWith(suffix)) {
        const short = s.table.lookup(name.slice(0, -suffix.length));
        if (short.length > 0) return { kind: 'found', entries: short };
      }
    }
    // Single-label names are never sent upstream (they would leak container names to the host's
    // resolvers and wait on them): they are local or they do not exist. Names under a network's own
    // domain are netd's alone.
    if (name !== '' && !name.includes('.')) return { kind: 'nxdomain' };
    if (scope.some((s) => name.endsWith(`.${s.lowerName}`))) return { kind: 'nxdomain' };
    return { kind: 'miss' };
  }

  private resolveReverse(scope: NetworkState[], name: string): Resolution {
    for (const s of scope) {
      const entry = s.table.reverse(name);
      if (entry) return { kind: 'ptr', target: `${normalise(entry.name)}.${s.lowerName}` };
    }
    // An address of one of these subnets that no container holds: netd knows it does not exist.
    const address = IPAddress.tryParse(addressOfReverseName(name));
    if (address && scope.some((s) => s.subnets.check(address.toString(), blockFamily(address)))) return { kind: 'nxdomain' };
    return { kind: 'miss' };
  }
}

/** The address a full reverse name stands for (`4.3.2.1.in-addr.arpa` → 1.2.3.4), or undefined. */
export function addressOfReverseName(name: string): string | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.in-addr\.arpa$/.exec(name);
  if (v4) {
    const octets = [v4[4], v4[3], v4[2], v4[1]].map(Number);
    return octets.every((o) => o <= 255) ? octets.join('.') : undefined;
  }
  const v6 = /^((?:[0-9a-f]\.){32})ip6\.arpa$/.exec(name);
  if (v6) {
    const hex = v6[1].replace(/\./g, '').split('').reverse().join('');
    return hex.match(/.{4}/g)!.join(':');
  }
  return undefined;
}

function blockFamily(a: IPAddress): 'ipv4' | 'ipv6' {
  return a.family === 4 ? 'ipv4' : 'ipv6';
}
