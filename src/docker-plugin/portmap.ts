/**
 * Published ports between libnetwork's wire shape and netd's. dockerd sends the ports to publish as
 * `com.docker.network.portmap` (`[{Proto: 6|17|132, IP, Port, HostIP, HostPort, HostPortEnd}]`, one entry
 * per container port) in the endpoint options; netd publishes them as PortRequests and reports its
 * PortBindings (concrete host ports) back in the same shape through EndpointOperInfo.
 * `com.docker.network.endpoint.exposedports` needs nothing: netd runs no proxy and filters nothing unpublished.
 */
import { InvalidArgumentError } from '../errors.js';
import { PROTO_NUMBER } from '../net/index.js';
import { PORT_MAP } from '../driverapi/labels.js';
import { DOCKER_PORT_FIELDS, MAX_PORT_MAPPINGS, parseDockerPortBinding } from '../portmap/parse.js';
import type { DockerPortBinding, PortBinding, PortRequest } from '../portmap/types.js';

export { PORT_MAP } from '../driverapi/labels.js';
export const EXPOSED_PORTS = 'com.docker.network.endpoint.exposedports';
export const MAC_ADDRESS = 'com.docker.network.endpoint.macaddress';
/** A range reported longer than this is one entry (with netd's PortEnd), not one entry per port. */
const MAX_EXPANDED = 256;

/** The port map of an endpoint's options, as PortRequests (an empty list when there is none). */
export function portRequestsOf(options: Record<string, unknown>): PortRequest[] {
  const exposed = options[EXPOSED_PORTS];
  if (exposed !== undefined && exposed !== null && !Array.isArray(exposed)) throw new InvalidArgumentError(`${EXPOSED_PORTS} must be a list`);
  const value = options[PORT_MAP];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidArgumentError(`${PORT_MAP} must be a list`);
  if (value.length > MAX_PORT_MAPPINGS) throw new InvalidArgumentError(`${PORT_MAP}: at most ${MAX_PORT_MAPPINGS} entries, not ${value.length}`);
  return value.map((entry, i) => parseDockerPortBinding(knownFields(entry), i));
}

/**
 * An entry with only the fields netd reads: dockerd's later versions may add some, which must not fail
 * every `-p` (netd's own API refuses unknown fields: a typo there is the user's).
 */
function knownFields(entry: unknown): unknown {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return entry;
  return Object.fromEntries(Object.entries(entry).filter(([key]) => DOCKER_PORT_FIELDS.has(key)));
}

/**
 * netd's bindings in libnetwork's shape, with `containerIp` as `IP`. A range is one entry per port (as
 * libnetwork reports it), or, beyond MAX_EXPANDED ports, one entry with netd's `PortEnd`.
 */
export function dockerBindingsOf(bindings: PortBinding[], containerIp: string): DockerPortBinding[] {
  const out: DockerPortBinding[] = [];
  for (const b of bindings) {
    const span = (b.containerPortEnd ?? b.containerPort) - b.containerPort + 1;
    const one = (hostPort: number, port: number, portEnd?: number): DockerPortBinding => ({
      Proto: PROTO_NUMBER[b.proto],
      IP: containerIp,
      Port: port,
      HostIP: b.hostIp,
      HostPort: hostPort,
      HostPortEnd: portEnd === undefined ? hostPort : hostPort + (portEnd - port),
      ...(portEnd === undefined ? {} : { PortEnd: portEnd }),
    });
    if (span > MAX_EXPANDED) out.push(one(b.hostPort, b.containerPort, b.containerPortEnd));
    else for (let i = 0; i < span; i++) out.push(one(b.hostPort + i, b.containerPort + i));
  }
  return out;
}
