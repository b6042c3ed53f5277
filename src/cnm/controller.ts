/**
 * The controller: the CNM model's single entry point. It owns networks, endpoints and sandboxes, asks
 * IPAM for subnets and addresses, persists every change, and calls the network's driver to make it real.
 * It knows nothing of netlink or iptables, nor of any driver by name: what a driver provides is in its
 * capabilities (driverapi/).
 *
 * Mutating operations run one at a time (a FIFO mutex) and each is a Transaction: a failure at any step
 * undoes the steps before it, so an operation either completes or leaves no trace. The work itself is done
 * by the parts this file wires together: registry (the model in memory), targets (finding containers),
 * networks and endpoints (their lifecycles), sandboxes (persistent and shared ones), recovery (start-up),
 * monitors (background checks), observers (fan-out), validation (request checks).
 */
import type { GlobalScope } from './global-scope.js';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Driver } from '../driverapi/driver.js';
import { optionPurpose } from '../driverapi/labels.js';
import type { Ipam } from '../ipam/ipam.js';
import type { Prefix } from '../net/index.js';
import type { Store, LoadProblem } from '../store/store.js';
import { ControllerLock, type Continued } from './lock.js';
import { Joins } from './joins.js';
import type { Network, NetworkCreateRequest, NetworkRecord } from './network.js';
import type { AttachRequest, AttachResult, EndpointRecord, SharedAttachResult } from './endpoint.js';
import type { NamespaceResolver, SandboxRecord } from './sandbox.js';
import type { NetworkObserver } from './observer.js';
import type { CoreContext } from './context.js';
import { Registry } from './registry.js';
import { Journal } from './journal.js';
import { Observers } from './observers.js';
import { ModelView } from './model-view.js';
import { Networks } from './networks.js';
import { Endpoints } from './endpoints.js';
import { Sandboxes } from './sandboxes.js';
import { Recovery } from './recovery.js';
import { startMonitors, sweepDeadContainers, sweepIfGone, type MonitorIntervals, type SweepDeps } from './monitors.js';
import { checkManager, isValidContainerName, parseMode } from './validation.js';
import { HeldPools } from './held-pools.js';
import { TeardownQueue } from './teardown-queue.js';
import { askedHostPorts, portsOverlap } from './host-ports.js';

export type { AttachRequest } from './endpoint.js';

/** A network the daemon creates itself and users cannot remove (Docker's bridge, host and none). */
export interface PredefinedNetwork {
  name: string;
  driver: string;
  options?: Record<string, string>;
}

export interface ControllerOptions {
  store: Store;
  ipam: Ipam;
  drivers: Driver[];
  resolver: NamespaceResolver;
  log: Logger;
  /** Subnets a new network must not overlap: the host's addresses, routes and nameservers. */
  hostSubnets: () => Promise<Prefix[]>;
  /**
   * The predefined networks, created at start when missing. The first is the default network: an attach
   * without a network goes there, and a network created without a driver gets its driver. The others can
   * be attached to by name as a mode (`--mode host`).
   */
  predefined: PredefinedNetwork[];
  observers?: NetworkObserver[];
}

export class Controller extends ModelView {
  private readonly lock: ControllerLock;
  private readonly log: Logger;
  private readonly ctx: CoreContext;
  private readonly networkOps: Networks;
  private readonly endpointOps: Endpoints;
  private readonly sandboxOps: Sandboxes;
  /** Pools and addresses held for an outside IPAM client (dockerd through netd's IPAM plugin): held-pools.ts. */
  readonly held: HeldPools;
  private readonly predefinedNames: string[];

  constructor(private readonly opts: ControllerOptions) {
    super(new Registry(opts.drivers, opts.store), opts.resolver);
    if (opts.predefined.length === 0) throw new InvalidArgumentError('the controller needs a default network');
    this.log = opts.log;
    this.predefinedNames = opts.predefined.map((p) => p.name);
    this.ctx = {
      registry: this.registry,
      store: opts.store,
      journal: new Journal(opts.store),
      ipam: opts.ipam,
      observers: new Observers(opts.observers ?? [], this.registry, opts.log),
      targets: this.targets,
      resolver: opts.resolver,
      log: opts.log,
      teardowns: new TeardownQueue(opts.log),
      joins: new Joins(),
    };
    this.lock = new ControllerLock(this.ctx.joins, opts.log);
    this.networkOps = new Networks(this.ctx, opts.hostSubnets, opts.predefined[0].driver);
    this.endpointOps = new Endpoints(this.ctx);
    this.held = new HeldPools(opts.ipam, opts.hostSubnets, (op, fields, fn) => this.exclusive(op, fields, fn), this.ctx.teardowns);
    this.sandboxOps = new Sandboxes(
      this.ctx,
      (n, ep) => this.endpointOps.describe(n, ep),
      (sb, reason) => this.endpointOps.removeFromSandbox(sb, undefined, reason, true),
    );
  }

  private get defaultNetwork(): string {
    return this.predefinedNames[0];
  }

  // ---------------------------------------------------------------- start-up and monitors

  /** Loads persisted state, replays it into IPAM, lets drivers restore the kernel, creates the predefined networks. */
  async start(): Promise<LoadProblem[]> {
    return this.exclusive('start', {}, async () => {
      const problems = await new Recovery(this.ctx, this.networkOps, this.endpointOps, this.sandboxOps).recover();
      for (const p of this.opts.predefined) {
        if (this.registry.findNetwork(p.name)) continue;
        await this.networkOps.create({ name: p.name, driver: p.driver, options: p.options ?? {} }, true);
      }
      for (const n of this.registry.networksById.values()) {
        await this.ctx.observers.networkCreated(n.record);
        for (const epId of n.endpoints) {
          const ep = this.registry.endpointsById.get(epId)!;
          await this.ctx.observers.endpointJoined(n.record, ep, this.registry.sandboxesById.get(ep.sandboxId)!, {});
        }
      }
      return problems;
    });
  }

  /**
   * Background checks while the daemon runs (monitors.ts): the dead-container sweep and the firewall
   * watch. Returns a stop function. An interval of 0 disables that check.
   */
  startMonitors(opts: MonitorIntervals = {}): () => Promise<void> {
    return startMonitors({ sweepDeadContainers: () => this.sweep(), reloadFirewall: (reason) => this.reloadFirewall(reason), checkFirewall: () => this.checkFirewall() }, this.log, opts);
  }

  private get sweepDeps(): SweepDeps {
    return { ctx: this.ctx, sandboxes: this.sandboxOps, endpoints: this.endpointOps, exclusive: (op, fn) => this.exclusive(op, {}, fn) };
  }

  private sweep(): Promise<void> {
    return sweepDeadContainers(this.sweepDeps);
  }

  /** Sweeps now when the container named `name`, or the one recorded at namespace `path`, is gone (monitors.ts). */
  sweepIfGone(name: string, path?: string): Promise<void> {
    return sweepIfGone(this.sweepDeps, name, path);
  }

  /**
   * The timed firewall check: reads the kernel without the lock, and reloads (under it) only when a driver
   * finds something missing or extra. A change racing the read at worst causes one needless reload.
   */
  async checkFirewall(): Promise<void> {
    for (const [driver, nets, eps] of [...this.registry.byDriver()]) {
      if (!driver.reloadFirewall) continue;
      if (!driver.firewallIntact || !(await driver.firewallIntact(nets, eps))) return this.reloadFirewall('watchdog');
    }
  }

  /** `netd firewall-reload` and the watchdog: every driver re-applies its rules. */
  reloadFirewall(reason = 'request'): Promise<void> {
    return this.lock.run(async () => {
      for (const [driver, nets, eps] of this.registry.byDriver()) await driver.reloadFirewall?.(nets, eps);
      if (reason !== 'watchdog') this.log.info({ op: 'firewall-reload', reason }, 'firewall rules re-applied');
    });
  }

  /**
   * Resolves once a removed endpoint's deferred teardown (its veth, rules, then its addresses) is done: for
   * front ends whose callers expect the kernel state gone when they get the answer (CNI DEL, the Docker plugin).
   */
  endpointGone(id: string): Promise<void> {
    return this.ctx.teardowns.settle((t) => t.endpointId === id);
  }

  /** Waits for the detaches' deferred work (teardown-queue.ts), then lets the drivers go: the daemon's stop calls it. */
  async stop(): Promise<void> {
    await this.ctx.joins.drain();
    await this.ctx.teardowns.drain();
    for (const driver of this.registry.drivers.values()) await driver.close?.();
  }

  // ---------------------------------------------------------------- queries

  /** What the endpoint's driver reports of it (libnetwork's EndpointOperInfo), e.g. `{ ports }`. */
  endpointInfo(ep: EndpointRecord): Record<string, unknown> {
    const network = this.registry.networksById.get(ep.networkId);
    return network ? this.endpointOps.info(network.record, ep) : {};
  }

  /**
   * Whether one more container would get an address on the network, or, when it does not exist, on a new
   * one made with `subnet` (or from the default pools).
   */
  hasFreeAddress(networkName: string, subnet?: Prefix): Promise<boolean> {
    return this.networkOps.hasRoom(this.registry.findNetworkByName(networkName), subnet);
  }

  /**
   * Compares an endpoint's kernel state with its record through its driver (CNI's CHECK): the
   * differences, each a sentence; none when all is as recorded. NotFoundError when there is no such endpoint.
   */
  checkEndpoint(id: string): Promise<string[]> {
    return this.lock.run(async () => {
      const ep = this.registry.endpointsById.get(id);
      const sandbox = ep && this.registry.sandboxesById.get(ep.sandboxId);
      if (!ep || !sandbox) throw new NotFoundError(`no endpoint ${id}`);
      return this.endpointOps.check(this.registry.networkOf(ep).record, ep, sandbox);
    });
  }

  // ---------------------------------------------------------------- sandboxes netd creates

  /** `netd sandbox create NAME`: a persistent network namespace (lo up), kept until removed. */
  createSandbox(name: string): Promise<SandboxRecord> {
    return this.exclusive('sandbox-create', { name }, () => this.sandboxOps.create(name));
  }

  /** `netd sandbox rm NAME`: detaches every endpoint, then removes the namespace. */
  removeSandbox(ref: string): Promise<string[]> {
    return this.exclusive('sandbox-rm', { sandbox: ref }, async () => {
      const sandbox = this.findSandbox(ref);
      if (!sandbox) throw new NotFoundError(`no sandbox ${ref}`);
      if (!sandbox.persistent) throw new InvalidArgumentError(`${sandbox.name} is a container's own namespace, not one netd created; use detach`);
      return this.sandboxOps.remove(sandbox);
    });
  }

  // ---------------------------------------------------------------- networks

  /** Creates a network. `warn` hears (and the log records) what is allowed but likely a mistake. */
  createNetwork(req: NetworkCreateRequest, warn?: (message: string) => void): Promise<NetworkRecord> {
    return this.exclusive('create-network', { name: req?.name }, () =>
      this.networkOps.create(req, false, (message) => {
        this.log.warn({ op: 'create-network', name: req.name }, message);
        warn?.(message);
      }),
    );
  }

  /** Removes a network; one another program manages (`managedBy`) only when that program asks. */
  deleteNetwork(ref: string, managedBy?: string): Promise<void> {
    return this.exclusive('rm-network', { network: ref }, async () => {
      const network = this.registry.findNetwork(ref);
      if (!network) throw new NotFoundError(`network ${ref} not found`);
      await this.ctx.teardowns.settle((t) => t.networkId === network.id);
      await this.networkOps.delete(network, managedBy);
    });
  }

  /** From now on global networks (overlay) are coordinated by `scope`: the cluster (global-scope.ts). */
  joinCluster(scope: GlobalScope): void {
    this.ctx.global = scope;
  }

  /**
   * Makes here a global network another host created (the cluster saw it): the same id, name, subnet,
   * gateway and options. Nothing when it is here already. Throws when it cannot be made (e.g. its name
   * or subnet is taken by a network of this host's).
   */
  adoptNetwork(req: NetworkCreateRequest & { id: string }): Promise<NetworkRecord> {
    return this.exclusive('adopt-network', { network: req.id, name: req.name }, async () => {
      const existing = this.registry.networksById.get(req.id);
      if (existing) return existing.record;
      return this.networkOps.create({ ...req, adoptedFromCluster: true }, false);
    });
  }

  /**
   * Removes here a global network the cluster removed. One that still has endpoints here (an attach that
   * raced the removal) stays, and false is returned.
   */
  forgetNetwork(id: string): Promise<boolean> {
    return this.exclusive('forget-network', { network: id }, async () => {
      const network = this.registry.networksById.get(id);
      if (!network || network.record.scope !== 'global') return true;
      if (network.endpoints.size > 0) return false;
      await this.ctx.teardowns.settle((t) => t.networkId === network.id);
      await this.networkOps.finishDelete(network);
      return true;
    });
  }

  /** Removes every network that has no endpoints (never the predefined ones, nor those another program manages). Returns their names. */
  prune(): Promise<string[]> {
    return this.exclusive('prune', {}, async () => {
      const removed: string[] = [];
      for (const network of [...this.registry.networksById.values()]) {
        // Never a global network: other hosts may have endpoints on it (rm-network asks them).
        if (network.record.predefined || network.record.managedBy !== undefined || network.record.scope === 'global' || network.endpoints.size > 0) continue;
        await this.ctx.teardowns.settle((t) => t.networkId === network.id);
        await this.networkOps.delete(network);
        removed.push(network.name);
      }
      return removed;
    });
  }

  // ---------------------------------------------------------------- attach / detach

  /**
   * Attaches a container. Prepared under the lock; a driver that allows it joins after the lock is
   * released, so attaches of different containers do their kernel work at once (joins.ts).
   */
  attach(req: AttachRequest): Promise<AttachResult | SharedAttachResult> {
    return this.lock.continued('attach', { network: req?.network ?? this.defaultNetwork, target: req?.target }, async (): Promise<Continued<AttachResult | SharedAttachResult>> => {
      if (!req || !req.target) throw new InvalidArgumentError('attach needs a target: a container PID, a namespace path or a sandbox name');
      const mode = parseMode(req.mode, this.predefinedNames);
      if (req.name !== undefined && !isValidContainerName(req.name)) throw new InvalidArgumentError(`invalid container name ${JSON.stringify(req.name)}`);
      if (mode.kind === 'container') {
        const option = Object.keys(req.options ?? {})[0];
        if (option !== undefined) throw new InvalidArgumentError(`a container sharing another's namespace cannot ${optionPurpose(option)} of its own; do so on ${mode.ref}`);
        if (Object.keys(req.extras ?? {}).length > 0) throw new InvalidArgumentError(`a container sharing another's namespace uses its resolv.conf, hosts and links; set them on ${mode.ref}`);
        await this.ctx.joins.drain();
        return { rest: Promise.resolve(await this.sandboxOps.joinShared(req, mode.ref)) };
      }
      const networkRef = mode.kind === 'network' ? (req.network ?? this.defaultNetwork) : mode.network;
      if (mode.kind === 'predefined' && req.network !== undefined && this.registry.findNetwork(req.network)?.name !== mode.network) {
        throw new InvalidArgumentError(`--mode ${mode.network} and --network ${req.network} contradict each other`);
      }
      const network = this.registry.findNetwork(networkRef);
      if (!network) throw new NotFoundError(`network ${networkRef} not found`);
      const prepared = await this.endpointOps.attach(network, req);
      if (!prepared.parallel) return { rest: Promise.resolve(await prepared.complete()) };
      return { rest: this.ctx.joins.run(prepared.claims, prepared.complete) };
    });
  }

  /**
   * Detaches a container (PID, name, sandbox id or namespace path) from one network, or from all of them.
   * Returns the ids of the endpoints removed.
   */
  detach(container: string, networkRef?: string): Promise<string[]> {
    return this.exclusive('detach', { container, network: networkRef }, async () => {
      const located = this.ctx.targets.locate(String(container));
      if (!located) throw new NotFoundError(`no attached container ${container}`);
      const { sandbox, member } = located;
      if (member) {
        // A container sharing another's namespace: it only leaves; the namespace's endpoints stay.
        if (networkRef !== undefined) throw new InvalidArgumentError(`container ${member.name} shares the network namespace of ${sandbox.name}; disconnect ${sandbox.name} instead`);
        this.sandboxOps.removeMember(sandbox, member);
        return [];
      }
      if (networkRef === undefined && sandbox.members && sandbox.members.length > 0) {
        // The namespace lives on with the containers sharing it: hand it to the next one.
        this.sandboxOps.promoteMember(sandbox);
        return [];
      }
      let network: Network | undefined;
      const managed = sandbox.endpoints.map((e) => this.registry.endpointsById.get(e)).find((e) => e?.managedBy !== undefined && (networkRef === undefined || e.networkId === this.registry.findNetwork(networkRef)?.id));
      if (managed) checkManager(managed.managedBy, undefined, `container ${sandbox.name}'s endpoint on network ${this.registry.networkOf(managed).name}`);
      if (networkRef !== undefined) {
        network = this.registry.findNetwork(networkRef);
        if (!network) throw new NotFoundError(`network ${networkRef} not found`);
        const id = network.id;
        if (!sandbox.endpoints.some((e) => this.registry.endpointsById.get(e)?.networkId === id)) {
          throw new NotFoundError(`container ${sandbox.name} is not attached to network ${network.name}`);
        }
      }
      return this.endpointOps.removeFromSandbox(sandbox, network, 'detach');
    });
  }

  /**
   * Removes one endpoint (the sandbox goes with its last one); one another program manages only when that
   * program asks. False when there is no such endpoint.
   */
  removeEndpoint(id: string, reason = 'detach', managedBy?: string): Promise<boolean> {
    return this.exclusive('detach', { endpoint: id, reason }, async () => {
      const ep = this.registry.endpointsById.get(id);
      const sandbox = ep && this.registry.sandboxesById.get(ep.sandboxId);
      if (!ep || !sandbox) return false;
      checkManager(ep.managedBy, managedBy, `endpoint ${id}`);
      const removed = await this.endpointOps.removeFromSandbox(sandbox, { endpointId: id }, reason);
      return removed.includes(id);
    });
  }

  /**
   * libnetwork's ProgramExternalConnectivity: publishes the joined endpoint's ports (`options[PORT_MAP]`),
   * replacing what it published before. Returns the endpoint as reported, with its real bindings.
   */
  programExternalConnectivity(endpointId: string, options: Record<string, unknown>, managedBy?: string): Promise<AttachResult> {
    return this.exclusive('program-external', { endpoint: endpointId }, async () => {
      const ep = this.registry.endpointsById.get(endpointId);
      if (!ep) throw new NotFoundError(`no endpoint ${endpointId}`);
      checkManager(ep.managedBy, managedBy, `endpoint ${endpointId}`);
      // Host ports a detach not yet torn down still holds are waited for.
      const asked = askedHostPorts(options);
      await this.ctx.teardowns.settle((t) => portsOverlap(t.hostPorts, asked));
      return this.endpointOps.programExternal(this.registry.networkOf(ep), ep, options);
    });
  }

  /** Unpublishes what programExternalConnectivity published. Idempotent (an unknown endpoint is fine). */
  revokeExternalConnectivity(endpointId: string, managedBy?: string): Promise<void> {
    return this.exclusive('revoke-external', { endpoint: endpointId }, async () => {
      const ep = this.registry.endpointsById.get(endpointId);
      if (!ep) return;
      checkManager(ep.managedBy, managedBy, `endpoint ${endpointId}`);
      await this.endpointOps.revokeExternal(this.registry.networkOf(ep), ep);
    });
  }

  /** Serialises an operation (lock.ts) and logs one structured event for it: ids, duration, outcome. */
  private exclusive<T>(op: string, fields: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
    return this.lock.exclusive(op, fields, fn);
  }
}
