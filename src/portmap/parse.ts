/**
 * Parsing published-port requests, from the command line's `-p/--publish` syntax
 *   [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|/udp|/sctp]     (IPv6 HOST_IP in brackets)
 * and from the API's `ports` list (libnetwork's `com.docker.network.portmap` shape, or the same strings).
 * Everything is validated here, before anything is allocated or changed in the kernel.
 *
 * Ranges stay whole, whatever their length: `8000-8001:80-81` is one mapping of two ports (one firewall
 * rule); `8000-8010:80` maps 80 to any one free port of 8000-8010 (as Docker); `80-81` (no host port)
 * gets a contiguous block of free ephemeral ports. Ranges of unequal length, or a single host port for a
 * container range, are refused. A request holds at most MAX_PORT_MAPPINGS mappings.
 */
import { InvalidArgumentError } from '../errors.js';
import { IPAddress, MAX_PORT, PortRange, parseProto as parseProtoValue, protoProblem, type Proto } from '../net/index.js';
import type { PortRequest } from './types.js';

/** The most mappings one request may publish (each is one or two firewall rules, whatever its length). */
export const MAX_PORT_MAPPINGS = 1024;

function bad(spec: string, why: string): never {
  throw new InvalidArgumentError(`invalid published port ${JSON.stringify(spec)}: ${why}`);
}

/** `N` or `N-M` (N <= M). */
function parseRange(text: string, spec: string, what: string): PortRange {
  const range = PortRange.tryParse(text, what);
  return typeof range === 'string' ? bad(spec, range) : range;
}

export function parseProto(value: unknown, spec: string): Proto {
  const why = protoProblem(value);
  if (why) bad(spec, why);
  return parseProtoValue(value);
}

/** A host address: IPv4 or IPv6 literal, canonical text. */
function parseHostIp(text: string, spec: string): string {
  try {
    return IPAddress.parse(text, 'host IP').toString();
  } catch {
    return bad(spec, `host IP ${JSON.stringify(text)} is not an IPv4 or IPv6 address`);
  }
}

/** One `-p` argument: one request (a list, as before ranges were kept whole). */
export function parsePublishSpec(spec: string): PortRequest[] {
  if (typeof spec !== 'string' || spec === '') bad(String(spec), 'empty');
  if (/\s/.test(spec)) bad(spec, 'contains whitespace');
  let rest = spec;
  let proto: Proto = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    proto = parseProto(rest.slice(slash + 1), spec);
    rest = rest.slice(0, slash);
  }

  let hostIp: string | undefined;
  let parts: string[];
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0 || rest[close + 1] !== ':') bad(spec, 'an IPv6 host IP is written [ADDRESS]:HOST_PORT:CONTAINER_PORT');
    hostIp = parseHostIp(rest.slice(1, close), spec);
    parts = [rest.slice(1, close), ...rest.slice(close + 2).split(':')];
    if (parts.length !== 3) bad(spec, 'expected [HOST_IP]:HOST_PORT:CONTAINER_PORT');
  } else {
    parts = rest.split(':');
    if (parts.length > 3) bad(spec, 'too many ":" (write an IPv6 host IP in brackets: [::1]:8080:80)');
    if (parts.length === 3) hostIp = parseHostIp(parts[0], spec);
  }

  const containerText = parts[parts.length - 1];
  const hostText = parts.length >= 2 ? parts[parts.length - 2] : '';
  if (containerText === '') bad(spec, 'the container port is missing');
  const container = parseRange(containerText, spec, 'container port');
  const host = hostText === '' ? undefined : parseRange(hostText, spec, 'host port');
  const containerCount = container.size;
  const containerPortEnd = containerCount > 1 ? { containerPortEnd: container.end } : {};
  if (!host) return [{ proto, hostIp, hostPort: 0, hostPortEnd: 0, containerPort: container.start, ...containerPortEnd }];
  if (containerCount > 1 && host.size !== containerCount) {
    bad(spec, `host ports ${hostText} (${host.size}) and container ports ${containerText} (${containerCount}) are ranges of unequal length`);
  }
  // A container range: the host range of the same length. One container port: a single host port, or
  // any one free port of a host range.
  return [{ proto, hostIp, hostPort: host.start, hostPortEnd: host.end, containerPort: container.start, ...containerPortEnd }];
}

/** The fields of a libnetwork portmap entry netd reads (`PortEnd`: netd's own, a container port range). */
export const DOCKER_PORT_FIELDS: ReadonlySet<string> = new Set(['Proto', 'IP', 'Port', 'PortEnd', 'HostIP', 'HostPort', 'HostPortEnd']);

function intField(o: Record<string, unknown>, key: string, spec: string, min: number): number {
  const v = o[key];
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_PORT) bad(spec, `${key} must be an integer from ${min} to ${MAX_PORT}`);
  return v;
}

/** One entry of libnetwork's portmap: `{Proto: 6, Port: 80, HostIP: "", HostPort: 8080, HostPortEnd: 0}`. */
export function parseDockerPortBinding(value: unknown, index: number): PortRequest {
  const spec = `ports[${index}]`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad(spec, 'must be an object or a string');
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!DOCKER_PORT_FIELDS.has(key)) bad(spec, `unknown field ${JSON.stringify(key)}`);
  const proto = o.Proto === undefined || o.Proto === null ? 'tcp' : parseProto(o.Proto, spec);
  const containerPort = intField(o, 'Port', spec, 1);
  if (containerPort === 0) bad(spec, 'Port (the container port) is required');
  // libnetwork encodes "pick a port" as HostPort 0.
  const hostPort = intField(o, 'HostPort', spec, 0);
  let hostPortEnd = intField(o, 'HostPortEnd', spec, 0);
  if (hostPort === 0 && hostPortEnd !== 0) bad(spec, 'HostPortEnd needs a HostPort');
  if (hostPort !== 0 && hostPortEnd === 0) hostPortEnd = hostPort;
  if (hostPortEnd < hostPort) bad(spec, `HostPortEnd ${hostPortEnd} is below HostPort ${hostPort}`);
  const portEnd = intField(o, 'PortEnd', spec, 0) || containerPort;
  if (portEnd < containerPort) bad(spec, `PortEnd ${portEnd} is below Port ${containerPort}`);
  if (portEnd > containerPort && hostPort !== 0 && hostPortEnd - hostPort !== portEnd - containerPort) {
    bad(spec, `host ports ${hostPort}-${hostPortEnd} and container ports ${containerPort}-${portEnd} are ranges of unequal length`);
  }
  const hostIpText = o.HostIP;
  if (hostIpText !== undefined && hostIpText !== null && typeof hostIpText !== 'string') bad(spec, 'HostIP must be a string');
  const hostIp = hostIpText ? parseHostIp(hostIpText, spec) : undefined;
  return { proto, containerPort, ...(portEnd > containerPort ? { containerPortEnd: portEnd } : {}), hostIp, hostPort, hostPortEnd };
}

/**
 * The API's `ports` field: a list of libnetwork portmap entries and/or `-p` strings. Undefined or null
 * is no ports. The same mapping requested twice is refused.
 */
export function parsePortRequests(value: unknown): PortRequest[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidArgumentError('ports must be a list');
  if (value.length > MAX_PORT_MAPPINGS) throw new InvalidArgumentError(`too many published ports: ${value.length} mappings in one request, at most ${MAX_PORT_MAPPINGS} (write a range, 8000-8999:8000-8999, as one)`);
  const out: PortRequest[] = [];
  value.forEach((item, i) => {
    if (typeof item === 'string') out.push(...parsePublishSpec(item));
    else out.push(parseDockerPortBinding(item, i));
  });
  return out;
}
