/**
 * Observers see the model change without being part of it: the embedded DNS server learns names this
 * way, and can add what a container needs to know (its DNS configuration) to an attach result.
 * An observer that fails is logged; it never fails or rolls back the operation it observes.
 */
import type { NetworkRecord } from './network.js';
import type { EndpointRecord } from './endpoint.js';
import type { SandboxRecord } from './sandbox.js';

/** Extra, observer-specific fields of an attach request (e.g. resolv.conf/hosts paths, links). */
export type AttachExtras = Record<string, unknown>;

export interface NetworkObserver {
  /** After a network exists (also for each network restored at start). */
  networkCreated?(network: NetworkRecord): Promise<void> | void;
  /** Before a network's kernel state is removed. */
  networkRemoved?(network: NetworkRecord): Promise<void> | void;
  /** After an endpoint is joined and persisted (also for each endpoint restored at start). */
  endpointJoined?(network: NetworkRecord, endpoint: EndpointRecord, sandbox: SandboxRecord, extras: AttachExtras): Promise<void> | void;
  /** After an endpoint is gone. */
  endpointLeft?(network: NetworkRecord, endpoint: EndpointRecord): Promise<void> | void;
  /** Fields to add to the attach result, e.g. `{ dns: {...} }`. */
  describeEndpoint?(network: NetworkRecord, endpoint: EndpointRecord): Record<string, unknown> | undefined;
}
