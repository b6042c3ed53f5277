/**
 * Published ports: what a caller asks for (PortRequest, libnetwork's `com.docker.network.portmap` entry
 * in normalised form) and what netd publishes (PortBinding, one per host address family, with a concrete
 * host port). Only plain data and formatting here; parsing is in parse.ts, allocation in allocator.ts.
 */
import { IPAddress, PROTO_NUMBER, PortRange, type Family, type Proto } from '../net/index.js';

export { PROTOS, PROTO_NUMBER, type Proto } from '../net/index.js';

export type IpFamily = Family;

/**
 * One requested mapping, a range kept whole whatever its length: `8000-8009:80-89` is one request (and
 * one firewall rule). A host range for a single container port (`8000-8010:80`) asks for any one free
 * port of that range (as Docker does); a container range without host ports asks for a contiguous block
 * of free ephemeral ports.
 */
export interface PortRequest {
  proto: Proto;
  containerPort: number;
  /** Last container port of a range; absent (or equal to containerPort) for a single port. */
  containerPortEnd?: number;
  /** Host address; undefined: the network's default binding address, else every family the container has. */
  hostIp?: string;
  /** 0: pick a free port (from hostPortEnd's range if set, else from the ephemeral range). */
  hostPort: number;
  /**
   * Last host port: of a host range to pick one port from (single container port), or of the host range
   * mapped onto a container range (same length); 0 or equal to hostPort for a single port.
   */
  hostPortEnd: number;
}

/**
 * One published port, or range of ports, in one address family, as persisted and reported. A range
 * (hostPortEnd and containerPortEnd present) maps hostPort+i to containerPort+i.
 */
export interface PortBinding {
  proto: Proto;
  /** Canonical host address: '0.0.0.0' or '::' for every address of that family. */
  hostIp: string;
  hostPort: number;
  containerPort: number;
  /** Last host port of a range (absent for a single port). */
  hostPortEnd?: number;
  /** Last container port of a range (absent for a single port). */
  containerPortEnd?: number;
}

/** The container ports a request (or binding) maps. */
export function containerRange(r: Pick<PortRequest, 'containerPort' | 'containerPortEnd'>): PortRange {
  return PortRange.of(r.containerPort, r.containerPortEnd ?? r.containerPort);
}

/** The host ports a binding takes. */
export function hostRange(b: PortBinding): PortRange {
  return PortRange.of(b.hostPort, b.hostPortEnd ?? b.hostPort);
}

/** A binding of `span` ports from hostPort to containerPort (the range fields only for a real range). */
export function makeBinding(proto: Proto, hostIp: string, hostPort: number, containerPort: number, span: number): PortBinding {
  const b: PortBinding = { proto, hostIp, hostPort, containerPort };
  if (span > 1) {
    b.hostPortEnd = hostPort + span - 1;
    b.containerPortEnd = containerPort + span - 1;
  }
  return b;
}

/** The host port that container port `port` of a binding is published on, if the binding holds it. */
export function hostPortFor(b: PortBinding, port: number): number | undefined {
  const last = b.containerPortEnd ?? b.containerPort;
  return port >= b.containerPort && port <= last ? b.hostPort + (port - b.containerPort) : undefined;
}

/** libnetwork's wire shape (`types.PortBinding` in JSON): numeric Proto, container IP in `IP`. */
export interface DockerPortBinding {
  Proto: number;
  IP?: string;
  Port: number;
  HostIP?: string;
  HostPort?: number;
  HostPortEnd?: number;
  /** netd's extension: the last container port of a range (libnetwork expands ranges, netd keeps them whole). */
  PortEnd?: number;
}

/** The text of "every address" per family ('0.0.0.0', '::'). */
export const WILDCARD: Readonly<Record<IpFamily, string>> = { 4: IPAddress.unspecified(4).toString(), 6: IPAddress.unspecified(6).toString() };

/** The family of a canonical address text (hostIp of a request or binding). */
export function familyOf(address: string): IpFamily {
  return IPAddress.parse(address).family;
}

export function isWildcard(address: string): boolean {
  return IPAddress.parse(address).isUnspecified;
}

/** `80/tcp -> 0.0.0.0:8080`, `80/tcp -> [::]:8080` (as `docker port` prints them); `80-89/tcp -> 0.0.0.0:8080-8089`. */
export function formatBinding(b: PortBinding): string {
  return `${containerRange(b)}/${b.proto} -> ${IPAddress.parse(b.hostIp).toUrlHost()}:${hostRange(b)}`;
}

/** The request as libnetwork's wire shape (what the CLI sends in `ports`). */
export function toDockerPortBinding(r: PortRequest): DockerPortBinding {
  return {
    Proto: PROTO_NUMBER[r.proto],
    Port: r.containerPort,
    HostIP: r.hostIp ?? '',
    HostPort: r.hostPort,
    HostPortEnd: r.hostPortEnd,
    ...(containerRange(r).size > 1 ? { PortEnd: r.containerPortEnd } : {}),
  };
}
