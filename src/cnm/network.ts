/** A network: a named broadcast domain with its IPAM configuration, realised by one driver. */

export interface IpamConfig {
  subnet: string;
  gateway: string;
  ipRange?: string;
}

/** What is persisted for a network. */
export interface NetworkRecord {
  id: string;
  name: string;
  driver: string;
  created: string;
  internal: boolean;
  attachable: boolean;
  enableIPv6: boolean;
  ipv4: IpamConfig[];
  ipv6: IpamConfig[];
  options: Record<string, string>;
  labels: Record<string, string>;
  /** Networks netd creates itself (bridge, host, none): they cannot be removed. */
  predefined: boolean;
  /** Whatever the driver needs to remember (e.g. the bridge's name). */
  driverState: Record<string, unknown>;
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
