/**
 * Pools and addresses held for an outside IPAM client: dockerd asks netd's IPAM plugin for a pool before
 * the network exists and for each address before the endpoint exists (libnetwork's IpamDriver calls). The
 * holds live in IPAM (ipam.ts), so that every network and endpoint netd makes, by whatever front end,
 * avoids them; the client persists what it holds and re-applies it at start (`restore`).
 *
 * The controller offers this as `controller.held`: each call runs under the controller's lock and logs one
 * event, like every other operation. An address asked for that a detach's pending teardown still holds
 * (teardown-queue.ts) is held once that teardown is done, as an attach asking for it would be.
 */
import type { Ipam, PoolInfo } from '../ipam/ipam.js';
import type { Family, IPAddress, InterfaceAddress, Prefix } from '../net/index.js';
import type { TeardownQueue } from './teardown-queue.js';

export interface HeldPoolRequest {
  family: Family;
  subnet?: Prefix;
  ipRange?: Prefix;
}

/** What a client persisted of one pool, to re-apply at start. */
export interface HeldPoolState {
  subnet: Prefix;
  ipRange?: Prefix;
  gateway?: IPAddress;
  addresses: IPAddress[];
}

/** Runs an operation under the controller's lock, logging it (controller.ts). */
export type Exclusive = <T>(op: string, fields: Record<string, unknown>, fn: () => Promise<T>) => Promise<T>;

export class HeldPools {
  constructor(
    private readonly ipam: Ipam,
    /** The host's own subnets, which a pool picked from the defaults avoids. */
    private readonly hostSubnets: () => Promise<Prefix[]>,
    private readonly exclusive: Exclusive,
    /** Detaches' pending teardowns, which an address asked for waits for. */
    private readonly teardowns?: Pick<TeardownQueue, 'settle'>,
  ) {}

  /** Holds `subnet` exactly, or the first free default one; the same subnet again returns it (the client counts). */
  holdPool(req: HeldPoolRequest): Promise<PoolInfo> {
    return this.exclusive('hold-pool', { subnet: req.subnet?.toString(), family: req.family }, async () => {
      const avoid = req.subnet === undefined ? await this.hostSubnets() : [];
      return this.ipam.holdPool({ family: req.family, subnet: req.subnet, ipRange: req.ipRange }, avoid);
    });
  }

  /** Drops the hold; the pool goes unless a network uses it. Idempotent. */
  releasePool(subnet: Prefix): Promise<void> {
    return this.exclusive('release-pool', { subnet: subnet.toString() }, async () => this.ipam.releaseHeldPool(subnet));
  }

  /** Holds `address` (or the next free one; `gateway`: the pool's gateway) in a network's or a held pool. */
  async holdAddress(subnet: Prefix, address?: IPAddress, opts: { gateway?: boolean } = {}): Promise<InterfaceAddress> {
    // Waited for outside the lock: the teardown releases the address without it. IPAM's subnets do not
    // overlap, so the address alone says which teardown holds it.
    if (address !== undefined) await this.teardowns?.settle((t) => subnet.contains(address) && t.addresses.includes(address.toString()));
    return this.exclusive('hold-address', { subnet: subnet.toString(), address: address?.toString() }, async () => this.ipam.hold(subnet, address, opts));
  }

  /** Drops a hold (an endpoint still using the address keeps it). Idempotent. */
  releaseAddress(subnet: Prefix, address: IPAddress): Promise<void> {
    return this.exclusive('release-address', { subnet: subnet.toString(), address: address.toString() }, async () => this.ipam.unhold(subnet, address));
  }

  addressHeld(subnet: Prefix, address: IPAddress): boolean {
    return this.ipam.isHeld(subnet, address);
  }

  /**
   * At start, after the controller's: re-applies what the client persisted. A pool that cannot be held again
   * (a network made meanwhile overlaps it) is skipped, never fatal: returns one sentence per pool skipped.
   */
  restore(pools: readonly HeldPoolState[]): Promise<string[]> {
    return this.exclusive('restore-holds', { pools: pools.length }, async () => {
      const problems: string[] = [];
      for (const p of pools) {
        try {
          this.ipam.restoreHeldPool({ family: p.subnet.family, subnet: p.subnet, ipRange: p.ipRange, gateway: p.gateway });
          for (const a of [...p.addresses, ...(p.gateway ? [p.gateway] : [])]) this.ipam.restoreHeld(p.subnet, a);
        } catch (err) {
          problems.push(`pool ${p.subnet} not held again: ${(err as Error).message}`);
        }
      }
      return problems;
    });
  }
}
