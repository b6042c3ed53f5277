/**
 * IP addresses and subnets as bigints, for both families. Parsing and validation go through the
 * `ip-address` library; everything netd stores or prints is in canonical form.
 */
import { Address4, Address6 } from 'ip-address';
import { InvalidArgumentError } from '../errors.js';

export type Family = 4 | 6;

export function familyOf(address: string): Family | undefined {
  if (Address4.isValid(address)) return 4;
  if (Address6.isValid(address)) return 6;
  return undefined;
}

function bits(family: Family): number {
  return family === 4 ? 32 : 128;
}

/** Parses a plain address (no prefix). Throws InvalidArgumentError naming `what`. */
export function parseAddress(text: string, what = 'address'): { family: Family; value: bigint } {
  if (typeof text !== 'string' || text.includes('/') || text.includes('%')) {
    throw new InvalidArgumentError(`invalid ${what}: ${JSON.stringify(text)}`);
  }
  // Address4 accepts only dotted quads; Address6 also takes embedded IPv4 forms.
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text) && Address4.isValid(text)) {
    return { family: 4, value: new Address4(text).bigInt() };
  }
  if (text.includes(':') && Address6.isValid(text)) {
    return { family: 6, value: new Address6(text).bigInt() };
  }
  throw new InvalidArgumentError(`invalid ${what}: ${JSON.stringify(text)}`);
}

export function formatAddress(family: Family, value: bigint): string {
  return family === 4 ? Address4.fromBigInt(value).correctForm() : Address6.fromBigInt(value).correctForm();
}

/** A subnet: base address (host bits zero) and prefix length. */
export class Subnet {
  private constructor(
    readonly family: Family,
    readonly base: bigint,
    readonly prefix: number,
  ) {}

  /** Parses `A.B.C.D/N` or `X::/N`. Host bits must be zero unless `strict` is false (then they are cleared). */
  static parse(text: string, what = 'subnet', strict = true): Subnet {
    if (typeof text !== 'string') throw new InvalidArgumentError(`invalid ${what}: ${JSON.stringify(text)}`);
    const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
    if (!m) throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(text)}: expected ADDRESS/PREFIX`);
    const { family, value } = parseAddress(m[1], what);
    const prefix = Number(m[2]);
    if (prefix > bits(family)) throw new InvalidArgumentError(`invalid ${what} ${text}: prefix longer than ${bits(family)}`);
    const subnet = Subnet.of(family, value, prefix);
    if (strict && subnet.base !== value) {
      throw new InvalidArgumentError(`invalid ${what} ${text}: host bits are set (did you mean ${subnet}?)`);
    }
    return subnet;
  }

  static of(family: Family, value: bigint, prefix: number): Subnet {
    const hostBits = BigInt(bits(family) - prefix);
    const base = (value >> hostBits) << hostBits;
    return new Subnet(family, base, prefix);
  }

  get size(): bigint {
    return 1n << BigInt(bits(this.family) - this.prefix);
  }

  get last(): bigint {
    return this.base + this.size - 1n;
  }

  contains(value: bigint): boolean {
    return value >= this.base && value <= this.last;
  }

  containsSubnet(other: Subnet): boolean {
    return other.family === this.family && other.prefix >= this.prefix && this.contains(other.base);
  }

  overlaps(other: Subnet): boolean {
    return other.family === this.family && this.base <= other.last && other.base <= this.last;
  }

  equals(other: Subnet): boolean {
    return other.family === this.family && other.base === this.base && other.prefix === this.prefix;
  }

  /** The n-th address of the subnet (0 = base). */
  at(n: bigint): bigint {
    return this.base + n;
  }

  /** `address/prefix` for an address inside this subnet, as set on an interface. */
  cidrOf(value: bigint): string {
    return `${formatAddress(this.family, value)}/${this.prefix}`;
  }

  toString(): string {
    return `${formatAddress(this.family, this.base)}/${this.prefix}`;
  }
}

/** Parses `address/prefix` as found on an interface (host bits allowed): the address and its subnet. */
export function parseInterfaceCidr(text: string, what = 'address'): { address: bigint; subnet: Subnet } {
  const subnet = Subnet.parse(text, what, false);
  const { value } = parseAddress(text.slice(0, text.indexOf('/')), what);
  return { address: value, subnet };
}
