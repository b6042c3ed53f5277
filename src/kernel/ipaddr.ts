/**
 * IP addresses and CIDR prefixes as the kernel wants them: family plus raw bytes. Everything is validated
 * strictly here (no leading zeros, no zone ids, prefix in range) so nothing malformed reaches netlink.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { Address6 } from 'ip-address';
import { InvalidArgumentError } from '../errors.js';

export type IpFamily = 4 | 6;

export const AF_INET = 2;
export const AF_INET6 = 10;

export function afOf(family: IpFamily): number {
  return family === 4 ? AF_INET : AF_INET6;
}

export function familyOfAf(af: number): IpFamily | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

export interface IpAddress {
  family: IpFamily;
  /** 4 or 16 bytes, network order. */
  bytes: Buffer;
  /** Canonical text (IPv6 compressed, lowercase). */
  text: string;
}

export interface IpPrefix extends IpAddress {
  prefixLen: number;
  /** Canonical "address/prefixLen". */
  cidr: string;
}

/** Parses a literal IPv4 or IPv6 address. `what` names the value in the error message. */
export function parseIp(s: unknown, what = 'IP address'): IpAddress {
  if (typeof s !== 'string') throw new InvalidArgumentError(`${what} must be a string, got ${typeof s}`);
  if (isIPv4(s)) {
    const bytes = Buffer.from(s.split('.').map(Number));
    return { family: 4, bytes, text: formatIp(bytes) };
  }
  // node:net accepts zone ids ("fe80::1%eth0"); an interface address or route has no use for them.
  if (isIPv6(s) && !s.includes('%')) {
    const bytes = Buffer.from(new Address6(s).toUnsignedByteArray());
    if (bytes.length !== 16) throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(s)}`);
    return { family: 6, bytes, text: formatIp(bytes) };
  }
  throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(s)}`);
}

/**
 * Parses "address/prefixLen". With `network: true` the host bits must be zero (a route destination);
 * otherwise the address is an interface address inside the prefix ("172.18.0.2/16").
 */
export function parseCidr(s: unknown, opts: { network?: boolean; what?: string } = {}): IpPrefix {
  const what = opts.what ?? 'CIDR';
  if (typeof s !== 'string') throw new InvalidArgumentError(`${what} must be a string, got ${typeof s}`);
  const slash = s.indexOf('/');
  if (slash < 0) throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(s)}: missing /prefix-length`);
  const ip = parseIp(s.slice(0, slash), what);
  const lenText = s.slice(slash + 1);
  const max = ip.family === 4 ? 32 : 128;
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > max) {
    throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(s)}: prefix length must be 0-${max}`);
  }
  const prefixLen = Number(lenText);
  if (opts.network && !hostBitsZero(ip.bytes, prefixLen)) {
    throw new InvalidArgumentError(
      `invalid ${what} ${JSON.stringify(s)}: host bits are set (did you mean ${formatIp(maskBytes(ip.bytes, prefixLen))}/${prefixLen}?)`,
    );
  }
  return { ...ip, prefixLen, cidr: `${ip.text}/${prefixLen}` };
}

/** Formats 4 or 16 network-order bytes as text (IPv6 in compressed lowercase form). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length === 16) return Address6.fromUnsignedByteArray(Array.from(bytes)).correctForm();
  throw new InvalidArgumentError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
}

/** The bytes with everything after the first prefixLen bits cleared. */
export function maskBytes(bytes: Uint8Array, prefixLen: number): Buffer {
  const out = Buffer.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefixLen - i * 8));
    out[i] &= (0xff << (8 - keep)) & 0xff;
  }
  return out;
}

function hostBitsZero(bytes: Uint8Array, prefixLen: number): boolean {
  return maskBytes(bytes, prefixLen).equals(bytes);
}
