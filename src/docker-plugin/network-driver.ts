/**
 * libnetwork's NetworkDriver calls on netd's controller. A Docker network is a netd bridge network with
 * dockerd's NetworkID as its id; a Docker endpoint becomes a netd endpoint (dockerd's EndpointID) at Join,
 * made in hand-off mode: the bridge driver leaves the container end of the veth pair in the daemon's
 * namespace under a name of ours, and dockerd moves it into the sandbox, renames it (`eth` prefix),
 * addresses it and, on Leave, moves it back; DeleteEndpoint removes the pair. Between CreateEndpoint and
 * DeleteEndpoint the endpoint's addresses and MAC are kept in the plugin's state (state.ts), and its
 * addresses held so nothing else takes them.
 */
import { basename } from 'node:path';
import { ConflictError, ForbiddenError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { Logger } from '../log.js';
import { MAC, type Family, type InterfaceAddress, type Prefix } from '../net/index.js';
import type { NetworkRecord } from '../cnm/network.js';
import type { EndpointRecord } from '../cnm/endpoint.js';
import type { PortBinding } from '../portmap/types.js';
import { DOCKER_ORIGIN, MANAGED_BY, ORIGIN_LABEL, SANDBOX_LABEL, type PluginCore } from './core.js';
import type { EndpointEntry, Hold, PluginState } from './state.js';
import { MAC_ADDRESS, PORT_MAP, dockerBindingsOf } from './portmap.js';
import { parseCreateEndpoint, parseCreateNetwork, parseEndpointRef, parseJoin, parseNetworkRef, parseProgramConnectivity, type CreateNetworkRequest } from './requests.js';
import type { Answer } from './answer.js';

/** The interface name the veth's container end has until dockerd renames it. */
export function handOffName(endpointId: string): string {
  return `netdc${endpointId.slice(0, 7)}`;
}

/** The netd name of a Docker network. */
export function networkName(networkId: string): string {
  return `docker-${networkId.slice(0, 12)}`;
}

export class NetworkDriver {
  constructor(
    private readonly core: () => PluginCore,
    private readonly state: PluginState,
    private readonly log: Logger,
  ) {}

  capabilities(): Answer {
    return { Scope: 'local', ConnectivityScope: 'local' };
  }

  async createNetwork(raw: unknown): Promise<Answer> {
    const req = parseCreateNetwork(raw);
    const existing = this.find(req.networkId);
    if (existing) {
      if (!sameConfig(existing, req)) throw new ConflictError(`network ${req.networkId} exists with another configuration`);
      // Replayed (dockerd's restart): aux addresses released meanwhile (a hold lost) are held again.
      await this.holdAux(existing.id, req);
      return {};
    }
    const network = await this.core().createNetwork({
      id: req.networkId,
      name: networkName(req.networkId),
      driver: 'bridge',
      subnet: req.v4.pool,
      gateway: req.v4.gateway,
      subnet6: req.v6?.pool,
      gateway6: req.v6?.gateway,
      enableIPv6: req.enableIPv6,
      internal: req.internal,
      options: req.options,
      labels: { [ORIGIN_LABEL]: DOCKER_ORIGIN },
      adoptHeldPool: true,
      managedBy: MANAGED_BY,
    });
    try {
      await this.holdAux(network.id, req);
    } catch (err) {
      await this.core().deleteNetwork(network.id, MANAGED_BY);
      throw err;
    }
    return {};
  }

  /**
   * The aux addresses (`--aux-address`): held unless held already (netd's IPAM, asked by dockerd, or this
   * driver before), and recorded so DeleteNetwork drops the driver's own. All or nothing.
   */
  private async holdAux(networkId: string, req: CreateNetworkRequest): Promise<void> {
    const before = this.state.networks.get(networkId) ?? [];
    const made: Hold[] = [];
    try {
      for (const pool of [req.v4, req.v6]) {
        for (const address of pool?.aux ?? []) {
          if (this.core().held.addressHeld(pool!.pool, address)) continue;
          await this.core().held.holdAddress(pool!.pool, address);
          made.push({ subnet: pool!.pool, address });
        }
      }
    } catch (err) {
      await this.releaseAll(made);
      throw err;
    }
    if (made.length === 0) return;
    const kept = before.filter((h) => !made.some((m) => m.subnet.equals(h.subnet) && m.address.equals(h.address)));
    this.state.setNetworkHolds(networkId, [...kept, ...made]);
  }

  /**
   * dockerd deletes a network only once it has no endpoints on it; endpoints netd still has there are ones
   * whose DeleteEndpoint was lost (dockerd gives up on calls while netd is down): they go first, with their
   * records and holds, so the network can go.
   */
  async deleteNetwork(raw: unknown): Promise<Answer> {
    const { networkId } = parseNetworkRef(raw);
    if (this.find(networkId)) {
      for (const ep of this.core().endpointsOf(networkId)) {
        if (ep.managedBy !== MANAGED_BY) continue;
        await this.core().removeEndpoint(ep.id, MANAGED_BY, MANAGED_BY);
        await this.core().endpointGone(ep.id);
        this.log.info({ op: 'docker-plugin', network: networkId, endpoint: ep.id }, 'endpoint dockerd no longer has removed with its network');
      }
      for (const entry of [...this.state.endpoints.values()]) if (entry.networkId === networkId) await this.forgetOrphan(entry.id);
      await this.core().deleteNetwork(networkId, MANAGED_BY);
    }
    const holds = this.state.networks.get(networkId);
    if (holds) {
      this.state.dropNetworkHolds(networkId);
      await this.releaseAll(holds);
    }
    // Endpoints dockerd made but never deleted (it lost the call): nothing else would ever drop them.
    for (const id of this.state.endpointIdsOf(networkId)) await this.forgetEndpoint(id);
    return {};
  }

  async createEndpoint(raw: unknown): Promise<Answer> {
    const req = parseCreateEndpoint(raw);
    const network = this.network(req.networkId);
    const known = this.state.endpoints.get(req.endpointId);
    if (known || this.findEndpoint(req.endpointId)) {
      if (known && known.networkId === req.networkId && sameAddress(known.ipv4, req.ipv4) && sameAddress(known.ipv6, req.ipv6)) return macAnswer(known, req.mac);
      throw new ConflictError(`endpoint ${req.endpointId} exists already`);
    }
    const entry: EndpointEntry = { id: req.endpointId, networkId: network.id, mac: req.mac ?? MAC.random(), heldHere: [] };
    if (req.ipv4) entry.ipv4 = req.ipv4;
    if (req.ipv6) entry.ipv6 = req.ipv6;
    try {
      for (const a of [req.ipv4, req.ipv6]) {
        if (!a) continue;
        const subnet = subnetOf(network, a);
        if (this.core().held.addressHeld(subnet, a.address)) continue;
        await this.core().held.holdAddress(subnet, a.address);
        entry.heldHere.push({ subnet, address: a.address });
      }
      this.state.saveEndpoint(entry);
    } catch (err) {
      this.state.dropEndpoint(entry.id);
      await this.releaseAll(entry.heldHere);
      throw err;
    }
    return macAnswer(entry, req.mac);
  }

  async join(raw: unknown): Promise<Answer> {
    const req = parseJoin(raw);
    const network = this.network(req.networkId);
    const entry = this.pending(req.endpointId, req.networkId);
    const sandbox = basename(req.sandboxKey);
    const ep = this.findEndpoint(entry.id);
    if (ep) {
      // Joined already: the same Join again is answered again; another sandbox is not this endpoint's.
      const joinedTo = entry.sandboxKey ?? ep.labels?.[SANDBOX_LABEL];
      if (joinedTo !== req.sandboxKey && joinedTo !== sandbox) throw new ConflictError(`endpoint ${entry.id} has joined sandbox ${joinedTo}, not ${req.sandboxKey}`);
    } else {
      await this.core().attach({
        target: { path: req.sandboxKey },
        network: network.id,
        endpointId: entry.id,
        name: sandbox,
        ifname: handOffName(entry.id),
        handOff: true,
        claimHeld: true,
        ip: entry.ipv4?.address,
        ip6: entry.ipv6?.address,
        // Only the families CreateEndpoint gave an address in (no IPv6 address of netd's on a v6 network).
        families: familiesOf(entry),
        mac: entry.mac,
        labels: { [ORIGIN_LABEL]: DOCKER_ORIGIN, [SANDBOX_LABEL]: sandbox },
        managedBy: MANAGED_BY,
      });
    }
    const { left: _rejoined, ...joined } = entry;
    this.state.saveEndpoint({ ...joined, sandboxKey: req.sandboxKey });
    const gw4 = network.internal ? undefined : network.ipv4[0]?.gateway;
    const gw6 = network.internal ? undefined : network.ipv6[0]?.gateway;
    return {
      InterfaceName: { SrcName: handOffName(entry.id), DstPrefix: 'eth' },
      ...(gw4 && entry.ipv4 ? { Gateway: gw4.toString() } : {}),
      ...(gw6 && entry.ipv6 ? { GatewayIPv6: gw6.toString() } : {}),
      DisableGatewayService: false,
    };
  }

  /** dockerd moves the interface back to its namespace itself; the veth pair goes at DeleteEndpoint. */
  async leave(raw: unknown): Promise<Answer> {
    const { endpointId } = parseEndpointRef(raw);
    const entry = this.state.endpoints.get(endpointId);
    if (entry?.sandboxKey !== undefined && !entry.left) this.state.saveEndpoint({ ...entry, left: true });
    return {};
  }

  async deleteEndpoint(raw: unknown): Promise<Answer> {
    const { endpointId } = parseEndpointRef(raw);
    if (this.findEndpoint(endpointId)) {
      await this.core().removeEndpoint(endpointId, MANAGED_BY, MANAGED_BY);
      // dockerd releases the address next: it must be free in netd's IPAM by then, and the veth gone.
      await this.core().endpointGone(endpointId);
    }
    await this.forgetEndpoint(endpointId);
    return {};
  }

  /**
   * Its netd endpoint was released without dockerd (the sweep: its namespace died). dockerd removes a sandbox's
   * namespace only after its own calls for it, ReleaseAddress included, which it never retries once they failed
   * (netd was down): the netd-IPAM holds of the endpoint's addresses go with the record.
   */
  async forgetOrphan(endpointId: string): Promise<void> {
    const entry = this.state.endpoints.get(endpointId);
    for (const a of [entry?.ipv4, entry?.ipv6]) {
      const pool = a && this.state.poolHolding(a.address);
      if (!a || !pool) continue;
      this.state.release(pool, a.address);
      await this.core().held.releaseAddress(pool.subnet, a.address);
    }
    await this.forgetEndpoint(endpointId);
  }

  /** The endpoint's record and holds go (DeleteEndpoint, or its netd endpoint was released without dockerd). */
  async forgetEndpoint(endpointId: string): Promise<void> {
    const entry = this.state.endpoints.get(endpointId);
    if (!entry) return;
    // Releases follow the records they are rebuilt from at start: a crash between holds nothing.
    this.state.dropEndpoint(endpointId);
    await this.releaseAll(entry.heldHere);
  }

  async programExternalConnectivity(raw: unknown): Promise<Answer> {
    const req = parseProgramConnectivity(raw);
    const ep = this.joined(req.endpointId);
    // Nothing to publish and nothing published: no firewall work at all (every `docker run` without -p).
    if (req.ports.length === 0 && portsOf(this.core().endpointInfo(ep)).length === 0) return {};
    await this.core().programExternalConnectivity(ep.id, { [PORT_MAP]: req.ports }, MANAGED_BY);
    return {};
  }

  async revokeExternalConnectivity(raw: unknown): Promise<Answer> {
    const { endpointId } = parseEndpointRef(raw);
    const ep = this.findEndpoint(endpointId);
    if (ep && portsOf(this.core().endpointInfo(ep)).length > 0) await this.core().revokeExternalConnectivity(endpointId, MANAGED_BY);
    return {};
  }

  endpointOperInfo(raw: unknown): Answer {
    const { endpointId } = parseEndpointRef(raw);
    const ep = this.findEndpoint(endpointId);
    const entry = this.state.endpoints.get(endpointId);
    // Not joined, or gone (released while dockerd was away): nothing to report, which dockerd takes as it is
    // (an error would fail its `docker inspect` and container starts for an endpoint it is about to delete).
    if (!ep) return { Value: entry ? { [MAC_ADDRESS]: entry.mac.toString() } : {} };
    const info = this.core().endpointInfo(ep);
    const host = info.hostInterface as { name?: string } | undefined;
    const ip = ep.ipv4?.address.toString() ?? ep.ipv6?.address.toString() ?? '';
    return {
      Value: {
        [PORT_MAP]: dockerBindingsOf(portsOf(info), ip),
        ...(ep.mac ? { [MAC_ADDRESS]: ep.mac.toString() } : {}),
        ...(host?.name ? { hostInterface: host.name } : {}),
      },
    };
  }

  /** The Docker network `networkId`, if there is one; a netd network of another manager is refused, never touched. */
  private find(networkId: string): NetworkRecord | undefined {
    // By id, one map look-up (every CreateEndpoint and Join asks), not a scan of every network.
    let n: NetworkRecord | undefined;
    try {
      n = this.core().network(networkId);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    if (n.id !== networkId) return undefined; // a network *named* like the id is another one
    if (n.managedBy !== MANAGED_BY) throw new ForbiddenError(`network ${networkId} (${n.name}) is not a Docker network: netd's plugin leaves it alone`);
    return n;
  }

  /** The Docker endpoint `endpointId` netd has (joined), if any; an endpoint of another manager is refused. */
  private findEndpoint(endpointId: string): EndpointRecord | undefined {
    const ep = this.core().endpoint(endpointId);
    if (ep && ep.managedBy !== MANAGED_BY) throw new ForbiddenError(`endpoint ${endpointId} (${ep.name}) is not a Docker endpoint: netd's plugin leaves it alone`);
    return ep;
  }

  private network(networkId: string): NetworkRecord {
    const n = this.find(networkId);
    if (!n) throw new NotFoundError(`network ${networkId} not found`);
    return n;
  }

  private pending(endpointId: string, networkId: string): EndpointEntry {
    const entry = this.state.endpoints.get(endpointId);
    if (!entry) throw new NotFoundError(`no endpoint ${endpointId}: CreateEndpoint first`);
    if (entry.networkId !== networkId) throw new InvalidArgumentError(`endpoint ${endpointId} is on network ${entry.networkId}, not ${networkId}`);
    return entry;
  }

  private joined(endpointId: string): EndpointRecord {
    const ep = this.findEndpoint(endpointId);
    if (!ep) throw new NotFoundError(`endpoint ${endpointId} has not joined a sandbox`);
    return ep;
  }

  private async releaseAll(holds: Hold[]): Promise<void> {
    for (const h of holds) {
      try {
        await this.core().held.releaseAddress(h.subnet, h.address);
      } catch (err) {
        this.log.warn({ op: 'docker-plugin', subnet: h.subnet.toString(), address: h.address.toString(), err }, 'could not release a held address');
      }
    }
  }
}

function portsOf(info: Record<string, unknown>): PortBinding[] {
  return Array.isArray(info.ports) ? (info.ports as PortBinding[]) : [];
}

/** The network's subnet an endpoint address sits in. */
function subnetOf(network: NetworkRecord, a: InterfaceAddress): Prefix {
  const config = [...network.ipv4, ...network.ipv6].find((c) => c.subnet.contains(a.address));
  if (!config) throw new InvalidArgumentError(`address ${a} is not inside network ${network.id}'s subnets`);
  if (config.subnet.length !== a.length) throw new InvalidArgumentError(`address ${a} does not have the prefix length of ${config.subnet}`);
  return config.subnet;
}

function sameAddress(a: InterfaceAddress | undefined, b: InterfaceAddress | undefined): boolean {
  return a === undefined ? b === undefined : a.equals(b);
}

/** Equal, or one side left unset (a gateway netd chose, a v6 pool dockerd did not send). */
function sameOrUnset<T extends { equals(other: T): boolean }>(a: T | undefined, b: T | undefined): boolean {
  return a === undefined || b === undefined || a.equals(b);
}

function familiesOf(entry: EndpointEntry): Family[] {
  return [...(entry.ipv4 ? [4 as const] : []), ...(entry.ipv6 ? [6 as const] : [])];
}

/** A CreateNetwork repeated for an existing network (dockerd replays them after its restart). */
function sameConfig(n: NetworkRecord, req: CreateNetworkRequest): boolean {
  return (
    n.internal === req.internal &&
    sameOrUnset(n.ipv4[0]?.subnet, req.v4.pool) &&
    sameOrUnset(n.ipv4[0]?.gateway, req.v4.gateway) &&
    sameOrUnset(n.ipv6[0]?.subnet, req.v6?.pool) &&
    sameOrUnset(n.ipv6[0]?.gateway, req.v6?.gateway)
  );
}

/** CreateEndpoint's answer: only what the request left empty (dockerd refuses a driver that changes it). */
function macAnswer(entry: EndpointEntry, asked: MAC | undefined): Answer {
  return { Interface: asked ? {} : { MacAddress: entry.mac.toString() } };
}
