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
 *
 * Outside IPAM clients (dockerd through netd's IPAM plugin) hold pools before any network uses them and
 * addresses before any endpoint does. A held pool counts as taken for every other network; a network
 * created with `adopt` takes it over. A held address is never handed to an endpoint unless the attach
 * claims it, and stays held after that endpoint goes: an address is free only when no endpoint uses it
 * and nobody holds it. The holder re-applies its holds after a restart.
 */
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { IPAddress, InterfaceAddress, Prefix, bitsOf, type Family } from '../net/index.js';
import { candidateSubnets, type AddressPool } from './default-pools.js';

export interface PoolRequest {
  family: Family;
  subnet?: Prefix;
  ipRange?: Prefix;
  gateway?: IPAddress;
}

export interface PoolInfo {
  /** The subnet; also the pool's id. */
  subnet: Prefix;
  family: Family;
  gateway: IPAddress;
  ipRange?: Prefix;
  prefix: number;
}

/** An address given alone or with its prefix length (as endpoints store it). */
function addressOf(a: IPAddress | InterfaceAddress): IPAddress {
  return a instanceof InterfaceAddress ? a.address : a;
}

class Pool {
  /** Addresses endpoints use. */
  readonly allocated = new Set<bigint>();
  /** Addresses an outside IPAM client holds (see the header). */
  readonly held = new Set<bigint>();
  /** An outside IPAM client holds the pool itself (it may have no network yet). */
  poolHeld = false;
  /** A network uses the pool. */
  inUse = true;
  /**
   * A cluster-wide network's pool (overlay): this host allocates only inside the blocks of the subnet it
   * leased (cluster/blocks.ts); undefined for a host-local network, whose whole range is this host's.
   */
  blocks?: Prefix[];
  private cursor: bigint;
  /** First and last addresses endpoints may get. */
  readonly first: bigint;
  readonly lastUsable: bigint;

  constructor(
    readonly subnet: Prefix,
    readonly range: Prefix,
    public gateway: bigint,
  ) {
    // IPv4: never the network or broadcast address. IPv6: never the subnet-router anycast (base).
    this.first = range.firstValue === subnet.firstValue ? range.firstValue + 1n : range.firstValue;
    const last = range.lastValue === subnet.lastValue && subnet.family === 4 ? range.lastValue - 1n : range.lastValue;
    this.lastUsable = last;
    this.cursor = this.first;
  }

  info(): PoolInfo {
    return {
      subnet: this.subnet,
      family: this.subnet.family,
      gateway: IPAddress.fromBigInt(this.subnet.family, this.gateway),
      ipRange: this.range.equals(this.subnet) ? undefined : this.range,
      prefix: this.subnet.length,
    };
  }

  /** Replaying state: continue after the highest address in use, as an uninterrupted run would. */
  advancePast(value: bigint): void {
    if (value >= this.cursor && value <= this.lastUsable) this.cursor = value + 1n;
  }

  /** Whether some address of the range is neither the gateway nor allocated. */
  hasFree(): boolean {
    if (this.blocks) return this.nextInBlocks() !== undefined;
    const span = this.lastUsable - this.first + 1n;
    if (span <= 0n) return false;
    const inRange = (v: bigint) => v >= this.first && v <= this.lastUsable;
    let taken = inRange(this.gateway) ? 1n : 0n;
    for (const v of this.allocated) if (v !== this.gateway && inRange(v)) taken++;
    for (const v of this.held) if (v !== this.gateway && !this.allocated.has(v) && inRange(v)) taken++;
    return taken < span;
  }

  taken(value: bigint): boolean {
    return this.allocated.has(value) || this.held.has(value);
  }

  /** The next free address; ConflictError when the range is full. */
  takeNext(): bigint {
    const next = this.next();
    if (next === undefined) throw new ConflictError(`no free address left in ${this.range}`);
    return next;
  }

  next(): bigint | undefined {
    if (this.blocks) return this.nextInBlocks();
    const span = this.lastUsable - this.first + 1n;
    if (span <= 0n) return undefined;
    let candidate = this.cursor;
    for (let tried = 0n; tried < span; tried++) {
      if (candidate > this.lastUsable) candidate = this.first;
      if (candidate !== this.gateway && !this.taken(candidate)) {
        this.cursor = candidate + 1n;
        return candidate;
      }
      candidate++;
    }
    return undefined;
  }

  /** The lowest free address of the leased blocks (a block is small: a /26 is 64 addresses). */
  private nextInBlocks(): bigint | undefined {
    for (const block of this.blocks ?? []) {
      for (let v = block.firstValue; v <= block.lastValue; v++) {
        if (v < this.first || v > this.lastUsable || v === this.gateway) continue;
        if (!this.taken(v)) return v;
      }
    }
    return undefined;
  }

  /** Whether `value` lies in a leased block (always, for a host-local pool). */
  inBlocks(value: bigint): boolean {
    return !this.blocks || this.blocks.some((b) => value >= b.firstValue && value <= b.lastValue);
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
  addPool(req: PoolRequest, avoid: readonly Prefix[] = [], opts: { adopt?: boolean } = {}): PoolInfo {
    if (opts.adopt && req.subnet !== undefined) {
      const held = this.pools.get(req.subnet.toString());
      if (held && held.poolHeld && !held.inUse) return this.adopt(held, req);
    }
    return this.createPool(req, avoid).info();
  }

  /** A network takes over a held pool: its gateway as the network asks, the pool's range and holds kept. */
  private adopt(pool: Pool, req: PoolRequest): PoolInfo {
    if (req.ipRange !== undefined && !req.ipRange.equals(pool.range)) {
      throw new ConflictError(`subnet ${pool.subnet} is held with the range ${pool.range}, not ${req.ipRange}`);
    }
    if (req.gateway !== undefined) pool.gateway = this.checkGateway(pool.subnet, req.gateway);
    pool.inUse = true;
    return pool.info();
  }

  private checkGateway(subnet: Prefix, gw: IPAddress): bigint {
    if (!subnet.contains(gw)) throw new InvalidArgumentError(`gateway ${gw} is not inside subnet ${subnet}`);
    if (isNetworkOrBroadcast(subnet, gw)) throw new InvalidArgumentError(`gateway ${gw} is the network or broadcast address of ${subnet}`);
    return gw.toBigInt();
  }

  private createPool(req: PoolRequest, avoid: readonly Prefix[]): Pool {
    let subnet: Prefix;
    if (req.subnet !== undefined) {
      subnet = req.subnet;
      if (subnet.family !== req.family) throw new InvalidArgumentError(`subnet ${req.subnet} is not an IPv${req.family} subnet`);
      const tooSmall = subnet.length > bitsOf(subnet.family) - 2;
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
      range = req.ipRange;
      if (!subnet.containsPrefix(range)) throw new InvalidArgumentError(`ip-range ${req.ipRange} is not inside subnet ${subnet}`);
    }

    const gateway = req.gateway !== undefined ? this.checkGateway(subnet, req.gateway) : subnet.firstValue + 1n;
    const pool = new Pool(subnet, range, gateway);
    this.pools.set(subnet.toString(), pool);
    return pool;
  }

  /**
   * Holds a pool for an outside IPAM client, before (or without) a network: `subnet` exactly, or the first
   * free default subnet as `addPool` picks it. Holding a subnet already held (or a network's) returns it
   * again: the client counts its references. `restore`: re-applying a hold after a restart, where the
   * network that adopted the pool may already be there.
   */
  holdPool(req: PoolRequest, avoid: readonly Prefix[] = []): PoolInfo {
    if (req.subnet !== undefined) {
      const same = this.pools.get(req.subnet.toString());
      if (same) {
        if (req.ipRange !== undefined && !req.ipRange.equals(same.range)) {
          throw new ConflictError(`subnet ${same.subnet} is already in use with another range (${same.range})`);
        }
        if (!same.poolHeld && same.inUse) throw new ConflictError(`subnet ${same.subnet} is the subnet of another network`);
        same.poolHeld = true;
        return same.info();
      }
    }
    const pool = this.createPool(req, avoid);
    pool.poolHeld = true;
    pool.inUse = false;
    return pool.info();
  }

  /** Re-applies a hold after a restart (the adopting network, if any, already replayed). Never refuses an overlap it made itself. */
  restoreHeldPool(req: PoolRequest & { subnet: Prefix }): void {
    const same = this.pools.get(req.subnet.toString());
    if (same) {
      same.poolHeld = true;
      return;
    }
    const pool = this.createPool(req, []);
    pool.poolHeld = true;
    pool.inUse = false;
  }

  /** Drops the hold on a pool; the pool goes when no network uses it. Idempotent. */
  releaseHeldPool(subnet: Prefix): void {
    const pool = this.pools.get(subnet.toString());
    if (!pool) return;
    pool.poolHeld = false;
    if (!pool.inUse) this.pools.delete(subnet.toString());
  }

  /**
   * Holds an address for an outside IPAM client: `preferred`, or the next free one. `gateway`: the address
   * is the pool's gateway (without `preferred`, the pool's gateway as it is; with it, it becomes the
   * gateway while no network uses the pool). Refused when taken (or the gateway, unless asked as such).
   */
  hold(subnet: Prefix, preferred?: IPAddress, opts: { gateway?: boolean } = {}): InterfaceAddress {
    const pool = this.pool(subnet);
    let value: bigint;
    if (opts.gateway) {
      if (preferred !== undefined && preferred.toBigInt() !== pool.gateway) {
        if (pool.inUse) throw new ConflictError(`the gateway of ${pool.subnet} is ${IPAddress.fromBigInt(pool.subnet.family, pool.gateway)}, not ${preferred}`);
        const wanted = this.checkGateway(pool.subnet, preferred);
        if (pool.taken(wanted)) throw new ConflictError(`address ${preferred} is already in use`);
        pool.gateway = wanted;
      }
      value = pool.gateway;
      if (pool.held.has(value)) throw new ConflictError(`the gateway ${IPAddress.fromBigInt(pool.subnet.family, value)} of ${pool.subnet} is already held`);
    } else if (preferred !== undefined) {
      value = this.checkPreferred(pool, preferred);
      if (pool.taken(value)) throw new ConflictError(`address ${preferred} is already in use`);
    } else {
      value = pool.takeNext();
    }
    pool.held.add(value);
    return InterfaceAddress.of(IPAddress.fromBigInt(pool.subnet.family, value), pool.subnet);
  }

  /** Re-applies a held address after a restart (an endpoint may use it already). */
  restoreHeld(subnet: Prefix, address: IPAddress): void {
    const pool = this.pool(subnet);
    const value = address.toBigInt();
    pool.held.add(value);
    pool.advancePast(value);
  }

  /** Drops a hold on an address (an endpoint still using it keeps it). Idempotent. */
  unhold(subnet: Prefix, address: IPAddress | InterfaceAddress): void {
    this.pools.get(subnet.toString())?.held.delete(addressOf(address).toBigInt());
  }

  isHeld(subnet: Prefix, address: IPAddress | InterfaceAddress): boolean {
    return this.pools.get(subnet.toString())?.held.has(addressOf(address).toBigInt()) ?? false;
  }

  private checkPreferred(pool: Pool, preferred: IPAddress): bigint {
    if (!pool.subnet.contains(preferred)) throw new InvalidArgumentError(`address ${preferred} is not inside subnet ${pool.subnet}`);
    if (isNetworkOrBroadcast(pool.subnet, preferred)) {
      throw new InvalidArgumentError(`address ${preferred} is the network or broadcast address of ${pool.subnet}`);
    }
    const want = preferred.toBigInt();
    if (want === pool.gateway) throw new ConflictError(`address ${preferred} is the gateway of ${pool.subnet}`);
    if (!pool.inBlocks(want)) {
      throw new ConflictError(`address ${preferred} is outside the address blocks this host leased on ${pool.subnet} (${pool.blocks!.join(', ') || 'none'}); another host may hand it out`);
    }
    return want;
  }

  /** The first default subnet free of networks and of `avoid`, without reserving it. */
  private freeDefaultSubnet(family: Family, avoid: readonly Prefix[]): Prefix | undefined {
    for (const candidate of candidateSubnets(this.defaultPools)) {
      if (candidate.family !== family) continue;
      if (this.overlapping(candidate)) continue;
      if (avoid.some((a) => a.overlaps(candidate))) continue;
      return candidate;
    }
    return undefined;
  }

  private overlapping(subnet: Prefix): Prefix | undefined {
    for (const pool of this.pools.values()) if (pool.subnet.overlaps(subnet)) return pool.subnet;
    return undefined;
  }

  /** A network no longer uses its pool: it goes, unless an outside client still holds it. */
  removePool(subnet: Prefix): void {
    const pool = this.pools.get(subnet.toString());
    if (pool?.poolHeld) {
      pool.inUse = false;
      pool.allocated.clear();
      return;
    }
    this.pools.delete(subnet.toString());
  }

  private pool(subnet: Prefix): Pool {
    const pool = this.pools.get(subnet.toString());
    if (!pool) throw new NotFoundError(`no address pool ${subnet}`);
    return pool;
  }

  /**
   * Allocates an address in a pool: `preferred` if given (must be inside the subnet, not the gateway, not
   * taken), otherwise the next free one. Returns the address on the subnet (`address/prefix`).
   * `claimHeld`: `preferred` may be an address an outside client holds (the endpoint is that client's).
   */
  allocate(subnet: Prefix, preferred?: IPAddress, opts: { claimHeld?: boolean } = {}): InterfaceAddress {
    const pool = this.pool(subnet);
    let value: bigint;
    if (preferred !== undefined) {
      const want = this.checkPreferred(pool, preferred);
      if (pool.allocated.has(want) || (pool.held.has(want) && !opts.claimHeld)) throw new ConflictError(`address ${preferred} is already in use`);
      value = want;
    } else {
      value = pool.takeNext();
    }
    pool.allocated.add(value);
    return InterfaceAddress.of(IPAddress.fromBigInt(pool.subnet.family, value), pool.subnet);
  }

  /** Marks an address as allocated (replaying persisted state). */
  reserve(subnet: Prefix, address: IPAddress | InterfaceAddress): void {
    const pool = this.pool(subnet);
    const value = addressOf(address).toBigInt();
    pool.allocated.add(value);
    pool.advancePast(value);
  }

  release(subnet: Prefix, address: IPAddress | InterfaceAddress): void {
    this.pools.get(subnet.toString())?.allocated.delete(addressOf(address).toBigInt());
  }

  /** Whether `allocate(subnet)` would find an address now (without taking it). */
  hasFreeAddress(subnet: Prefix): boolean {
    return this.pool(subnet).hasFree();
  }

  /** Whether `addPool` with this subnet would take it now: it overlaps no network's (nor a held pool). */
  subnetFree(subnet: Prefix): boolean {
    return this.overlapping(subnet) === undefined;
  }

  /** Whether `addPool` without a subnet would find one now (without reserving it). */
  hasFreePool(family: Family, avoid: readonly Prefix[] = []): boolean {
    return this.freeDefaultSubnet(family, avoid) !== undefined;
  }

  /**
   * Cluster-wide networks: the blocks of `subnet` this host leased. From then on the pool allocates only
   * inside them (an empty list: nothing until a block is leased).
   */
  setBlocks(subnet: Prefix, blocks: readonly Prefix[]): void {
    const pool = this.pool(subnet);
    for (const b of blocks) if (!subnet.containsPrefix(b)) throw new InvalidArgumentError(`block ${b} is not inside ${subnet}`);
    pool.blocks = [...blocks].sort((a, b) => (a.firstValue < b.firstValue ? -1 : 1));
  }

  /** The leased blocks of a cluster-wide network's pool (undefined: a host-local pool). */
  blocksOf(subnet: Prefix): readonly Prefix[] | undefined {
    return this.pools.get(subnet.toString())?.blocks;
  }

  /** How many allocated addresses lie in `block` (a block with none may go back to the cluster). */
  allocatedIn(subnet: Prefix, block: Prefix): number {
    let n = 0;
    for (const v of this.pool(subnet).allocated) if (v >= block.firstValue && v <= block.lastValue) n++;
    return n;
  }

  allocatedCount(subnet: Prefix): number {
    return this.pool(subnet).allocated.size;
  }
}

/** IPv4's network and broadcast addresses, IPv6's subnet-router anycast address: never a host's. */
function isNetworkOrBroadcast(subnet: Prefix, a: IPAddress): boolean {
  return a.equals(subnet.first) || (subnet.family === 4 && a.equals(subnet.last));
}
