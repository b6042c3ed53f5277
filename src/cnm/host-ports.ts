/**
 * Host ports as the controller sees them, without knowing how a driver publishes them: the ports an
 * endpoint holds (what its driver reports as `ports`, libnetwork's EndpointOperInfo port mappings) and the
 * fixed host ports an attach asks for (its PORT_MAP requests). A pending teardown keeps its endpoint's host
 * ports until it is done; only an attach asking for one of them has to wait for it: an attach asking for
 * any free port is given one the old endpoint does not hold.
 */
import { PORT_MAP } from '../driverapi/labels.js';

/** A protocol's host ports, first to last. */
export interface HostPortClaim {
  proto: string;
  first: number;
  last: number;
}

interface PortsShape {
  proto?: unknown;
  hostPort?: unknown;
  hostPortEnd?: unknown;
}

function claimOf(p: PortsShape): HostPortClaim | undefined {
  if (typeof p !== 'object' || p === null || typeof p.proto !== 'string') return undefined;
  const first = p.hostPort;
  if (typeof first !== 'number' || !Number.isInteger(first) || first <= 0) return undefined;
  const end = typeof p.hostPortEnd === 'number' && Number.isInteger(p.hostPortEnd) ? p.hostPortEnd : 0;
  return { proto: p.proto, first, last: Math.max(first, end) };
}

function claimsOf(list: unknown): HostPortClaim[] {
  if (!Array.isArray(list)) return [];
  return list.map((p) => claimOf(p as PortsShape)).filter((c): c is HostPortClaim => c !== undefined);
}

/** The host ports an endpoint holds, from its driver's operational info. */
export function heldHostPorts(info: Record<string, unknown>): HostPortClaim[] {
  return claimsOf(info.ports);
}

/** The fixed host ports endpoint options ask for (a request for any free port claims none). */
export function askedHostPorts(options: Record<string, unknown> | undefined): HostPortClaim[] {
  return claimsOf(options?.[PORT_MAP]);
}

/** Whether two lists share a port of one protocol. */
export function portsOverlap(a: readonly HostPortClaim[], b: readonly HostPortClaim[]): boolean {
  return a.some((x) => b.some((y) => x.proto === y.proto && x.first <= y.last && y.first <= x.last));
}
