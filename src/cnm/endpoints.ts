/**
 * Endpoints' lifecycle: joining a sandbox to a network (addresses from IPAM for drivers that give an
 * interface, then the driver's join) and removing an endpoint again, each a journaled transaction; and
 * what is reported of an endpoint.
 */
import { ConflictError, ForbiddenError, InvalidArgumentError } from '../errors.js';
import { optionPurpose } from '../driverapi/labels.js';
import type { Driver } from '../driverapi/driver.js';
import { Transaction } from '../transaction/transaction.js';
import { operation, type StepOf } from '../transaction/fault.js';
import { newId, type CoreContext } from './context.js';
import { parseIfName } from '../net/index.js';
import { checkAliases, checkEndpointOptions, checkManager, checkStringMap, isValidId, isValidName } from './validation.js';
import type { Family } from '../net/index.js';
import type { Network, NetworkRecord } from './network.js';
import type { AttachRequest, AttachResult, EndpointRecord } from './endpoint.js';
import { PENDING_NAMESPACE, type SandboxRecord } from './sandbox.js';
import { askedHostPorts, heldHostPorts, portsOverlap } from './host-ports.js';
import type { JoinClaims } from './joins.js';

const MAX_INTERFACES = 64;

/** An attach prepared under the controller's lock; `complete` joins and commits it (joins.ts). */
export interface PreparedAttach {
  claims: JoinClaims;
  /** Whether the driver's join may run outside the lock. */
  parallel: boolean;
  complete: () => Promise<AttachResult>;
}

const ATTACH = operation('attach', ['allocate IPv4 address', 'allocate IPv6 address', 'journal', 'driver join', 'persist endpoint']);
const DETACH = operation('detach', ['journal', 'cut off', 'delete record']);
/** A detach's deferred half (teardown-queue.ts). */
const TEARDOWN = operation('teardown', ['driver leave', 'release addresses']);

export class Endpoints {
  constructor(private readonly ctx: CoreContext) {}

  /**
   * Prepares the attach of the target of `req` to `network` (its sandbox found again by namespace, or a new
   * one): checks, addresses, the journal's intent. The caller holds the controller's lock; `complete` (the
   * driver's join, then the commit) may run after it is released when the driver allows (joins.ts).
   */
  async attach(network: Network, req: AttachRequest): Promise<PreparedAttach> {
    const { registry, targets } = this.ctx;
    const driver = registry.driverOf(network.record);
    const caps = driver.capabilities;
    const aliases = checkAliases(req.aliases);
    const options = checkEndpointOptions(req.options);
    const labels = checkStringMap(req.labels, 'label');
    const ifname = req.ifname === undefined ? undefined : parseIfName(req.ifname);
    if (ifname !== undefined && !caps.interface) throw new InvalidArgumentError(`network ${network.name} (driver ${network.record.driver}) makes no interface to name`);
    if (req.handOff && (ifname === undefined || !caps.interface)) throw new InvalidArgumentError('handing the interface over needs an interface name, on a network whose driver makes interfaces');
    if (req.endpointId !== undefined) {
      if (!isValidId(req.endpointId)) throw new InvalidArgumentError(`invalid endpoint id ${JSON.stringify(req.endpointId)}: use 64 lowercase hex digits`);
      if (registry.endpointsById.has(req.endpointId)) throw new ConflictError(`endpoint ${req.endpointId} already exists`);
    }
    if (req.managedBy !== undefined && !isValidName(req.managedBy)) throw new InvalidArgumentError(`invalid manager ${JSON.stringify(req.managedBy)}`);
    // Another program's network takes its own endpoints only: its IPAM does not see ours.
    checkManager(network.record.managedBy, req.managedBy, `network ${network.name}`);
    checkOptionsAccepted(network.record, driver, options);
    // Extras (links, file paths) are checked now: a bad one must not leave a container attached.
    this.ctx.observers.checkAttach(network.record, req.extras ?? {});
    const onHost = caps.hostNamespace === true;
    // A handed-over interface waits in the daemon's namespace: the sandbox's may not exist yet (dockerd).
    const ns = targets.resolve(req.target, onHost, req.handOff === true);
    if (onHost && !ns.host) {
      throw new InvalidArgumentError(`the ${network.name} network is for processes in the host's network namespace; this one has a namespace of its own`);
    }
    // What a detach not yet torn down still holds (its namespace's interface, the address or host ports asked for) is waited for.
    // An attach in flight for the same namespace, name or endpoint is waited for: it may be making the sandbox.
    await this.ctx.joins.settle((j) => j.nsId === ns.nsId || j.endpointId === req.endpointId || (req.name !== undefined && j.name === req.name));
    const asked = [req.ip, req.ip6].filter((a) => a !== undefined).map(String);
    const askedPorts = askedHostPorts(options);
    await this.ctx.teardowns.settle(
      (t) => t.nsId === ns.nsId || t.endpointId === req.endpointId || (t.networkId === network.id && t.addresses.some((a) => asked.includes(a))) || portsOverlap(t.hostPorts, askedPorts),
    );
    const tx = new Transaction(ATTACH, this.ctx.log);

    // The sandbox: found again by namespace identity, or new. In the host's namespace every container is a
    // sandbox of its own, since they all share it.
    let sandbox = onHost ? undefined : registry.sandboxOfNamespace(ns.nsId);
    const pending = !sandbox && req.handOff ? registry.pendingSandboxAt(ns.key) : undefined;
    if (pending) {
      // Joined before its namespace existed, which now does: from now on it is known by the namespace.
      if (!ns.nsId.startsWith(PENDING_NAMESPACE)) {
        pending.nsId = ns.nsId;
        registry.persistSandbox(pending);
      }
      sandbox = pending;
    }
    const newSandbox = !sandbox;
    if (sandbox && req.managedBy !== undefined) {
      // A manager joins its own containers only: not a sandbox netd keeps, nor one with others' endpoints.
      const foreign = sandbox.persistent ? sandbox : registry.endpointsOfSandbox(sandbox).find((e) => e.managedBy !== req.managedBy);
      if (foreign) throw new ForbiddenError(`container ${sandbox.name} is not managed by ${req.managedBy}`);
    }
    if (sandbox) {
      if (req.name !== undefined && req.name !== sandbox.name && !sandbox.persistent) {
        throw new ConflictError(`this container is already attached as ${sandbox.name}`);
      }
      this.checkJoinable(sandbox, network, ifname);
    } else {
      const id = newId();
      const name = req.name ?? id.slice(0, 12);
      targets.checkNameFree(name);
      sandbox = { id, name, key: ns.key, pid: ns.pid, nsId: ns.nsId, created: new Date().toISOString(), endpoints: [], ...(onHost ? { host: true } : {}) };
    }
    const sb = sandbox;

    const others = registry.endpointsOfSandbox(sb);
    if (ifname !== undefined && others.some((e) => e.ifname === ifname)) {
      throw new ConflictError(`container ${sb.name} already has an interface named ${ifname}`);
    }
    const endpoint: EndpointRecord = {
      id: req.endpointId ?? newId(),
      name: sb.name,
      networkId: network.id,
      sandboxId: sb.id,
      ifname: caps.interface ? (ifname ?? nextInterfaceName(others)) : '',
      aliases,
      created: new Date().toISOString(),
      gatewayEndpoint: caps.interface && !others.some((e) => e.gatewayEndpoint) && !network.record.internal,
      driverState: {},
      ...(req.handOff ? { handOff: true } : {}),
      ...(req.managedBy !== undefined ? { managedBy: req.managedBy } : {}),
    };
    if (caps.interface) {
      await this.allocateAddresses(tx, network, endpoint, req);
      endpoint.mac = req.mac;
    } else if (req.ip !== undefined || req.ip6 !== undefined || req.mac !== undefined) {
      throw new InvalidArgumentError(`network ${network.name} (driver ${network.record.driver}) takes no address or MAC`);
    }
    if (Object.keys(options).length > 0) endpoint.options = options;
    if (Object.keys(labels).length > 0) endpoint.labels = labels;

    await tx.step(
      'journal',
      () => this.ctx.journal.write(endpoint.id, { op: 'attach', endpoint }),
      () => this.ctx.journal.done(endpoint.id),
    );
    const complete = async (): Promise<AttachResult> => {
      const joined = await tx.step(
        'driver join',
        () => driver.join(network.record, endpoint, sb),
        () => driver.leave(network.record, endpoint, sb),
      );
      endpoint.driverState = joined.state;
      if (joined.mac !== undefined) endpoint.mac = joined.mac;
      return this.ctx.joins.commit(async () => {
        await tx.step('persist endpoint', () => {
          this.ctx.store.put('endpoints', endpoint.id, endpoint);
          // An existing sandbox's file does not change: its endpoint list is derived from the endpoints' records.
          if (newSandbox) registry.persistSandbox(sb);
        });
        this.ctx.journal.done(endpoint.id);
        if (newSandbox) registry.sandboxesById.set(sb.id, sb);
        registry.addEndpoint(network, sb, endpoint);
        await this.ctx.observers.endpointJoined(network.record, endpoint, sb, req.extras ?? {});
        return this.describe(network.record, endpoint);
      });
    };
    return {
      claims: { endpointId: endpoint.id, networkId: network.id, nsId: sb.nsId, name: sb.name },
      parallel: caps.parallelJoin === true,
      complete,
    };
  }

  /**
   * Not twice on one network, unless the attach names its interface (CNI: one container may be added to a
   * network more than once with different CNI_IFNAMEs; the interface name is then what must be unique);
   * not with an exclusive network (`none`) and another at once.
   */
  private checkJoinable(sandbox: SandboxRecord, network: Network, ifname: string | undefined): void {
    const { registry } = this.ctx;
    const current = registry.endpointsOfSandbox(sandbox);
    if (ifname === undefined && current.some((e) => e.networkId === network.id)) {
      throw new ConflictError(`container ${sandbox.name} is already attached to network ${network.name}`);
    }
    const exclusive = (n: Network) => registry.drivers.get(n.record.driver)?.capabilities.exclusive === true;
    const blocker = exclusive(network) ? network : current.map((e) => registry.networkOf(e)).find(exclusive);
    if (current.length > 0 && blocker) {
      throw new ConflictError(`container ${sandbox.name} cannot be on the ${blocker.name} network and another network at once`);
    }
  }

  private async allocateAddresses(tx: Transaction<StepOf<typeof ATTACH>>, network: Network, endpoint: EndpointRecord, req: AttachRequest): Promise<void> {
    const { ipam } = this.ctx;
    const claim = { claimHeld: req.claimHeld === true };
    const wanted = (family: Family) => req.families === undefined || req.families.includes(family);
    const v4 = wanted(4) ? network.record.ipv4[0] : undefined;
    const v6 = wanted(6) ? network.record.ipv6[0] : undefined;
    if (req.ip !== undefined && !v4) throw new InvalidArgumentError(`network ${network.name} has no IPv4 subnet`);
    if (req.ip6 !== undefined && !v6) throw new InvalidArgumentError(`network ${network.name} has no IPv6 subnet`);
    if (v4) {
      const global = network.record.scope === 'global' ? this.ctx.global : undefined;
      endpoint.ipv4 = await tx.step(
        'allocate IPv4 address',
        async () => {
          // A global network's address comes from a block this host leased (a cluster round trip only without a free one).
          await global?.ensureAddress(network.record, v4.subnet);
          return ipam.allocate(v4.subnet, req.ip, claim);
        },
        () => ipam.release(v4.subnet, endpoint.ipv4!),
      );
      endpoint.gateway4 = v4.gateway;
    }
    if (v6) {
      endpoint.ipv6 = await tx.step('allocate IPv6 address', () => ipam.allocate(v6.subnet, req.ip6, claim), () => ipam.release(v6.subnet, endpoint.ipv6!));
      endpoint.gateway6 = v6.gateway;
    }
  }

  /**
   * Detaches an endpoint: journaled, cut off (the driver's cutOff: no more traffic), record deleted, the
   * observers told; then the driver's leave and the release of its addresses, right after the answer on
   * the teardown queue (`now`: before returning, as at start). A crash in between is completed at start.
   */
  async remove(network: Network, ep: EndpointRecord, sandbox: SandboxRecord | undefined, reason: string, now = false): Promise<void> {
    const { journal, registry } = this.ctx;
    const driver = registry.driverOf(network.record);
    const tx = new Transaction(DETACH, this.ctx.log);
    await tx.step('journal', () => journal.write(ep.id, { op: 'detach', endpointId: ep.id, endpoint: ep }));
    await tx.step('cut off', () => driver.cutOff?.(network.record, ep));
    await tx.step('delete record', () => this.ctx.store.delete('endpoints', ep.id));
    registry.removeEndpoint(network, ep, sandbox);
    await this.ctx.observers.endpointLeft(network.record, ep, reason);
    const finish = () => this.finishRemove(network.record, ep, sandbox);
    if (now) return finish();
    const addresses = [ep.ipv4, ep.ipv6].filter((a) => a !== undefined).map((a) => a.address.toString());
    const hostPorts = heldHostPorts(this.info(network.record, ep));
    this.ctx.teardowns.enqueue({ endpointId: ep.id, networkId: network.id, nsId: sandbox?.nsId ?? '', addresses, hostPorts }, finish);
  }

  /** The deferred half of remove: the driver removes the endpoint's kernel objects, then its addresses are free. */
  private async finishRemove(network: NetworkRecord, ep: EndpointRecord, sandbox: SandboxRecord | undefined): Promise<void> {
    const { ipam, journal } = this.ctx;
    const tx = new Transaction(TEARDOWN, this.ctx.log);
    await tx.step('driver leave', () => this.ctx.registry.driverOf(network).leave(network, ep, sandbox));
    await tx.step('release addresses', () => {
      if (ep.ipv4 && network.ipv4[0]) ipam.release(network.ipv4[0].subnet, ep.ipv4);
      if (ep.ipv6 && network.ipv6[0]) ipam.release(network.ipv6[0].subnet, ep.ipv6);
    });
    journal.done(ep.id);
  }

  /**
   * Removes a sandbox's endpoints (those on the network `only`, or just the endpoint `only.endpointId`, or
   * all), then forgets the sandbox when it is left without any (unless persistent, or `keepRecord`).
   * Returns the ids removed.
   */
  async removeFromSandbox(sandbox: SandboxRecord, only: Network | { endpointId: string } | undefined, reason: string, keepRecord = false): Promise<string[]> {
    const removed: string[] = [];
    for (const epId of [...sandbox.endpoints]) {
      const ep = this.ctx.registry.endpointsById.get(epId);
      if (!ep) continue;
      if (only && ('endpointId' in only ? ep.id !== only.endpointId : ep.networkId !== only.id)) continue;
      const network = this.ctx.registry.networkOf(ep);
      await this.remove(network, ep, sandbox, reason);
      removed.push(ep.id);
      this.ctx.log.info({ op: 'release-endpoint', reason, endpoint: ep.id, network: network.id, sandbox: sandbox.id }, 'endpoint released');
    }
    if (keepRecord) return removed;
    if (sandbox.endpoints.length === 0 && !sandbox.persistent) this.ctx.registry.forgetSandbox(sandbox);
    return removed;
  }

  /**
   * libnetwork's ProgramExternalConnectivity: sets the endpoint's options (its ports, PORT_MAP) and has the
   * driver publish them, replacing what it published before; persisted, so a restart restores them.
   */
  async programExternal(network: Network, ep: EndpointRecord, options: Record<string, unknown>): Promise<AttachResult> {
    const driver = this.ctx.registry.driverOf(network.record);
    const checked = checkEndpointOptions(options);
    checkOptionsAccepted(network.record, driver, checked);
    if (!driver.programExternalConnectivity) throw new InvalidArgumentError(`network ${network.name} (driver ${network.record.driver}) has no external connectivity to program`);
    // What was published before goes first; a failure then leaves the endpoint with nothing published.
    await this.revokeExternal(network, ep);
    ep.options = Object.keys(checked).length > 0 ? checked : undefined;
    try {
      ep.driverState = await driver.programExternalConnectivity(network.record, ep);
    } catch (err) {
      ep.options = undefined;
      throw err;
    }
    this.ctx.store.put('endpoints', ep.id, ep);
    return this.describe(network.record, ep);
  }

  /** Undoes programExternal: the driver unpublishes, the options go. Idempotent. */
  async revokeExternal(network: Network, ep: EndpointRecord): Promise<void> {
    const driver = this.ctx.registry.driverOf(network.record);
    if (!driver.revokeExternalConnectivity) return;
    ep.driverState = await driver.revokeExternalConnectivity(network.record, ep);
    ep.options = undefined;
    this.ctx.store.put('endpoints', ep.id, ep);
  }

  /** The driver's comparison of an endpoint's kernel state with its record (none: the driver cannot tell). */
  async check(network: NetworkRecord, ep: EndpointRecord, sandbox: SandboxRecord): Promise<string[]> {
    const driver = this.ctx.registry.driverOf(network);
    if (!driver.check) return [];
    return driver.check(network, ep, sandbox);
  }

  /** What is reported of an endpoint: the core's fields, observers' additions, the driver's operational info. */
  describe(network: NetworkRecord, ep: EndpointRecord): AttachResult {
    return {
      ...this.ctx.observers.describe(network, ep),
      network: network.name,
      networkId: network.id,
      endpointId: ep.id,
      sandboxId: ep.sandboxId,
      name: ep.name,
      interface: ep.ifname,
      mac: ep.mac?.toString(),
      ipv4: ep.ipv4?.toString(),
      ipv6: ep.ipv6?.toString(),
      gateway: ep.gatewayEndpoint ? ep.gateway4?.toString() : undefined,
      gateway6: ep.gatewayEndpoint ? ep.gateway6?.toString() : undefined,
      ...this.info(network, ep),
    };
  }

  /** The driver's operational info of an endpoint (e.g. published ports), as it reports it. */
  info(network: NetworkRecord, ep: EndpointRecord): Record<string, unknown> {
    return this.ctx.registry.drivers.get(network.driver)?.endpointInfo?.(network, ep) ?? {};
  }
}

/** Endpoint options go only to a driver that declares their keys. */
function checkOptionsAccepted(network: NetworkRecord, driver: Driver, options: Record<string, unknown>): void {
  const accepted = driver.capabilities.endpointOptions ?? [];
  const refused = Object.keys(options).find((k) => !accepted.includes(k));
  if (refused !== undefined) throw new InvalidArgumentError(`network ${network.name} (driver ${network.driver}) cannot ${optionPurpose(refused)}`);
}

function nextInterfaceName(others: EndpointRecord[]): string {
  const used = new Set(others.map((e) => e.ifname));
  for (let i = 0; i < MAX_INTERFACES; i++) if (!used.has(`eth${i}`)) return `eth${i}`;
  throw new ConflictError('the container has too many interfaces');
}
