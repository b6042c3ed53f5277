/** An endpoint: a network's attachment point inside one sandbox (for the bridge driver, a veth pair). */
import type { PortBinding, PortRequest } from '../portmap/types.js';

export interface EndpointRecord {
  id: string;
  /** The container's name on this network (used by DNS later). */
  name: string;
  networkId: string;
  sandboxId: string;
  /** Interface name inside the sandbox (eth0, eth1, ...); empty for drivers that make no interface. */
  ifname: string;
  mac?: string;
  /** `address/prefix` */
  ipv4?: string;
  ipv6?: string;
  gateway4?: string;
  gateway6?: string;
  /** Whether this endpoint provides the sandbox's default route(s). */
  gatewayEndpoint: boolean;
  aliases: string[];
  /** Ports asked to be published at attach (libnetwork's com.docker.network.portmap), for the driver. */
  portRequests?: PortRequest[];
  /** Ports the driver published: one per host address family, with the host port it chose. */
  ports?: PortBinding[];
  created: string;
  driverState: Record<string, unknown>;
}

/** What an attach/connect reports back to its caller. */
export interface AttachResult {
  network: string;
  networkId: string;
  endpointId: string;
  sandboxId: string;
  name: string;
  interface: string;
  mac?: string;
  ipv4?: string;
  ipv6?: string;
  gateway?: string;
  gateway6?: string;
  /** Published ports, when any were asked for. */
  ports?: PortBinding[];
  /** Observer-provided fields, e.g. `dns`. */
  [extra: string]: unknown;
}

/** What `--mode container:<other>` reports: the shared sandbox and its endpoints. */
export interface SharedAttachResult {
  name: string;
  sandboxId: string;
  sharedWith: string;
  endpoints: AttachResult[];
}
