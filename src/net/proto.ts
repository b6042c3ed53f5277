/**
 * Transport protocols netd publishes ports for, by name and by IP protocol number (libnetwork encodes
 * them as numbers in `com.docker.network.portmap`).
 */
import { InvalidArgumentError } from '../errors.js';
import { describeValue } from './family.js';

export type Proto = 'tcp' | 'udp' | 'sctp';
export const PROTOS: readonly Proto[] = ['tcp', 'udp', 'sctp'];

/** IP protocol numbers. */
export const PROTO_NUMBER: Readonly<Record<Proto, number>> = { tcp: 6, udp: 17, sctp: 132 };

export function isProto(value: unknown): value is Proto {
  return typeof value === 'string' && (PROTOS as readonly string[]).includes(value);
}

/** A protocol name (exact, lowercase). */
export function checkProto(value: unknown): Proto {
  if (!isProto(value)) throw new InvalidArgumentError(`invalid protocol ${describeValue(value)}`);
  return value;
}

/** Why `value` (a name in any case, or a protocol number) is not a protocol; undefined if it is one. */
export function protoProblem(value: unknown): string | undefined {
  if (typeof value === 'number') {
    return PROTOS.some((p) => PROTO_NUMBER[p] === value) ? undefined : `protocol number ${value} is not one of 6 (tcp), 17 (udp), 132 (sctp)`;
  }
  return isProto(typeof value === 'string' ? value.toLowerCase() : '') ? undefined : `protocol ${JSON.stringify(value)} is not tcp, udp or sctp`;
}

/** A protocol by name (any case) or by number (6, 17, 132). */
export function parseProto(value: unknown): Proto {
  const why = protoProblem(value);
  if (why) throw new InvalidArgumentError(`invalid protocol: ${why}`);
  return typeof value === 'number' ? PROTOS.find((p) => PROTO_NUMBER[p] === value)! : ((value as string).toLowerCase() as Proto);
}
