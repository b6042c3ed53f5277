/**
 * Persisted state: one JSON file per object under the data root (`networks/ID.json`,
 * `endpoints/ID.json`, `sandboxes/ID.json`), so that an attach writes one small file however many objects
 * exist. Writes are atomic (temporary file, fsync, rename); a file that cannot be parsed is moved aside as
 * `*.corrupt` and reported, never fatal.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, openSync, writeSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';

/** `intents` is the write-ahead journal: what an operation is about to change in the kernel. */
export type Kind = 'networks' | 'endpoints' | 'sandboxes' | 'intents';
const KINDS: Kind[] = ['networks', 'endpoints', 'sandboxes', 'intents'];
const ID = /^[0-9a-f]{64}$/;

export interface LoadProblem {
  file: string;
  error: string;
}

export class Store {
  constructor(readonly root: string) {
    for (const kind of KINDS) mkdirSync(join(root, kind), { recursive: true, mode: 0o700 });
  }

  private file(kind: Kind, id: string): string {
    if (!ID.test(id)) throw new Error(`invalid object id ${JSON.stringify(id)}`);
    return join(this.root, kind, `${id}.json`);
  }

  put(kind: Kind, id: string, value: unknown): void {
    const target = this.file(kind, id);
    const tmp = `${target}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(value, null, 1));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
  }

  delete(kind: Kind, id: string): void {
    rmSync(this.file(kind, id), { force: true });
  }

  /** Every stored object of a kind; unreadable files are set aside and reported in `problems`. */
  list<T>(kind: Kind, problems: LoadProblem[] = []): T[] {
    const dir = join(this.root, kind);
    const out: T[] = [];
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (name.endsWith('.tmp')) {
        rmSync(path, { force: true }); // an interrupted write: the rename never happened
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        out.push(JSON.parse(readFileSync(path, 'utf8')) as T);
      } catch (err) {
        problems.push({ file: path, error: (err as Error).message });
        renameSync(path, `${path}.corrupt`);
      }
    }
    return out;
  }
}
