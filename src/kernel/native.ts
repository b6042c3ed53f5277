/**
 * Typed binding to netd's own N-API addon (native/netd_native.cc, built by `npm install` into
 * build/Release/netd_native.node). It exposes the namespace syscalls Node lacks.
 *
 * All of them act on the calling thread, which is always Node's main thread: libuv's pool threads are
 * never moved, so only synchronous code may run inside withNetns.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

/** Errors thrown by the addon carry the errno name and the failing syscall, like Node's own. */
export interface NativeError extends Error {
  /** errno name, e.g. 'EPERM'. */
  code: string;
  /** Negative errno number, as Node reports it. */
  errno: number;
  syscall: string;
}

export function isNativeError(err: unknown): err is NativeError {
  return err instanceof Error && typeof (err as Partial<NativeError>).code === 'string' && typeof (err as Partial<NativeError>).syscall === 'string';
}

export interface NativeConstants {
  CLONE_NEWNET: number;
  MS_BIND: number;
  MS_REC: number;
  MS_SHARED: number;
  MS_PRIVATE: number;
  MS_SLAVE: number;
  MS_NOSUID: number;
  MS_NODEV: number;
  MS_NOEXEC: number;
  MNT_DETACH: number;
  MNT_FORCE: number;
}

export interface NetdNative {
  /** setns(2) for the main thread. nstype 0 accepts any namespace type. */
  setns(fd: number, nstype: number): void;
  /**
   * Runs fn synchronously with the main thread inside the network namespace fd, then moves it back to
   * the namespace it was in — also when fn throws, in which case the exception is rethrown. If moving
   * back fails the process aborts (continuing in the wrong namespace would be worse).
   */
  withNetns<T>(fd: number, fn: () => T): T;
  /** unshare(CLONE_NEWNET): the main thread gets a new, empty network namespace. */
  unshareNet(): void;
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  umount2(target: string, flags: number): void;
  /** The CLONE_NEW* type of the namespace file fd refers to (ioctl NS_GET_NSTYPE); ENOTTY if it is none. */
  nsType(fd: number): number;
  constants: NativeConstants;
}

const ADDON = path.join('build', 'Release', 'netd_native.node');

/**
 * The repository root: the nearest ancestor of this file holding binding.gyp. Works both from
 * src/kernel/ (ts runners) and from dist/src/kernel/ (compiled).
 */
function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (existsSync(path.join(dir, 'binding.gyp'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`netd: cannot find the repository root (binding.gyp) above ${__dirname}`);
    dir = parent;
  }
}

function load(): NetdNative {
  const file = path.join(repoRoot(), ADDON);
  if (!existsSync(file)) {
    throw new Error(`netd: native addon missing at ${file}; run \`npm install\` in the repository root (it builds the addon)`);
  }
  return require(file) as NetdNative;
}

/** The loaded addon. */
export const native: NetdNative = load();
export const constants: NativeConstants = native.constants;

export const setns: NetdNative['setns'] = native.setns;
export const withNetns: NetdNative['withNetns'] = native.withNetns;
export const unshareNet: NetdNative['unshareNet'] = native.unshareNet;
export const mount: NetdNative['mount'] = native.mount;
export const umount2: NetdNative['umount2'] = native.umount2;
export const nsType: NetdNative['nsType'] = native.nsType;
