/**
 * The overlay driver: a network that spans the hosts of a cluster. On each host it is a bridge network
 * (the bridge driver's: gateway address, veths, NAT to the outside through this host, isolation, published
 * ports) whose bridge has one more port, a VXLAN device (vxlan-segment.ts) that carries the network's
 * frames to the other hosts. It is libnetwork's L2 model: every host's bridge has the same gateway
 * address, and a remote container is one static FDB entry (its MAC → its host's address) and one
 * permanent neighbour entry (its IP → its MAC) on the VXLAN device (peer-table.ts): no multicast, no
 * flooding, no learning. The cluster (cluster/) tells the driver which remote containers exist.
 *
 * The network's VXLAN id comes from the cluster's claim, in the option `netd.overlay.vni`; the MTU of the
 * bridge and of every veth is the underlay's minus the VXLAN overhead (50 bytes), unless the option
 * com.docker.network.driver.mtu says otherwise.
 */
import { InvalidArgumentError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Capabilities, Driver, JoinResult } from '../../driverapi/driver.js';
import { PORT_MAP } from '../../driverapi/labels.js';
import type { DriverEndpoint, DriverNetwork, DriverSandbox } from '../../driverapi/model.js';
import type { Rtnl } from '../../kernel/rtnetlink.js';
import { MAC, type IPAddress } from '../../net/index.js';
import type { InstanceIdentity } from '../../firewall/marks.js';
import type { BridgeDriver } from '../bridge/bridge-driver.js';
import { LinkOwner } from '../bridge/link-owner.js';
import { OPT_BRIDGE_NAME, OPT_MTU } from '../bridge/options.js';
import { ensureSegment, removeSegment, underlayMtu, VXLAN_OVERHEAD } from './vxlan-segment.js';
import { PeerTable } from './peer-table.js';

/** The option the cluster's claim sets: the network's VXLAN id, the same on every host. */
export const OPT_VNI = 'netd.overlay.vni';

export interface OverlayDriverDeps {
  /** The bridge driver that makes each host's part (its bridge, veths, firewall). */
  bridge: BridgeDriver;
  rtnl: Rtnl;
  log: Logger;
  /** This host's address on the underlay: the VXLAN devices' source, and where the other hosts send. */
  advertise: IPAddress;
  instance?: InstanceIdentity;
}

/** What createNetwork persists. */
interface OverlayState {
  bridge: string;
  vni: number;
  mtu: number;
  [key: string]: unknown;
}

export class OverlayDriver implements Driver {
  readonly type = 'overlay';
  readonly capabilities: Capabilities = { interface: true, dnsNames: true, endpointOptions: [PORT_MAP], parallelJoin: true, globalScope: true };
  private readonly owner: LinkOwner;
  /** Remote containers' entries, per network id (its VXLAN device's). */
  private readonly tables = new Map<string, PeerTable>();

  constructor(private readonly deps: OverlayDriverDeps) {
    this.owner = new LinkOwner(deps.instance);
  }

  private get bridge(): BridgeDriver {
    return this.deps.bridge;
  }

  /** The network as the bridge driver makes it: its bridge named `ov-<id12>`, with the overlay's MTU. */
  private local(network: DriverNetwork, mtu?: number): DriverNetwork {
    const state = network.driverState as Partial<OverlayState>;
    const m = mtu ?? state.mtu;
    return {
      ...network,
      options: { ...network.options, [OPT_BRIDGE_NAME]: state.bridge ?? `ov-${network.id.slice(0, 12)}`, ...(m !== undefined ? { [OPT_MTU]: String(m) } : {}) },
    };
  }

  private vniOf(network: DriverNetwork): number {
    const text = network.options[OPT_VNI];
    const vni = /^\d{1,8}$/.test(text ?? '') ? Number(text) : NaN;
    if (!(vni >= 1 && vni < 2 ** 24)) throw new InvalidArgumentError(`overlay network ${network.name} has no valid VXLAN id (option ${OPT_VNI}: ${JSON.stringify(text)})`);
    return vni;
  }

  async createNetwork(network: DriverNetwork): Promise<Record<string, unknown>> {
    if (network.options[OPT_BRIDGE_NAME] !== undefined) throw new InvalidArgumentError(`an overlay network's bridge is named by netd (option ${OPT_BRIDGE_NAME} is not allowed)`);
    const vni = this.vniOf(network);
    const given = network.options[OPT_MTU];
    const mtu = given !== undefined ? Number(given) : (await underlayMtu(this.deps.rtnl, this.deps.advertise)) - VXLAN_OVERHEAD;
    const local = this.local(network, mtu);
    const bridgeState = await this.bridge.createNetwork(local);
    const made: DriverNetwork = { ...local, driverState: bridgeState };
    try {
      await this.segment(made, vni, mtu);
    } catch (err) {
      await this.bridge.deleteNetwork(made).catch(() => undefined);
      throw err;
    }
    this.bridge.addGuest(made);
    const state: OverlayState = { ...bridgeState, bridge: String(bridgeState.bridge), vni, mtu };
    return state;
  }

  /** The network's VXLAN device on its bridge (made again when it is not as it should be). */
  private async segment(local: DriverNetwork, vni: number, mtu: number): Promise<number> {
    const bridgeIndex = await this.bridge.bridgeIndexOf(local);
    const seg = await ensureSegment(this.deps.rtnl, { networkId: local.id, vni, local: this.deps.advertise, bridgeIndex, mtu, alias: this.owner.mark(local.id) });
    this.tables.set(local.id, new PeerTable(this.deps.rtnl, seg.index));
    return seg.index;
  }

  async deleteNetwork(network: DriverNetwork): Promise<void> {
    this.tables.delete(network.id);
    this.bridge.removeGuest(network.id);
    await removeSegment(this.deps.rtnl, network.id, this.owner.mark(network.id));
    await this.bridge.deleteNetwork(this.local(network));
  }

  /** The remote containers' entries of a network on this host (undefined: the network is not here). */
  peers(networkId: string): PeerTable | undefined {
    return this.tables.get(networkId);
  }

  // ---------------------------------------------------------------- endpoints: the bridge driver's

  /**
   * Without a MAC asked for, the endpoint's is derived from its address (02:42 and the four bytes of the
   * IPv4 address, as Docker's overlay did): an address a container on another host held before comes with
   * the same MAC, so the ARP caches of containers that talked to the old one stay right.
   */
  join(network: DriverNetwork, endpoint: DriverEndpoint, sandbox: DriverSandbox): Promise<JoinResult> {
    const mac = endpoint.mac ?? (endpoint.ipv4 ? macOf(endpoint.ipv4.address) : undefined);
    return this.bridge.join(this.local(network), { ...endpoint, mac }, sandbox);
  }

  cutOff(network: DriverNetwork, endpoint: DriverEndpoint): Promise<void> {
    return this.bridge.cutOff(this.local(network), endpoint);
  }

  leave(network: DriverNetwork, endpoint: DriverEndpoint): Promise<void> {
    return this.bridge.leave(this.local(network), endpoint);
  }

  endpointInfo(network: DriverNetwork, endpoint: DriverEndpoint): Record<string, unknown> {
    return this.bridge.endpointInfo(this.local(network), endpoint);
  }

  check(network: DriverNetwork, endpoint: DriverEndpoint, sandbox: DriverSandbox): Promise<string[]> {
    return this.bridge.check(this.local(network), endpoint, sandbox);
  }

  programExternalConnectivity(network: DriverNetwork, endpoint: DriverEndpoint): Promise<Record<string, unknown>> {
    return this.bridge.programExternalConnectivity(this.local(network), endpoint);
  }

  revokeExternalConnectivity(network: DriverNetwork, endpoint: DriverEndpoint): Promise<Record<string, unknown>> {
    return this.bridge.revokeExternalConnectivity(this.local(network), endpoint);
  }

  endpointHealthy(network: DriverNetwork, endpoint: DriverEndpoint): Promise<boolean> {
    return this.bridge.endpointHealthy(this.local(network), endpoint);
  }

  // ---------------------------------------------------------------- restart

  /**
   * Runs before the bridge driver's restore (the daemon lists this driver first): the bridges come back
   * and are handed to the bridge driver as guests, whose own restore then converges the firewall and
   * sweeps stray veths for both; then each VXLAN device is made again where it is missing or stale (this
   * host's address changed). Remote entries come from the cluster once it is reached (peer-table.ts resync).
   */
  async restore(networks: DriverNetwork[], endpoints: DriverEndpoint[]): Promise<void> {
    const locals = networks.map((n) => this.local(n));
    await this.bridge.restoreGuests(locals, endpoints);
    for (const n of locals) {
      const state = n.driverState as Partial<OverlayState>;
      try {
        await this.segment(n, this.vniOf(n), state.mtu ?? (await underlayMtu(this.deps.rtnl, this.deps.advertise)) - VXLAN_OVERHEAD);
      } catch (err) {
        this.deps.log.error({ op: 'restore', network: n.id, err }, 'could not restore the overlay network\'s VXLAN device');
      }
    }
  }
}

/** 02:42 and the four bytes of an IPv4 address: a locally administered unicast MAC. */
export function macOf(address: IPAddress): MAC {
  const v = address.toBigInt();
  const bytes = [0x02, 0x42, ...[24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 0xffn))];
  return MAC.parse(bytes.map((b) => b.toString(16).padStart(2, '0')).join(':'));
}
