/**
 * What the Docker plugin asks of netd's core: the controller's public API, and nothing else (no kernel,
 * firewall or driver). Written as an interface so the protocol can be tested against a stand-in; the
 * daemon passes its Controller.
 */
import type { NetworkCreateRequest, NetworkRecord } from '../cnm/network.js';
import type { AttachRequest, AttachResult, EndpointRecord, SharedAttachResult } from '../cnm/endpoint.js';
import type { PoolInfo } from '../ipam/ipam.js';
import type { HeldPoolRequest, HeldPoolState } from '../cnm/held-pools.js';
import type { IPAddress, InterfaceAddress, Prefix } from '../net/index.js';

/** Who made the networks and endpoints this plugin creates: only this plugin may remove them. */
export const MANAGED_BY = 'docker';
/** The label every object made through the plugin carries, and the sandbox label of its endpoints. */
export const ORIGIN_LABEL = 'io.netd.origin';
export const DOCKER_ORIGIN = 'docker';
export const SANDBOX_LABEL = 'io.netd.docker.sandbox';

export type PluginNetworkRequest = NetworkCreateRequest & { id: string; adoptHeldPool: boolean; managedBy: string };
export type PluginAttachRequest = AttachRequest & { endpointId: string; handOff: boolean; claimHeld: boolean; managedBy: string };

/** A pool's holds as the plugin persisted them, re-applied at start. */
export type HeldPool = HeldPoolState;

/** The controller's holds for an outside IPAM client (cnm/held-pools.ts), as the plugin uses them. */
export interface PluginHolds {
  holdPool(req: HeldPoolRequest): Promise<PoolInfo>;
  releasePool(subnet: Prefix): Promise<void>;
  holdAddress(subnet: Prefix, address?: IPAddress, opts?: { gateway?: boolean }): Promise<InterfaceAddress>;
  releaseAddress(subnet: Prefix, address: IPAddress): Promise<void>;
  addressHeld(subnet: Prefix, address: IPAddress): boolean;
  /** Re-applies persisted holds; returns a sentence per pool that could not be held again (never throws for it). */
  restore(pools: readonly HeldPool[]): Promise<string[]>;
}

export interface PluginCore {
  network(ref: string): NetworkRecord;
  networks(): NetworkRecord[];
  createNetwork(req: PluginNetworkRequest): Promise<NetworkRecord>;
  deleteNetwork(ref: string, managedBy?: string): Promise<void>;
  attach(req: PluginAttachRequest): Promise<AttachResult | SharedAttachResult>;
  removeEndpoint(id: string, reason?: string, managedBy?: string): Promise<boolean>;
  /** Resolves once a removed endpoint's deferred teardown is done (its address and ports free again). */
  endpointGone(id: string): Promise<void>;
  endpoint(id: string): EndpointRecord | undefined;
  /** The endpoints on a network (none for an unknown one). */
  endpointsOf(networkId: string): EndpointRecord[];
  endpointInfo(ep: EndpointRecord): Record<string, unknown>;
  readonly held: PluginHolds;
  programExternalConnectivity(endpointId: string, options: Record<string, unknown>, managedBy?: string): Promise<AttachResult>;
  revokeExternalConnectivity(endpointId: string, managedBy?: string): Promise<void>;
}
