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
import { basename, dirname, isAbsolute } from 'node:path';

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

/** A temporary name for a write of `name`, unique to this process and this write. */
export function tempNameFor(name: string): string {
  return `.${name}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`;
}

export function writeFileAtomicIn(dirFd: number, name: string, content: string, opts: WriteOptions = {}): void {
  const durable = opts.durable ?? false;
  const tmp = inDirFd(dirFd, tempNameFor(name));
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, opts.mode ?? 0o644);
  try {
    try {
      writeSync(fd, content);
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, inDirFd(dirFd, name));
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw err;
  }
  if (durable) fsyncSync(dirFd); // the rename itself
}

/** Writes `path` atomically; its directory is taken as it is (a path netd chose, not a client). */
export function writeFileAtomic(path: string, content: string, opts: WriteOptions = {}): void {
  if (!isAbsolute(path)) throw new Error(`${JSON.stringify(path)} is not an absolute path`);
  const dirFd = openSync(dirname(path), constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    writeFileAtomicIn(dirFd, basename(path), content, opts);
  } finally {
    closeSync(dirFd);
  }
}
