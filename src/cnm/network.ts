/** A network: a named broadcast domain with its IPAM configuration, realised by one driver. */
import type { DriverNetwork, IpamConfig } from '../driverapi/model.js';
import { IPAddress, Prefix } from '../net/index.js';

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
  /** The program that manages the network (e.g. `docker`): only it removes the network. */
  managedBy?: string;
  /** `global`: the network spans the cluster's hosts (an overlay); absent: this host's only. */
  scope?: 'global';
}

export interface NetworkCreateRequest {
  name: string;
  driver?: string;
  subnet?: Prefix;
  gateway?: IPAddress;
  ipRange?: Prefix;
  /** Additional IPv6 subnet; setting it (or enableIPv6) gives the network v6. */
  subnet6?: Prefix;
  gateway6?: IPAddress;
  enableIPv6?: boolean;
  internal?: boolean;
  attachable?: boolean;
  options?: Record<string, string>;
  labels?: Record<string, string>;
  /** Use this id (64 hex; e.g. dockerd's NetworkID) instead of a new one. */
  id?: string;
  /**
   * The subnets may be pools an outside IPAM client holds (ipam.ts): the network takes them over instead
   * of refusing them as taken.
   */
  adoptHeldPool?: boolean;
  /** The program that manages the network (e.g. `docker`): recorded; only it removes the network. */
  managedBy?: string;
  /**
   * A global network another host created, made here from the cluster's record (its id, subnet, gateway
   * and options as claimed): nothing is claimed again.
   */
  adoptedFromCluster?: boolean;
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

/**
 * A network record as read back from its state file (or the journal): the JSON text of its addresses
 * parsed, once, into values. A malformed file throws and is set aside like an unreadable one.
 */
export function networkFromStored(raw: NetworkRecord): NetworkRecord {
  const ipam = (c: IpamConfig): IpamConfig => {
    const config: IpamConfig = { subnet: Prefix.parse(c.subnet, 'subnet'), gateway: IPAddress.parse(c.gateway, 'gateway') };
    if (c.ipRange !== undefined) config.ipRange = Prefix.parse(c.ipRange, 'ip-range');
    return config;
  };
  return { ...raw, ipv4: raw.ipv4.map(ipam), ipv6: raw.ipv6.map(ipam) };
}
