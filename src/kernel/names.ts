/**
 * Interface names and MAC addresses: validated here before they ever reach the kernel, so a bad value is
 * reported as the caller's mistake (InvalidArgumentError) rather than as an obscure netlink errno.
 */
import { randomBytes } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';

/** IFNAMSIZ is 16 bytes including the terminating NUL. */
export const IFNAME_MAX_BYTES = 15;

/**
 * Checks a network interface name the way the kernel's dev_valid_name() does: 1–15 bytes, not "." or
 * "..", and no '/', ':', whitespace or NUL. Returns the name unchanged.
 */
export function validateIfName(name: unknown): string {
  if (typeof name !== 'string') {
    throw new InvalidArgumentError(`interface name must be a string, got ${typeof name}`);
  }
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes === 0 || bytes > IFNAME_MAX_BYTES) {
    throw new InvalidArgumentError(`invalid interface name ${JSON.stringify(name)}: must be 1-${IFNAME_MAX_BYTES} bytes, is ${bytes}`);
  }
  if (name === '.' || name === '..') {
    throw new InvalidArgumentError(`invalid interface name ${JSON.stringify(name)}`);
  }
  // \s covers the ASCII whitespace the kernel rejects (isspace) and the Unicode spaces it would not, which
  // are better refused anyway: nobody means to name an interface with them.
  if (/[/:\s\0]/u.test(name)) {
    throw new InvalidArgumentError(`invalid interface name ${JSON.stringify(name)}: must not contain '/', ':', whitespace or NUL`);
  }
  return name;
}

/** Formats 6 bytes as a lowercase colon-separated MAC address. */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/** A random locally administered unicast MAC address (what Docker ≥ 28 uses for endpoints). */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02; // clear the multicast bit, set the locally-administered bit
  return formatMac(b);
}

/**
 * Checks that s is a MAC address an interface can carry: six colon-separated hex octets, unicast and not
 * all zeros. Returns it in canonical lowercase form.
 */
export function validateMac(s: unknown): string {
  if (typeof s !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(s)) {
    throw new InvalidArgumentError(`invalid MAC address ${JSON.stringify(s)}: expected six colon-separated hex octets`);
  }
  const bytes = macToBytes(s);
  if (bytes[0] & 0x01) {
    throw new InvalidArgumentError(`invalid MAC address ${JSON.stringify(s)}: multicast addresses cannot be assigned to an interface`);
  }
  if (bytes.every((b) => b === 0)) {
    throw new InvalidArgumentError(`invalid MAC address ${JSON.stringify(s)}: all zeros`);
  }
  return formatMac(bytes);
}

/** The 6 bytes of a MAC address already checked by validateMac. */
export function macToBytes(s: string): Buffer {
  return Buffer.from(s.split(':').map((h) => parseInt(h, 16)));
}
