/**
 * libnetwork's IpamDriver calls on netd's IPAM, so that `docker network create --ipam-driver netd` picks
 * from netd's pools and avoids every network netd has (CLI, CNI and Docker alike). A pool dockerd asks for
 * is held in the controller (`holdPool`) until its network takes it (CreateNetwork with adoptHeldPool);
 * identical requests share one PoolID and count references, as libnetwork's own IPAM does; the addresses
 * dockerd asks for (the gateway, `--ip`, `--aux-address`) are held (`holdAddress`) and claimed by the
 * endpoint at Join. Everything is persisted (state.ts) before it is answered and re-applied at start.
 */
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { Logger } from '../log.js';
import type { NetworkRecord } from '../cnm/network.js';
import { MANAGED_BY, type PluginCore } from './core.js';
import type { Answer } from './answer.js';
import { formatPoolId, type PoolId } from './pool-id.js';
import type { HoldKind, PluginState, PoolEntry } from './state.js';
import { parsePoolRef, parseReleaseAddress, parseRequestAddress, parseRequestPool } from './requests.js';

export const LOCAL_SPACE = 'netd';
export const GLOBAL_SPACE = 'netd-global';

export class IpamDriver {
  /** Pools a network is known to use: the addresses asked for in them are endpoints' (see state.ts). */
  private readonly used = new WeakSet<PoolEntry>();

  constructor(
    private readonly core: () => PluginCore,
    private readonly state: PluginState,
    private readonly log: Logger,
    /** Removes a Docker network dockerd forgot (DeleteNetwork's work: the network, its holds and records). */
    private readonly deleteOrphanNetwork: (networkId: string) => Promise<unknown>,
  ) {}

  capabilities(): Answer {
    return { RequiresMACAddress: false, RequiresRequestReplay: false };
  }

  defaultAddressSpaces(): Answer {
    return { LocalDefaultAddressSpace: LOCAL_SPACE, GlobalDefaultAddressSpace: GLOBAL_SPACE };
  }

  async requestPool(raw: unknown): Promise<Answer> {
    const req = parseRequestPool(raw);
    if (req.space === GLOBAL_SPACE) throw new InvalidArgumentError(`netd serves local-scope networks only: address space ${GLOBAL_SPACE} has no pools`);
    if (req.space !== LOCAL_SPACE) throw new InvalidArgumentError(`unknown address space ${JSON.stringify(req.space.slice(0, 100))}: netd's is ${LOCAL_SPACE}`);
    if (req.pool) {
      const existing = this.state.pools.get(formatPoolId({ subnet: req.pool, subPool: req.subPool }));
      if (existing) {
        existing.refs++;
        try {
          this.state.savePool(existing);
        } catch (err) {
          existing.refs--;
          throw err;
        }
        return poolAnswer(existing);
      }
      const other = [...this.state.pools.values()].find((p) => p.subnet.equals(req.pool));
      if (other) throw new ConflictError(`pool ${req.pool} is already held with ${other.subPool ? `the sub-pool ${other.subPool}` : 'no sub-pool'}`);
    }
    const info = await this.core().held.holdPool({ family: req.v6 ? 6 : 4, subnet: req.pool, ipRange: req.subPool });
    const id: PoolId = { subnet: info.subnet, subPool: req.subPool };
    const entry: PoolEntry = { id: formatPoolId(id), subnet: info.subnet, ...(req.subPool ? { subPool: req.subPool } : {}), refs: 1, fixed: new Map(), addresses: new Map() };
    try {
      this.state.savePool(entry);
    } catch (err) {
      this.state.dropPool(entry);
      await this.core().held.releasePool(info.subnet);
      throw err;
    }
    return poolAnswer(entry);
  }

  /**
   * One reference less. dockerd releases a pool only after DeleteNetwork or a failed CreateNetwork, so at the
   * last reference a Docker network on the subnet without endpoints is one dockerd never heard was made (netd
   * died before answering CreateNetwork; dockerd's retry comes with an empty body): it goes with the pool.
   */
  async releasePool(raw: unknown): Promise<Answer> {
    const { poolId } = parsePoolRef(raw);
    const entry = this.state.pools.get(formatPoolId(poolId));
    if (!entry) return {};
    if (entry.refs > 1) {
      entry.refs--;
      this.state.savePool(entry);
      return {};
    }
    for (const n of this.core().networks().filter((x) => this.orphanOn(x, entry))) {
      try {
        await this.deleteOrphanNetwork(n.id);
        this.log.info({ op: 'docker-plugin', network: n.id, pool: entry.id }, 'network dockerd did not know of removed with its pool');
      } catch (err) {
        this.log.warn({ op: 'docker-plugin', network: n.id, pool: entry.id, error: (err as Error).message }, 'network dockerd did not know of not removed');
      }
    }
    // The last reference: what dockerd did not release itself goes with the pool. The record goes first: the
    // controller's holds are rebuilt from it at start, so a crash in between leaves nothing held.
    const addresses = this.state.addressesOf(entry);
    this.state.dropPool(entry);
    for (const address of addresses) await this.core().held.releaseAddress(entry.subnet, address);
    await this.core().held.releasePool(entry.subnet);
    return {};
  }

  async requestAddress(raw: unknown): Promise<Answer> {
    const req = parseRequestAddress(raw);
    const entry = this.pool(req.poolId);
    if (req.gateway && entry.gateway) throw new ConflictError(`pool ${entry.subnet} already has the gateway ${entry.gateway}`);
    const held = await this.core().held.holdAddress(entry.subnet, req.address, { gateway: req.gateway });
    // Before its network exists, dockerd asks for the gateway and the aux addresses: they last as long as it.
    const kind: HoldKind = req.gateway ? 'gateway' : this.inUse(entry) ? 'endpoint' : 'fixed';
    try {
      this.state.hold(entry, held.address, kind);
    } catch (err) {
      await this.core().held.releaseAddress(entry.subnet, held.address);
      throw err;
    }
    this.log.debug({ op: 'docker-plugin', pool: entry.id, address: held.toString(), gateway: req.gateway }, 'address held');
    return { Address: held.toString(), Data: {} };
  }

  async releaseAddress(raw: unknown): Promise<Answer> {
    const { poolId, address } = parseReleaseAddress(raw);
    const entry = this.state.pools.get(formatPoolId(poolId));
    if (!entry || !this.state.holds(entry, address)) return {};
    // Record first, then the controller's hold (rebuilt from the record at start): a crash between holds nothing.
    this.state.release(entry, address);
    await this.core().held.releaseAddress(entry.subnet, address);
    return {};
  }

  private pool(id: PoolId): PoolEntry {
    const entry = this.state.pools.get(formatPoolId(id));
    if (!entry) throw new NotFoundError(`no pool ${formatPoolId(id)}: request it first (RequestPool)`);
    return entry;
  }

  /** Whether a network uses the pool (looked up until one does; it keeps it until ReleasePool). */
  private inUse(entry: PoolEntry): boolean {
    if (!this.used.has(entry) && this.core().networks().some((n) => usesSubnet(n, entry))) this.used.add(entry);
    return this.used.has(entry);
  }

  /** A Docker network on the pool's subnet with no endpoint. */
  private orphanOn(n: NetworkRecord, entry: PoolEntry): boolean {
    return n.managedBy === MANAGED_BY && usesSubnet(n, entry) && this.core().endpointsOf(n.id).length === 0;
  }
}

function usesSubnet(n: NetworkRecord, entry: PoolEntry): boolean {
  return [...n.ipv4, ...n.ipv6].some((c) => c.subnet.equals(entry.subnet));
}

function poolAnswer(entry: PoolEntry): Answer {
  return { PoolID: entry.id, Pool: entry.subnet.toString(), Data: {} };
}
