/**
 * Observers see the model change without being part of it: the embedded DNS server learns names this
 * way, and can add what a container needs to know (its DNS configuration) to an attach result.
 * An observer that fails is logged; it never fails or rolls back the operation it observes.
 */
import type { Capabilities } from '../driverapi/driver.js';
import type { NetworkRecord } from './network.js';
import type { AttachExtras, EndpointRecord } from './endpoint.js';
import type { SandboxRecord } from './sandbox.js';

export type { AttachExtras } from './endpoint.js';

/** A network as observers see it: its record and what its driver provides (they never ask a driver's name). */
export interface ObservedNetwork extends NetworkRecord {
  readonly capabilities: Capabilities;
}

export interface NetworkObserver {
  /** The attach extras this observer reads; an attach with a key no observer reads is refused. */
  readonly extrasKeys?: readonly string[];
  /** Before an attach changes anything: throws (a NetdError) when its extras cannot be honoured. */
  checkAttach?(network: ObservedNetwork, extras: AttachExtras): void;
  /** After a network exists (also for each network restored at start). */
  networkCreated?(network: ObservedNetwork): Promise<void> | void;
  /** Before a network's kernel state is removed. */
  networkRemoved?(network: ObservedNetwork): Promise<void> | void;
  /** After an endpoint is joined and persisted (also for each endpoint restored at start). */
  endpointJoined?(network: ObservedNetwork, endpoint: EndpointRecord, sandbox: SandboxRecord, extras: AttachExtras): Promise<void> | void;
  /**
   * After an endpoint is gone; `reason`: `detach`, `container gone` (the sweep: its namespace died), `recovery`
   * (a detach a crash interrupted, completed at start), or what the caller of removeEndpoint said.
   */
  endpointLeft?(network: ObservedNetwork, endpoint: EndpointRecord, reason: string): Promise<void> | void;
  /** Fields to add to the attach result, e.g. `{ dns: {...} }`. */
  describeEndpoint?(network: ObservedNetwork, endpoint: EndpointRecord): Record<string, unknown> | undefined;
}
