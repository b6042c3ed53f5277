/**
 * The default IPv6 pool: this host's own Unique Local Address prefix (RFC 4193), `fd00::/8` plus 40
 * random bits, a /48 split into /64s, as Docker does for IPv6 networks created without a subnet. It is
 * drawn once and kept in the data root, so it stays the same across restarts.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { IPAddress, Prefix } from '../net/index.js';
import { writeFileAtomic } from '../store/atomic-file.js';
import type { AddressPool } from './default-pools.js';

/** Where the prefix is kept, in the data root. */
export const ULA_FILE = 'ipv6-ula-prefix';

const ULA = Prefix.parse('fd00::/8');

/** A new random ULA /48: fd, then 40 random bits (the Global ID), then zeros. */
export function randomUlaPrefix(): Prefix {
  const bytes = Buffer.alloc(16);
  bytes[0] = 0xfd;
  randomBytes(5).copy(bytes, 1);
  return Prefix.of(IPAddress.fromBigInt(6, BigInt(`0x${bytes.toString('hex')}`)), 48);
}

/** The data root's ULA /48, drawn and written the first time. A file that is not a ULA /48 is refused. */
export function hostUlaPrefix(dataRoot: string): Prefix {
  const file = join(dataRoot, ULA_FILE);
  let text: string | undefined;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    const bad = () => new InvalidArgumentError(`${file} holds ${JSON.stringify(text)}, not a /48 in fd00::/8: remove it to draw a new one`);
    let kept: Prefix;
    try {
      kept = Prefix.parse(text);
    } catch {
      throw bad();
    }
    if (kept.length !== 48 || !ULA.containsPrefix(kept)) throw bad();
    return kept;
  }
  const drawn = randomUlaPrefix();
  // Durable: networks (durable too) hold subnets of it, and a new prefix after a power cut would not match them.
  writeFileAtomic(resolve(file), `${drawn}\n`, { mode: 0o644, durable: true });
  return drawn;
}

/** The default IPv6 address pool of this data root: its ULA /48 in /64s. */
export function defaultIpv6Pool(dataRoot: string): AddressPool {
  return { base: hostUlaPrefix(dataRoot), size: 64 };
}
