/**
 * sysctls under /proc/sys, addressed by dotted keys ("net.ipv4.ip_forward",
 * "net.ipv4.conf.br-abc.route_localnet"). Every component is validated so a key can never name a path
 * outside /proc/sys.
 *
 * Reads and writes are synchronous on purpose: /proc/sys/net resolves to the network namespace of the
 * calling thread, so `netns.run(() => writeSysctl(...))` sets a container's sysctl. (Asynchronous fs calls
 * would run on a libuv pool thread, which stays in the daemon's namespace.)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, KernelError } from '../errors.js';
import { parseIfName } from '../net/index.js';

const ROOT = '/proc/sys';

/** Key prefixes whose next component is an interface name (which may itself contain dots). */
const IFNAME_PARENTS = ['net.ipv4.conf', 'net.ipv6.conf', 'net.ipv4.neigh', 'net.ipv6.neigh', 'net.mpls.conf'];

/** Names sysctl(8) accepts for non-interface components: letters, digits, '_' and '-'. */
const COMPONENT = /^[A-Za-z0-9_-]+$/;

/**
 * Maps a dotted key to its /proc/sys path. Under net.ipv{4,6}.{conf,neigh} the component after the
 * prefix is an interface name and everything up to the last component belongs to it, so
 * "net.ipv4.conf.eth0.100.forwarding" is the VLAN interface "eth0.100".
 */
export function sysctlPath(key: unknown): string {
  if (typeof key !== 'string' || key === '') throw new InvalidArgumentError(`sysctl key must be a non-empty string, got ${JSON.stringify(key)}`);
  const parts = key.split('.');
  let components: string[];
  const parent = IFNAME_PARENTS.find((p) => key.startsWith(`${p}.`));
  if (parent !== undefined) {
    const fixed = parent.split('.').length;
    if (parts.length < fixed + 2) throw new InvalidArgumentError(`invalid sysctl key ${JSON.stringify(key)}: expected ${parent}.<interface>.<name>`);
    const ifname = parts.slice(fixed, -1).join('.');
    // "all" and "default" are not interfaces but pass parseIfName too.
    parseIfName(ifname);
    components = [...parts.slice(0, fixed), ifname, parts[parts.length - 1]];
    checkComponents(key, [...parts.slice(0, fixed), parts[parts.length - 1]]);
  } else {
    components = parts;
    checkComponents(key, components);
  }
  const full = path.join(ROOT, ...components);
  // Belt and braces: the checks above already rule out '/', '.' and '..'.
  if (!full.startsWith(`${ROOT}/`) || path.normalize(full) !== full) {
    throw new InvalidArgumentError(`invalid sysctl key ${JSON.stringify(key)}`);
  }
  return full;
}

function checkComponents(key: string, components: string[]): void {
  for (const c of components) {
    if (!COMPONENT.test(c)) throw new InvalidArgumentError(`invalid sysctl key ${JSON.stringify(key)}: bad component ${JSON.stringify(c)}`);
  }
}

function errnoOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'EIO';
}

/** Normalizes whitespace so multi-value sysctls ("4096\t87380\t6291456") compare equal to "4096 87380 6291456". */
function normalize(value: string): string {
  return value.trim().split(/\s+/).join(' ');
}

/** Reads a sysctl (trimmed). Throws KernelError (ENOENT if the key does not exist). */
export function readSysctl(key: string): string {
  const file = sysctlPath(key);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new KernelError(`read sysctl ${key}`, errnoOf(err), undefined, { cause: err });
  }
}

/**
 * Sets a sysctl unless it already has that value. Returns true when it wrote. Throws KernelError if the
 * key does not exist or the kernel refuses the value (EINVAL).
 */
export function writeSysctl(key: string, value: string | number): boolean {
  const text = String(value);
  if (text.includes('\n') || text.includes('\0') || text.trim() === '') {
    throw new InvalidArgumentError(`invalid value ${JSON.stringify(text)} for sysctl ${key}`);
  }
  const file = sysctlPath(key);
  if (normalize(readSysctl(key)) === normalize(text)) return false;
  try {
    // flag 'r+': the file must exist; never create anything under /proc/sys.
    writeFileSync(file, `${text}\n`, { flag: 'r+' });
  } catch (err) {
    throw new KernelError(`write sysctl ${key}=${text}`, errnoOf(err), undefined, { cause: err });
  }
  return true;
}
