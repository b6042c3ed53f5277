/**
 * What Prefix and InterfaceAddress share: an address with a prefix length, written `ADDRESS/LENGTH`,
 * and the one parser of that text form.
 */
import { InvalidArgumentError } from '../errors.js';
import { bitsOf, describeValue, type Family } from './family.js';
import { IPAddress } from './ip-address.js';

const LENGTH_RE = /^(?:0|[1-9][0-9]{0,2})$/;

/** Splits `ADDRESS/LENGTH` and checks both parts: a strict address, a decimal length without leading zeros in range. */
export function parseAddressAndLength(input: unknown, what: string): { address: IPAddress; length: number } {
  if (typeof input !== 'string') throw new InvalidArgumentError(`invalid ${what} ${describeValue(input)}: expected a string like 192.0.2.0/24`);
  const slash = input.indexOf('/');
  if (slash < 0) throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(input)}: expected ADDRESS/PREFIX-LENGTH`);
  let address: IPAddress;
  try {
    address = IPAddress.parse(input.slice(0, slash), what);
  } catch {
    throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(input)}: not an IPv4 or IPv6 address`);
  }
  const lengthText = input.slice(slash + 1);
  const max = bitsOf(address.family);
  if (!LENGTH_RE.test(lengthText)) throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(input)}: prefix length must be 0-${max}`);
  if (Number(lengthText) > max) throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(input)}: prefix longer than ${max}`);
  return { address, length: Number(lengthText) };
}

export abstract class AddressAndLength {
  protected constructor(
    readonly address: IPAddress,
    readonly length: number,
  ) {}

  get family(): Family {
    return this.address.family;
  }

  protected sameAs(other: AddressAndLength): boolean {
    return other.length === this.length && other.address.equals(this.address);
  }

  toString(): string {
    return `${this.address}/${this.length}`;
  }

  toJSON(): string {
    return this.toString();
  }
}
