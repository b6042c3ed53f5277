/**
 * MAC: a hardware address an interface can carry: six octets, unicast, not all zeros. Parsed from six
 * colon-separated two-digit hex octets (any case), printed lowercase.
 */
import { randomBytes } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';
import { describeValue } from './family.js';

const MAC_RE = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i;

function format(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

export class MAC {
  private readonly raw: Uint8Array;
  private readonly text: string;

  private constructor(raw: Uint8Array) {
    this.raw = raw;
    this.text = format(raw);
    Object.freeze(this);
  }

  static parse(input: unknown): MAC {
    if (typeof input !== 'string' || !MAC_RE.test(input)) {
      throw new InvalidArgumentError(`invalid MAC address ${describeValue(input)}: expected six colon-separated hex octets`);
    }
    return MAC.check(Uint8Array.from(input.split(':').map((h) => parseInt(h, 16))), JSON.stringify(input));
  }

  /** From 6 bytes (as netlink carries them); the same rules as parse. */
  static fromBytes(bytes: Uint8Array): MAC {
    if (bytes.length !== 6) throw new InvalidArgumentError(`a MAC address has 6 bytes, not ${bytes.length}`);
    return MAC.check(Uint8Array.from(bytes), format(bytes));
  }

  private static check(raw: Uint8Array, shown: string): MAC {
    if (raw[0] & 0x01) throw new InvalidArgumentError(`invalid MAC address ${shown}: multicast addresses cannot be assigned to an interface`);
    if (raw.every((b) => b === 0)) throw new InvalidArgumentError(`invalid MAC address ${shown}: all zeros`);
    return new MAC(raw);
  }

  /** A random locally administered unicast address (what Docker ≥ 28 gives endpoints). */
  static random(): MAC {
    const b = randomBytes(6);
    b[0] = (b[0] & 0xfe) | 0x02; // clear the multicast bit, set the locally administered bit
    return new MAC(Uint8Array.from(b));
  }

  /** Lowercase text of any 6 bytes (multicast included), for hardware addresses read from the kernel. */
  static formatBytes(bytes: Uint8Array): string {
    return format(bytes);
  }

  get bytes(): Buffer {
    return Buffer.from(this.raw);
  }

  get isLocallyAdministered(): boolean {
    return (this.raw[0] & 0x02) !== 0;
  }

  equals(other: MAC | undefined): boolean {
    return other !== undefined && other.text === this.text;
  }

  toString(): string {
    return this.text;
  }

  toJSON(): string {
    return this.text;
  }
}
