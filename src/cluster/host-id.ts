/**
 * This host's id in the cluster: 32 hex digits made once and kept in the data root, so a restarted
 * daemon is the same host (its endpoints and blocks are its own again), whatever its hostname.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../store/atomic-file.js';

export function loadHostId(dataRoot: string): string {
  const file = join(dataRoot, 'cluster-host-id');
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f]{32}$/.test(text)) return text;
  }
  const id = randomBytes(16).toString('hex');
  writeFileAtomic(file, `${id}\n`);
  return id;
}
