/**
 * Host ports: which are published by which endpoint, and the choice of free ones. Host ports are one
 * resource for the whole host, whatever the network, so one allocator serves every bridge network.
 *
 * Two bindings conflict when protocol is equal, their port ranges intersect and the addresses overlap:
 * equal, or either the wildcard of that family (0.0.0.0:8080 and 127.0.0.1:8080 cannot both be
 * published). IPv4 and IPv6 are separate (their DNAT rules are in separate tables). allocate() is
 * all-or-nothing: on any error nothing is registered.
 *
 * A range is handled as one interval, whatever its length: checking or choosing 65535 ports costs about
 * what one port costs (work grows with the number of bindings held, never with the ports they span).
 */
import { ConflictError, InvalidArgumentError } from '../errors.js';
import { IPAddress, PortRange } from '../net/index.js';
import { freeBlock, type Interval } from './intervals.js';
import {
  WILDCARD,
  familyOf,
  containerRange,
  formatBinding,
  hostRange,
  isWildcard,
  makeBinding,
  type IpFamily,
  type PortBinding,
  type PortRequest,
  type Proto,
} from './types.js';

/** A port a host process holds, and how (e.g. "bound to 0.0.0.0:8080/udp"). */
export interface HostHeld {
  port: number;
  why: string;
}

export interface AllocationContext {
  /** Address families the container has an address in on this network. */
  families: readonly IpFamily[];
  /** Host address for requests without one (network option host_binding_ipv4). */
  defaultHostIp?: string;
  /** The ports of `range` that host processes hold on that address (sorted, empty when all are free). */
  hostConflicts(proto: Proto, hostIp: string, range: PortRange): Promise<HostHeld[]>;
  /** Whether a (non-wildcard) address belongs to the host. */
  isLocalAddress(address: string): boolean;
  /** Where ports are picked when none is given (net.ipv4.ip_local_port_range). */
  ephemeral: PortRange;
}

interface Owner {
  endpointId: string;
  name: string;
}

interface Held extends Owner {
  binding: PortBinding;
}

function key(proto: Proto, port: number): string {
  return `${proto}/${port}`;
}

function overlaps(a: string, b: string): boolean {
  const fa = familyOf(a);
  if (fa !== familyOf(b)) return false;
  return a === b || a === WILDCARD[fa] || b === WILDCARD[fa];
}

function portsText(range: PortRange): string {
  return `${range.size === 1 ? 'port' : 'ports'} ${range}`;
}

export function describeAddress(ip: string): string {
  return IPAddress.parse(ip).toUrlHost();
}

export class PortAllocator {
  /** Single-port bindings by proto/port. */
  private readonly singles = new Map<string, Held[]>();
  /** Range bindings, per protocol (each is one entry whatever its length). */
  private readonly ranges = new Map<string, Held[]>();
  private readonly byEndpoint = new Map<string, PortBinding[]>();
  /** Next ephemeral port to try, per protocol: freed ports are not handed out again at once. */
  private readonly cursor = new Map<Proto, number>();

  bindingsOf(endpointId: string): PortBinding[] {
    return this.byEndpoint.get(endpointId) ?? [];
  }

  /** Registers bindings found in persisted state (after a restart), without any check. */
  restore(owner: Owner, bindings: readonly PortBinding[]): void {
    this.release(owner.endpointId);
    for (const b of bindings) this.hold(owner, b);
    this.byEndpoint.set(owner.endpointId, [...bindings]);
  }

  release(endpointId: string): void {
    const held = this.byEndpoint.get(endpointId);
    if (!held) return;
    const drop = (map: Map<string, Held[]>, k: string) => {
      const list = (map.get(k) ?? []).filter((h) => h.endpointId !== endpointId);
      if (list.length > 0) map.set(k, list);
      else map.delete(k);
    };
    for (const b of held) {
      if (hostRange(b).size > 1) drop(this.ranges, b.proto);
      else drop(this.singles, key(b.proto, b.hostPort));
    }
    this.byEndpoint.delete(endpointId);
  }

  /** Resolves every request to concrete bindings and registers them for `owner`, or throws and registers nothing. */
  async allocate(owner: Owner, requests: readonly PortRequest[], ctx: AllocationContext): Promise<PortBinding[]> {
    if (this.byEndpoint.has(owner.endpointId)) throw new ConflictError(`endpoint ${owner.endpointId.slice(0, 12)} already has published ports`);
    const taken: PortBinding[] = [];
    try {
      for (const r of requests) {
        const addresses = this.hostAddresses(r, ctx);
        const span = containerRange(r).size;
        const port = await this.choosePorts(r, span, addresses, ctx, taken);
        for (const hostIp of addresses) {
          const b = makeBinding(r.proto, hostIp, port, r.containerPort, span);
          taken.push(b);
          this.hold(owner, b);
        }
        if (r.hostPort === 0) this.cursor.set(r.proto, port + span);
      }
    } catch (err) {
      this.byEndpoint.set(owner.endpointId, taken);
      this.release(owner.endpointId);
      throw err;
    }
    this.byEndpoint.set(owner.endpointId, taken);
    return taken;
  }

  /** The host addresses a request binds: its own, the network's default, or every family's wildcard. */
  private hostAddresses(r: PortRequest, ctx: AllocationContext): string[] {
    const ip = r.hostIp ?? ctx.defaultHostIp;
    if (ip === undefined) {
      if (ctx.families.length === 0) throw new InvalidArgumentError('the container has no IP address on this network to publish ports to');
      return ctx.families.map((f) => WILDCARD[f]);
    }
    const family = familyOf(ip);
    if (family === 6 && ip === '::1') {
      // ::1 cannot be DNATed to another host (there is no route_localnet for IPv6); that needs a userland
      // proxy, which netd does not run.
      throw new InvalidArgumentError('publishing on ::1 is not supported (it would need a userland proxy); use 127.0.0.1 or [::]');
    }
    if (!ctx.families.includes(family)) {
      throw new InvalidArgumentError(`cannot publish on ${ip}: the container has no IPv${family} address on this network`);
    }
    if (!isWildcard(ip) && !ctx.isLocalAddress(ip)) {
      throw new InvalidArgumentError(`cannot publish on ${ip}: it is not an address of this host`);
    }
    return [ip];
  }

  /** The first host port of the request's `span` ports. */
  private async choosePorts(r: PortRequest, span: number, addresses: string[], ctx: AllocationContext, taken: PortBinding[]): Promise<number> {
    if (r.hostPort !== 0 && (span > 1 || r.hostPortEnd <= r.hostPort)) {
      // Given ports: say exactly why they cannot be had.
      const range = PortRange.of(r.hostPort, r.hostPort + span - 1);
      const why = await this.whyTaken(r.proto, range, addresses, ctx, taken);
      if (why) throw new ConflictError(`host ${why.port === undefined ? portsText(range) : `port ${why.port}`}/${r.proto} on ${addresses.map(describeAddress).join(' and ')} ${why.text}`);
      return r.hostPort;
    }
    const range = r.hostPort !== 0 ? PortRange.of(r.hostPort, r.hostPortEnd) : ctx.ephemeral;
    const from = r.hostPort !== 0 ? range.start : Math.min(Math.max(this.cursor.get(r.proto) ?? range.start, range.start), range.end + 1);
    const blocked = this.ownIntervals(r.proto, range, addresses, taken);
    const first = freeBlock(range, blocked, span, from);
    if (first !== undefined) {
      // Usually free on the host too: ask about just that block (one bind for a TCP port), and only if a
      // host process holds part of it, about the whole range at once.
      const candidate = PortRange.of(first, first + span - 1);
      const held = await this.hostHeld(r.proto, candidate, addresses, ctx);
      if (held.length === 0) return first;
      const all = await this.hostHeld(r.proto, range, addresses, ctx);
      const hostPorts = [...held, ...all].map((h) => ({ start: h.port, end: h.port }));
      const next = freeBlock(range, [...blocked, ...hostPorts], span, from);
      if (next !== undefined) return next;
    }
    const what = span > 1 ? `${span} contiguous free host ports for ${r.containerPort}-${r.containerPort + span - 1}` : `free host port for ${r.containerPort}`;
    throw new ConflictError(`no ${what}/${r.proto} in ${range.start}-${range.end}`);
  }

  /** netd's own bindings (held, and taken earlier in this request) that block `range` on these addresses. */
  private ownIntervals(proto: Proto, range: PortRange, addresses: string[], taken: PortBinding[]): Interval[] {
    const out: Interval[] = [];
    const add = (b: PortBinding) => {
      if (b.proto === proto && hostRange(b).overlaps(range) && addresses.some((ip) => overlaps(b.hostIp, ip))) out.push({ start: b.hostPort, end: hostRange(b).end });
    };
    taken.forEach(add);
    for (const h of this.held(proto, range)) add(h.binding);
    return out;
  }

  /** Every held binding of `proto` that may intersect `range`: per port or per binding, whichever is fewer. */
  private held(proto: Proto, range: PortRange): Held[] {
    const out: Held[] = [...(this.ranges.get(proto) ?? [])].filter((h) => hostRange(h.binding).overlaps(range));
    if (range.size <= this.singles.size) {
      for (let p = range.start; p <= range.end; p++) out.push(...(this.singles.get(key(proto, p)) ?? []));
    } else {
      for (const list of this.singles.values()) for (const h of list) if (h.binding.proto === proto && range.contains(h.binding.hostPort)) out.push(h);
    }
    return out;
  }

  private async hostHeld(proto: Proto, range: PortRange, addresses: string[], ctx: AllocationContext): Promise<HostHeld[]> {
    const out: HostHeld[] = [];
    for (const ip of addresses) out.push(...(await ctx.hostConflicts(proto, ip, range)));
    return out;
  }

  /** Why ports cannot be published on these addresses (and the first port concerned), or undefined when all are free. */
  private async whyTaken(proto: Proto, range: PortRange, addresses: string[], ctx: AllocationContext, taken: PortBinding[]): Promise<{ port?: number; text: string } | undefined> {
    const first = (b: PortBinding) => (range.size > 1 ? Math.max(b.hostPort, range.start) : undefined);
    for (const ip of addresses) {
      const twice = taken.find((b) => b.proto === proto && hostRange(b).overlaps(range) && overlaps(b.hostIp, ip));
      if (twice) return { port: first(twice), text: 'is published twice in this request' };
      const other = this.held(proto, range).find((h) => overlaps(h.binding.hostIp, ip));
      if (other) return { port: first(other.binding), text: `is already published by container ${other.name} (${formatBinding(other.binding)})` };
    }
    // Only once netd's own bindings allow it: asking the host may cost a system call per address.
    const held = await this.hostHeld(proto, range, addresses, ctx);
    if (held.length > 0) return { port: range.size > 1 ? held[0].port : undefined, text: `is already in use by a process on the host (${held[0].why})` };
    return undefined;
  }

  private hold(owner: Owner, binding: PortBinding): void {
    const entry = { ...owner, binding };
    if (hostRange(binding).size > 1) {
      this.ranges.set(binding.proto, [...(this.ranges.get(binding.proto) ?? []), entry]);
      return;
    }
    const k = key(binding.proto, binding.hostPort);
    const list = this.singles.get(k) ?? [];
    list.push(entry);
    this.singles.set(k, list);
  }
}
