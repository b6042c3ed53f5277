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
  lowerName: string;
  table: NameTable;
  subnets: BlockList;
}

export class NameDirectory {
  private readonly networks = new Map<string, NetworkState>();
  /** sandbox id → ids of the networks it has endpoints on. */
  private readonly sandboxNetworks = new Map<string, Set<string>>();

  addNetwork(info: NetworkInfo): void {
    const subnets = new BlockList();
    for (const p of info.subnets) subnets.addSubnet(p.address.toString(), p.length, blockFamily(p.address));
    const existing = this.networks.get(info.id);
    this.networks.set(info.id, { info, lowerName: info.name.toLowerCase(), table: existing?.table ?? new NameTable(), subnets });
  }

  removeNetwork(id: string): void {
    const state = this.networks.get(id);
    if (!state) return;
    for (const networks of this.sandboxNetworks.values()) networks.delete(id);
    this.networks.delete(id);
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
  }

  leave(networkId: string, endpointId: string): void {
    const state = this.networks.get(networkId);
    const ep = state?.table.endpoint(endpointId);
    if (!state || !ep) return;
    state.table.remove(endpointId);
    const set = this.sandboxNetworks.get(ep.sandboxId);
    set?.delete(networkId);
    if (set && set.size === 0) this.sandboxNetworks.delete(ep.sandboxId);
  }

  /** Whether a source address belongs to the network (the only clients its listeners serve). */
  isClient(networkId: string, address: string): boolean {
    const state = this.networks.get(networkId);
    if (!state) return false;
    // A v4-mapped source (dual-stack socket) is checked as the IPv4 address it is.
    const a = IPAddress.tryParse(address)?.unmapped();
    return a !== undefined && state.subnets.check(a.toString(), blockFamily(a));
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
