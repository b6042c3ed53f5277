/**
 * Pools and addresses held for an outside IPAM client: dockerd asks netd's IPAM plugin for a pool before
 * the network exists and for each address before the endpoint exists (libnetwork's IpamDriver calls). The
 * holds live in IPAM (ipam.ts), so that every network and endpoint netd makes, by whatever front end,
 * avoids them; the client persists what it holds and re-applies it at start (`restore`).
 */
import type { Ipam, PoolInfo } from '../ipam/ipam.js';
import type { Family, IPAddress, InterfaceAddress, Prefix } from '../net/index.js';

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

export class HeldPools {
  constructor(
    private readonly ipam: Ipam,
    /** The host's own subnets, which a pool picked from the defaults avoids. */
    private readonly hostSubnets: () => Promise<Prefix[]>,
  ) {}

  async holdPool(req: HeldPoolRequest): Promise<PoolInfo> {
    const avoid = req.subnet === undefined ? await this.hostSubnets() : [];
    return this.ipam.holdPool({ family: req.family, subnet: req.subnet, ipRange: req.ipRange }, avoid);
  }

  releasePool(subnet: Prefix): void {
    this.ipam.releaseHeldPool(subnet);
  }

  holdAddress(subnet: Prefix, address: IPAddress | undefined, opts: { gateway?: boolean } = {}): InterfaceAddress {
    return this.ipam.hold(subnet, address, opts);
  }

  releaseAddress(subnet: Prefix, address: IPAddress): void {
    this.ipam.unhold(subnet, address);
  }

  addressHeld(subnet: Prefix, address: IPAddress): boolean {
    return this.ipam.isHeld(subnet, address);
  }

  restore(pools: readonly HeldPoolState[]): void {
    for (const p of pools) {
      this.ipam.restoreHeldPool({ family: p.subnet.family, subnet: p.subnet, ipRange: p.ipRange, gateway: p.gateway });
      for (const a of p.addresses) this.ipam.restoreHeld(p.subnet, a);
    }
  }
}
