/** A network: a named broadcast domain with its IPAM configuration, realised by one driver. */
import type { DriverNetwork } from '../driverapi/model.js';

export type { IpamConfig } from '../driverapi/model.js';

/** What is persisted for a network: what its driver sees, and the core's own fields. */
export interface NetworkRecord extends DriverNetwork {
  driver: string;
  created: string;
  attachable: boolean;
  enableIPv6: boolean;
  labels: Record<string, string>;
  /** Networks netd creates itself (the daemon's predefined ones): they cannot be removed. */
  predefined: boolean;
}

export interface NetworkCreateRequest {
  name: string;
  driver?: string;
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  /** Additional IPv6 subnet; setting it (or enableIPv6) gives the network v6. */
  subnet6?: string;
  gateway6?: string;
  enableIPv6?: boolean;
  internal?: boolean;
  attachable?: boolean;
  options?: Record<string, string>;
  labels?: Record<string, string>;
}

export class Network {
  /** Endpoint ids on this network. */
  readonly endpoints = new Set<string>();
  constructor(public record: NetworkRecord) {}
  get id(): string {
    return this.record.id;
  }
  get name(): string {
    return this.record.name;
  }
}
