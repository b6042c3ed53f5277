/**
 * Networks that span several hosts (the overlay driver's, `scope: global`): what the controller asks of
 * the cluster that coordinates them, without knowing how (cluster/cluster.ts keeps them in etcd). The
 * controller stays the owner of everything on this host: the records, IPAM, the kernel through drivers.
 *
 * - A global network's name, id and cluster-wide parameters (its VXLAN id) are claimed before it is made
 *   here; every other host then makes it too (Controller.adoptNetwork), from the cluster's record.
 * - Its addresses come from blocks this host leased from the cluster: an attach waits on the cluster only
 *   when this host has no free address left in its blocks.
 * - It is removed everywhere, and only when no host has endpoints on it.
 */
import type { IPAddress, Prefix } from '../net/index.js';
import type { NetworkCreateRequest, NetworkRecord } from './network.js';

/** What a claim adds to the network: its id and the driver options every host needs (e.g. the VXLAN id). */
export interface NetworkClaim {
  id: string;
  options: Record<string, string>;
  /** The gateway every host's part of the network has. */
  gateway: IPAddress;
}

export interface GlobalScope {
  /** Claims a new global network's name and parameters in the cluster; ConflictError when another host has it. */
  claimNetwork(req: NetworkCreateRequest & { subnet: Prefix }): Promise<NetworkClaim>;
  /** Undoes claimNetwork (the network could not be made here). */
  unclaimNetwork(claim: NetworkClaim, name: string): Promise<void>;
  /**
   * Before this host removes a global network users asked to remove: no other host may have endpoints on it
   * (ForbiddenError naming them); the network is marked as going, so no host attaches to it meanwhile.
   * Returns the commit: called after the local removal, it removes the network from the cluster.
   */
  releaseNetwork(network: NetworkRecord): Promise<{ commit(): Promise<void>; abort(): Promise<void> }>;
  /**
   * Before an address is allocated on a global network: makes sure this host holds a block of `subnet`
   * with a free address (a cluster round trip only when it has none). Throws when it cannot get one.
   */
  ensureAddress(network: NetworkRecord, subnet: Prefix): Promise<void>;
}
