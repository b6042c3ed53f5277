/**
 * Writes a file so that a reader sees the old content or the new one, never a mix: a temporary file
 * beside it, written, then renamed over it. A symlink at the target is replaced, not followed.
 *
 * `writeFileAtomicIn` works on a directory already open (an fd): the temporary file and the rename are
 * resolved through `/proc/self/fd/N`, which is the directory the fd holds whatever happens to its path
 * meanwhile (Node has no openat/renameat; the magic link gives the same guarantee).
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync, constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, isAbsolute } from 'node:path';

export interface WriteOptions {
  mode?: number;
  /** fsync the file before the rename (files on a runtime tmpfs need not). Default true. */
  sync?: boolean;
}

/** The path of `name` inside the directory open as `dirFd`, resolved through that fd. */
export function inDirFd(dirFd: number, name: string): string {
  return `/proc/self/fd/${dirFd}/${name}`;
}

/** Opens a directory without following a symlink at its last component. */
export function openDirNoFollow(path: string): number {
  return openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
}

export function writeFileAtomicIn(dirFd: number, name: string, content: string, opts: WriteOptions = {}): void {
  const tmp = inDirFd(dirFd, `.${name}.netd-${randomBytes(4).toString('hex')}`);
  // O_EXCL|O_NOFOLLOW: the temporary name is new, and never a link someone planted.
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, opts.mode ?? 0o644);
  try {
    try {
      writeSync(fd, content);
      if (opts.sync !== false) fsyncSync(fd);
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
