/**
 * Default address pools: where networks created without `--subnet` get their subnet from. The defaults
 * are Docker's (172.17.0.0/16 … 172.31.0.0/16 as /16s, then 192.168.0.0/16 in /20s); the daemon's
 * `--default-address-pool base=CIDR,size=N` replaces them.
 */
import { InvalidArgumentError } from '../errors.js';
import { IPAddress, Prefix, bitsOf } from '../net/index.js';

export interface AddressPool {
  base: Prefix;
  /** Prefix length of each subnet carved out of `base`. */
  size: number;
}

export const DEFAULT_ADDRESS_POOLS: readonly string[] = ['base=172.17.0.0/16,size=16', 'base=172.18.0.0/15,size=16', 'base=172.20.0.0/14,size=16', 'base=172.24.0.0/13,size=16', 'base=192.168.0.0/16,size=20'];

/** Parses `base=CIDR,size=N` (the dockerd flag's syntax). */
export function parseAddressPool(text: string): AddressPool {
  const fields = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw new InvalidArgumentError(`invalid address pool ${JSON.stringify(text)}: expected base=CIDR,size=N`);
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const baseText = fields.get('base');
  const sizeText = fields.get('size');
  for (const key of fields.keys()) {
    if (key !== 'base' && key !== 'size') throw new InvalidArgumentError(`invalid address pool ${JSON.stringify(text)}: unknown field ${key}`);
  }
  if (!baseText || !sizeText) throw new InvalidArgumentError(`invalid address pool ${JSON.stringify(text)}: base and size are required`);
  const base = Prefix.parse(baseText, 'address pool base');
  if (!/^\d{1,3}$/.test(sizeText)) throw new InvalidArgumentError(`invalid address pool size ${JSON.stringify(sizeText)}`);
  const size = Number(sizeText);
  const max = bitsOf(base.family) - 2;
  if (size < base.length || size > max) {
    throw new InvalidArgumentError(`invalid address pool ${text}: size must be between ${base.length} and ${max}`);
  }
  return { base, size };
}

/** Every candidate subnet of the pools, in order. Lazy: a v6 pool can hold more subnets than can be listed. */
export function* candidateSubnets(pools: readonly AddressPool[]): Generator<Prefix> {
  for (const pool of pools) {
    const step = 1n << BigInt(bitsOf(pool.base.family) - pool.size);
    for (let at = pool.base.firstValue; at <= pool.base.lastValue; at += step) {
      yield Prefix.of(IPAddress.fromBigInt(pool.base.family, at), pool.size);
    }
  }
}
