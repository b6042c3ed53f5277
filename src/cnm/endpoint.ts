/** An endpoint: a network's attachment point inside one sandbox (for the bridge driver, a veth pair). */
import type { DriverEndpoint } from '../driverapi/model.js';
import { IPAddress, InterfaceAddress, MAC } from '../net/index.js';
import type { SandboxTarget } from './sandbox.js';

/** What is persisted for an endpoint: what its driver sees, and the core's own fields. */
export interface EndpointRecord extends DriverEndpoint {
  sandboxId: string;
  /** DNS aliases on this network. */
  aliases: string[];
  created: string;
  /** Who made it and why, as the caller labelled it (e.g. `io.netd.origin: cni`); shown, never interpreted. */
  labels?: Record<string, string>;
  /** The program that manages the endpoint (e.g. `docker`): only it detaches it (the dead-container sweep aside). */
  managedBy?: string;
}

/** Extra, observer-specific fields of an attach request (e.g. resolv.conf/hosts paths, links). */
export type AttachExtras = Record<string, unknown>;

/** What an attach/connect asks for. */
export interface AttachRequest {
  target: SandboxTarget;
  network?: string;
  /** Container name; defaults to the first 12 hex of the sandbox id. */
  name?: string;
  ip?: IPAddress;
  ip6?: IPAddress;
  mac?: MAC;
  aliases?: string[];
  /**
   * The interface's name in the sandbox (a kernel interface name); default the first free `ethN`.
   * Refused (409) when the sandbox already has an endpoint with that interface.
   */
  ifname?: string;
  /** Labels kept with the endpoint (persisted, shown in listings). */
  labels?: Record<string, string>;
  /** The default network's name or `default` (use `network`), another predefined network's name, or `container:<name|id|pid>`. */
  mode?: string;
  /**
   * Endpoint options for the network's driver (driverapi/labels.ts, e.g. PORT_MAP for published ports),
   * opaque to the core; refused unless the driver declares their keys.
   */
  options?: Record<string, unknown>;
  /** Fields for observers (see observer.ts), passed through untouched. */
  extras?: AttachExtras;
  /** Use this endpoint id (64 hex; e.g. dockerd's EndpointID) instead of a new one. */
  endpointId?: string;
  /**
   * The driver leaves the sandbox end of the interface in the daemon's own namespace, named `ifname`
   * (required), for the caller to move, rename and address (Docker's remote driver contract). `target`
   * still names the sandbox's namespace. No ports are published at join: see programExternalConnectivity.
   */
  handOff?: boolean;
  /** `ip`/`ip6` may be addresses an outside IPAM client holds (ipam.ts): this endpoint is that client's. */
  claimHeld?: boolean;
  /** The program that manages the endpoint (e.g. `docker`): recorded; only it detaches the endpoint. */
  managedBy?: string;
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
  /** Observer-provided fields (e.g. `dns`) and the driver's operational info (e.g. `ports`). */
  [extra: string]: unknown;
}

/** What `--mode container:<other>` reports: the shared sandbox and its endpoints. */
export interface SharedAttachResult {
  name: string;
  sandboxId: string;
  sharedWith: string;
  endpoints: AttachResult[];
}

/**
 * An endpoint record as read back from its state file (or the journal): the JSON text of its addresses
 * and MAC parsed, once, into values. A malformed file throws and is set aside like an unreadable one.
 */
export function endpointFromStored(raw: EndpointRecord): EndpointRecord {
  const ep: EndpointRecord = { ...raw };
  if (raw.mac !== undefined) ep.mac = MAC.parse(raw.mac);
  if (raw.ipv4 !== undefined) ep.ipv4 = InterfaceAddress.parse(raw.ipv4);
  if (raw.ipv6 !== undefined) ep.ipv6 = InterfaceAddress.parse(raw.ipv6);
  if (raw.gateway4 !== undefined) ep.gateway4 = IPAddress.parse(raw.gateway4, 'gateway');
  if (raw.gateway6 !== undefined) ep.gateway6 = IPAddress.parse(raw.gateway6, 'gateway');
  return ep;
}
