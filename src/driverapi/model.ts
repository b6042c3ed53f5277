/**
 * What a driver sees of the model: the fields of networks, endpoints and sandboxes it may read. The
 * core's records (cnm/) extend these; a driver never sees the rest (labels, members, persistence).
 * Addresses are net/ values, parsed once where they enter (the API, or a state file at start); on disk
 * and on the wire they are their canonical text (each value's toJSON).
 */
import type { IPAddress, InterfaceAddress, MAC, Prefix } from '../net/index.js';

/** One subnet of a network, as IPAM handed it out. */
export interface IpamConfig {
  subnet: Prefix;
  gateway: IPAddress;
  ipRange?: Prefix;
}

export interface DriverNetwork {
  id: string;
  name: string;
  internal: boolean;
  ipv4: IpamConfig[];
  ipv6: IpamConfig[];
  /** The network's options (`-o k=v`), for the driver to interpret. */
  options: Record<string, string>;
  /** Whatever the driver returned from createNetwork, handed back on every later call. */
  driverState: Record<string, unknown>;
}

export interface DriverEndpoint {
  id: string;
  /** The container's name on this network. */
  name: string;
  networkId: string;
  /** Interface name inside the sandbox (eth0, eth1, ...); empty for drivers that make no interface. */
  ifname: string;
  /** The interface's MAC: asked for at attach, else the one the driver chose (see JoinResult). */
  mac?: MAC;
  /** The addresses on the interface, with their prefix length (`172.18.0.2/16`). */
  ipv4?: InterfaceAddress;
  ipv6?: InterfaceAddress;
  gateway4?: IPAddress;
  gateway6?: IPAddress;
  /** Whether this endpoint provides the sandbox's default route(s). */
  gatewayEndpoint: boolean;
  /**
   * Endpoint options (libnetwork's generic options, e.g. labels.ts's PORT_MAP): opaque to the core,
   * interpreted by the driver only. Only keys in the driver's `capabilities.endpointOptions` get here.
   */
  options?: Record<string, unknown>;
  /** Whatever the driver returned from join (JoinResult.state), handed back on every later call. */
  driverState: Record<string, unknown>;
  /**
   * Join leaves the sandbox end of the interface in the daemon's own namespace, named `ifname`, with `mac`,
   * down and unaddressed, for the caller to move into the sandbox (Docker's remote driver contract: dockerd
   * moves, renames and addresses it). No ports at join: programExternalConnectivity publishes them.
   */
  handOff?: boolean;
}

export interface DriverSandbox {
  id: string;
  /** Path that opens the namespace: /proc/PID/ns/net or a bind-mounted netns file. */
  key: string;
}
