/**
 * IPAM: address pools of networks and the addresses allocated in them. The controller asks it for a
 * network's subnet and gateway and for each endpoint's address; drivers only receive addresses.
 *
 * Allocation is sequential with a moving cursor (as Docker's allocator behaves): an address released is
 * not handed out again until the range wraps, and the cost of an allocation does not grow with the
 * number of addresses already allocated, except in a nearly full range.
 *
 * IPAM holds no state of its own on disk: after a restart the controller replays the persisted networks
 * and endpoints into it (`addPool` with the stored subnet, `reserve` for each endpoint address).
 */
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { candidateSubnets, type AddressPool } from './default-pools.js';
import { formatAddress, parseAddress, Subnet, type Family } from './ip.js';

export interface PoolRequest {
  family: Family;
  subnet?: string;
  ipRange?: string;
  gateway?: string;
}

export interface PoolInfo {
  /** The subnet in canonical form; also the pool's id. */
  subnet: string;
  family: Family;
  gateway: string;
  ipRange?: string;
  prefix: number;
}

class Pool {
  readonly allocated = new Set<bigint>();
  private cursor: bigint;
  /** First and last addresses endpoints may get. */
  readonly first: bigint;
  readonly lastUsable: bigint;

  constructor(
    readonly subnet: Subnet,
    readonly range: Subnet,
    readonly gateway: bigint,
  ) {
    // IPv4: never the network or broadcast address. IPv6: never the subnet-router anycast (base).
    this.first = range.base === subnet.base ? range.base + 1n : range.base;
    const last = range.last === subnet.last && subnet.family === 4 ? range.last - 1n : range.last;
    this.lastUsable = last;
    this.cursor = this.first;
  }

  info(): PoolInfo {
    return {
      subnet: this.subnet.toString(),
      family: this.subnet.family,
      gateway: formatAddress(this.subnet.family, this.gateway),
      ipRange: this.range.equals(this.subnet) ? undefined : this.range.toString(),
      prefix: this.subnet.prefix,
    };
  }

  /** Replaying state: continue after the highest address in use, as an uninterrupted run would. */
  advancePast(value: bigint): void {
    if (value >= this.cursor && value <= this.lastUsable) this.cursor = value + 1n;
  }

  next(): bigint | undefined {
    const span = this.lastUsable - this.first + 1n;
    if (span <= 0n) return undefined;
    let candidate = this.cursor;
    for (let tried = 0n; tried < span; tried++) {
      if (candidate > this.lastUsable) candidate = this.first;
      if (candidate !== this.gateway && !this.allocated.has(candidate)) {
        this.cursor = candidate + 1n;
        return candidate;
      }
      candidate++;
    }
    return undefined;
  }
}

export class Ipam {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly defaultPools: readonly AddressPool[]) {}

  /**
   * Reserves a pool for a network. With `subnet`, that subnet (refused if it overlaps another network's);
   * without, the first default-pool subnet that overlaps neither another network nor anything in `avoid`
   * (the host's own addresses, routes and nameservers).
   */
  addPool(req: PoolRequest, avoid: readonly Subnet[] = []): PoolInfo {
    let subnet: Subnet;
    if (req.subnet !== undefined) {
      subnet = Subnet.parse(req.subnet);
      if (subnet.family !== req.family) throw new InvalidArgumentError(`subnet ${req.subnet} is not an IPv${req.family} subnet`);
      const tooSmall = subnet.family === 4 ? subnet.prefix > 30 : subnet.prefix > 126;
      if (tooSmall) throw new InvalidArgumentError(`subnet ${req.subnet} is too small: it leaves no address for containers`);
      const clash = this.overlapping(subnet);
      if (clash) throw new ConflictError(`subnet ${subnet} overlaps with the subnet ${clash} of another network`);
    } else {
      if (req.ipRange !== undefined || req.gateway !== undefined) {
        throw new InvalidArgumentError('--ip-range and --gateway need --subnet');
      }
      const found = this.freeDefaultSubnet(req.family, avoid);
      if (!found) throw new ConflictError(`all predefined address pools have been fully subnetted (IPv${req.family})`);
      subnet = found;
    }

    let range = subnet;
    if (req.ipRange !== undefined) {
      range = Subnet.parse(req.ipRange, 'ip-range');
      if (!subnet.containsSubnet(range)) throw new InvalidArgumentError(`ip-range ${req.ipRange} is not inside subnet ${subnet}`);
    }

    let gateway: bigint;
    if (req.gateway !== undefined) {
      const gw = parseAddress(req.gateway, 'gateway');
      if (gw.family !== subnet.family || !subnet.contains(gw.value)) {
        throw new InvalidArgumentError(`gateway ${req.gateway} is not inside subnet ${subnet}`);
      }
      if (gw.value === subnet.base || (subnet.family === 4 && gw.value === subnet.last)) {
        throw new InvalidArgumentError(`gateway ${req.gateway} is the network or broadcast address of ${subnet}`);
      }
      gateway = gw.value;
    } else {
      gateway = subnet.base + 1n;
    }

    const pool = new Pool(subnet, range, gateway);
    this.pools.set(subnet.toString(), pool);
    return pool.info();
  }

  /** The first default subnet free of networks and of `avoid`, without reserving it. */
  private freeDefaultSubnet(family: Family, avoid: readonly Subnet[]): Subnet | undefined {
    for (const candidate of candidateSubnets(this.defaultPools)) {
      if (candidate.family !== family) continue;
      if (this.overlapping(candidate)) continue;
      if (avoid.some((a) => a.overlaps(candidate))) continue;
      return candidate;
    }
    return undefined;
  }

  private overlapping(subnet: Subnet): Subnet | undefined {
    for (const pool of this.pools.values()) if (pool.subnet.overlaps(subnet)) return pool.subnet;
    return undefined;
  }

  removePool(subnet: string): void {
    this.pools.delete(Subnet.parse(subnet).toString());
  }

  private pool(subnet: string): Pool {
    const pool = this.pools.get(Subnet.parse(subnet).toString());
    if (!pool) throw new NotFoundError(`no address pool ${subnet}`);
    return pool;
  }

  /**
   * Allocates an address in a pool: `preferred` if given (must be inside the subnet, not the gateway, not
   * taken), otherwise the next free one. Returns `address/prefix`.
   */
  allocate(subnet: string, preferred?: string): string {
    const pool = this.pool(subnet);
    let value: bigint;
    if (preferred !== undefined) {
      const want = parseAddress(preferred, 'IP address');
      if (want.family !== pool.subnet.family || !pool.subnet.contains(want.value)) {
        throw new InvalidArgumentError(`address ${preferred} is not inside subnet ${pool.subnet}`);
      }
      if (want.value === pool.subnet.base || (pool.subnet.family === 4 && want.value === pool.subnet.last)) {
        throw new InvalidArgumentError(`address ${preferred} is the network or broadcast address of ${pool.subnet}`);
      }
      if (want.value === pool.gateway) throw new ConflictError(`address ${preferred} is the gateway of ${pool.subnet}`);
      if (pool.allocated.has(want.value)) throw new ConflictError(`address ${preferred} is already in use`);
      value = want.value;
    } else {
      const next = pool.next();
      if (next === undefined) throw new ConflictError(`no free address left in ${pool.range}`);
      value = next;
    }
    pool.allocated.add(value);
    return pool.subnet.cidrOf(value);
  }

  /** Marks an address as allocated (replaying persisted state). Accepts `address` or `address/prefix`. */
  reserve(subnet: string, address: string): void {
    const pool = this.pool(subnet);
    const { value } = parseAddress(address.split('/')[0], 'address');
    pool.allocated.add(value);
    pool.advancePast(value);
  }

  release(subnet: string, address: string): void {
    const pool = this.pools.get(Subnet.parse(subnet).toString());
    if (!pool) return;
    pool.allocated.delete(parseAddress(address.split('/')[0], 'address').value);
  }

  allocatedCount(subnet: string): number {
    return this.pool(subnet).allocated.size;
  }
}
