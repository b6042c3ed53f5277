/**
 * Interface names. Two rules:
 * - `parseIfName`: what the kernel's dev_valid_name() accepts (1-15 bytes, not "." or "..", no '/',
 *   ':', whitespace or NUL); non-ASCII names are valid. For names netd hands to rtnetlink or sysctl.
 * - `parseFirewallIfName`: the stricter subset that is safe as an iptables/nft argument: 1-15 of
 *   [A-Za-z0-9_.-], not "." or "..", not starting with '-'.
 * Both return the name unchanged, typed as an IfName (a string that passed a check), or throw
 * InvalidArgumentError naming the value.
 */
import { InvalidArgumentError } from '../errors.js';
import { describeValue } from './family.js';

/** IFNAMSIZ is 16 bytes including the terminating NUL. */
export const IFNAME_MAX_BYTES = 15;

declare const checked: unique symbol;
/** An interface name that passed parseIfName (or the stricter parseFirewallIfName): usable as a string. */
export type IfName = string & { readonly [checked]: 'ifname' };

const FIREWALL_SAFE_RE = /^[A-Za-z0-9_.-]{1,15}$/;

export function parseIfName(name: unknown): IfName {
  if (typeof name !== 'string') throw new InvalidArgumentError(`interface name must be a string, got ${typeof name}`);
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes === 0 || bytes > IFNAME_MAX_BYTES) {
    throw new InvalidArgumentError(`invalid interface name ${JSON.stringify(name)}: must be 1-${IFNAME_MAX_BYTES} bytes, is ${bytes}`);
  }
  if (name === '.' || name === '..') throw new InvalidArgumentError(`invalid interface name ${JSON.stringify(name)}`);
  // \s covers the ASCII whitespace the kernel rejects (isspace) and the Unicode spaces it would not, which
  // are better refused anyway: nobody means to name an interface with them.
  if (/[/:\s\0]/u.test(name)) {
    throw new InvalidArgumentError(`invalid interface name ${JSON.stringify(name)}: must not contain '/', ':', whitespace or NUL`);
  }
  return name as IfName;
}

/** Whether a name is safe in an iptables/nft rule (see the module comment). */
export function isFirewallSafeIfName(name: unknown): name is IfName {
  return typeof name === 'string' && FIREWALL_SAFE_RE.test(name) && name !== '.' && name !== '..' && !name.startsWith('-');
}

export function parseFirewallIfName(name: unknown, what = 'interface name'): IfName {
  if (!isFirewallSafeIfName(name)) {
    throw new InvalidArgumentError(`invalid ${what} ${describeValue(name)}: expected 1-15 characters of [A-Za-z0-9_.-], not starting with '-'`);
  }
  return name;
}
