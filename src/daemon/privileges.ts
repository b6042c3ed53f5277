/**
 * What the daemon needs of the kernel before it starts: CAP_NET_ADMIN (links, addresses, routes, firewall)
 * and CAP_SYS_ADMIN (setns into containers, namespace bind mounts). Read from the effective capability set
 * in /proc/self/status, not from the uid: root without them fails too, and a non-root user granted them
 * may run it.
 */
import { readFileSync } from 'node:fs';
import { ForbiddenError, NetdError } from '../errors.js';

const REQUIRED = [
  { name: 'CAP_NET_ADMIN', bit: 12n },
  { name: 'CAP_SYS_ADMIN', bit: 21n },
] as const;

/** The effective capability mask of a process, from its status file's `CapEff:` line. */
export function effectiveCapabilities(status: string): bigint {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status);
  if (!m) throw new NetdError('cannot read the effective capabilities (no CapEff in /proc/self/status)', 500, 'privileges');
  return BigInt('0x' + m[1]);
}

/** The capability names `mask` lacks of the daemon's requirements. */
export function missingCapabilities(mask: bigint): string[] {
  return REQUIRED.filter((c) => (mask & (1n << c.bit)) === 0n).map((c) => c.name);
}

/** Throws one clear line when this process cannot run the daemon. */
export function requireDaemonPrivileges(status = readFileSync('/proc/self/status', 'utf8')): void {
  const missing = missingCapabilities(effectiveCapabilities(status));
  if (missing.length === 0) return;
  throw new ForbiddenError(`netd daemon needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN); this process lacks ${missing.join(' and ')}`);
}
