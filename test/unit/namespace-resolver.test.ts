import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcNamespaceResolver } from '../../src/daemon/namespace-resolver.js';
import { PENDING_NAMESPACE, type SandboxRecord } from '../../src/cnm/sandbox.js';
import { NotFoundError } from '../../src/errors.js';

function sandbox(key: string, nsId: string, ageMs: number): SandboxRecord {
  return { id: 'x'.repeat(64), name: 'c', key, nsId, created: new Date(Date.now() - ageMs).toISOString(), endpoints: [] };
}

test('a namespace path that does not exist yet (dockerd\'s SandboxKey at Join): pending when allowed, alive for a grace period, then gone; never a plain file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netd-resolver-'));
  try {
    const resolver = new ProcNamespaceResolver(join(dir, 'netns'));
    const key = join(dir, 'netns-of-container');
    assert.throws(() => resolver.resolve({ path: key }), NotFoundError, 'refused unless asked');
    const ns = resolver.resolve({ path: key }, { allowMissing: true });
    assert.deepEqual(ns, { key, nsId: PENDING_NAMESPACE + key, host: false });
    assert.throws(() => resolver.resolve({ path: 'relative/path' }, { allowMissing: true }), /must be absolute/);
    assert.throws(() => resolver.resolve({ pid: 2 ** 30 }, { allowMissing: true }), NotFoundError, 'a PID is never pending');

    assert.equal(resolver.alive(sandbox(key, ns.nsId, 1000)), true, 'still waiting for its namespace');
    assert.equal(resolver.alive(sandbox(key, ns.nsId, 120_000)), false, 'it never came: gone');
    writeFileSync(key, '');
    assert.equal(resolver.alive(sandbox(key, ns.nsId, 1000)), true, 'the empty file dockerd binds the namespace onto: still waiting');
    assert.deepEqual(resolver.resolve({ path: key }, { allowMissing: true }).nsId, PENDING_NAMESPACE + key);
    assert.throws(() => resolver.resolve({ path: key }), /not a network namespace/);
    assert.equal(resolver.alive(sandbox(key, ns.nsId, 120_000)), false, 'but not past the grace period');
    writeFileSync(key, 'x');
    assert.equal(resolver.alive(sandbox(key, ns.nsId, 1000)), false, 'a file with content is no namespace');
    assert.equal(resolver.alive(sandbox('/proc/self/ns/net', PENDING_NAMESPACE + '/proc/self/ns/net', 1000)), false, 'nor is the daemon\'s own');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
