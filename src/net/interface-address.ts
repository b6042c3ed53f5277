/**
 * InterfaceAddress: an address as configured on an interface, with the length of its on-link prefix:
 * `172.18.0.2/16`. Host bits are the point here (they are the address); `prefix` is the network it sits on.
 * Parsed with the same rules as Prefix, printed as `ADDRESS/LENGTH`.
 */
import { InvalidArgumentError } from '../errors.js';
import { AddressAndLength, parseAddressAndLength } from './address-and-length.js';
import type { IPAddress } from './ip-address.js';
import { Prefix } from './prefix.js';

export class InterfaceAddress extends AddressAndLength {
  private constructor(address: IPAddress, length: number) {
    super(address, length);
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

  /** The on-link network (host bits cleared). */
  get prefix(): Prefix {
    return Prefix.of(this.address, this.length);
  }

  equals(other: InterfaceAddress | undefined): boolean {
    return other instanceof InterfaceAddress && this.sameAs(other);
  }
}
