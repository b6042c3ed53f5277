/**
 * One daemon per data root (and per exec root): a pid file created exclusively. A lock left by a process that no longer runs
 * is taken over; one held by a live process is refused.
 */
import { openSync, writeSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ConflictError } from '../errors.js';

export class DataRootLock {
  private constructor(private readonly path: string) {}

  static acquire(dataRoot: string, what = 'data root'): DataRootLock {
    const path = join(dataRoot, 'netd.pid');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o644);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return new DataRootLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
        if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
          throw new ConflictError(`another netd (pid ${holder}) is already running on ${what} ${dataRoot}`);
        }
        rmSync(path, { force: true }); // stale: its owner is gone
      }
    }
    throw new ConflictError(`could not lock ${what} ${dataRoot}`);
  }

  release(): void {
    rmSync(this.path, { force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
