/**
 * Prefix: a network (address with every host bit zero, plus its length), e.g. 10.1.0.0/16, fd00::/64.
 *
 * One strict parser: `ADDRESS/LENGTH`, the address as IPAddress.parse takes it, the length decimal
 * without leading zeros, 0..32 or 0..128; host bits set are refused with a hint at the network meant
 * ("did you mean 10.1.0.0/16?"). `Prefix.parse(text, { lenient: true })` clears host bits instead, for
 * values read from the kernel (a host route's destination, an interface's subnet).
 */
import { InvalidArgumentError } from '../errors.js';
import { AddressAndLength, parseAddressAndLength } from './address-and-length.js';
import { bitsOf, type Family } from './family.js';
import { IPAddress } from './ip-address.js';

export interface PrefixParseOptions {
  /** Names the value in error messages. */
  what?: string;
  /** Clear host bits instead of refusing them. */
  lenient?: boolean;
}

function checkLength(family: Family, length: number): number {
  if (!Number.isInteger(length) || length < 0 || length > bitsOf(family)) {
    throw new InvalidArgumentError(`invalid IPv${family} prefix length ${length}: must be 0-${bitsOf(family)}`);
  }
  return length;
}

/** The value with everything after the first `length` bits cleared. */
function maskValue(family: Family, value: bigint, length: number): bigint {
  const host = BigInt(bitsOf(family) - length);
  return (value >> host) << host;
}

export class Prefix extends AddressAndLength {
  /** `address` is the network address (host bits zero). */
  private constructor(address: IPAddress, length: number) {
    super(address, length);
    Object.freeze(this);
  }

  static parse(input: unknown, opts: PrefixParseOptions | string = {}): Prefix {
    const o = typeof opts === 'string' ? { what: opts } : opts;
    const what = o.what ?? 'prefix';
    const { address, length } = parseAddressAndLength(input, what);
    const p = Prefix.of(address, length);
    if (!o.lenient && !p.address.equals(address)) {
      throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(input)}: host bits are set (did you mean ${p}?)`);
    }
    return p;
  }

  /** The prefix of `length` bits containing `address` (host bits cleared). */
  static of(address: IPAddress, length: number): Prefix {
    checkLength(address.family, length);
    return new Prefix(IPAddress.fromBigInt(address.family, maskValue(address.family, address.toBigInt(), length)), length);
  }

  /** The single-address prefix (/32, /128). */
  static host(address: IPAddress): Prefix {
    return new Prefix(address, bitsOf(address.family));
  }

  /** Number of addresses. */
  get size(): bigint {
    return 1n << BigInt(bitsOf(this.family) - this.length);
  }

  /** The network address as an integer. */
  get firstValue(): bigint {
    return this.address.toBigInt();
  }

  /** The last address as an integer (IPv4: the broadcast address). */
  get lastValue(): bigint {
    return this.firstValue + this.size - 1n;
  }

  get first(): IPAddress {
    return this.address;
  }

  get last(): IPAddress {
    return IPAddress.fromBigInt(this.family, this.lastValue);
  }

  /** The n-th address (0 = the network address). */
  at(n: bigint): IPAddress {
    if (n < 0n || n >= this.size) throw new InvalidArgumentError(`address #${n} is outside ${this}`);
    return IPAddress.fromBigInt(this.family, this.firstValue + n);
  }

  contains(address: IPAddress): boolean {
    if (address.family !== this.family) return false;
    const v = address.toBigInt();
    return v >= this.firstValue && v <= this.lastValue;
  }

  containsPrefix(other: Prefix): boolean {
    return other.family === this.family && other.length >= this.length && this.contains(other.address);
  }

  overlaps(other: Prefix): boolean {
    return other.family === this.family && this.firstValue <= other.lastValue && other.firstValue <= this.lastValue;
  }

  equals(other: Prefix | undefined): boolean {
    return other instanceof Prefix && this.sameAs(other);
  }
}
