/**
 * IPAddress: one IPv4 or IPv6 address as an immutable value (family plus network-order bytes).
 *
 * One strict parser: dotted quads without leading zeros; IPv6 in any RFC 4291 text form (hex groups,
 * one '::', an embedded dotted-quad tail); no zone ids, no prefixes, no whitespace. One formatter: the
 * text glibc's inet_ntop writes (and so iptables-save and iproute2 print): lowercase hex, the longest run
 * of two or more zero words compressed (the first on a tie), IPv4-mapped (::ffff:a.b.c.d) and
 * IPv4-compatible (::a.b.c.d) addresses with a dotted tail.
 */
import { InvalidArgumentError } from '../errors.js';
import { bytesOf, describeValue, type Family } from './family.js';

const HEX_GROUP_RE = /^[0-9A-Fa-f]{1,4}$/;
const DIGIT_0 = 0x30;
const DOT = 0x2e;

/**
 * The 4 bytes of a dotted quad, or undefined: four decimal octets 0-255, 1-3 digits each, no leading
 * zeros, nothing else. A character scan (no regex, no split): it runs for every DNS query's source.
 */
function parseV4Bytes(text: string): number[] | undefined {
  if (text.length < 7 || text.length > 15) return undefined;
  const out: number[] = [];
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : DOT;
    if (c === DOT) {
      if (digits === 0 || value > 255 || out.length === 4) return undefined;
      out.push(value);
      value = 0;
      digits = 0;
    } else {
      const d = c - DIGIT_0;
      if (d < 0 || d > 9 || digits === 3 || (digits === 1 && value === 0)) return undefined;
      value = value * 10 + d;
      digits++;
    }
  }
  return out.length === 4 ? out : undefined;
}

/** The 16 bytes of an IPv6 text, or undefined. */
function parseV6Bytes(text: string): number[] | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const words = (part: string, last: boolean): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const groups = part.split(':');
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      if (HEX_GROUP_RE.test(g)) {
        out.push(parseInt(g, 16));
      } else if (last && i === groups.length - 1 && g.includes('.')) {
        const b = parseV4Bytes(g);
        if (!b) return undefined;
        out.push((b[0] << 8) | b[1], (b[2] << 8) | b[3]);
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = words(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? words(halves[1], true) : [];
  if (!head || !tail) return undefined;
  let all: number[];
  if (halves.length === 1) {
    if (head.length !== 8) return undefined;
    all = head;
  } else {
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return undefined;
    all = [...head, ...new Array<number>(fill).fill(0), ...tail];
  }
  return all.flatMap((w) => [w >> 8, w & 0xff]);
}

function formatV4(b: Uint8Array, offset = 0): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

/** inet_ntop's IPv6 text (see the module comment). */
function formatV6(b: Uint8Array): string {
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((b[i] << 8) | b[i + 1]);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestStart = -1;
  const dottedTail = bestStart === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff));
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      out += i === 0 ? '::' : ':';
      i += bestLen - 1;
      continue;
    }
    if (i === 6 && dottedTail) {
      out += formatV4(b, 12);
      break;
    }
    out += w[i].toString(16);
    if (i < 7) out += ':';
  }
  return out;
}

export class IPAddress {
  private readonly raw: Uint8Array;
  private readonly text: string;

  /** `text`, when given, is already the canonical form of `raw` (a strictly parsed dotted quad is). */
  private constructor(
    readonly family: Family,
    raw: Uint8Array,
    text?: string,
  ) {
    this.raw = raw;
    this.text = text ?? (family === 4 ? formatV4(raw) : formatV6(raw));
    Object.freeze(this);
  }

  /** Parses an IPv4 or IPv6 address (strict, see the module comment). `what` names it in errors. */
  static parse(text: unknown, what = 'IP address'): IPAddress {
    if (typeof text !== 'string') throw new InvalidArgumentError(`invalid ${what} ${describeValue(text)}: expected a string`);
    const v4 = parseV4Bytes(text);
    if (v4) return new IPAddress(4, Uint8Array.from(v4), text);
    const v6 = text.includes(':') ? parseV6Bytes(text) : undefined;
    if (v6) return new IPAddress(6, Uint8Array.from(v6));
    throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(text)}`);
  }

  /** The address if `text` parses, else undefined. */
  static tryParse(text: unknown): IPAddress | undefined {
    try {
      return IPAddress.parse(text);
    } catch {
      return undefined;
    }
  }

  /** From 4 or 16 network-order bytes (what netlink carries). */
  static fromBytes(bytes: Uint8Array): IPAddress {
    if (bytes.length === 4) return new IPAddress(4, Uint8Array.from(bytes));
    if (bytes.length === 16) return new IPAddress(6, Uint8Array.from(bytes));
    throw new InvalidArgumentError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  }

  /** From an unsigned integer of the family's width. */
  static fromBigInt(family: Family, value: bigint): IPAddress {
    const n = bytesOf(family);
    if (value < 0n || value >> BigInt(n * 8) !== 0n) throw new InvalidArgumentError(`${value} is not an IPv${family} address`);
    const out = new Uint8Array(n);
    let v = value;
    for (let i = n - 1; i >= 0; i--) {
      out[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    return new IPAddress(family, out);
  }

  /** 0.0.0.0 or :: — "every address" when binding. */
  static unspecified(family: Family): IPAddress {
    return new IPAddress(family, new Uint8Array(bytesOf(family)));
  }

  /** A copy of the 4 or 16 network-order bytes. */
  get bytes(): Buffer {
    return Buffer.from(this.raw);
  }

  /** The bytes as netlink attributes carry them (network order). */
  toNetlink(): Buffer {
    return this.bytes;
  }

  toBigInt(): bigint {
    let v = 0n;
    for (const b of this.raw) v = (v << 8n) | BigInt(b);
    return v;
  }

  equals(other: IPAddress | undefined): boolean {
    return other !== undefined && other.family === this.family && other.text === this.text;
  }

  get isUnspecified(): boolean {
    return this.raw.every((b) => b === 0);
  }

  /** 127.0.0.0/8 or ::1. */
  get isLoopback(): boolean {
    return this.family === 4 ? this.raw[0] === 127 : this.raw.every((b, i) => b === (i === 15 ? 1 : 0));
  }

  /** The IPv4 address an IPv4-mapped one (::ffff:a.b.c.d, a dual-stack socket's view) stands for; else itself. */
  unmapped(): IPAddress {
    return this.isV4Mapped ? new IPAddress(4, this.raw.subarray(12)) : this;
  }

  /** ::ffff:a.b.c.d */
  get isV4Mapped(): boolean {
    return this.family === 6 && this.raw.every((b, i) => (i < 10 ? b === 0 : i < 12 ? b === 0xff : true));
  }

  /** IPv6 addresses in brackets (`[::1]`), for `address:port` forms. */
  toUrlHost(): string {
    return this.family === 6 ? `[${this.text}]` : this.text;
  }

  toString(): string {
    return this.text;
  }

  toJSON(): string {
    return this.text;
  }
}
