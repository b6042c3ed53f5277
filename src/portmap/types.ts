/**
 * Published ports: what a caller asks for (PortRequest, libnetwork's `com.docker.network.portmap` entry
 * in normalised form) and what netd publishes (PortBinding, one per host address family, with a concrete
 * host port). Only plain data and formatting here; parsing is in parse.ts, allocation in allocator.ts.
 */
import { IPAddress, PROTO_NUMBER, type Family, type Proto } from '../net/index.js';

export { PROTOS, PROTO_NUMBER, type Proto } from '../net/index.js';

export type IpFamily = Family;

/**
 * One requested mapping. Ranges are expanded by the parser, except a host range for a single container
 * port (`8000-8010:80`), which asks for any one free port of that range (as Docker does).
 */
export interface PortRequest {
  proto: Proto;
  containerPort: number;
  /** Host address; undefined: the network's default binding address, else every family the container has. */
  hostIp?: string;
  /** 0: pick a free port (from hostPortEnd's range if set, else from the ephemeral range). */
  hostPort: number;
  /** Last port of a host range to pick from; 0 or equal to hostPort for a single port. */
  hostPortEnd: number;
}

/** One published port in one address family, as persisted and reported. */
export interface PortBinding {
  proto: Proto;
  /** Canonical host address: '0.0.0.0' or '::' for every address of that family. */
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

/** libnetwork's wire shape (`types.PortBinding` in JSON): numeric Proto, container IP in `IP`. */
export interface DockerPortBinding {
  Proto: number;
  IP?: string;
  Port: number;
  HostIP?: string;
  HostPort?: number;
  HostPortEnd?: number;
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

/** `80/tcp -> 0.0.0.0:8080`, `80/tcp -> [::]:8080` (as `docker port` prints them). */
export function formatBinding(b: PortBinding): string {
  return `${b.containerPort}/${b.proto} -> ${IPAddress.parse(b.hostIp).toUrlHost()}:${b.hostPort}`;
}

/** The request as libnetwork's wire shape (what the CLI sends in `ports`). */
export function toDockerPortBinding(r: PortRequest): DockerPortBinding {
  return {
    Proto: PROTO_NUMBER[r.proto],
    Port: r.containerPort,
    HostIP: r.hostIp ?? '',
    HostPort: r.hostPort,
    HostPortEnd: r.hostPortEnd,
  };
}
