/**
 * Network namespaces: handles on them (an open nsfs file descriptor), running code inside one, and
 * persistent namespaces bind-mounted on a file (what `ip netns add` does).
 *
 * Everything here is synchronous on purpose: namespace membership is per thread, and only Node's main
 * thread is ever moved. /proc/thread-self therefore always means the main thread here.
 */
import { closeSync, constants as fsConstants, existsSync, fstatSync, mkdirSync, openSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, KernelError } from '../errors.js';
import { constants as nc, isNativeError, mount, nsType, umount2, unshareNet, withNetns } from './native.js';
import type { NetnsCreatePoint } from './netns-create-points.js';

const THREAD_NETNS = '/proc/thread-self/ns/net';
/** Highest possible PID on Linux (PID_MAX_LIMIT on 64-bit). */
const PID_MAX_LIMIT = 4_194_304;

function errnoOf(err: unknown): string {
  if (isNativeError(err)) return err.code;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'EIO';
}

function checkPath(p: unknown, what: string): string {
  if (typeof p !== 'string' || p === '' || p.includes('\0')) {
    throw new InvalidArgumentError(`${what} must be a non-empty path, got ${JSON.stringify(p)}`);
  }
  return p;
}

/** An open handle on a network namespace. Close it when done: it holds a file descriptor. */
export class Netns {
  #fd: number | undefined;

  private constructor(
    fd: number,
    /** The path it was opened from. */
    readonly path: string,
    /** Device and inode of the nsfs file: together they identify the namespace. */
    readonly dev: number,
    readonly ino: number,
  ) {
    this.#fd = fd;
  }

  /**
   * Opens the network namespace at path (/proc/PID/ns/net, /run/netns/NAME, ...). Throws
   * InvalidArgumentError when the path does not exist or is not a network namespace.
   */
  static open(nsPath: string): Netns {
    checkPath(nsPath, 'network namespace');
    let fd: number;
    try {
      // O_NONBLOCK|O_NOCTTY: a path that turns out to be a FIFO or a terminal must not block or attach
      // the daemon. libuv adds O_CLOEXEC.
      fd = openSync(nsPath, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') throw new InvalidArgumentError(`network namespace ${nsPath} does not exist`);
      throw new KernelError(`open netns ${nsPath}`, errnoOf(err), undefined, { cause: err });
    }
    try {
      // Refuse anything that is not a network namespace here (a plain file under /run/netns whose bind
      // mount is gone, another namespace type) rather than failing later in setns.
      let type: number;
      try {
        type = nsType(fd);
      } catch (err) {
        if (errnoOf(err) === 'ENOTTY') throw new InvalidArgumentError(`${nsPath} is not a namespace file`);
        throw new KernelError(`open netns ${nsPath}`, errnoOf(err), 'NS_GET_NSTYPE', { cause: err });
      }
      if (type !== nc.CLONE_NEWNET) throw new InvalidArgumentError(`${nsPath} is not a network namespace`);
      const st = fstatSync(fd);
      return new Netns(fd, nsPath, st.dev, st.ino);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /** The namespace the main thread is in right now (normally the daemon's own). */
  static current(): Netns {
    return Netns.open(THREAD_NETNS);
  }

  /**
   * A second, independent handle on the same namespace (its own descriptor, same path for messages):
   * for holders, like Rtnl, that must outlive the caller's handle.
   */
  dup(): Netns {
    const copy = Netns.open(`/proc/self/fd/${this.fd}`);
    if (!copy.sameAs(this)) {
      copy.close();
      throw new Error(`netns ${this.path}: duplicate descriptor refers to another namespace`);
    }
    const fd = copy.#fd as number;
    copy.#fd = undefined; // hand the descriptor over to a handle that carries the original path
    return new Netns(fd, this.path, this.dev, this.ino);
  }

  /** The file descriptor; throws once closed. */
  get fd(): number {
    if (this.#fd === undefined) throw new Error(`network namespace handle ${this.path} is closed`);
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd === undefined;
  }

  /**
   * Runs fn synchronously inside this namespace and returns its result; the main thread is moved back
   * afterwards, also when fn throws. Sockets created inside stay bound to this namespace. Do not start
   * asynchronous work in fn expecting it to run here: only the main thread moves.
   */
  run<T>(fn: () => T): T {
    try {
      return withNetns(this.fd, fn);
    } catch (err) {
      // Errors from setns itself come from the addon; errors thrown by fn pass through untouched.
      if (isNativeError(err) && err.syscall === 'setns') {
        throw new KernelError(`enter netns ${this.path}`, err.code, undefined, { cause: err });
      }
      throw err;
    }
  }

  /** True when both handles refer to the same namespace. */
  sameAs(other: { dev: number; ino: number }): boolean {
    return this.dev === other.dev && this.ino === other.ino;
  }

  /** Closes the descriptor. Idempotent. */
  close(): void {
    if (this.#fd === undefined) return;
    const fd = this.#fd;
    this.#fd = undefined;
    closeSync(fd);
  }

  toString(): string {
    return `netns(${this.path}, ino ${this.ino})`;
  }
}

/** The path of the network namespace of a process. Throws InvalidArgumentError if there is no such process. */
export function netnsPathOfPid(pid: number): string {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > PID_MAX_LIMIT) {
    throw new InvalidArgumentError(`invalid pid ${JSON.stringify(pid)}: must be a positive integer`);
  }
  if (!existsSync(`/proc/${pid}`)) throw new InvalidArgumentError(`no process with pid ${pid}`);
  return `/proc/${pid}/ns/net`;
}

export interface PersistentNetnsOptions {
  /** Called at each point (NETNS_CREATE_POINTS) of the creation (for fault injection: a crash there leaves a file, then a mount). */
  checkpoint?: (point: NetnsCreatePoint) => void;
  /**
   * Make the parent directory a shared mount point first (bind-mounting it on itself if it is not a
   * mount point yet), as iproute2 does for /run/netns, so that mounts and unmounts of namespace files
   * propagate to other mount namespaces. Default true.
   */
  sharedMountPoint?: boolean;
}

/**
 * Creates a new, empty network namespace that outlives any process: like `ip netns add`, it is kept
 * alive by a bind mount of its nsfs file on `nsPath` (an absolute path, created here; it must not exist).
 * The main thread ends up back in the namespace it started in.
 */
export function createPersistentNetns(nsPath: string, opts: PersistentNetnsOptions = {}): void {
  const target = absolutePath(nsPath);
  const op = `create netns ${target}`;
  const dir = path.dirname(target);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw new KernelError(op, errnoOf(err), `mkdir ${dir}`, { cause: err });
  }
  if (opts.sharedMountPoint ?? true) makeSharedMountPoint(dir, op);

  // The mount point: an empty file. O_EXCL so an existing namespace file is never shadowed.
  try {
    closeSync(openSync(target, fsConstants.O_RDONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o444));
  } catch (err) {
    throw new KernelError(op, errnoOf(err), `create ${target}`, { cause: err });
  }
  opts.checkpoint?.('after:create mount point');

  // withNetns(original) records the current namespace, runs the callback (which moves the main thread
  // into a brand-new namespace and pins it with the bind mount), then returns to the recorded one —
  // also if unshare or mount fail.
  const original = Netns.current();
  try {
    original.run(() => {
      unshareNet();
      mount(THREAD_NETNS, target, 'none', nc.MS_BIND, null);
    });
  } catch (err) {
    try {
      unlinkSync(target);
    } catch {
      /* best effort: the file is empty and unmounted */
    }
    throw new KernelError(op, errnoOf(err), isNativeError(err) ? err.syscall : undefined, { cause: err });
  } finally {
    original.close();
  }
  opts.checkpoint?.('after:bind mount');
}

/**
 * Removes a persistent namespace made by createPersistentNetns (or `ip netns add`): detaches the bind
 * mount and deletes the file. The namespace itself disappears once no process or handle uses it.
 * Idempotent: a path that is already gone, or no longer mounted, is not an error.
 */
export function deletePersistentNetns(nsPath: string): void {
  const target = absolutePath(nsPath);
  const op = `delete netns ${target}`;
  try {
    umount2(target, nc.MNT_DETACH);
  } catch (err) {
    // EINVAL: not a mount point (already unmounted); ENOENT: gone.
    if (!['EINVAL', 'ENOENT'].includes(errnoOf(err))) throw new KernelError(op, errnoOf(err), 'umount', { cause: err });
  }
  try {
    unlinkSync(target);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw new KernelError(op, errnoOf(err), 'unlink', { cause: err });
  }
}

function absolutePath(p: unknown): string {
  const s = checkPath(p, 'network namespace path');
  if (!path.isAbsolute(s)) throw new InvalidArgumentError(`network namespace path must be absolute, got ${JSON.stringify(s)}`);
  const normal = path.normalize(s);
  if (normal === '/' || normal.endsWith('/')) throw new InvalidArgumentError(`network namespace path ${JSON.stringify(s)} names a directory`);
  return normal;
}

/** mount --make-rshared DIR, bind-mounting DIR on itself first if it is not a mount point (EINVAL). */
function makeSharedMountPoint(dir: string, op: string): void {
  let bound = false;
  for (;;) {
    try {
      mount('none', dir, 'none', nc.MS_SHARED | nc.MS_REC, null);
      return;
    } catch (err) {
      if (bound || errnoOf(err) !== 'EINVAL') throw new KernelError(op, errnoOf(err), `make ${dir} a shared mount point`, { cause: err });
    }
    try {
      mount(dir, dir, 'none', nc.MS_BIND | nc.MS_REC, null);
      bound = true;
    } catch (err) {
      throw new KernelError(op, errnoOf(err), `bind-mount ${dir} on itself`, { cause: err });
    }
  }
}
