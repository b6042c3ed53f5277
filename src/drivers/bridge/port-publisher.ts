/**
 * Published ports for the bridge driver: host ports are chosen and checked (allocator, host sockets,
 * host addresses) before anything changes in the kernel; then hairpin mode on the endpoint's bridge port
 * and the firewall's port forward make them real. Everything in the kernel, no proxy process.
 *
 * The bindings are persisted in the endpoint's driverState (`ports`), so a restart re-registers them
 * and hands them to the firewall's reconcile.
 */
import { InvalidArgumentError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { DriverEndpoint, DriverNetwork } from '../../driverapi/model.js';
import type { Firewall, PortForwardSpec } from '../../firewall/firewall.js';
import { IPAddress, PortRange, type Family } from '../../net/index.js';
import type { Rtnl } from '../../kernel/rtnetlink.js';
import { readSysctl } from '../../kernel/sysctl.js';
import { PortAllocator, describeAddress } from '../../portmap/allocator.js';
import { tcpListenProbe } from '../../portmap/bind-probe.js';
import { HostSockets } from '../../portmap/host-sockets.js';
import { PROTOS, familyOf, isWildcard, type PortBinding, type PortRequest } from '../../portmap/types.js';
import type { BridgeOptions } from './options.js';
import { allDone } from './container-side.js';

export interface PortPublisherDeps {
  rtnl: Rtnl;
  firewall: Firewall;
  log: Logger;
}

/** net.ipv4.ip_local_port_range ("32768\t60999"); it also governs IPv6. */
export function ephemeralRange(): PortRange {
  const [start, end] = readSysctl('net.ipv4.ip_local_port_range').split(/\s+/).map(Number);
  if (!(start >= 1 && end <= 65535 && start <= end)) throw new InvalidArgumentError(`unexpected ip_local_port_range ${start} ${end}`);
  return PortRange.of(start, end);
}

/** The bindings persisted in an endpoint's driverState, checked (they come back from a JSON file). */
export function bindingsOf(endpoint: DriverEndpoint): PortBinding[] {
  const raw = endpoint.driverState.ports;
  if (!Array.isArray(raw)) return [];
  const optionalPort = (v: unknown) => v === undefined || Number.isInteger(v);
  return raw.filter(
    (b): b is PortBinding =>
      typeof b === 'object' &&
      b !== null &&
      PROTOS.includes((b as PortBinding).proto) &&
      typeof (b as PortBinding).hostIp === 'string' &&
      Number.isInteger((b as PortBinding).hostPort) &&
      Number.isInteger((b as PortBinding).containerPort) &&
      optionalPort((b as PortBinding).hostPortEnd) &&
      optionalPort((b as PortBinding).containerPortEnd),
  );
}


export class PortPublisher {
  private readonly allocator = new PortAllocator();
  /** The port forwards in place, by endpoint id: what a firewall reload must put back. */
  private readonly published = new Map<string, PortForwardSpec>();
  /** The reservation under way, if any (reserve). */
  private reserving: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: PortPublisherDeps) {}

  /**
   * Chooses and reserves the host ports of an endpoint that is about to join. Throws (and reserves
   * nothing) on a conflict or bad request; touches nothing in the kernel.
   */
  reserve(network: DriverNetwork, opts: BridgeOptions, endpoint: DriverEndpoint, requests: readonly PortRequest[]): Promise<PortBinding[]> {
    if (requests.length === 0) return Promise.resolve([]);
    // One reservation at a time: choosing a port and recording it are separated by host checks that wait
    // (joins run at once), and two joins must not choose the same free port.
    const reserved = this.reserving.then(() => this.reserveNow(network, opts, endpoint, requests));
    this.reserving = reserved.catch(() => undefined);
    return reserved;
  }

  private async reserveNow(network: DriverNetwork, opts: BridgeOptions, endpoint: DriverEndpoint, requests: readonly PortRequest[]): Promise<PortBinding[]> {
    if (network.internal) throw new InvalidArgumentError(`network ${network.name} is internal: it cannot publish ports`);
    const families: Family[] = [];
    if (endpoint.ipv4) families.push(4);
    if (endpoint.ipv6) families.push(6);
    const specific = requests.some((r) => {
      const ip = r.hostIp ?? opts.hostBindingIp;
      return ip !== undefined && !isWildcard(ip);
    });
    const local = specific ? await this.localAddresses() : new Set<string>();
    // UDP and SCTP from /proc, read once and only when asked for; one TCP port by trying to listen (see
    // bind-probe.ts), TCP ranges from /proc too (read once, whatever the range's length).
    let others: HostSockets | undefined;
    let tcpSockets: HostSockets | undefined;
    return this.allocator.allocate(
      { endpointId: endpoint.id, name: endpoint.name },
      requests,
      {
        families,
        defaultHostIp: opts.hostBindingIp,
        hostConflicts: async (proto, hostIp, range) => {
          if (proto === 'tcp' && range.size === 1) {
            const errno = await tcpListenProbe(hostIp, range.start);
            if (errno === undefined) return [];
            return [{ port: range.start, why: errno === 'EADDRINUSE' ? `listening on ${range.start}/tcp` : `cannot listen on ${describeAddress(hostIp)}:${range.start}: ${errno}` }];
          }
          const sockets = proto === 'tcp' ? (tcpSockets ??= HostSockets.read(['tcp'])) : (others ??= HostSockets.read(['udp', 'sctp']));
          return sockets.conflicts(proto, hostIp, range).map((s) => ({
            port: s.port,
            why: proto === 'tcp' ? `listening on ${s.port}/tcp` : `bound to ${describeAddress(s.address)}:${s.port}/${s.proto}`,
          }));
        },
        // All of 127.0.0.0/8 is local (lo holds 127.0.0.1/8).
        isLocalAddress: (a) => local.has(a) || (familyOf(a) === 4 && a.startsWith('127.')),
        ephemeral: ephemeralRange(),
      },
    );
  }

  release(endpointId: string): void {
    this.allocator.release(endpointId);
  }

  /** Once the endpoint's veth is on the bridge: hairpin on its port, then the DNAT rules. */
  async publish(bridge: string, opts: BridgeOptions, endpoint: DriverEndpoint, hostIfIndex: number, bindings: readonly PortBinding[]): Promise<void> {
    if (bindings.length === 0) return;
    // A container reaching its own published port through a host address is answered through the same
    // bridge port its packet came in by; a bridge only does that on ports in hairpin mode.
    // Both at once: they are independent requests (rtnetlink and the firewall's).
    const spec = forwardSpec(bridge, opts, endpoint, bindings);
    await allDone([this.deps.rtnl.setBridgePortHairpin(hostIfIndex, true), this.deps.firewall.setupPortForward(spec)]);
    this.published.set(endpoint.id, spec);
  }

  /**
   * Ports of an endpoint already joined (ProgramExternalConnectivity): chosen and checked, then published on
   * its bridge port (`hostIf` finds it); nothing stays reserved when that fails. Returns the bindings.
   */
  async publishJoined(network: DriverNetwork, bridge: string, opts: BridgeOptions, endpoint: DriverEndpoint, requests: readonly PortRequest[], hostIf: () => Promise<number>): Promise<PortBinding[]> {
    const bindings = await this.reserve(network, opts, endpoint, requests);
    if (bindings.length === 0) return bindings;
    try {
      await this.publish(bridge, opts, endpoint, await hostIf(), bindings);
    } catch (err) {
      this.release(endpoint.id);
      throw err;
    }
    return bindings;
  }

  /** Removes an endpoint's rules and conntrack entries and frees its host ports. */
  async unpublish(bridge: string, opts: BridgeOptions, endpoint: DriverEndpoint): Promise<void> {
    const bindings = bindingsOf(endpoint);
    // Forgotten first: a firewall reload that starts meanwhile must not put the forward back.
    this.published.delete(endpoint.id);
    if (bindings.length > 0) await this.deps.firewall.teardownPortForward(forwardSpec(bridge, opts, endpoint, bindings));
    this.allocator.release(endpoint.id);
  }

  /** Every port forward in place (for a firewall reload's reconcile). */
  forwards(): PortForwardSpec[] {
    return [...this.published.values()];
  }

  /**
   * After a restart: re-registers the persisted bindings, puts hairpin mode back on their bridge ports
   * (a recreated link would have lost it), and returns the port forwards for the firewall's reconcile.
   */
  async restore(endpoints: readonly { endpoint: DriverEndpoint; bridge: string; opts: BridgeOptions; hostIfIndex?: number }[]): Promise<PortForwardSpec[]> {
    const specs: PortForwardSpec[] = [];
    for (const { endpoint, bridge, opts, hostIfIndex } of endpoints) {
      const bindings = bindingsOf(endpoint);
      if (bindings.length === 0) continue;
      this.allocator.restore({ endpointId: endpoint.id, name: endpoint.name }, bindings);
      if (hostIfIndex !== undefined) {
        await this.deps.rtnl.setBridgePortHairpin(hostIfIndex, true).catch((err: unknown) =>
          this.deps.log.warn({ op: 'restore', endpoint: endpoint.id, err }, 'could not set hairpin mode'),
        );
      }
      const spec = forwardSpec(bridge, opts, endpoint, bindings);
      this.published.set(endpoint.id, spec);
      specs.push(spec);
    }
    return specs;
  }

  private async localAddresses(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const a of await this.deps.rtnl.addresses()) out.add(a.cidr.address.toString());
    return out;
  }
}

export function forwardSpec(bridge: string, opts: BridgeOptions, endpoint: DriverEndpoint, bindings: readonly PortBinding[]): PortForwardSpec {
  return {
    endpointId: endpoint.id,
    bridge,
    containerV4: endpoint.ipv4?.address,
    containerV6: endpoint.ipv6?.address,
    ports: bindings.map((b) => ({
      proto: b.proto,
      hostIp: IPAddress.parse(b.hostIp),
      hostPort: b.hostPort,
      containerPort: b.containerPort,
      ...(b.hostPortEnd !== undefined ? { hostPortEnd: b.hostPortEnd } : {}),
    })),
    routed: opts.routed,
  };
}
