/**
 * Persisted state: one JSON file per object under the data root (`networks/ID.json`,
 * `endpoints/ID.json`, `sandboxes/ID.json`), so that an attach writes one small file however many objects
 * exist. Writes are atomic (atomic-file.ts: temporary file, rename); a file that cannot be parsed is moved aside as
 * `*.corrupt` and reported, never fatal.
 *
 * Durability follows what the records describe. Networks outlive a reboot (their bridges are recreated
 * at start), so a network's file is fsync'd before the rename and its directory after the rename (and
 * after a delete): once create-network or rm-network has answered, a power cut can neither lose the
 * network nor bring a removed one back. Endpoints, sandboxes and the intents journal describe kernel
 * objects that live only as long as the running kernel (veths, namespaces and their bind mounts under
 * the exec root, rules): a daemon crash loses nothing the page cache holds, and a machine crash takes
 * those kernel objects with it — the containers are gone too, their endpoints are released at start, and
 * a journaled intent would have nothing left to undo. So those files are written without fsync, which
 * keeps an attach at a few system calls per file instead of two disk flushes (8-10 ms each on a
 * virtual disk, measured: more than the whole attach).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { TEMP_SUFFIX, fsyncDirectory, writeFileAtomic } from './atomic-file.js';

/** `intents` is the write-ahead journal: what an operation is about to change in the kernel. */
export type Kind = 'networks' | 'endpoints' | 'sandboxes' | 'intents';
const KINDS: Kind[] = ['networks', 'endpoints', 'sandboxes', 'intents'];
const ID = /^[0-9a-f]{64}$/;
/** The kinds whose records must survive a machine crash (see above). */
const DURABLE: ReadonlySet<Kind> = new Set<Kind>(['networks']);

export interface LoadProblem {
  file: string;
  error: string;
}

export class Store {
  constructor(readonly root: string) {
    for (const kind of KINDS) mkdirSync(join(root, kind), { recursive: true, mode: 0o700 });
    // The durable kinds' directories themselves: their names in the data root (once per start).
    fsyncDirectory(root);
  }

  private file(kind: Kind, id: string): string {
    if (!ID.test(id)) throw new Error(`invalid object id ${JSON.stringify(id)}`);
    return join(this.root, kind, `${id}.json`);
  }

  put(kind: Kind, id: string, value: unknown): void {
    writeFileAtomic(resolve(this.file(kind, id)), JSON.stringify(value, null, 1), { mode: 0o600, durable: DURABLE.has(kind) });
  }

  delete(kind: Kind, id: string): void {
    // unlink alone (rmSync would lstat first): one system call on every attach and detach.
    try {
      unlinkSync(this.file(kind, id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (DURABLE.has(kind)) fsyncDirectory(join(this.root, kind));
  }

  /**
   * Every stored object of a kind, each passed through `revive` (which turns the JSON text of values back
   * into values, and throws on what does not parse); unreadable files are set aside and reported in
   * `problems`.
   */
  list<T>(kind: Kind, problems: LoadProblem[] = [], revive: (raw: T) => T = (raw) => raw): T[] {
    const dir = join(this.root, kind);
    const out: T[] = [];
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (name.endsWith(TEMP_SUFFIX)) {
        rmSync(path, { force: true }); // an interrupted write: the rename never happened
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        out.push(revive(JSON.parse(readFileSync(path, 'utf8')) as T));
      } catch (err) {
        problems.push({ file: path, error: (err as Error).message });
        renameSync(path, `${path}.corrupt`);
      }
    }
    return out;
  }
}
