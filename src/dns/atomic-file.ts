/**
 * Writes a file so that a reader sees the old content or the new one, never a mix: a temporary file
 * beside it, flushed, then renamed over it. A symlink at the target is replaced, not followed.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync, constants } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, isAbsolute, join } from 'node:path';

export function writeFileAtomic(path: string, content: string, mode = 0o644): void {
  if (!isAbsolute(path)) throw new Error(`${JSON.stringify(path)} is not an absolute path`);
  const tmp = join(dirname(path), `.${basename(path)}.netd-${randomBytes(4).toString('hex')}`);
  // O_EXCL|O_NOFOLLOW: the temporary name is new, and never a link someone planted.
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    try {
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw err;
  }
}
