/**
 * The controller: the CNM model's single entry point. It owns networks, endpoints and sandboxes, asks
 * IPAM for subnets and addresses, persists every change, and calls the network's driver to make it real.
 * It knows nothing of netlink or iptables.
 *
 * Mutating operations run one at a time (a FIFO mutex) and each is a Transaction: a failure at any step
 * undoes the steps before it, so an operation either completes or leaves no trace.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ConflictError, ForbiddenError, InvalidArgumentError, NetdError, NotFoundError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Driver } from '../drivers/driver.js';
import { poolRequest, type Ipam, type PoolInfo } from '../ipam/ipam.js';
import { IPAddress, InterfaceAddress, MAC, Prefix } from '../net/index.js';
import type { Store, LoadProblem } from '../store/store.js';
import { Mutex } from './mutex.js';
import { Transaction } from './transaction.js';
import { Network, type IpamConfig, type NetworkCreateRequest, type NetworkRecord } from './network.js';
import type { AttachResult, EndpointRecord, SharedAttachResult } from './endpoint.js';
import type { PortBinding, PortRequest } from '../portmap/types.js';
import type { NamespaceResolver, ResolvedNamespace, SandboxMember, SandboxRecord, SandboxTarget } from './sandbox.js';
import type { AttachExtras, NetworkObserver } from './observer.js';

export const DEFAULT_NETWORK = 'bridge';
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;
const MAX_INTERFACES = 64;

export interface AttachRequest {
  target: SandboxTarget;
  network?: string;
  /** Container name; defaults to the first 12 hex of the sandbox id. */
  name?: string;
  ip?: string;
  ip6?: string;
  mac?: string;
  aliases?: string[];
  /** `bridge` (the default: use `network`), `host`, `none` or `container:<name|id|pid>`. */
  mode?: string;
  /** Ports to publish (parsed by portmap/parse.ts); only networks whose driver gives an interface. */
  ports?: PortRequest[];
  /** Fields for observers (see observer.ts), passed through untouched. */
  extras?: AttachExtras;
}

export interface ControllerOptions {
  store: Store;
  ipam: Ipam;
  drivers: Driver[];
  resolver: NamespaceResolver;
  log: Logger;
  /** Subnets a new network must not overlap: the host's addresses, routes and nameservers. */
  hostSubnets: () => Promise<Prefix[]>;
  /** Options for the predefined `bridge` network (e.g. its bridge name). */
  defaultBridgeOptions: Record<string, string>;
  observers?: NetworkObserver[];
}

export class Controller {
  private readonly networksById = new Map<string, Network>();
  private readonly endpointsById = new Map<string, EndpointRecord>();
  private readonly sandboxesById = new Map<string, SandboxRecord>();
  private readonly drivers = new Map<string, Driver>();
  private readonly mutex = new Mutex();
  private readonly log: Logger;

  constructor(private readonly opts: ControllerOptions) {
    for (const d of opts.drivers) this.drivers.set(d.type, d);
    this.log = opts.log;
  }

  // ---------------------------------------------------------------- start-up

  /** Loads persisted state, replays it into IPAM, lets drivers restore the kernel, creates the predefined networks. */
  async start(): Promise<LoadProblem[]> {
    return this.exclusive('start', {}, async () => {
      const problems: LoadProblem[] = [];
      const networks = this.opts.store.list<NetworkRecord>('networks', problems);
      const endpoints = this.opts.store.list<EndpointRecord>('endpoints', problems);
      const sandboxes = this.opts.store.list<SandboxRecord>('sandboxes', problems);
      for (const p of problems) this.log.error({ op: 'start', file: p.file, error: p.error }, 'state file unreadable; set aside');

      for (const record of networks) {
        const network = new Network(record);
        this.networksById.set(record.id, network);
        for (const c of [...record.ipv4, ...record.ipv6]) {
          this.opts.ipam.addPool(poolRequest(Prefix.parse(c.subnet).family, c));
        }
      }
      for (const sb of sandboxes) this.sandboxesById.set(sb.id, { ...sb, endpoints: [] });
      for (const ep of endpoints) {
        const network = this.networksById.get(ep.networkId);
        const sandbox = this.sandboxesById.get(ep.sandboxId);
        if (!network || !sandbox) {
          this.log.warn({ op: 'start', endpoint: ep.id }, 'endpoint without its network or sandbox; dropped');
          this.opts.store.delete('endpoints', ep.id);
          continue;
        }
        this.endpointsById.set(ep.id, ep);
        network.endpoints.add(ep.id);
        sandbox.endpoints.push(ep.id);
        this.reserveAddresses(network.record, ep);
      }

      await this.replayIntents(problems);

      for (const [type, driver] of this.drivers) {
        const nets = [...this.networksById.values()].filter((n) => n.record.driver === type).map((n) => n.record);
        const eps = [...this.endpointsById.values()].filter((e) => nets.some((n) => n.id === e.networkId));
        await driver.restore(nets, eps);
      }
      await this.repairEndpoints();

      // Containers that died while netd was down: release what they held.
      for (const sb of [...this.sandboxesById.values()]) {
        if (sb.host ? sb.pid !== undefined && !this.pidAlive(sb.pid) : !this.opts.resolver.alive(sb) && !this.revive(sb)) {
          await this.removeSandboxEndpoints(sb, undefined, 'container gone', true);
          this.forgetSandbox(sb);
        } else if (sb.endpoints.length === 0 && !sb.persistent) {
          this.forgetSandbox(sb);
        }
      }

      await this.ensurePredefined();
      for (const n of this.networksById.values()) {
        await this.notify('networkCreated', (o) => o.networkCreated?.(n.record));
        for (const epId of n.endpoints) {
          const ep = this.endpointsById.get(epId)!;
          await this.notify('endpointJoined', (o) => o.endpointJoined?.(n.record, ep, this.sandboxesById.get(ep.sandboxId)!, {}));
        }
      }
      return problems;
    });
  }

  /**
   * Operations a crash interrupted: creates are rolled back (their kernel objects removed), deletes are
   * completed. Nothing is left half-done.
   */
  private async replayIntents(problems: LoadProblem[]): Promise<void> {
    for (const intent of this.opts.store.list<Intent>('intents', problems)) {
      try {
        if (intent.op === 'attach') {
          const ep = intent.endpoint;
          const network = this.networksById.get(ep.networkId);
          if (!this.endpointsById.has(ep.id) && network) {
            await this.driverOf(network.record).leave(network.record, ep, undefined);
            this.log.warn({ op: 'start', endpoint: ep.id }, 'rolled back an attach interrupted by a crash');
          }
          this.opts.store.delete('intents', ep.id);
        } else if (intent.op === 'create-network') {
          if (!this.networksById.has(intent.network.id)) {
            await this.driverOf(intent.network).deleteNetwork(intent.network);
            this.log.warn({ op: 'start', network: intent.network.id }, 'rolled back a create-network interrupted by a crash');
          }
          this.opts.store.delete('intents', intent.network.id);
        } else if (intent.op === 'rm-network') {
          const network = this.networksById.get(intent.networkId);
          if (network) await this.finishDeleteNetwork(network);
          this.opts.store.delete('intents', intent.networkId);
          this.log.warn({ op: 'start', network: intent.networkId }, 'completed an rm-network interrupted by a crash');
        } else if (intent.op === 'detach') {
          const ep = this.endpointsById.get(intent.endpointId);
          if (ep) {
            const sandbox = this.sandboxesById.get(ep.sandboxId);
            await this.removeEndpoint(this.networksById.get(ep.networkId)!, ep, sandbox);
            if (sandbox && sandbox.endpoints.length === 0 && !sandbox.persistent) this.forgetSandbox(sandbox);
          }
          this.opts.store.delete('intents', intent.endpointId);
          this.log.warn({ op: 'start', endpoint: intent.endpointId }, 'completed a detach interrupted by a crash');
        }
      } catch (err) {
        this.log.error({ op: 'start', intent, err }, 'could not replay an interrupted operation; it stays journaled');
      }
    }
  }

  /** Endpoints of live containers whose kernel objects went missing (e.g. a veth deleted by hand) are plumbed again. */
  private async repairEndpoints(): Promise<void> {
    for (const ep of this.endpointsById.values()) {
      const network = this.networksById.get(ep.networkId)!;
      const sandbox = this.sandboxesById.get(ep.sandboxId);
      const driver = this.driverOf(network.record);
      if (!sandbox || !driver.endpointHealthy || !this.opts.resolver.alive(sandbox)) continue;
      if (await driver.endpointHealthy(network.record, ep)) continue;
      try {
        await driver.leave(network.record, ep, sandbox);
        await driver.join(network.record, ep, sandbox);
        this.log.warn({ op: 'start', endpoint: ep.id }, 'endpoint was broken; plumbed again');
      } catch (err) {
        this.log.error({ op: 'start', endpoint: ep.id, err }, 'could not repair endpoint');
      }
    }
  }

  private async ensurePredefined(): Promise<void> {
    const predefined: { name: string; driver: string; options: Record<string, string> }[] = [
      { name: DEFAULT_NETWORK, driver: 'bridge', options: this.opts.defaultBridgeOptions },
      { name: 'host', driver: 'host', options: {} },
      { name: 'none', driver: 'null', options: {} },
    ];
    for (const p of predefined) {
      if (this.findNetwork(p.name)) continue;
      await this.doCreateNetwork({ name: p.name, driver: p.driver, options: p.options }, true);
    }
  }

  // ---------------------------------------------------------------- monitors

  /**
   * Background checks while the daemon runs: containers whose namespace died without a detach are released
   * (their addresses, rules and names), and firewall rules someone flushed are put back. Returns a stop
   * function. An interval of 0 disables that check.
   */
  startMonitors(opts: { sweepMs?: number; firewallMs?: number } = {}): () => void {
    const timers: NodeJS.Timeout[] = [];
    const every = (ms: number, fn: () => Promise<unknown>) => {
      if (ms <= 0) return;
      let running = false;
      const t = setInterval(() => {
        if (running) return;
        running = true;
        fn()
          .catch((err) => this.log.error({ op: 'monitor', err }, 'monitor failed'))
          .finally(() => (running = false));
      }, ms);
      t.unref();
      timers.push(t);
    };
    every(opts.sweepMs ?? 1000, () => this.sweepDeadContainers());
    every(opts.firewallMs ?? 3000, () => this.reloadFirewall('watchdog'));
    return () => timers.forEach((t) => clearInterval(t));
  }

  private isGone(sb: SandboxRecord): boolean {
    if (sb.persistent) return false;
    if (sb.host) return sb.pid !== undefined && !this.pidAlive(sb.pid);
    return !this.opts.resolver.alive(sb);
  }

  /** Releases the endpoints of containers whose namespace is gone. Takes the lock only when there is work. */
  private async sweepDeadContainers(): Promise<void> {
    if (![...this.sandboxesById.values()].some((sb) => this.isGone(sb))) return;
    await this.exclusive('sweep', {}, async () => {
      for (const sb of [...this.sandboxesById.values()]) {
        if (!this.isGone(sb) || (!sb.host && this.revive(sb))) continue;
        await this.removeSandboxEndpoints(sb, undefined, 'container gone');
        if (this.sandboxesById.has(sb.id)) this.forgetSandbox(sb);
      }
    });
  }

  /** `netd firewall-reload` and the watchdog: every driver re-applies its rules. */
  reloadFirewall(reason = 'request'): Promise<void> {
    return this.mutex.run(async () => {
      for (const [type, driver] of this.drivers) {
        if (!driver.reloadFirewall) continue;
        const nets = [...this.networksById.values()].filter((n) => n.record.driver === type).map((n) => n.record);
        const eps = [...this.endpointsById.values()].filter((e) => nets.some((n) => n.id === e.networkId));
        await driver.reloadFirewall(nets, eps);
      }
      if (reason !== 'watchdog') this.log.info({ op: 'firewall-reload', reason }, 'firewall rules re-applied');
    });
  }

  // ---------------------------------------------------------------- queries

  networks(): NetworkRecord[] {
    return [...this.networksById.values()].map((n) => n.record);
  }

  /** Finds a network by full id, exact name, or unique id prefix. */
  network(ref: string): NetworkRecord {
    const n = this.findNetwork(ref);
    if (!n) throw new NotFoundError(`network ${ref} not found`);
    return n.record;
  }

  endpoints(): EndpointRecord[] {
    return [...this.endpointsById.values()];
  }

  endpointsOf(networkId: string): EndpointRecord[] {
    const network = this.networksById.get(networkId);
    return network ? [...network.endpoints].map((id) => this.endpointsById.get(id)!) : [];
  }

  sandboxes(): SandboxRecord[] {
    return [...this.sandboxesById.values()];
  }

  sandbox(id: string): SandboxRecord | undefined {
    return this.sandboxesById.get(id);
  }

  private findNetwork(ref: string): Network | undefined {
    if (typeof ref !== 'string' || ref === '') return undefined;
    const byId = this.networksById.get(ref);
    if (byId) return byId;
    for (const n of this.networksById.values()) if (n.name === ref) return n;
    if (/^[0-9a-f]{1,63}$/.test(ref)) {
      const matches = [...this.networksById.values()].filter((n) => n.id.startsWith(ref));
      if (matches.length === 1) return matches[0];
      if (matches.length > 1) throw new InvalidArgumentError(`network id prefix ${ref} is ambiguous`);
    }
    return undefined;
  }

  /** Finds an attached container's sandbox by PID, name, sandbox id (or unique prefix) or namespace path. */
  findSandbox(ref: string): SandboxRecord | undefined {
    return this.locateContainer(ref)?.sandbox;
  }

  /**
   * Finds a container: the sandbox it is in and, when it shares another's sandbox (`container:` mode), which
   * member of that sandbox it is.
   */
  private locateContainer(ref: string): { sandbox: SandboxRecord; member?: SandboxMember } | undefined {
    if (typeof ref !== 'string' || ref === '') return undefined;
    const all = [...this.sandboxesById.values()];
    const byMember = (pred: (m: SandboxMember) => boolean) => {
      for (const sandbox of all) {
        const member = sandbox.members?.find(pred);
        if (member) return { sandbox, member };
      }
      return undefined;
    };
    if (/^\d+$/.test(ref)) {
      const pid = Number(ref);
      const byPid = all.find((s) => s.pid === pid);
      if (byPid) return { sandbox: byPid };
      const member = byMember((m) => m.pid === pid);
      if (member) return member;
      try {
        const ns = this.opts.resolver.resolve({ pid });
        const sandbox = all.find((s) => s.nsId === ns.nsId && !s.host);
        if (sandbox) return { sandbox };
      } catch {
        /* no such process: the digits may still be a name or an id prefix */
      }
    }
    const direct = this.sandboxesById.get(ref) ?? all.find((s) => s.name === ref);
    if (direct) return { sandbox: direct };
    const member = byMember((m) => m.name === ref);
    if (member) return member;
    if (ref.startsWith('/')) {
      try {
        const ns = this.opts.resolver.resolve({ path: ref });
        const sandbox = all.find((s) => s.nsId === ns.nsId && !s.host);
        return sandbox ? { sandbox } : undefined;
      } catch {
        return undefined;
      }
    }
    if (/^[0-9a-f]{1,63}$/.test(ref)) {
      const matches = all.filter((s) => s.id.startsWith(ref));
      if (matches.length === 1) return { sandbox: matches[0] };
    }
    return undefined;
  }

  // ---------------------------------------------------------------- sandboxes netd creates

  /** `netd sandbox create NAME`: a persistent network namespace (lo up), kept until removed. */
  createSandbox(name: string): Promise<SandboxRecord> {
    return this.exclusive('sandbox-create', { name }, async () => {
      if (typeof name !== 'string' || !NAME.test(name)) throw new InvalidArgumentError(`invalid sandbox name ${JSON.stringify(name)}`);
      this.checkNameFree(name);
      const ns = await this.opts.resolver.create(name);
      const record: SandboxRecord = { id: newId(), name, key: ns.key, nsId: ns.nsId, created: new Date().toISOString(), endpoints: [], persistent: true };
      try {
        this.persistSandbox(record);
      } catch (err) {
        this.opts.resolver.destroy(ns.key);
        throw err;
      }
      this.sandboxesById.set(record.id, record);
      return record;
    });
  }

  /** `netd sandbox rm NAME`: detaches every endpoint, then removes the namespace. */
  removeSandbox(ref: string): Promise<string[]> {
    return this.exclusive('sandbox-rm', { sandbox: ref }, async () => {
      const sandbox = this.findSandbox(ref);
      if (!sandbox) throw new NotFoundError(`no sandbox ${ref}`);
      if (!sandbox.persistent) throw new InvalidArgumentError(`${sandbox.name} is a container's own namespace, not one netd created; use detach`);
      const removed = await this.removeSandboxEndpoints(sandbox, undefined, 'sandbox removed', true);
      this.opts.resolver.destroy(sandbox.key);
      this.forgetSandbox(sandbox);
      return removed;
    });
  }

  // ---------------------------------------------------------------- networks

  createNetwork(req: NetworkCreateRequest): Promise<NetworkRecord> {
    return this.exclusive('create-network', { name: req?.name }, () => this.doCreateNetwork(req, false));
  }

  private async doCreateNetwork(req: NetworkCreateRequest, predefined: boolean): Promise<NetworkRecord> {
    if (!req || typeof req.name !== 'string' || !NAME.test(req.name)) {
      throw new InvalidArgumentError(`invalid network name ${JSON.stringify(req?.name)}: use 1-64 of [a-zA-Z0-9_.-], starting with a letter or digit`);
    }
    if (this.findNetworkByName(req.name)) throw new ConflictError(`network with name ${req.name} already exists`);
    const driverName = req.driver ?? 'bridge';
    const driver = this.drivers.get(driverName);
    if (!driver) throw new NotFoundError(`unknown network driver ${JSON.stringify(driverName)} (available: ${[...this.drivers.keys()].join(', ')})`);
    if (!predefined && !driver.providesInterface) {
      throw new ForbiddenError(`only one instance of the "${driverName}" network is allowed`);
    }
    const options = checkStringMap(req.options, 'option');
    const labels = checkStringMap(req.labels, 'label');

    const tx = new Transaction('create-network', this.log);
    const id = newId();
    const ipv4: IpamConfig[] = [];
    const ipv6: IpamConfig[] = [];
    const enableIPv6 = Boolean(req.enableIPv6 || req.subnet6);
    if (driver.providesInterface) {
      const avoid = req.subnet ? [] : await this.opts.hostSubnets();
      const pool4: PoolInfo = await tx.step(
        'allocate IPv4 pool',
        () => this.opts.ipam.addPool(poolRequest(4, req), avoid),
        (): void => this.opts.ipam.removePool(pool4.subnet),
      );
      ipv4.push(toIpamConfig(pool4));
      if (enableIPv6) {
        const pool6: PoolInfo = await tx.step(
          'allocate IPv6 pool',
          () => this.opts.ipam.addPool(poolRequest(6, { subnet: req.subnet6, gateway: req.gateway6 }), avoid),
          (): void => this.opts.ipam.removePool(pool6.subnet),
        );
        ipv6.push(toIpamConfig(pool6));
      }
    }
    const record: NetworkRecord = {
      id,
      name: req.name,
      driver: driverName,
      created: new Date().toISOString(),
      internal: Boolean(req.internal),
      attachable: Boolean(req.attachable),
      enableIPv6,
      ipv4,
      ipv6,
      options,
      labels,
      predefined,
      driverState: {},
    };
    await tx.step(
      'journal',
      () => this.opts.store.put('intents', id, { op: 'create-network', network: record } satisfies Intent),
      () => this.opts.store.delete('intents', id),
    );
    record.driverState = await tx.step('driver create network', () => driver.createNetwork(record), () => driver.deleteNetwork(record));
    await tx.step('persist network', () => this.opts.store.put('networks', id, record));
    this.opts.store.delete('intents', id);
    this.networksById.set(id, new Network(record));
    if (!predefined) await this.notify('networkCreated', (o) => o.networkCreated?.(record));
    return record;
  }

  private findNetworkByName(name: string): Network | undefined {
    for (const n of this.networksById.values()) if (n.name === name) return n;
    return undefined;
  }

  deleteNetwork(ref: string): Promise<void> {
    return this.exclusive('rm-network', { network: ref }, async () => {
      const network = this.findNetwork(ref);
      if (!network) throw new NotFoundError(`network ${ref} not found`);
      await this.doDeleteNetwork(network);
    });
  }

  private async doDeleteNetwork(network: Network): Promise<void> {
    if (network.record.predefined) throw new ForbiddenError(`${network.name} is a pre-defined network and cannot be removed`);
    if (network.endpoints.size > 0) {
      throw new ForbiddenError(`network ${network.name} has ${network.endpoints.size} active endpoint(s); detach them first`);
    }
    await this.finishDeleteNetwork(network);
  }

  /** Removes a network's kernel state, then its record. Journaled: a crash midway is completed at start. */
  private async finishDeleteNetwork(network: Network): Promise<void> {
    const driver = this.driverOf(network.record);
    const tx = new Transaction('rm-network', this.log);
    await tx.step('journal', () => this.opts.store.put('intents', network.id, { op: 'rm-network', networkId: network.id } satisfies Intent));
    await this.notify('networkRemoved', (o) => o.networkRemoved?.(network.record));
    await tx.step('driver delete network', () => driver.deleteNetwork(network.record));
    for (const c of [...network.record.ipv4, ...network.record.ipv6]) this.opts.ipam.removePool(Prefix.parse(c.subnet));
    await tx.step('delete record', () => this.opts.store.delete('networks', network.id));
    this.networksById.delete(network.id);
    this.opts.store.delete('intents', network.id);
  }

  /** Removes every network that has no endpoints (never the predefined ones). Returns their names. */
  prune(): Promise<string[]> {
    return this.exclusive('prune', {}, async () => {
      const removed: string[] = [];
      for (const network of [...this.networksById.values()]) {
        if (network.record.predefined || network.endpoints.size > 0) continue;
        await this.doDeleteNetwork(network);
        removed.push(network.name);
      }
      return removed;
    });
  }

  // ---------------------------------------------------------------- attach / detach

  attach(req: AttachRequest): Promise<AttachResult | SharedAttachResult> {
    return this.exclusive('attach', { network: req?.network ?? DEFAULT_NETWORK, target: req?.target }, () => this.doAttach(req));
  }

  private async doAttach(req: AttachRequest): Promise<AttachResult | SharedAttachResult> {
    if (!req || !req.target) throw new InvalidArgumentError('attach needs a target: a container PID, a namespace path or a sandbox name');
    const mode = parseMode(req.mode);
    if (req.name !== undefined && (typeof req.name !== 'string' || !NAME.test(req.name))) {
      throw new InvalidArgumentError(`invalid container name ${JSON.stringify(req.name)}`);
    }
    if (mode.kind === 'container' && (req.ports?.length ?? 0) > 0) throw new InvalidArgumentError('a container sharing another\'s namespace publishes no ports of its own; publish them on the other');
    if (mode.kind === 'container') return this.joinSharedSandbox(req, mode.ref);
    const networkRef = mode.kind === 'network' ? (req.network ?? DEFAULT_NETWORK) : mode.kind;
    if (mode.kind !== 'network' && req.network !== undefined && this.findNetwork(req.network)?.name !== mode.kind) {
      throw new InvalidArgumentError(`--mode ${mode.kind} and --network ${req.network} contradict each other`);
    }
    const network = this.findNetwork(networkRef);
    if (!network) throw new NotFoundError(`network ${networkRef} not found`);
    const driver = this.driverOf(network.record);
    const aliases = checkAliases(req.aliases);
    const onHostNetwork = network.record.driver === 'host';
    const ns = this.resolveTarget(req.target, onHostNetwork);
    if (onHostNetwork && !ns.host) {
      throw new InvalidArgumentError('the host network is for processes in the host\'s network namespace; this one has a namespace of its own');
    }
    const tx = new Transaction('attach', this.log);

    // The sandbox: found again by namespace identity, or new. On the host network every container is a
    // sandbox of its own, since they all share the host's namespace.
    let sandbox = onHostNetwork ? undefined : [...this.sandboxesById.values()].find((s) => s.nsId === ns.nsId && !s.host);
    const newSandbox = !sandbox;
    if (sandbox) {
      if (req.name !== undefined && req.name !== sandbox.name && !sandbox.persistent) {
        throw new ConflictError(`this container is already attached as ${sandbox.name}`);
      }
      const current = sandbox.endpoints.map((id) => this.endpointsById.get(id)!);
      if (current.some((e) => e.networkId === network.id)) {
        throw new ConflictError(`container ${sandbox.name} is already attached to network ${network.name}`);
      }
      const onNone = (e: { networkId: string }) => this.networksById.get(e.networkId)?.record.driver === 'null';
      if (current.length > 0 && (network.record.driver === 'null' || current.some(onNone))) {
        throw new ConflictError(`container ${sandbox.name} cannot be on the none network and another network at once`);
      }
    } else {
      const id = newId();
      const name = req.name ?? id.slice(0, 12);
      this.checkNameFree(name);
      sandbox = { id, name, key: ns.key, pid: ns.pid, nsId: ns.nsId, created: new Date().toISOString(), endpoints: [], ...(onHostNetwork ? { host: true } : {}) };
    }
    const sb = sandbox;

    const endpointId = newId();
    const others = sb.endpoints.map((id) => this.endpointsById.get(id)!);
    const ifname = driver.providesInterface ? nextInterfaceName(others) : '';
    const hasGateway = others.some((e) => e.gatewayEndpoint);
    const endpoint: EndpointRecord = {
      id: endpointId,
      name: sb.name,
      networkId: network.id,
      sandboxId: sb.id,
      ifname,
      aliases,
      created: new Date().toISOString(),
      gatewayEndpoint: driver.providesInterface && !hasGateway && !network.record.internal,
      driverState: {},
    };

    if (driver.providesInterface) {
      const v4 = network.record.ipv4[0];
      const v6 = network.record.ipv6[0];
      if (req.ip !== undefined && !v4) throw new InvalidArgumentError(`network ${network.name} has no IPv4 subnet`);
      if (req.ip6 !== undefined && !v6) throw new InvalidArgumentError(`network ${network.name} has no IPv6 subnet`);
      if (v4) {
        endpoint.ipv4 = await tx.step('allocate IPv4 address', () => this.allocate(v4.subnet, req.ip), () => this.release(v4.subnet, endpoint.ipv4));
        endpoint.gateway4 = v4.gateway;
      }
      if (v6) {
        endpoint.ipv6 = await tx.step('allocate IPv6 address', () => this.allocate(v6.subnet, req.ip6), () => this.release(v6.subnet, endpoint.ipv6));
        endpoint.gateway6 = v6.gateway;
      }
      endpoint.mac = req.mac === undefined ? undefined : MAC.parse(req.mac).toString();
      if (req.ports && req.ports.length > 0) endpoint.portRequests = req.ports;
    } else if (req.ports && req.ports.length > 0) {
      throw new InvalidArgumentError(`network ${network.name} (driver ${network.record.driver}) cannot publish ports`);
    } else if (req.ip !== undefined || req.ip6 !== undefined || req.mac !== undefined) {
      throw new InvalidArgumentError(`network ${network.name} (driver ${network.record.driver}) takes no address or MAC`);
    }

    await tx.step(
      'journal',
      () => this.opts.store.put('intents', endpoint.id, { op: 'attach', endpoint } satisfies Intent),
      () => this.opts.store.delete('intents', endpoint.id),
    );
    endpoint.driverState = await tx.step(
      'driver join',
      () => driver.join(network.record, endpoint, sb),
      () => driver.leave(network.record, endpoint, sb),
    );
    if (typeof endpoint.driverState.mac === 'string') endpoint.mac = endpoint.driverState.mac;
    if (Array.isArray(endpoint.driverState.ports)) endpoint.ports = endpoint.driverState.ports as PortBinding[];

    await tx.step('persist endpoint', () => {
      this.opts.store.put('endpoints', endpoint.id, endpoint);
      // An existing sandbox's file does not change: its endpoint list is derived from the endpoints' records.
      if (newSandbox) this.persistSandbox(sb);
    });
    this.opts.store.delete('intents', endpoint.id);
    sb.endpoints.push(endpoint.id);
    if (newSandbox) this.sandboxesById.set(sb.id, sb);
    this.endpointsById.set(endpoint.id, endpoint);
    network.endpoints.add(endpoint.id);
    await this.notify('endpointJoined', (o) => o.endpointJoined?.(network.record, endpoint, sb, req.extras ?? {}));
    return this.attachResult(network.record, endpoint);
  }

  /** `--mode container:<other>`: the container shares another's sandbox; no endpoint of its own. */
  private async joinSharedSandbox(req: AttachRequest, ref: string): Promise<SharedAttachResult> {
    const owner = this.locateContainer(ref)?.sandbox;
    if (!owner) throw new NotFoundError(`no attached container ${ref} to share a network namespace with`);
    if (owner.host) throw new InvalidArgumentError(`container ${owner.name} uses the host network: use --mode host`);
    const name = req.name ?? newId().slice(0, 12);
    this.checkNameFree(name);
    let pid: number | undefined;
    if (req.target.pid !== undefined || req.target.path !== undefined) {
      const ns = this.opts.resolver.resolve(req.target);
      if (ns.nsId !== owner.nsId) {
        throw new InvalidArgumentError(`the target is not in the network namespace of container ${owner.name}; start it in ${owner.key}`);
      }
      pid = ns.pid;
    }
    if (req.ip !== undefined || req.ip6 !== undefined || req.mac !== undefined || req.network !== undefined) {
      throw new InvalidArgumentError('a container sharing another\'s namespace takes no network, address or MAC of its own');
    }
    const members = [...(owner.members ?? []), { name, ...(pid !== undefined ? { pid } : {}) }];
    this.persistSandbox({ ...owner, members });
    owner.members = members;
    const endpoints = owner.endpoints.map((id) => this.endpointsById.get(id)!);
    return {
      name,
      sandboxId: owner.id,
      sharedWith: owner.name,
      endpoints: endpoints.map((ep) => this.attachResult(this.networksById.get(ep.networkId)!.record, ep)),
    };
  }

  /**
   * A name is taken only by another container's name (or a full sandbox id): that a name happens to be a
   * prefix of some sandbox id (`c97`, `bad`) does not stop it, as with Docker's container names.
   */
  private checkNameFree(name: string): void {
    for (const s of this.sandboxesById.values()) {
      if (s.name === name || s.id === name || s.members?.some((m) => m.name === name)) {
        throw new ConflictError(`the container name ${name} is already in use`);
      }
    }
  }

  private resolveTarget(target: SandboxTarget, allowHost: boolean): ResolvedNamespace {
    if (target.sandbox !== undefined) {
      const sb = this.findSandbox(String(target.sandbox));
      if (!sb) throw new NotFoundError(`no sandbox ${target.sandbox}`);
      if (sb.host) throw new InvalidArgumentError(`container ${sb.name} uses the host network`);
      return { key: sb.key, nsId: sb.nsId, pid: sb.pid, host: false };
    }
    return this.opts.resolver.resolve(target, { allowHost });
  }

  private attachResult(network: NetworkRecord, ep: EndpointRecord): AttachResult {
    const extra: Record<string, unknown> = {};
    for (const o of this.opts.observers ?? []) Object.assign(extra, o.describeEndpoint?.(network, ep));
    return {
      ...extra,
      network: network.name,
      networkId: network.id,
      endpointId: ep.id,
      sandboxId: ep.sandboxId,
      name: ep.name,
      interface: ep.ifname,
      mac: ep.mac,
      ipv4: ep.ipv4,
      ipv6: ep.ipv6,
      gateway: ep.gatewayEndpoint ? ep.gateway4 : undefined,
      gateway6: ep.gatewayEndpoint ? ep.gateway6 : undefined,
      ...(ep.ports ? { ports: ep.ports } : {}),
    };
  }

  /**
   * Detaches a container (PID, name, sandbox id or namespace path) from one network, or from all of them.
   * Returns the ids of the endpoints removed.
   */
  detach(container: string, networkRef?: string): Promise<string[]> {
    return this.exclusive('detach', { container, network: networkRef }, async () => {
      const located = this.locateContainer(String(container));
      if (!located) throw new NotFoundError(`no attached container ${container}`);
      const { sandbox, member } = located;
      if (member) {
        // A container sharing another's namespace: it only leaves; the namespace's endpoints stay.
        if (networkRef !== undefined) throw new InvalidArgumentError(`container ${member.name} shares the network namespace of ${sandbox.name}; disconnect ${sandbox.name} instead`);
        sandbox.members = sandbox.members!.filter((m) => m !== member);
        this.persistSandbox(sandbox);
        return [];
      }
      if (networkRef === undefined && sandbox.members && sandbox.members.length > 0) {
        // The namespace lives on with the containers sharing it: hand it to the next one.
        this.promoteMember(sandbox);
        return [];
      }
      let network: Network | undefined;
      if (networkRef !== undefined) {
        network = this.findNetwork(networkRef);
        if (!network) throw new NotFoundError(`network ${networkRef} not found`);
        if (!sandbox.endpoints.some((id) => this.endpointsById.get(id)?.networkId === network!.id)) {
          throw new NotFoundError(`container ${sandbox.name} is not attached to network ${network.name}`);
        }
      }
      return this.removeSandboxEndpoints(sandbox, network, 'detach');
    });
  }

  private async removeSandboxEndpoints(sandbox: SandboxRecord, only: Network | undefined, reason: string, keepRecord = false): Promise<string[]> {
    const removed: string[] = [];
    for (const epId of [...sandbox.endpoints]) {
      const ep = this.endpointsById.get(epId);
      if (!ep) continue;
      if (only && ep.networkId !== only.id) continue;
      const network = this.networksById.get(ep.networkId)!;
      await this.removeEndpoint(network, ep, sandbox);
      removed.push(ep.id);
      this.log.info({ op: 'release-endpoint', reason, endpoint: ep.id, network: network.id, sandbox: sandbox.id }, 'endpoint released');
    }
    if (keepRecord) return removed;
    if (sandbox.endpoints.length === 0 && !sandbox.persistent) this.forgetSandbox(sandbox);
    return removed;
  }

  /** Removes an endpoint's kernel state, then its record. Journaled: a crash midway is completed at start. */
  private async removeEndpoint(network: Network, ep: EndpointRecord, sandbox: SandboxRecord | undefined): Promise<void> {
    const tx = new Transaction('detach', this.log);
    await tx.step('journal', () => this.opts.store.put('intents', ep.id, { op: 'detach', endpointId: ep.id } satisfies Intent));
    await tx.step('driver leave', () => this.driverOf(network.record).leave(network.record, ep, sandbox));
    if (network.record.ipv4[0]) this.release(network.record.ipv4[0].subnet, ep.ipv4);
    if (network.record.ipv6[0]) this.release(network.record.ipv6[0].subnet, ep.ipv6);
    await tx.step('delete record', () => this.opts.store.delete('endpoints', ep.id));
    this.endpointsById.delete(ep.id);
    network.endpoints.delete(ep.id);
    if (sandbox) sandbox.endpoints = sandbox.endpoints.filter((id) => id !== ep.id);
    this.opts.store.delete('intents', ep.id);
    await this.notify('endpointLeft', (o) => o.endpointLeft?.(network.record, ep));
  }

  /**
   * Writes a sandbox's record. Its endpoint list is left out: at start it is rebuilt from the endpoints'
   * own records, so a sandbox file changes only when the sandbox itself does.
   */
  private persistSandbox(sandbox: SandboxRecord): void {
    const { endpoints: _derived, ...record } = sandbox;
    this.opts.store.put('sandboxes', sandbox.id, record);
  }

  /** The sandbox's named container is gone; the first member sharing it becomes its container. */
  private promoteMember(sandbox: SandboxRecord): void {
    const [next, ...rest] = sandbox.members!;
    sandbox.name = next.name;
    sandbox.pid = next.pid;
    if (next.pid !== undefined) sandbox.key = `/proc/${next.pid}/ns/net`;
    sandbox.members = rest;
    this.persistSandbox(sandbox);
  }

  /** A sandbox whose key died may live on in a member's process. */
  private revive(sandbox: SandboxRecord): boolean {
    while (sandbox.members && sandbox.members.length > 0) {
      const next = sandbox.members[0];
      if (next.pid !== undefined && this.opts.resolver.alive({ ...sandbox, key: `/proc/${next.pid}/ns/net` })) {
        this.promoteMember(sandbox);
        return true;
      }
      sandbox.members = sandbox.members.slice(1);
    }
    return false;
  }

  private forgetSandbox(sandbox: SandboxRecord): void {
    this.opts.store.delete('sandboxes', sandbox.id);
    this.sandboxesById.delete(sandbox.id);
  }

  // ---------------------------------------------------------------- helpers

  private pidAlive(pid: number): boolean {
    try {
      this.opts.resolver.resolve({ pid }, { allowHost: true });
      return true;
    } catch {
      return false;
    }
  }

  /** Tells every observer; an observer's failure is logged and goes no further. */
  private async notify(event: string, call: (o: NetworkObserver) => unknown): Promise<void> {
    for (const o of this.opts.observers ?? []) {
      try {
        await call(o);
      } catch (err) {
        this.log.error({ op: 'observer', event, err }, 'observer failed');
      }
    }
  }

  private driverOf(network: NetworkRecord): Driver {
    const d = this.drivers.get(network.driver);
    if (!d) throw new NetdError(`network ${network.name} uses driver ${network.driver}, which is not loaded`, 500, 'internal');
    return d;
  }

  private reserveAddresses(network: NetworkRecord, ep: EndpointRecord): void {
    if (ep.ipv4 && network.ipv4[0]) this.opts.ipam.reserve(Prefix.parse(network.ipv4[0].subnet), InterfaceAddress.parse(ep.ipv4));
    if (ep.ipv6 && network.ipv6[0]) this.opts.ipam.reserve(Prefix.parse(network.ipv6[0].subnet), InterfaceAddress.parse(ep.ipv6));
  }

  /** IPAM takes typed values; records keep text (for now). */
  private allocate(subnet: string, preferred: string | undefined): string {
    return this.opts.ipam.allocate(Prefix.parse(subnet), preferred === undefined ? undefined : IPAddress.parse(preferred)).toString();
  }

  private release(subnet: string, address: string | undefined): void {
    if (address !== undefined) this.opts.ipam.release(Prefix.parse(subnet), InterfaceAddress.parse(address));
  }

  /** Serialises an operation and logs one structured event for it: ids, duration, outcome. */
  private exclusive<T>(op: string, fields: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
    return this.mutex.run(async () => {
      const started = performance.now();
      try {
        const result = await fn();
        const ms = Math.round((performance.now() - started) * 1000) / 1000;
        this.log.info({ op, ...fields, ...summarise(result), durationMs: ms, outcome: 'ok' }, op);
        return result;
      } catch (err) {
        const ms = Math.round((performance.now() - started) * 1000) / 1000;
        const e = err as NetdError;
        this.log.warn({ op, ...fields, durationMs: ms, outcome: 'error', error: e.message, code: e.code, step: (e as { step?: string }).step }, op);
        throw err;
      }
    });
  }
}

function summarise(result: unknown): Record<string, unknown> {
  if (!result || typeof result !== 'object') return {};
  const r = result as Record<string, unknown>;
  if ('endpointId' in r) return { endpoint: r.endpointId, sandbox: r.sandboxId, networkId: r.networkId, ipv4: r.ipv4 };
  if ('id' in r && 'driver' in r) return { networkId: r.id, driver: r.driver, subnet: (r.ipv4 as IpamConfig[] | undefined)?.[0]?.subnet };
  return {};
}

function newId(): string {
  return randomBytes(32).toString('hex');
}

function toIpamConfig(pool: PoolInfo): IpamConfig {
  const config = { subnet: pool.subnet.toString(), gateway: pool.gateway.toString() };
  return pool.ipRange ? { ...config, ipRange: pool.ipRange.toString() } : config;
}

function nextInterfaceName(others: EndpointRecord[]): string {
  const used = new Set(others.map((e) => e.ifname));
  for (let i = 0; i < MAX_INTERFACES; i++) if (!used.has(`eth${i}`)) return `eth${i}`;
  throw new ConflictError('the container has too many interfaces');
}

function checkStringMap(value: unknown, what: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new InvalidArgumentError(`${what}s must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new InvalidArgumentError(`${what} ${k} must be a string`);
    if (k === '' || k.length > 256 || v.length > 4096) throw new InvalidArgumentError(`${what} ${k} is empty or too long`);
    out[k] = v;
  }
  return out;
}

function checkAliases(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidArgumentError('aliases must be a list of names');
  for (const a of value) {
    if (typeof a !== 'string' || !/^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,252})$/.test(a)) throw new InvalidArgumentError(`invalid alias ${JSON.stringify(a)}`);
  }
  return [...new Set(value as string[])];
}

type Mode = { kind: 'network' } | { kind: 'host' } | { kind: 'none' } | { kind: 'container'; ref: string };

function parseMode(mode: unknown): Mode {
  if (mode === undefined || mode === null || mode === '' || mode === 'bridge' || mode === 'default') return { kind: 'network' };
  if (mode === 'host') return { kind: 'host' };
  if (mode === 'none') return { kind: 'none' };
  if (typeof mode === 'string' && mode.startsWith('container:') && mode.length > 'container:'.length) return { kind: 'container', ref: mode.slice('container:'.length) };
  throw new InvalidArgumentError(`invalid mode ${JSON.stringify(mode)}: use bridge, host, none or container:<name|id|pid>`);
}

/** The write-ahead journal: what an operation is about to change, so a crash can be undone or completed. */
type Intent =
  | { op: 'attach'; endpoint: EndpointRecord }
  | { op: 'create-network'; network: NetworkRecord }
  | { op: 'rm-network'; networkId: string }
  | { op: 'detach'; endpointId: string };
