/**
 * InterfaceAddress: an address as configured on an interface, with the length of its on-link prefix:
 * `172.18.0.2/16`. Host bits are the point here (they are the address); `prefix` is the network it sits on.
 * Parsed with the same rules as Prefix, printed as `ADDRESS/LENGTH`.
 */
import { InvalidArgumentError } from '../errors.js';
import type { Family } from './family.js';
import { IPAddress } from './ip-address.js';
import { Prefix, parseAddressAndLength } from './prefix.js';

export class InterfaceAddress {
  readonly address: IPAddress;
  readonly length: number;

  private constructor(address: IPAddress, length: number) {
    this.address = address;
    this.length = length;
    Object.freeze(this);
  }

  static parse(input: unknown, what = 'interface address'): InterfaceAddress {
    const { address, length } = parseAddressAndLength(input, what);
    return new InterfaceAddress(address, length);
  }

  /** `address` on `prefix` (which must contain it). */
  static of(address: IPAddress, prefix: Prefix | number): InterfaceAddress {
    if (typeof prefix === 'number') return new InterfaceAddress(address, Prefix.of(address, prefix).length);
    if (!prefix.contains(address)) throw new InvalidArgumentError(`address ${address} is not inside ${prefix}`);
    return new InterfaceAddress(address, prefix.length);
  }

  get family(): Family {
    return this.address.family;
  }

  /** The on-link network (host bits cleared). */
  get prefix(): Prefix {
    return Prefix.of(this.address, this.length);
  }

  equals(other: InterfaceAddress | undefined): boolean {
    return other !== undefined && other.length === this.length && other.address.equals(this.address);
  }

  toString(): string {
    return `${this.address}/${this.length}`;
  }

  toJSON(): string {
    return this.toString();
  }
}
