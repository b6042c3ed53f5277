/**
 * The daemon's instance identity: a random id made once per data root and kept in `<data-root>/instance.json`.
 * Everything netd marks as its own in the kernel (link aliases, rule comments, port-forward chains) carries
 * it, so two daemons with different data roots on one host each manage only their own objects.
 *
 * A data root that already holds state but has no id was written by a netd from before instances: its
 * objects carry the old marks (`netd:<id12>`). Such an instance adopts those marks — treats them as its own
 * and replaces them with its own — until one start has completed; a fresh data root adopts nothing, so a
 * new daemon never takes over objects of another.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../store/atomic-file.js';
import { INSTANCE_ID_RE, type InstanceIdentity } from '../firewall/marks.js';

const FILE = 'instance.json';

export interface DaemonInstance extends InstanceIdentity {
  readonly adoptLegacy: boolean;
  /** Called once a start has completed: the legacy marks are replaced; later starts adopt nothing. */
  adopted(): void;
}

export function loadInstance(dataRoot: string): DaemonInstance {
  const file = join(dataRoot, FILE);
  let stored: { id?: unknown; adoptLegacy?: unknown } | undefined;
  if (existsSync(file)) {
    try {
      stored = JSON.parse(readFileSync(file, 'utf8')) as typeof stored;
    } catch {
      stored = undefined; // rewritten below with a new id; objects of the lost one stay (harmlessly) behind
    }
  }
  const valid = typeof stored?.id === 'string' && INSTANCE_ID_RE.test(stored.id);
  const id = valid ? (stored!.id as string) : randomBytes(3).toString('hex');
  const adoptLegacy = valid ? stored!.adoptLegacy === true : hasState(dataRoot);
  if (!valid) save(file, id, adoptLegacy);
  return {
    id,
    adoptLegacy,
    adopted: () => {
      if (adoptLegacy) save(file, id, false);
    },
  };
}

/** Whether a netd ran on this data root before (it keeps a record of every network, predefined ones too). */
function hasState(dataRoot: string): boolean {
  try {
    return readdirSync(join(dataRoot, 'networks')).some((f) => f.endsWith('.json'));
  } catch {
    return false;
  }
}

function save(file: string, id: string, adoptLegacy: boolean): void {
  // Durable: a power cut must not lose the id, or the next start would draw a new one and disown its objects.
  writeFileAtomic(resolve(file), `${JSON.stringify({ id, adoptLegacy })}\n`, { mode: 0o600, durable: true });
}
