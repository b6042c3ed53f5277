/**
 * Host ports: which are published by which endpoint, and the choice of a free one. Host ports are one
 * resource for the whole host, whatever the network, so one allocator serves every bridge network.
 *
 * Two bindings conflict when protocol and port are equal and the addresses overlap: equal, or either the
 * wildcard of that family (0.0.0.0:8080 and 127.0.0.1:8080 cannot both be published). IPv4 and IPv6 are
 * separate (their DNAT rules are in separate tables). allocate() is all-or-nothing: on any error nothing
 * is registered.
 */
import { ConflictError, InvalidArgumentError } from '../errors.js';
import { IPAddress, PortRange } from '../net/index.js';
import { WILDCARD, familyOf, formatBinding, isWildcard, type IpFamily, type PortBinding, type PortRequest, type Proto } from './types.js';

export interface AllocationContext {
  /** Address families the container has an address in on this network. */
  families: readonly IpFamily[];
  /** Host address for requests without one (network option host_binding_ipv4). */
  defaultHostIp?: string;
  /** What a host process holds of proto/port on that address (e.g. "bound to 0.0.0.0:8080/tcp"), if anything. */
  hostConflict(proto: Proto, hostIp: string, port: number): Promise<string | undefined>;
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

export function describeAddress(ip: string): string {
  return IPAddress.parse(ip).toUrlHost();
}

export class PortAllocator {
  /** Bindings by proto/port. */
  private readonly byPort = new Map<string, Held[]>();
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
    for (const b of held) {
      const k = key(b.proto, b.hostPort);
      const list = (this.byPort.get(k) ?? []).filter((h) => h.endpointId !== endpointId);
      if (list.length > 0) this.byPort.set(k, list);
      else this.byPort.delete(k);
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
        const port = await this.choosePort(r, addresses, ctx, taken);
        for (const hostIp of addresses) {
          const b: PortBinding = { proto: r.proto, hostIp, hostPort: port, containerPort: r.containerPort };
          taken.push(b);
          this.hold(owner, b);
        }
        if (r.hostPort === 0) this.cursor.set(r.proto, port + 1);
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

  private async choosePort(r: PortRequest, addresses: string[], ctx: AllocationContext, taken: PortBinding[]): Promise<number> {
    const label = (port: number) => `${port}/${r.proto}`;
    if (r.hostPort !== 0 && r.hostPortEnd <= r.hostPort) {
      // One given port: say exactly why it cannot be had.
      const why = await this.whyTaken(r.proto, r.hostPort, addresses, ctx, taken);
      if (why) throw new ConflictError(`host port ${label(r.hostPort)} on ${addresses.map(describeAddress).join(' and ')} ${why}`);
      return r.hostPort;
    }
    const range = r.hostPort !== 0 ? PortRange.of(r.hostPort, r.hostPortEnd) : ctx.ephemeral;
    const size = range.size;
    const from = r.hostPort !== 0 ? range.start : Math.min(Math.max(this.cursor.get(r.proto) ?? range.start, range.start), range.end + 1);
    for (let i = 0; i < size; i++) {
      const port = range.start + ((from - range.start + i) % size);
      if (!(await this.whyTaken(r.proto, port, addresses, ctx, taken))) return port;
    }
    throw new ConflictError(`no free host port for ${r.containerPort}/${r.proto} in ${range.start}-${range.end}`);
  }

  /** Why a port cannot be published on these addresses, or undefined when it is free. */
  private async whyTaken(proto: Proto, port: number, addresses: string[], ctx: AllocationContext, taken: PortBinding[]): Promise<string | undefined> {
    for (const ip of addresses) {
      if (taken.some((b) => b.proto === proto && b.hostPort === port && overlaps(b.hostIp, ip))) return 'is published twice in this request';
      const other = (this.byPort.get(key(proto, port)) ?? []).find((h) => overlaps(h.binding.hostIp, ip));
      if (other) return `is already published by container ${other.name} (${formatBinding(other.binding)})`;
    }
    // Only once netd's own bindings allow it: asking the host may cost a system call per address.
    for (const ip of addresses) {
      const held = await ctx.hostConflict(proto, ip, port);
      if (held) return `is already in use by a process on the host (${held})`;
    }
    return undefined;
  }

  private hold(owner: Owner, binding: PortBinding): void {
    const k = key(binding.proto, binding.hostPort);
    const list = this.byPort.get(k) ?? [];
    list.push({ ...owner, binding });
    this.byPort.set(k, list);
  }
}
