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
import type { Ipam, PoolInfo } from '../ipam/ipam.js';
import type { Subnet } from '../ipam/ip.js';
import type { Store, LoadProblem } from '../store/store.js';
import { Mutex } from './mutex.js';
import { Transaction } from './transaction.js';
import { Network, type IpamConfig, type NetworkCreateRequest, type NetworkRecord } from './network.js';
import type { AttachResult, EndpointRecord } from './endpoint.js';
import type { NamespaceResolver, SandboxRecord, SandboxTarget } from './sandbox.js';
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
  hostSubnets: () => Promise<Subnet[]>;
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
          this.opts.ipam.addPool({ family: c.subnet.includes(':') ? 6 : 4, subnet: c.subnet, gateway: c.gateway, ipRange: c.ipRange });
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

      for (const [type, driver] of this.drivers) {
        const nets = [...this.networksById.values()].filter((n) => n.record.driver === type).map((n) => n.record);
        const eps = [...this.endpointsById.values()].filter((e) => nets.some((n) => n.id === e.networkId));
        await driver.restore(nets, eps);
      }

      // Containers that died while netd was down: release what they held.
      for (const sb of [...this.sandboxesById.values()]) {
        if (!this.opts.resolver.alive(sb)) await this.removeSandboxEndpoints(sb, undefined, 'container gone');
        else if (sb.endpoints.length === 0) this.forgetSandbox(sb);
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

  /**
   * Finds an attached container by PID, name, sandbox id (or unique prefix) or namespace path.
   */
  findSandbox(ref: string): SandboxRecord | undefined {
    if (typeof ref !== 'string' || ref === '') return undefined;
    const all = [...this.sandboxesById.values()];
    if (/^\d+$/.test(ref)) {
      const pid = Number(ref);
      const byPid = all.find((s) => s.pid === pid);
      if (byPid) return byPid;
      try {
        const ns = this.opts.resolver.resolve({ pid });
        return all.find((s) => s.nsId === ns.nsId);
      } catch {
        return undefined;
      }
    }
    const byIdOrName = this.sandboxesById.get(ref) ?? all.find((s) => s.name === ref);
    if (byIdOrName) return byIdOrName;
    if (ref.startsWith('/')) {
      try {
        const ns = this.opts.resolver.resolve({ path: ref });
        return all.find((s) => s.nsId === ns.nsId);
      } catch {
        return undefined;
      }
    }
    if (/^[0-9a-f]{1,63}$/.test(ref)) {
      const matches = all.filter((s) => s.id.startsWith(ref));
      if (matches.length === 1) return matches[0];
    }
    return undefined;
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
        () => this.opts.ipam.addPool({ family: 4, subnet: req.subnet, gateway: req.gateway, ipRange: req.ipRange }, avoid),
        (): void => this.opts.ipam.removePool(pool4.subnet),
      );
      ipv4.push(toIpamConfig(pool4));
      if (enableIPv6) {
        const pool6: PoolInfo = await tx.step(
          'allocate IPv6 pool',
          () => this.opts.ipam.addPool({ family: 6, subnet: req.subnet6, gateway: req.gateway6 }, avoid),
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
    record.driverState = await tx.step('driver create network', () => driver.createNetwork(record), () => driver.deleteNetwork(record));
    await tx.step('persist network', () => this.opts.store.put('networks', id, record));
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
    const driver = this.driverOf(network.record);
    await this.notify('networkRemoved', (o) => o.networkRemoved?.(network.record));
    await driver.deleteNetwork(network.record);
    for (const c of [...network.record.ipv4, ...network.record.ipv6]) this.opts.ipam.removePool(c.subnet);
    this.opts.store.delete('networks', network.id);
    this.networksById.delete(network.id);
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

  attach(req: AttachRequest): Promise<AttachResult> {
    return this.exclusive('attach', { network: req?.network ?? DEFAULT_NETWORK, target: req?.target }, () => this.doAttach(req));
  }

  private async doAttach(req: AttachRequest): Promise<AttachResult> {
    if (!req || !req.target) throw new InvalidArgumentError('attach needs a target: a container PID or a namespace path');
    const network = this.findNetwork(req.network ?? DEFAULT_NETWORK);
    if (!network) throw new NotFoundError(`network ${req.network} not found`);
    const driver = this.driverOf(network.record);
    const aliases = checkAliases(req.aliases);
    if (req.name !== undefined && (typeof req.name !== 'string' || !NAME.test(req.name))) {
      throw new InvalidArgumentError(`invalid container name ${JSON.stringify(req.name)}`);
    }
    const ns = this.opts.resolver.resolve(req.target);
    const tx = new Transaction('attach', this.log);

    // The sandbox: found again by namespace identity, or new.
    let sandbox = [...this.sandboxesById.values()].find((s) => s.nsId === ns.nsId);
    const newSandbox = !sandbox;
    if (sandbox) {
      if (req.name !== undefined && req.name !== sandbox.name) {
        throw new ConflictError(`this container is already attached as ${sandbox.name}`);
      }
      for (const epId of sandbox.endpoints) {
        if (this.endpointsById.get(epId)?.networkId === network.id) {
          throw new ConflictError(`container ${sandbox.name} is already attached to network ${network.name}`);
        }
      }
    } else {
      const id = newId();
      const name = req.name ?? id.slice(0, 12);
      if ([...this.sandboxesById.values()].some((s) => s.name === name)) {
        throw new ConflictError(`the container name ${name} is already in use`);
      }
      sandbox = { id, name, key: ns.key, pid: ns.pid, nsId: ns.nsId, created: new Date().toISOString(), endpoints: [] };
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
        endpoint.ipv4 = await tx.step('allocate IPv4 address', () => this.opts.ipam.allocate(v4.subnet, req.ip), () => this.opts.ipam.release(v4.subnet, endpoint.ipv4!));
        endpoint.gateway4 = v4.gateway;
      }
      if (v6) {
        endpoint.ipv6 = await tx.step('allocate IPv6 address', () => this.opts.ipam.allocate(v6.subnet, req.ip6), () => this.opts.ipam.release(v6.subnet, endpoint.ipv6!));
        endpoint.gateway6 = v6.gateway;
      }
      endpoint.mac = req.mac === undefined ? undefined : normaliseMac(req.mac);
    } else if (req.ip !== undefined || req.ip6 !== undefined || req.mac !== undefined) {
      throw new InvalidArgumentError(`network ${network.name} (driver ${network.record.driver}) takes no address or MAC`);
    }

    endpoint.driverState = await tx.step(
      'driver join',
      () => driver.join(network.record, endpoint, sb),
      () => driver.leave(network.record, endpoint, sb),
    );
    if (typeof endpoint.driverState.mac === 'string') endpoint.mac = endpoint.driverState.mac;

    await tx.step('persist endpoint', () => {
      this.opts.store.put('endpoints', endpoint.id, endpoint);
      this.opts.store.put('sandboxes', sb.id, { ...sb, endpoints: [...sb.endpoints, endpoint.id] });
    });
    sb.endpoints.push(endpoint.id);
    if (newSandbox) this.sandboxesById.set(sb.id, sb);
    this.endpointsById.set(endpoint.id, endpoint);
    network.endpoints.add(endpoint.id);
    await this.notify('endpointJoined', (o) => o.endpointJoined?.(network.record, endpoint, sb, req.extras ?? {}));
    return this.attachResult(network.record, endpoint);
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
    };
  }

  /**
   * Detaches a container (PID, name, sandbox id or namespace path) from one network, or from all of them.
   * Returns the ids of the endpoints removed.
   */
  detach(container: string, networkRef?: string): Promise<string[]> {
    return this.exclusive('detach', { container, network: networkRef }, async () => {
      const sandbox = this.findSandbox(String(container));
      if (!sandbox) throw new NotFoundError(`no attached container ${container}`);
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

  private async removeSandboxEndpoints(sandbox: SandboxRecord, only: Network | undefined, reason: string): Promise<string[]> {
    const removed: string[] = [];
    for (const epId of [...sandbox.endpoints]) {
      const ep = this.endpointsById.get(epId);
      if (!ep) continue;
      if (only && ep.networkId !== only.id) continue;
      const network = this.networksById.get(ep.networkId)!;
      await this.driverOf(network.record).leave(network.record, ep, sandbox);
      if (ep.ipv4 && network.record.ipv4[0]) this.opts.ipam.release(network.record.ipv4[0].subnet, ep.ipv4);
      if (ep.ipv6 && network.record.ipv6[0]) this.opts.ipam.release(network.record.ipv6[0].subnet, ep.ipv6);
      this.opts.store.delete('endpoints', ep.id);
      this.endpointsById.delete(ep.id);
      network.endpoints.delete(ep.id);
      sandbox.endpoints = sandbox.endpoints.filter((id) => id !== ep.id);
      removed.push(ep.id);
      await this.notify('endpointLeft', (o) => o.endpointLeft?.(network.record, ep));
      this.log.info({ op: 'release-endpoint', reason, endpoint: ep.id, network: network.id, sandbox: sandbox.id }, 'endpoint released');
    }
    if (sandbox.endpoints.length === 0) this.forgetSandbox(sandbox);
    else this.opts.store.put('sandboxes', sandbox.id, sandbox);
    return removed;
  }

  private forgetSandbox(sandbox: SandboxRecord): void {
    this.opts.store.delete('sandboxes', sandbox.id);
    this.sandboxesById.delete(sandbox.id);
  }

  // ---------------------------------------------------------------- helpers

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
    if (ep.ipv4 && network.ipv4[0]) this.opts.ipam.reserve(network.ipv4[0].subnet, ep.ipv4);
    if (ep.ipv6 && network.ipv6[0]) this.opts.ipam.reserve(network.ipv6[0].subnet, ep.ipv6);
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
  return pool.ipRange ? { subnet: pool.subnet, gateway: pool.gateway, ipRange: pool.ipRange } : { subnet: pool.subnet, gateway: pool.gateway };
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

function normaliseMac(mac: string): string {
  if (typeof mac !== 'string' || !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac)) throw new InvalidArgumentError(`invalid MAC address ${JSON.stringify(mac)}`);
  const lower = mac.toLowerCase();
  if (parseInt(lower.slice(0, 2), 16) & 1) throw new InvalidArgumentError(`MAC address ${mac} is a multicast address`);
  if (lower === '00:00:00:00:00:00') throw new InvalidArgumentError('MAC address 00:00:00:00:00:00 is not usable');
  return lower;
}
