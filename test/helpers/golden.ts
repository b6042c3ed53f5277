/**
 * Golden files of the firewall tests (test/golden/firewall in the source tree): what netd sends to
 * iptables-restore and what iptables-save shows afterwards, kept as reviewable text. With
 * NETD_UPDATE_GOLDEN=1 a test writes the file instead of comparing (review the diff before committing).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

// dist/test/helpers -> test/golden/firewall in the source tree
export const GOLDEN_DIR = resolve(__dirname, '../../../test/golden/firewall');
const UPDATE = process.env.NETD_UPDATE_GOLDEN === '1';

/** Compares `actual` with the golden file `name` (or writes it, when updating). */
export function golden(name: string, actual: string, what = 'output'): void {
  const file = join(GOLDEN_DIR, name);
  if (UPDATE) {
    mkdirSync(GOLDEN_DIR, { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  assert.ok(existsSync(file), `golden file ${file} is missing (run with NETD_UPDATE_GOLDEN=1 and review it)`);
  assert.equal(actual, readFileSync(file, 'utf8'), `${what} differs from golden ${name}`);
}
