/**
 * The IPAM PoolID netd hands dockerd: `netd/<subnet>`, or `netd/<subnet>/<sub-pool>` for a pool requested
 * with an ip-range. dockerd treats it as opaque and sends it back on every later IPAM call; netd parses it
 * strictly (a malformed one is refused before anything changes) and looks it up in its persisted pools.
 */
import { InvalidArgumentError } from '../errors.js';
import { Prefix } from '../net/index.js';

const PREFIX = 'netd/';
/** Longer than any PoolID netd makes (two IPv6 prefixes and the tag). */
const MAX_LENGTH = 128;

export interface PoolId {
  subnet: Prefix;
  subPool?: Prefix;
}

export function formatPoolId(id: PoolId): string {
  return `${PREFIX}${id.subnet}${id.subPool ? `/${id.subPool}` : ''}`;
}

export function parsePoolId(value: unknown): PoolId {
  if (typeof value !== 'string' || value === '') throw new InvalidArgumentError('PoolID must be a non-empty string');
  const shown = JSON.stringify(value.slice(0, MAX_LENGTH));
  if (value.length > MAX_LENGTH || !value.startsWith(PREFIX)) throw new InvalidArgumentError(`PoolID ${shown} is not one of netd's (netd/<subnet>[/<sub-pool>])`);
  const parts = value.slice(PREFIX.length).split('/');
  if (parts.length !== 2 && parts.length !== 4) throw new InvalidArgumentError(`PoolID ${shown} is not one of netd's (netd/<subnet>[/<sub-pool>])`);
  const subnet = Prefix.parse(`${parts[0]}/${parts[1]}`, 'PoolID subnet');
  if (parts.length === 2) return { subnet };
  const subPool = Prefix.parse(`${parts[2]}/${parts[3]}`, 'PoolID sub-pool');
  if (!subnet.containsPrefix(subPool)) throw new InvalidArgumentError(`PoolID ${shown}: the sub-pool is not inside the subnet`);
  return { subnet, subPool };
}
