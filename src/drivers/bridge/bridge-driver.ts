/**
 * The bridge driver: a Linux bridge per network with the gateway address on it, NAT to the outside
 * through the firewall layer, and one veth pair per endpoint whose container end is created directly
 * inside the container's namespace, named and addressed there through a netlink socket opened in it.
 *
 * Everything it creates is recognisable as this daemon's: links carry the ifalias `netd:<instance>:<id12>`
 * (network or endpoint id; link-owner.ts) and firewall rules carry the instance's marks (firewall/marks.ts),
 * so a restart removes its own leftovers and nothing else — not another netd instance's objects either.
 */
import { ConflictError, KernelError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Capabilities, Driver, JoinResult } from '../../driverapi/driver.js';
import { PORT_MAP } from '../../driverapi/labels.js';
import type { DriverEndpoint, DriverNetwork, DriverSandbox } from '../../driverapi/model.js';
import { Transaction } from '../../transaction/transaction.js';
import { operation } from '../../transaction/fault.js';
import type { Firewall } from '../../firewall/firewall.js';
import { Netns } from '../../kernel/netns.js';
import { Rtnl, type Link } from '../../kernel/rtnetlink.js';
import { InterfaceAddress, MAC } from '../../net/index.js';
import { writeSysctl } from '../../kernel/sysctl.js';
import type { InstanceIdentity } from '../../firewall/marks.js';
import { LinkOwner } from './link-owner.js';
import { LinkReaper, reapGroup } from './link-reaper.js';
import { HostForwarding } from './forwarding.js';
import { parseBridgeOptions, type BridgeOptions } from './options.js';
import { PortPublisher, bindingsOf } from './port-publisher.js';
import { portRequestsOf, upgradeLegacyEndpoint } from './endpoint-options.js';
import { allDone, checkContainerSide, checkHostSide, configureContainerSide, nameTaken } from './container-side.js';
import { bridgeName, firewallSpec, hostIfnameOf, hostInterfaceName, type BridgeState } from './names.js';
import { remark, sweepStrayVeths, type StrayLinkDeps } from './stray-links.js';
import type { PortBinding } from '../../portmap/types.js';

export interface BridgeDriverDeps {
  /** A netlink socket in the host namespace (the daemon's). */
  rtnl: Rtnl;
  firewall: Firewall;
  log: Logger;
  /** This daemon's instance: its id goes into every link alias (none: netd's marks from before instances). */
  instance?: InstanceIdentity;
  /** Keep the FORWARD policy even when netd turns forwarding on (`--ip-forward-no-drop`). */
  ipForwardNoDrop?: boolean;
  /** Where to record that netd turned IP forwarding on (in the data root), to keep the FORWARD policy after restarts. */
  forwardingFile?: string;
}

/** A Linux bridge numbers its ports in 10 bits, port 0 unused (BR_MAX_PORTS): adding one more is EXFULL. */
const MAX_BRIDGE_PORTS = 1023;

/** This driver's parts of the controller's operations, and its own (fault.ts). */
const CONFIGURE = ['add gateway address IPv4', 'add gateway address IPv6', 'bring the bridge up'] as const;
const CREATE_BRIDGE = operation('create-network', ['create bridge', ...CONFIGURE, 'enable IP forwarding', 'bridge sysctls', 'set up firewall rules']);
const RM_BRIDGE = operation('rm-network', [], ['after:firewall teardown']);
const JOIN = operation('attach', [], ['after:create veth']);
const RESTORE = operation('restore', ['create bridge', ...CONFIGURE]);

export class BridgeDriver implements Driver {
  readonly type = 'bridge';
  // Joins of different endpoints may run at once: each makes its own veth and container side; host ports
  // are reserved one join at a time (PortPublisher) and the firewall serialises its changes.
  readonly capabilities: Capabilities = { interface: true, dnsNames: true, endpointOptions: [PORT_MAP], parallelJoin: true };
  /** Bridge ifindex by network id, looked up once. */
  private readonly bridgeIndex = new Map<string, number>();
  /** Parsed options by network id: a network's options never change, so they are parsed once. */
  private readonly optionsById = new Map<string, BridgeOptions>();
  /** Published ports of this driver's endpoints. */
  private readonly ports: PortPublisher;
  private readonly owner: LinkOwner;
  /** Host ends cut off by a detach, deleted together (link-reaper.ts). */
  private readonly reaper: LinkReaper;
  private readonly forwarding: HostForwarding;
  /**
   * Networks another driver made through this one (the overlay driver's: a bridge with a VXLAN port), with
   * their endpoints as of the last restore. They share this driver's firewall convergence, which lays out
   * every network of the instance at once: a reload that left them out would remove their rules.
   */
  private readonly guests = new Map<string, DriverNetwork>();
  private guestEndpoints: DriverEndpoint[] = [];

  constructor(private readonly deps: BridgeDriverDeps) {
    this.ports = new PortPublisher(deps);
    this.owner = new LinkOwner(deps.instance);
    this.reaper = new LinkReaper(deps.rtnl, reapGroup(deps.instance?.id));
    this.forwarding = new HostForwarding({
      firewall: deps.firewall,
      log: deps.log,
      noDrop: deps.ipForwardNoDrop === true,
      links: () => this.rtnl.links(),
      routes6: () => this.rtnl.routes(6),
      recordFile: deps.forwardingFile,
    });
  }

  private get strayDeps(): StrayLinkDeps {
    return { rtnl: this.rtnl, owner: this.owner, log: this.deps.log };
  }

  private get rtnl(): Rtnl {
    return this.deps.rtnl;
  }

  // ---------------------------------------------------------------- guests (overlay.ts)

  /** A network another driver made through this one: its firewall rules are kept with this driver's. */
  addGuest(network: DriverNetwork): void {
    this.guests.set(network.id, network);
  }

  removeGuest(networkId: string): void {
    this.guests.delete(networkId);
    this.guestEndpoints = this.guestEndpoints.filter((e) => e.networkId !== networkId);
  }

  /** At start, before this driver's own restore: the guests and their endpoints, whose bridges come back now. */
  async restoreGuests(networks: DriverNetwork[], endpoints: DriverEndpoint[]): Promise<void> {
    for (const n of networks) this.guests.set(n.id, n);
    this.guestEndpoints = endpoints;
    await this.restoreBridges(networks, await this.rtnl.links());
  }

  /** The ifindex of a network's bridge (a guest's too). */
  bridgeIndexOf(network: DriverNetwork): Promise<number> {
    return this.bridgeOf(network);
  }

  private withGuests(networks: DriverNetwork[]): DriverNetwork[] {
    return this.guests.size === 0 ? networks : [...networks.filter((n) => !this.guests.has(n.id)), ...this.guests.values()];
  }

  // ---------------------------------------------------------------- networks

  async createNetwork(network: DriverNetwork): Promise<Record<string, unknown>> {
    const opts = parseBridgeOptions(network.id, network.options);
    const existing = await this.rtnl.linkByName(opts.bridgeName);
    if (existing) {
      throw new ConflictError(`interface ${opts.bridgeName} already exists; choose another bridge name`);
    }
    const tx = new Transaction(CREATE_BRIDGE, this.deps.log);
    const bridge: Link = await tx.step(
      'create bridge',
      // A fixed MAC: otherwise the bridge takes on its ports' MACs as containers come and go.
      () => this.rtnl.createBridge({ name: opts.bridgeName, mtu: opts.mtu, mac: MAC.random(), alias: this.owner.mark(network.id) }),
      (): Promise<void> => this.rtnl.deleteLink(bridge.index),
    );
    await this.configureBridge(tx, network, bridge.index);
    await tx.step('enable IP forwarding', () => this.enableForwarding(network));
    await tx.step('bridge sysctls', () => this.tuneBridge(network, opts.bridgeName));
    const spec = firewallSpec(network, opts);
    await tx.step(
      'set up firewall rules',
      () => this.deps.firewall.setupNetwork(spec),
      () => this.deps.firewall.teardownNetwork(spec),
    );
    this.bridgeIndex.set(network.id, bridge.index);
    const state: BridgeState = { bridge: opts.bridgeName };
    return state;
  }

  private async configureBridge(tx: Transaction<(typeof CONFIGURE)[number]>, network: DriverNetwork, index: number): Promise<void> {
    for (const c of [...network.ipv4, ...network.ipv6]) {
      const cidr = InterfaceAddress.of(c.gateway, c.subnet);
      await tx.step(`add gateway address IPv${cidr.family}`, () => this.rtnl.addAddress(index, cidr));
    }
    await tx.step('bring the bridge up', () => this.rtnl.setLink(index, { up: true }));
  }

  /**
   * - route_localnet=1: published ports are reachable from the host on 127.0.0.1; DNAT sends such a
   *   packet, source 127.0.0.1, out of the bridge, which the kernel refuses unless route_localnet is set
   *   there. (The firewall drops packets for 127/8 that arrive on non-loopback interfaces, so this opens
   *   nothing.)
   * - accept_dad=0 (IPv6): the bridge's link-local address is only configured when its first port comes
   *   up, and stays tentative for a second of DAD; meanwhile neighbour solicitations for forwarded
   *   packets (a published port's first connection) wait. The address is netd's own, from a random MAC.
   */
  private tuneBridge(network: DriverNetwork, bridge: string): void {
    if (network.ipv4.length > 0 && !network.internal) writeSysctl(`net.ipv4.conf.${bridge}.route_localnet`, '1');
    if (network.ipv6.length > 0) writeSysctl(`net.ipv6.conf.${bridge}.accept_dad`, '0');
  }

  private enableForwarding(network: DriverNetwork): Promise<void> {
    return this.forwarding.enable(network.ipv4.length > 0, network.ipv6.length > 0);
  }

  async deleteNetwork(network: DriverNetwork): Promise<void> {
    const state = network.driverState as Partial<BridgeState>;
    const opts = this.optionsOf(network);
    await this.deps.firewall.teardownNetwork(firewallSpec(network, opts));
    RM_BRIDGE.reach('after:firewall teardown');
    const name = state.bridge ?? opts.bridgeName;
    const link = await this.rtnl.linkByName(name);
    if (link && link.kind === 'bridge' && this.owner.isOf(link.alias, network.id)) await this.rtnl.deleteLink(link.index);
    this.bridgeIndex.delete(network.id);
    this.optionsById.delete(network.id);
  }

  private optionsOf(network: DriverNetwork): BridgeOptions {
    let opts = this.optionsById.get(network.id);
    if (!opts) {
      opts = parseBridgeOptions(network.id, network.options);
      this.optionsById.set(network.id, opts);
    }
    return opts;
  }

  private async bridgeOf(network: DriverNetwork): Promise<number> {
    const cached = this.bridgeIndex.get(network.id);
    if (cached !== undefined) return cached;
    const name = (network.driverState as Partial<BridgeState>).bridge ?? this.optionsOf(network).bridgeName;
    const link = await this.rtnl.linkByName(name);
    if (!link) throw new KernelError(`find bridge ${name} of network ${network.name}`, 'ENODEV', 'the bridge is missing; restart netd to recreate it');
    this.bridgeIndex.set(network.id, link.index);
    return link.index;
  }

  // ---------------------------------------------------------------- endpoints

  async join(network: DriverNetwork, endpoint: DriverEndpoint, sandbox: DriverSandbox): Promise<JoinResult> {
    const opts = this.optionsOf(network);
    // Host ports are chosen and checked before anything is created: a conflict leaves no trace.
    const ports = await this.ports.reserve(network, opts, endpoint, portRequestsOf(endpoint));
    try {
      const plumbed = await this.plumb(network, opts, endpoint, sandbox, ports);
      const state = { hostIfname: plumbed.hostIfname, hostMac: plumbed.hostMac, mac: plumbed.mac.toString(), ...(ports.length > 0 ? { ports } : {}) };
      return { state, mac: plumbed.mac };
    } catch (err) {
      this.ports.release(endpoint.id);
      throw err;
    }
  }

  private async plumb(network: DriverNetwork, opts: BridgeOptions, endpoint: DriverEndpoint, sandbox: DriverSandbox, ports: PortBinding[]): Promise<{ hostIfname: string; hostMac: string; mac: MAC }> {
    const hostIfname = hostInterfaceName(endpoint.id);
    const mac = endpoint.mac ?? MAC.random();
    let master = await this.bridgeOf(network);
    let hostMac = '';
    // Handed over: the other end stays here, in the daemon's namespace, for the caller to move.
    const ns = endpoint.handOff ? Netns.current() : Netns.open(sandbox.key);
    try {
      const create = () =>
        this.rtnl.createVeth({
          name: hostIfname,
          mtu: opts.mtu,
          alias: this.owner.mark(endpoint.id),
          master,
          up: true,
          ipv6LinkLocal: false,
          peer: { name: endpoint.ifname, netns: ns, mac, mtu: opts.mtu },
        });
      let veth;
      try {
        veth = await create();
      } catch (err) {
        if (err instanceof KernelError && err.errno === 'EXFULL') {
          throw new ConflictError(`network ${network.name} is full: its bridge ${bridgeName(network, opts)} has the ${MAX_BRIDGE_PORTS} ports a Linux bridge can have`);
        }
        if (err instanceof KernelError && err.errno === 'EEXIST') throw await nameTaken(this.rtnl, ns, endpoint.ifname, hostIfname, err);
        // A bridge recreated behind our back has a new index: look it up once more.
        if (!(err instanceof KernelError) || err.errno !== 'ENODEV') throw err;
        this.bridgeIndex.delete(network.id);
        master = await this.bridgeOf(network);
        veth = await create();
      }
      JOIN.reach('after:create veth');
      hostMac = veth.mac;
      try {
        if (!endpoint.handOff) await configureContainerSide(ns, endpoint);
        await this.ports.publish(bridgeName(network, opts), opts, endpoint, veth.index, ports);
      } catch (err) {
        await this.rtnl.deleteLink(veth.index).catch(() => undefined);
        throw err;
      }
    } finally {
      ns.close();
    }
    return { hostIfname, hostMac, mac };
  }

  /**
   * A detach's answer waits only for this: the host end goes down and leaves the bridge (one request), so
   * nothing reaches the container or leaves it any more. Its forwards, the link and its host ports stay
   * until leave.
   */
  async cutOff(_network: DriverNetwork, endpoint: DriverEndpoint): Promise<void> {
    const link = await this.hostEnd(endpoint);
    if (link) await this.reaper.cutOff(link.index);
  }

  async leave(network: DriverNetwork, endpoint: DriverEndpoint): Promise<void> {
    // The published ports' rules and the veth go at the same time: both removals wait in the kernel for
    // an RCU grace period (nf_tables for deleted rules, unregister_netdevice for the link), and the
    // iptables-restore process waits for its own while this thread deletes the link, so the two waits
    // overlap instead of adding up. Both are done before the controller releases the address.
    const opts = this.optionsOf(network);
    const rules = this.ports.unpublish(bridgeName(network, opts), opts, endpoint);
    const link = this.deleteHostEnd(endpoint);
    await allDone([rules, link]);
    await this.forgetNeighbours(network, endpoint);
  }

  /** The bridge's ARP/NDP entries for the endpoint's addresses go with it: a later holder has another MAC. */
  private async forgetNeighbours(network: DriverNetwork, endpoint: DriverEndpoint): Promise<void> {
    const bridge = await this.bridgeOf(network).catch(() => undefined);
    if (bridge === undefined) return;
    for (const a of [endpoint.ipv4, endpoint.ipv6]) if (a) await this.rtnl.forgetNeighbour(bridge, a.address);
  }

  /** The endpoint's host end, when it is there and this endpoint's (gone already when its namespace died: the kernel removes both ends). */
  private async hostEnd(endpoint: DriverEndpoint): Promise<Link | undefined> {
    const link = await this.rtnl.linkByName(hostIfnameOf(endpoint));
    return link && link.kind === 'veth' && this.owner.isOf(link.alias, endpoint.id) ? link : undefined;
  }

  /** Cut off (if it was not yet) and deleted together with the other host ends being deleted. */
  private async deleteHostEnd(endpoint: DriverEndpoint): Promise<void> {
    const link = await this.hostEnd(endpoint);
    if (!link) return;
    if (await this.reaper.cutOff(link.index)) await this.reaper.reap(link.index);
  }

  /**
   * Ports published after join (libnetwork's ProgramExternalConnectivity, for endpoints handed over to
   * dockerd): the endpoint's PORT_MAP, chosen and checked before the kernel changes, then published on its
   * bridge port.
   */
  async programExternalConnectivity(network: DriverNetwork, endpoint: DriverEndpoint): Promise<Record<string, unknown>> {
    const opts = this.optionsOf(network);
    const { ports: _previous, ...state } = endpoint.driverState;
    const ports = await this.ports.publishJoined(network, bridgeName(network, opts), opts, endpoint, portRequestsOf(endpoint), async () => {
      const name = hostIfnameOf(endpoint);
      const link = await this.rtnl.linkByName(name);
      if (!link || !this.owner.isOf(link.alias, endpoint.id)) throw new KernelError(`find ${name} of endpoint ${endpoint.id.slice(0, 12)}`, 'ENODEV', 'the endpoint\'s interface is gone');
      return link.index;
    });
    return ports.length > 0 ? { ...state, ports } : state;
  }

  async revokeExternalConnectivity(network: DriverNetwork, endpoint: DriverEndpoint): Promise<Record<string, unknown>> {
    const opts = this.optionsOf(network);
    await this.ports.unpublish(bridgeName(network, opts), opts, endpoint);
    const { ports: _revoked, ...state } = endpoint.driverState;
    return state;
  }

  /** The veth's host end (`hostInterface`) and published ports, as attach results and `netd port` show them. */
  endpointInfo(_network: DriverNetwork, endpoint: DriverEndpoint): Record<string, unknown> {
    const ports = bindingsOf(endpoint);
    const hostMac = endpoint.driverState.hostMac as string | undefined;
    const hostInterface = { name: hostIfnameOf(endpoint), ...(hostMac ? { mac: hostMac } : {}) };
    return { hostInterface, ...(ports.length > 0 ? { ports } : {}) };
  }

  async check(network: DriverNetwork, endpoint: DriverEndpoint, sandbox: DriverSandbox): Promise<string[]> {
    const name = hostIfnameOf(endpoint);
    // A handed-over interface was renamed and configured by its caller (dockerd): only the host side is ours to check.
    const container = endpoint.handOff ? Promise.resolve([]) : checkContainerSide(endpoint, sandbox);
    const [inside, link, bridge] = await Promise.all([container, this.rtnl.linkByName(name), this.bridgeOf(network).catch(() => -1)]);
    return [...inside, ...checkHostSide(name, link, bridge)];
  }

  async endpointHealthy(network: DriverNetwork, endpoint: DriverEndpoint): Promise<boolean> {
    const name = hostIfnameOf(endpoint);
    const link = await this.rtnl.linkByName(name);
    return link !== undefined && link.up && link.master === (await this.bridgeOf(network).catch(() => -1));
  }

  close(): Promise<void> {
    return this.reaper.close();
  }

  // ---------------------------------------------------------------- firewall reload

  /** reconcile lays out the base chains too. */
  async reloadFirewall(own: DriverNetwork[]): Promise<void> {
    const networks = this.withGuests(own);
    await this.deps.firewall.reconcile(
      networks.map((n) => firewallSpec(n, this.optionsOf(n))),
      this.ports.forwards(),
    );
  }

  async firewallIntact(own: DriverNetwork[]): Promise<boolean> {
    const networks = this.withGuests(own);
    const fw = this.deps.firewall;
    return fw.intact ? fw.intact(networks.map((n) => firewallSpec(n, this.optionsOf(n))), this.ports.forwards()) : false;
  }

  // ---------------------------------------------------------------- restart

  async restore(own: DriverNetwork[], ownEndpoints: DriverEndpoint[]): Promise<void> {
    for (const endpoint of ownEndpoints) upgradeLegacyEndpoint(endpoint);
    const networks = this.withGuests(own);
    const endpoints = [...ownEndpoints, ...this.guestEndpoints];
    const links = await this.rtnl.links();
    await this.restoreBridges(own, links);
    const forwards = await this.ports.restore(
      endpoints.flatMap((endpoint) => {
        const network = networks.find((n) => n.id === endpoint.networkId);
        if (!network) return [];
        const opts = this.optionsOf(network);
        const hostIf = links.find((l) => l.name === hostIfnameOf(endpoint));
        return [{ endpoint, bridge: bridgeName(network, opts), opts, hostIfIndex: hostIf?.index }];
      }),
    );
    // Base chains, networks' rules and port forwards, in one convergence.
    await this.deps.firewall.reconcile(
      networks.map((n) => firewallSpec(n, this.optionsOf(n))),
      forwards,
    );

    // Host ends of known endpoints remarked, this instance's unknown ones removed (stray-links.ts).
    await sweepStrayVeths(this.strayDeps, links, networks, endpoints);
  }

  /** Each network's bridge back as it was (recreated when missing), forwarding on, the bridge's sysctls. */
  private async restoreBridges(networks: DriverNetwork[], links: Link[]): Promise<void> {
    await this.forwarding.resume();
    for (const network of networks) {
      const opts = this.optionsOf(network);
      const name = (network.driverState as Partial<BridgeState>).bridge ?? opts.bridgeName;
      let link = links.find((l) => l.name === name);
      if (!link) {
        // Recreate a bridge that disappeared (e.g. the host rebooted or someone deleted it).
        const tx = new Transaction(RESTORE, this.deps.log);
        link = await tx.step('create bridge', () => this.rtnl.createBridge({ name, mtu: opts.mtu, mac: MAC.random(), alias: this.owner.mark(network.id) }));
        await this.configureBridge(tx, network, link.index);
        this.deps.log.warn({ op: 'restore', network: network.id, bridge: name }, 'bridge was missing; recreated');
      } else {
        await remark(this.strayDeps, link, network.id);
        if (!link.up) await this.rtnl.setLink(link.index, { up: true });
      }
      this.bridgeIndex.set(network.id, link.index);
      await this.enableForwarding(network);
      this.tuneBridge(network, name);
    }
  }
}
