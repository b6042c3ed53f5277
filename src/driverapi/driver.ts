/**
 * The driver contract (libnetwork's driverapi, netavark's NetworkDriver): what a network driver does for
 * the controller. The controller owns the model, IPAM and persistence; a driver turns networks and
 * endpoints into kernel state and back. Drivers receive addresses, they never choose them.
 *
 * The core never asks a driver's name what it can do: it reads `capabilities`. What a driver keeps
 * (driverState), what it is asked per endpoint (options) and what it reports (JoinResult, endpointInfo)
 * are opaque to the core.
 */
import type { MAC } from '../net/index.js';
import type { DriverEndpoint, DriverNetwork, DriverSandbox } from './model.js';

export interface Capabilities {
  /** Endpoints get an interface in the sandbox, hence addresses from IPAM, a MAC, a gateway. */
  readonly interface: boolean;
  /** netd's DNS answers container names on its networks (user-defined ones, as Docker). */
  readonly dnsNames?: boolean;
  /**
   * Endpoints live in the host's own network namespace: only processes there join, and every container
   * is a sandbox of its own.
   */
  readonly hostNamespace?: boolean;
  /** An endpoint on such a network is its sandbox's only one (`none`: no other network at once). */
  readonly exclusive?: boolean;
  /** Only the predefined network of this driver may exist; users cannot create another. */
  readonly singleInstance?: boolean;
  /** Endpoint option keys the driver interprets (labels.ts), e.g. PORT_MAP for publishing ports. */
  readonly endpointOptions?: readonly string[];
  /**
   * join may run while other operations go on (outside the controller's lock): it touches only objects of
   * its own endpoint and container, and keeps its shared state (host ports, the firewall) consistent itself.
   */
  readonly parallelJoin?: boolean;
  /**
   * Its networks span the hosts of a cluster (overlay): one name, id, subnet and VXLAN id everywhere,
   * claimed through the cluster (cnm/global-scope.ts); made on every host; addresses from blocks each host leases.
   */
  readonly globalScope?: boolean;
}

/** What a join reports back. */
export interface JoinResult {
  /** Driver-private state, persisted with the endpoint and handed back on every later call. */
  state: Record<string, unknown>;
  /** The MAC address of the interface made in the sandbox, when the driver chose it. */
  mac?: MAC;
}

export interface Driver {
  readonly type: string;
  readonly capabilities: Capabilities;

  /** Validates options and creates the network. Returns the state to persist in `driverState`. */
  createNetwork(network: DriverNetwork): Promise<Record<string, unknown>>;
  deleteNetwork(network: DriverNetwork): Promise<void>;

  /** Plumbs an endpoint into a sandbox. */
  join(network: DriverNetwork, endpoint: DriverEndpoint, sandbox: DriverSandbox): Promise<JoinResult>;
  /**
   * The quick first half of a detach: the endpoint stops carrying traffic (bridge: its host end down and out
   * of the bridge), in about one kernel request. Its objects stay, as do its addresses and host ports, until
   * `leave` (which the controller calls soon after, off the answer path) removes them. Idempotent.
   */
  cutOff?(network: DriverNetwork, endpoint: DriverEndpoint): Promise<void>;
  /** Undoes join (also after cutOff); tolerates a sandbox that is already gone. */
  leave(network: DriverNetwork, endpoint: DriverEndpoint, sandbox: DriverSandbox | undefined): Promise<void>;

  /**
   * Operational info of a joined endpoint (libnetwork's EndpointOperInfo), e.g. `{ ports: [...] }`: fields
   * the controller adds to what it reports of the endpoint (attach results, listings) without reading them.
   */
  endpointInfo?(network: DriverNetwork, endpoint: DriverEndpoint): Record<string, unknown>;

  /**
   * Compares a joined endpoint's kernel state with its record (CNI's CHECK): the interface in the sandbox
   * (name, MAC), its addresses, its default routes, and the driver's own objects. Returns the differences,
   * each a sentence; none when everything matches.
   */
  check?(network: DriverNetwork, endpoint: DriverEndpoint, sandbox: DriverSandbox): Promise<string[]>;

  /**
   * libnetwork's ProgramExternalConnectivity: publishes the joined endpoint's ports (its options, e.g.
   * PORT_MAP), replacing those it published before. Returns the new driverState.
   */
  programExternalConnectivity?(network: DriverNetwork, endpoint: DriverEndpoint): Promise<Record<string, unknown>>;
  /** Undoes programExternalConnectivity (idempotent). Returns the new driverState. */
  revokeExternalConnectivity?(network: DriverNetwork, endpoint: DriverEndpoint): Promise<Record<string, unknown>>;

  /** Whether an endpoint's kernel objects are all there (checked at start for live containers). */
  endpointHealthy?(network: DriverNetwork, endpoint: DriverEndpoint): Promise<boolean>;

  /**
   * Re-applies the driver's firewall rules for these networks and endpoints, removing stale ones of its own
   * (after someone flushed or reloaded the firewall). Cheap when nothing is missing.
   */
  reloadFirewall?(networks: DriverNetwork[], endpoints: DriverEndpoint[]): Promise<void>;

  /** True when reloadFirewall would change nothing (reads the kernel only). Without it, the check always reloads. */
  firewallIntact?(networks: DriverNetwork[], endpoints: DriverEndpoint[]): Promise<boolean>;

  /** The daemon stops (nothing is pending any more): release what the driver holds, e.g. threads. */
  close?(): Promise<void>;

  /**
   * After a restart: make the kernel match the persisted networks and endpoints again. Records an older
   * version of the driver wrote may be upgraded here, in memory (their options and driverState).
   */
  restore(networks: DriverNetwork[], endpoints: DriverEndpoint[]): Promise<void>;
}
