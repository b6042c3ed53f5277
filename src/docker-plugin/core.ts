/**
 * What the Docker plugin asks of netd's core: the controller's public API, and nothing else (no kernel,
 * firewall or driver). Written as an interface so the protocol can be tested against a stand-in; the
 * daemon passes its Controller.
 */
import type { NetworkCreateRequest, NetworkRecord } from '../cnm/network.js';
import type { AttachRequest, AttachResult, EndpointRecord, SharedAttachResult } from '../cnm/endpoint.js';
import type { PoolInfo } from '../ipam/ipam.js';
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
export interface HeldPool {
  subnet: Prefix;
  ipRange?: Prefix;
  gateway?: IPAddress;
  addresses: IPAddress[];
}

export interface PluginCore {
  network(ref: string): NetworkRecord;
  networks(): NetworkRecord[];
  createNetwork(req: PluginNetworkRequest): Promise<NetworkRecord>;
  deleteNetwork(ref: string, managedBy?: string): Promise<void>;
  attach(req: PluginAttachRequest): Promise<AttachResult | SharedAttachResult>;
  removeEndpoint(id: string, reason?: string, managedBy?: string): Promise<boolean>;
  endpoint(id: string): EndpointRecord | undefined;
  endpointInfo(ep: EndpointRecord): Record<string, unknown>;
  holdPool(req: { family: 4 | 6; subnet?: Prefix; ipRange?: Prefix }): Promise<PoolInfo>;
  releasePool(subnet: Prefix): Promise<void>;
  holdAddress(subnet: Prefix, address?: IPAddress, opts?: { gateway?: boolean }): Promise<InterfaceAddress>;
  releaseAddress(subnet: Prefix, address: IPAddress): Promise<void>;
  addressHeld(subnet: Prefix, address: IPAddress): boolean;
  restoreHolds(pools: HeldPool[]): Promise<void>;
  programExternalConnectivity(endpointId: string, options: Record<string, unknown>): Promise<AttachResult>;
  revokeExternalConnectivity(endpointId: string): Promise<void>;
}
