/**
 * Writes a file so that a reader sees the old content or the new one, never a mix: a temporary file
 * beside it (a name of its own per write: `.NAME.PID.RANDOM.tmp`, created with O_EXCL|O_NOFOLLOW, so two
 * writers or a leftover of a crash never collide and a planted link is never followed), written, then
 * renamed over the target. A symlink at the target is replaced, not followed.
 *
 * `durable` makes the write survive a power cut once it has returned: the file is fsync'd before the
 * rename (so the new name never points at empty blocks) and its directory after it (so the rename itself
 * is on disk). What lives only as long as the running kernel (records of veths and namespaces, files on a
 * runtime tmpfs) need not pay for the two flushes; what must stay the same across reboots (network
 * records, the instance id, the ULA prefix) must.
 *
 * `writeFileAtomicIn` works on a directory already open (an fd): the temporary file and the rename are
 * resolved through `/proc/self/fd/N`, which is the directory the fd holds whatever happens to its path
 * meanwhile (Node has no openat/renameat; the magic link gives the same guarantee).
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync, constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, isAbsolute, join } from 'node:path';

export interface WriteOptions {
  /** The new file's mode (before the umask). Default 0644. */
  mode?: number;
  /** fsync the file before the rename and the directory after it. Default false. */
  durable?: boolean;
}

/** Temporary files of this module end so (a reader of the directory may remove them: interrupted writes). */
export const TEMP_SUFFIX = '.tmp';

/** The path of `name` inside the directory open as `dirFd`, resolved through that fd. */
export function inDirFd(dirFd: number, name: string): string {
  return `/proc/self/fd/${dirFd}/${name}`;
}

/** Opens a directory without following a symlink at its last component. */
export function openDirNoFollow(path: string): number {
  return openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
}

/** fsync a directory, so that the names created, renamed or removed in it are on disk. */
export function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Temporary names: the process id and a counter (from a random start, drawn once), not fresh random bytes
 * per write (a call into the CSPRNG on every state write). A name may still be taken (a leftover of a
 * crashed process that had the same pid): O_EXCL refuses it and the next number is tried.
 */
let nextTemp = randomBytes(4).readUInt32BE(0);
const TEMP_ATTEMPTS = 16;

/** A temporary name for a write of `name`, unique to this process and this write. */
export function tempNameFor(name: string): string {
  nextTemp = (nextTemp + 1) >>> 0;
  return `.${name}.${process.pid}.${nextTemp.toString(16)}${TEMP_SUFFIX}`;
}

/** Creates a new temporary file for `name` (through `at`, which makes a name a path); its fd and path. */
function createTemp(at: (name: string) => string, name: string, mode: number): { fd: number; tmp: string } {
  for (let attempt = 1; ; attempt++) {
    const tmp = at(tempNameFor(name));
    try {
      return { fd: openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode), tmp };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= TEMP_ATTEMPTS) throw err;
    }
  }
}

/** Writes `content` to a new temporary file and renames it to `target`; the temporary file is removed on failure. */
function writeAndRename(at: (name: string) => string, name: string, content: string, opts: WriteOptions): void {
  const { fd, tmp } = createTemp(at, name, opts.mode ?? 0o644);
  try {
    try {
      writeSync(fd, content);
      if (opts.durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, at(name));
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw err;
  }
}

export function writeFileAtomicIn(dirFd: number, name: string, content: string, opts: WriteOptions = {}): void {
  writeAndRename((n) => inDirFd(dirFd, n), name, content, opts);
  if (opts.durable) fsyncSync(dirFd); // the rename itself
}

/**
 * Writes `path` atomically; its directory is taken as it is (a path netd chose, not a client). A volatile
 * write works on the path (three system calls and a rename, as on every state write of an attach); a durable
 * one opens the directory, to fsync the rename.
 */
export function writeFileAtomic(path: string, content: string, opts: WriteOptions = {}): void {
  if (!isAbsolute(path)) throw new Error(`${JSON.stringify(path)} is not an absolute path`);
  if (!opts.durable) {
    const dir = dirname(path);
    writeAndRename((n) => join(dir, n), basename(path), content, opts);
    return;
  }
  const dirFd = openSync(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    writeFileAtomicIn(dirFd, basename(path), content, opts);
  } finally {
    closeSync(dirFd);
  }
}
