/**
 * libnetwork's IpamDriver calls on netd's IPAM, so that `docker network create --ipam-driver netd` picks
 * from netd's pools and avoids every network netd has (CLI, CNI and Docker alike). A pool dockerd asks for
 * is held in the controller (`holdPool`) until its network takes it (CreateNetwork with adoptHeldPool);
 * identical requests share one PoolID and count references, as libnetwork's own IPAM does; the addresses
 * dockerd asks for (the gateway, `--ip`, `--aux-address`) are held (`holdAddress`) and claimed by the
 * endpoint at Join. Everything is persisted (state.ts) before it is answered and re-applied at start.
 */
import { ConflictError, InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log.js';
import type { IPAddress } from '../net/index.js';
import type { PluginCore } from './core.js';
import { formatPoolId, type PoolId } from './pool-id.js';
import type { PluginState, PoolEntry } from './state.js';
import { parsePoolRef, parseReleaseAddress, parseRequestAddress, parseRequestPool } from './requests.js';

export const LOCAL_SPACE = 'netd';
export const GLOBAL_SPACE = 'netd-global';

export type Answer = Record<string, unknown>;

export class IpamDriver {
  constructor(
    private readonly core: () => PluginCore,
    private readonly state: PluginState,
    private readonly log: Logger,
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
        this.state.saveIpam();
        return poolAnswer(existing);
      }
      const other = [...this.state.pools.values()].find((p) => p.subnet.equals(req.pool));
      if (other) throw new ConflictError(`pool ${req.pool} is already held with ${other.subPool ? `the sub-pool ${other.subPool}` : 'no sub-pool'}`);
    }
    const info = await this.core().held.holdPool({ family: req.v6 ? 6 : 4, subnet: req.pool, ipRange: req.subPool });
    const id: PoolId = { subnet: info.subnet, subPool: req.subPool };
    const entry: PoolEntry = { id: formatPoolId(id), subnet: info.subnet, ...(req.subPool ? { subPool: req.subPool } : {}), refs: 1, addresses: [] };
    this.state.pools.set(entry.id, entry);
    try {
      this.state.saveIpam();
    } catch (err) {
      this.state.pools.delete(entry.id);
      await this.core().held.releasePool(info.subnet);
      throw err;
    }
    return poolAnswer(entry);
  }

  async releasePool(raw: unknown): Promise<Answer> {
    const { poolId } = parsePoolRef(raw);
    const entry = this.state.pools.get(formatPoolId(poolId));
    if (!entry) return {};
    if (entry.refs > 1) {
      entry.refs--;
      this.state.saveIpam();
      return {};
    }
    // The last reference: what dockerd did not release itself goes with the pool.
    for (const address of [...entry.addresses, ...(entry.gateway ? [entry.gateway] : [])]) await this.core().held.releaseAddress(entry.subnet, address);
    await this.core().held.releasePool(entry.subnet);
    this.state.pools.delete(entry.id);
    this.state.saveIpam();
    return {};
  }

  async requestAddress(raw: unknown): Promise<Answer> {
    const req = parseRequestAddress(raw);
    const entry = this.pool(req.poolId);
    if (req.gateway && entry.gateway) throw new ConflictError(`pool ${entry.subnet} already has the gateway ${entry.gateway}`);
    const held = await this.core().held.holdAddress(entry.subnet, req.address, { gateway: req.gateway });
    if (req.gateway) entry.gateway = held.address;
    else entry.addresses.push(held.address);
    try {
      this.state.saveIpam();
    } catch (err) {
      this.forget(entry, held.address);
      await this.core().held.releaseAddress(entry.subnet, held.address);
      throw err;
    }
    this.log.debug({ op: 'docker-plugin', pool: entry.id, address: held.toString(), gateway: req.gateway }, 'address held');
    return { Address: held.toString(), Data: {} };
  }

  async releaseAddress(raw: unknown): Promise<Answer> {
    const { poolId, address } = parseReleaseAddress(raw);
    const entry = this.state.pools.get(formatPoolId(poolId));
    if (!entry || !(entry.gateway?.equals(address) || entry.addresses.some((a) => a.equals(address)))) return {};
    await this.core().held.releaseAddress(entry.subnet, address);
    this.forget(entry, address);
    this.state.saveIpam();
    return {};
  }

  private pool(id: PoolId): PoolEntry {
    const entry = this.state.pools.get(formatPoolId(id));
    if (!entry) throw new InvalidArgumentError(`no pool ${formatPoolId(id)}: request it first (RequestPool)`);
    return entry;
  }

  /** Drops an address from the entry's record; false when it was not there. */
  private forget(entry: PoolEntry, address: IPAddress): boolean {
    if (entry.gateway?.equals(address)) {
      delete entry.gateway;
      return true;
    }
    const i = entry.addresses.findIndex((x) => x.equals(address));
    if (i < 0) return false;
    entry.addresses.splice(i, 1);
    return true;
  }
}

function poolAnswer(entry: PoolEntry): Answer {
  return { PoolID: entry.id, Pool: entry.subnet.toString(), Data: {} };
}
