/**
 * Networks' lifecycle: creating one (subnets from IPAM for drivers that give an interface, then the
 * driver) and removing one, each a journaled transaction.
 */
import { ConflictError, ForbiddenError, InvalidArgumentError } from '../errors.js';
import type { PoolInfo } from '../ipam/ipam.js';
import type { Prefix } from '../net/index.js';
import { Transaction } from '../transaction/transaction.js';
import { operation } from '../transaction/fault.js';
import { newId, type CoreContext } from './context.js';
import { checkManager, checkStringMap, isValidId, isValidName } from './validation.js';
import type { NetworkClaim } from './global-scope.js';
import { Network, type IpamConfig, type NetworkCreateRequest, type NetworkRecord } from './network.js';

const CREATE_NETWORK = operation('create-network', ['allocate IPv4 pool', 'allocate IPv6 pool', 'journal', 'driver create network', 'persist network']);
const RM_NETWORK = operation('rm-network', ['journal', 'driver delete network', 'delete record']);

export class Networks {
  constructor(
    private readonly ctx: CoreContext,
    /** Subnets a new network must not overlap: the host's addresses, routes and nameservers. */
    private readonly hostSubnets: () => Promise<Prefix[]>,
    /** The driver of a network created without one. */
    private readonly defaultDriver: string,
  ) {}

  /** Creates a network. `warn` hears what is allowed but likely a mistake (a subnet the host uses). */
  async create(req: NetworkCreateRequest, predefined: boolean, warn?: (message: string) => void): Promise<NetworkRecord> {
    const { registry } = this.ctx;
    if (!req || !isValidName(req.name)) {
      throw new InvalidArgumentError(`invalid network name ${JSON.stringify(req?.name)}: use 1-64 of [a-zA-Z0-9_.-], starting with a letter or digit`);
    }
    if (registry.findNetworkByName(req.name)) throw new ConflictError(`network with name ${req.name} already exists`);
    if (req.id !== undefined) {
      if (!isValidId(req.id)) throw new InvalidArgumentError(`invalid network id ${JSON.stringify(req.id)}: use 64 lowercase hex digits`);
      if (registry.networksById.has(req.id)) throw new ConflictError(`network with id ${req.id} already exists`);
    }
    if (req.managedBy !== undefined && !isValidName(req.managedBy)) throw new InvalidArgumentError(`invalid manager ${JSON.stringify(req.managedBy)}`);
    const driverName = req.driver ?? this.defaultDriver;
    const driver = registry.driver(driverName);
    if (!predefined && driver.capabilities.singleInstance) {
      throw new ForbiddenError(`only one instance of the "${driverName}" network is allowed`);
    }
    let options = checkStringMap(req.options, 'option');
    const labels = checkStringMap(req.labels, 'label');
    const global = driver.capabilities.globalScope === true;
    // A global network is claimed in the cluster first (its name, id, VXLAN id), then made here like any
    // other; a failure here gives the claim back. Hosts that did not create it adopt it from the cluster.
    const claim = global && !req.adoptedFromCluster ? await this.claim(driverName, req, options) : undefined;
    if (claim) options = { ...options, ...claim.options };
    try {
      return await this.make(claim ? { ...req, gateway: claim.gateway } : req, predefined, { driverName, options, labels, global, id: claim?.id ?? req.id ?? newId() }, warn);
    } catch (err) {
      if (claim) await this.ctx.global!.unclaimNetwork(claim, req.name).catch((e: unknown) => this.ctx.log.warn({ err: e, network: claim.id }, 'could not give back the claim of a network that failed'));
      throw err;
    }
  }

  /** A global network's claim in the cluster: its subnet is given, its name free cluster-wide. */
  private async claim(driverName: string, req: NetworkCreateRequest, options: Record<string, string>): Promise<NetworkClaim> {
    const global = this.ctx.global;
    if (!global) {
      throw new InvalidArgumentError(`the ${driverName} driver needs a cluster: start the daemon with --cluster-store etcd://HOST:PORT --advertise-address IP`);
    }
    if (!req.subnet) throw new InvalidArgumentError(`a ${driverName} network needs --subnet: its addresses are shared by every host of the cluster`);
    if (req.enableIPv6 || req.subnet6) throw new InvalidArgumentError(`${driverName} networks are IPv4 only`);
    if (req.id !== undefined) throw new InvalidArgumentError(`a ${driverName} network's id is chosen by the cluster`);
    return global.claimNetwork({ ...req, subnet: req.subnet, options });
  }

  private async make(
    req: NetworkCreateRequest,
    predefined: boolean,
    what: { driverName: string; options: Record<string, string>; labels: Record<string, string>; global: boolean; id: string },
    warn?: (message: string) => void,
  ): Promise<NetworkRecord> {
    const { registry, ipam, journal } = this.ctx;
    const { driverName, options, labels, id } = what;
    const driver = registry.driver(driverName);
    const tx = new Transaction(CREATE_NETWORK, this.ctx.log);
    const adopt = { adopt: req.adoptHeldPool === true };
    const ipv4: IpamConfig[] = [];
    const ipv6: IpamConfig[] = [];
    const enableIPv6 = Boolean(req.enableIPv6 || req.subnet6);
    if (driver.capabilities.interface) {
      const avoid = await this.hostSubnets();
      const pool4: PoolInfo = await tx.step(
        'allocate IPv4 pool',
        () => ipam.addPool({ family: 4, subnet: req.subnet, gateway: req.gateway, ipRange: req.ipRange }, avoid, adopt),
        (): void => ipam.removePool(pool4.subnet),
      );
      ipv4.push(toIpamConfig(pool4));
      // This host allocates only in the blocks it leases from the cluster (none yet).
      if (what.global) ipam.setBlocks(pool4.subnet, []);
      if (enableIPv6) {
        const pool6: PoolInfo = await tx.step(
          'allocate IPv6 pool',
          () => ipam.addPool({ family: 6, subnet: req.subnet6, gateway: req.gateway6 }, avoid, adopt),
          (): void => ipam.removePool(pool6.subnet),
        );
        ipv6.push(toIpamConfig(pool6));
      }
      for (const subnet of [req.subnet, req.subnet6]) {
        const used = subnet && hostUses(subnet, avoid);
        if (used) warn?.(`subnet ${subnet} overlaps ${used.join(', ')}, which this host already uses (an address, route or nameserver of its own): traffic between the host and those addresses may go astray`);
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
      ...(req.managedBy !== undefined ? { managedBy: req.managedBy } : {}),
      ...(what.global ? { scope: 'global' as const } : {}),
      driverState: {},
    };
    await tx.step(
      'journal',
      () => journal.write(id, { op: 'create-network', network: record }),
      () => journal.done(id),
    );
    record.driverState = await tx.step('driver create network', () => driver.createNetwork(record), () => driver.deleteNetwork(record));
    await tx.step('persist network', () => this.ctx.store.put('networks', id, record));
    journal.done(id);
    registry.networksById.set(id, new Network(record));
    if (!predefined) await this.ctx.observers.networkCreated(record);
    return record;
  }

  /**
   * Whether one more endpoint would get its addresses: on `network`, each of its pools has a free address;
   * for a network still to be made (undefined), its `subnet` overlaps no other network's, or without one,
   * a default pool is free for it.
   */
  async hasRoom(network: Network | undefined, subnet?: Prefix): Promise<boolean> {
    const { ipam, registry } = this.ctx;
    if (!network && subnet) return ipam.subnetFree(subnet);
    if (!network) return !registry.driver(this.defaultDriver).capabilities.interface || ipam.hasFreePool(4, await this.hostSubnets());
    if (!registry.driverOf(network.record).capabilities.interface) return true;
    return [...network.record.ipv4, ...network.record.ipv6].every((c) => ipam.hasFreeAddress(c.subnet));
  }

  /**
   * Removes a network users may remove: not a predefined one, nor one with endpoints, nor one another
   * program manages (`managedBy`) unless that program asks.
   */
  async delete(network: Network, managedBy?: string): Promise<void> {
    if (network.record.predefined) throw new ForbiddenError(`${network.name} is a pre-defined network and cannot be removed`);
    checkManager(network.record.managedBy, managedBy, `network ${network.name}`);
    if (network.endpoints.size > 0) {
      throw new ForbiddenError(`network ${network.name} has ${network.endpoints.size} active endpoint(s); detach them first`);
    }
    // A global network goes from every host at once, and only when none has endpoints on it.
    const release = network.record.scope === 'global' ? await this.ctx.global?.releaseNetwork(network.record) : undefined;
    try {
      await this.finishDelete(network);
    } catch (err) {
      await release?.abort();
      throw err;
    }
    await release?.commit();
  }

  /** Removes a network's kernel state, then its record. Journaled: a crash midway is completed at start. */
  async finishDelete(network: Network): Promise<void> {
    const driver = this.ctx.registry.driverOf(network.record);
    const tx = new Transaction(RM_NETWORK, this.ctx.log);
    await tx.step('journal', () => this.ctx.journal.write(network.id, { op: 'rm-network', networkId: network.id }));
    await this.ctx.observers.networkRemoved(network.record);
    await tx.step('driver delete network', () => driver.deleteNetwork(network.record));
    for (const c of [...network.record.ipv4, ...network.record.ipv6]) this.ctx.ipam.removePool(c.subnet);
    await tx.step('delete record', () => this.ctx.store.delete('networks', network.id));
    this.ctx.registry.networksById.delete(network.id);
    this.ctx.journal.done(network.id);
  }
}

/** The host's own prefixes that an explicit subnet overlaps, each once; undefined when none. */
function hostUses(subnet: Prefix, host: readonly Prefix[]): string[] | undefined {
  const found = [...new Set(host.filter((p) => p.overlaps(subnet)).map(String))];
  return found.length > 0 ? found : undefined;
}

function toIpamConfig(pool: PoolInfo): IpamConfig {
  const config: IpamConfig = { subnet: pool.subnet, gateway: pool.gateway };
  if (pool.ipRange) config.ipRange = pool.ipRange;
  return config;
}
