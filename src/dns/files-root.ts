/**
 * The one directory under which a client may name files for netd (root) to write: the administrator's
 * `netd daemon --files-root DIR`, none by default. A path is accepted only when it is absolute, spelled
 * plainly (no `.`, `..` or empty components) and lies below the root; it is then resolved one component
 * at a time from the root, each directory opened without following a symlink, and the file itself must be
 * absent or a regular file. The write goes through the directory fd so found (a temporary file beside the
 * target, renamed over it): a symlink planted anywhere below the root can never lead the write out of it.
 */
import { closeSync, lstatSync, openSync, statSync, constants } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { inDirFd, openDirNoFollow, writeFileAtomicIn } from '../store/atomic-file.js';

/** Linux's limits: a path of 4096 bytes, a name of 255. */
const PATH_MAX = 4096;
const NAME_MAX = 255;

export class FilesRoot {
  private readonly parts: string[];

  private constructor(readonly dir: string) {
    this.parts = dir === '/' ? [] : dir.split('/').slice(1);
  }

  /** The administrator's directory, checked at start: absolute and an existing directory. */
  static open(dir: string): FilesRoot {
    if (!isAbsolute(dir)) throw new InvalidArgumentError(`--files-root must be an absolute path, not ${JSON.stringify(dir)}`);
    let isDir = false;
    try {
      isDir = statSync(dir).isDirectory();
    } catch (err) {
      throw new InvalidArgumentError(`--files-root ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (!isDir) throw new InvalidArgumentError(`--files-root ${dir} is not a directory`);
    return new FilesRoot(resolve(dir));
  }

  /** Refuses a client-supplied path (400) unless `root` allows it; returns the path. `what` names the field. */
  static check(root: FilesRoot | undefined, value: unknown, what: string): string {
    if (!root) {
      throw new InvalidArgumentError(
        `${what}: netd writes files only in its own per-container directory (the attach result's resolvConfPath and hostsPath) unless the daemon was started with --files-root`,
      );
    }
    const path = root.pathOf(value, what);
    closeSync(root.openParent(path, what));
    return path;
  }

  /**
   * Writes `content` at a client-supplied path, checked as `check` does, in the same walk that finds its
   * directory (never following a symlink): the tree may have changed since the attach.
   */
  write(value: string, content: string, what = 'path'): void {
    const path = this.pathOf(value, what);
    const dirFd = this.openParent(path, what);
    try {
      writeFileAtomicIn(dirFd, this.below(path).at(-1)!, content, { durable: true });
    } finally {
      closeSync(dirFd);
    }
  }

  /** The text of an acceptable path, or a 400 saying what is wrong with it. */
  private pathOf(value: unknown, what: string): string {
    if (typeof value !== 'string') throw new InvalidArgumentError(`${what} must be a path (a string)`);
    const shown = JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
    const refuse = (why: string) => new InvalidArgumentError(`${what} ${shown} ${why}`);
    if (!value.startsWith('/')) throw refuse('is not an absolute path');
    if (Buffer.byteLength(value) >= PATH_MAX) throw refuse('is too long');
    if (/[\0-\x1f\x7f]/.test(value)) throw refuse('contains control characters');
    const parts = value.split('/').slice(1);
    for (const p of parts) {
      if (p === '' || p === '.' || p === '..') throw refuse('must be spelled plainly: no empty, "." or ".." components, no trailing "/"');
      if (Buffer.byteLength(p) > NAME_MAX) throw refuse('has a component longer than 255 bytes');
    }
    const inside = parts.length > this.parts.length && this.parts.every((p, i) => parts[i] === p);
    if (!inside) throw refuse(`is not under the files root ${this.dir} (netd daemon --files-root)`);
    return value;
  }

  private below(path: string): string[] {
    return path.split('/').slice(1 + this.parts.length);
  }

  /**
   * Opens the directory that holds `path`, from the root down, never following a symlink; checks that the
   * file is absent or a regular file. Returns the directory's fd (the caller closes it).
   */
  private openParent(path: string, what: string): number {
    const rel = this.below(path);
    const refuse = (why: string) => new InvalidArgumentError(`${what} ${JSON.stringify(path)}: ${why}`);
    // The root itself is the administrator's choice: a symlink there is followed.
    let fd = openSync(this.dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      for (const [i, part] of rel.slice(0, -1).entries()) {
        let next: number;
        try {
          next = openDirNoFollow(inDirFd(fd, part));
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          const at = `/${rel.slice(0, i + 1).join('/')} below the files root`;
          if (code === 'ENOTDIR' || code === 'ELOOP') throw refuse(`${at} is a symlink or not a directory; netd does not follow links here`);
          throw refuse(`${at}: ${code ?? (err as Error).message}`);
        }
        closeSync(fd);
        fd = next;
      }
      let st;
      try {
        st = lstatSync(inDirFd(fd, rel.at(-1)!));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw refuse((err as NodeJS.ErrnoException).code ?? (err as Error).message);
      }
      if (st && !st.isFile()) throw refuse(st.isSymbolicLink() ? 'is a symlink; netd does not write through links' : 'is not a regular file');
      return fd;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }
}
