/**
 * Published ports: what a caller asks for (PortRequest, libnetwork's `com.docker.network.portmap` entry
 * in normalised form) and what netd publishes (PortBinding, one per host address family, with a concrete
 * host port). Only plain data and formatting here; parsing is in parse.ts, allocation in allocator.ts.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type Proto = 'tcp' | 'udp' | 'sctp';
export const PROTOS: readonly Proto[] = ['tcp', 'udp', 'sctp'];

/** IP protocol numbers, as libnetwork encodes `Proto` in `com.docker.network.portmap`. */
export const PROTO_NUMBER: Record<Proto, number> = { tcp: 6, udp: 17, sctp: 132 };

export type IpFamily = 4 | 6;

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

export const WILDCARD: Record<IpFamily, string> = { 4: '0.0.0.0', 6: '::' };

export function familyOf(address: string): IpFamily {
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  throw new Error(`not an IP address: ${address}`);
}

export function isWildcard(address: string): boolean {
  return address === WILDCARD[4] || address === WILDCARD[6];
}

/** `80/tcp -> 0.0.0.0:8080`, `80/tcp -> [::]:8080` (as `docker port` prints them). */
export function formatBinding(b: PortBinding): string {
  const host = b.hostIp.includes(':') ? `[${b.hostIp}]` : b.hostIp;
  return `${b.containerPort}/${b.proto} -> ${host}:${b.hostPort}`;
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
