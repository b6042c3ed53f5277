/**
 * Rewrites a file in place, keeping its inode: a runtime bind-mounts a container's resolv.conf and hosts
 * (as Docker does), and a bind mount pins the inode it was made from, so a file replaced by a rename is
 * never seen by the container again. Docker's resolvconf writes in place for the same reason.
 * Only for files in a directory netd alone writes (its per-sandbox directory): a symlink at the last
 * component is refused (O_NOFOLLOW), and anything but a regular file too.
 */
import { closeSync, fstatSync, ftruncateSync, openSync, writeSync, constants } from 'node:fs';

/** Writes `content` over the existing file at `path`; false when there is no file there yet. */
export function rewriteInPlace(path: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  try {
    if (!fstatSync(fd).isFile()) throw new Error(`${path} is not a regular file`);
    const data = Buffer.from(content);
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off, off);
    // Truncated after the write: a reader sees the old or new lines, never an empty file.
    ftruncateSync(fd, data.length);
  } finally {
    closeSync(fd);
  }
  return true;
}
