/**
 * The driver contract: what a network driver does for the controller. The controller owns the model,
 * IPAM and persistence; a driver turns networks and endpoints into kernel state and back. Drivers receive
 * addresses, they never choose them.
 */
import type { NetworkRecord } from '../cnm/network.js';
import type { EndpointRecord } from '../cnm/endpoint.js';
import type { SandboxRecord } from '../cnm/sandbox.js';

export interface Driver {
  readonly type: string;
  /** Whether endpoints of this driver get an interface (and so an address) inside the sandbox. */
  readonly providesInterface: boolean;

  /** Validates options and creates the network. Returns the state to persist in `driverState`. */
  createNetwork(network: NetworkRecord): Promise<Record<string, unknown>>;
  deleteNetwork(network: NetworkRecord): Promise<void>;

  /** Plumbs an endpoint into a sandbox. Returns the state to persist in the endpoint's `driverState`. */
  join(network: NetworkRecord, endpoint: EndpointRecord, sandbox: SandboxRecord): Promise<Record<string, unknown>>;
  /** Undoes join; tolerates a sandbox that is already gone. */
  leave(network: NetworkRecord, endpoint: EndpointRecord, sandbox: SandboxRecord | undefined): Promise<void>;

  /** Whether an endpoint's kernel objects are all there (checked at start for live containers). */
  endpointHealthy?(network: NetworkRecord, endpoint: EndpointRecord): Promise<boolean>;

  /**
   * Re-applies the driver's firewall rules for these networks and endpoints, removing stale ones of its own
   * (after someone flushed or reloaded the firewall). Cheap when nothing is missing.
   */
  reloadFirewall?(networks: NetworkRecord[], endpoints: EndpointRecord[]): Promise<void>;

  /** After a restart: make the kernel match the persisted networks and endpoints again. */
  restore(networks: NetworkRecord[], endpoints: EndpointRecord[]): Promise<void>;
}
