import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import fs = require('node:fs');
import { Store } from '../../src/store/store.js';
import { DataRootLock } from '../../src/store/lock.js';
import { ConflictError } from '../../src/errors.js';

const id = (c: string) => c.repeat(64);

test('store: put, list, delete; atomic files only', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netd-store-'));
  try {
    const s = new Store(dir);
    s.put('networks', id('a'), { name: 'one' });
    s.put('networks', id('b'), { name: 'two' });
    s.put('networks', id('a'), { name: 'one again' });
    assert.deepEqual(s.list('networks'), [{ name: 'one again' }, { name: 'two' }]);
    s.delete('networks', id('b'));
    assert.deepEqual(s.list('networks'), [{ name: 'one again' }]);
    assert.deepEqual(readdirSync(join(dir, 'networks')), [`${id('a')}.json`]);
    assert.throws(() => s.put('networks', '../../etc/passwd', {}), /invalid object id/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('store: a corrupt file is set aside and reported, an interrupted write is dropped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netd-store-'));
  try {
    const s = new Store(dir);
    s.put('endpoints', id('c'), { ok: true });
    writeFileSync(join(dir, 'endpoints', `${id('d')}.json`), '{"truncated": ');
    writeFileSync(join(dir, 'endpoints', `${id('e')}.json.tmp`), '{}');
    const problems: { file: string; error: string }[] = [];
    assert.deepEqual(s.list('endpoints', problems), [{ ok: true }]);
    assert.equal(problems.length, 1);
    assert.ok(existsSync(join(dir, 'endpoints', `${id('d')}.json.corrupt`)));
    assert.ok(!existsSync(join(dir, 'endpoints', `${id('e')}.json.tmp`)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lock: one holder at a time; a stale lock is taken over', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netd-lock-'));
  try {
    const lock = DataRootLock.acquire(dir);
    // Another live process holding it: simulate with our parent's pid written in the file.
    lock.release();
    writeFileSync(join(dir, 'netd.pid'), `${process.ppid}\n`);
    assert.throws(() => DataRootLock.acquire(dir), ConflictError);
    // A pid that no longer runs.
    const dead = spawnSync('true').pid!;
    writeFileSync(join(dir, 'netd.pid'), `${dead}\n`);
    const again = DataRootLock.acquire(dir);
    again.release();
    assert.ok(!existsSync(join(dir, 'netd.pid')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('store: a network record is fsync\'d, then its directory after the rename (and after a delete); volatile kinds are not', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'netd-store-'));
  try {
    const s = new Store(dir);
    // Spy on the fs calls the store makes (through the module object, as compiled CommonJS does).
    const real = { openSync: fs.openSync, fsyncSync: fs.fsyncSync, renameSync: fs.renameSync, rmSync: fs.rmSync, unlinkSync: fs.unlinkSync };
    const fds = new Map<number, string>();
    const calls: string[] = [];
    // Paths through an open directory (/proc/self/fd/N/name) are shown as that directory's path; a
    // temporary name (.NAME.PID.RANDOM.tmp) as NAME.tmp.
    const rel = (p: unknown) =>
      String(p)
        .replace(/^\/proc\/self\/fd\/(\d+)/, (_, fd: string) => fds.get(Number(fd)) ?? '?')
        .slice(dir.length + 1)
        .replace(/[0-9a-f]{64}/, 'ID')
        .replace(/\.([^/]+)\.\d+\.[0-9a-f]+\.tmp$/, '$1.tmp');
    t.mock.method(fs, 'openSync', (...a: Parameters<typeof fs.openSync>) => {
      const fd = real.openSync(...a);
      fds.set(fd, String(a[0]));
      return fd;
    });
    t.mock.method(fs, 'fsyncSync', (fd: number) => {
      calls.push(`fsync ${rel(fds.get(fd))}`);
      real.fsyncSync(fd);
    });
    t.mock.method(fs, 'renameSync', (from: string, to: string) => {
      calls.push(`rename ${rel(to)}`);
      real.renameSync(from, to);
    });
    t.mock.method(fs, 'rmSync', (p: string, o?: fs.RmOptions) => {
      calls.push(`rm ${rel(p)}`);
      real.rmSync(p, o);
    });
    // A record is removed with unlink (no lstat first): shown as rm too.
    t.mock.method(fs, 'unlinkSync', (p: string) => {
      calls.push(`rm ${rel(p)}`);
      real.unlinkSync(p);
    });
    s.put('networks', id('a'), { name: 'n' });
    assert.deepEqual(calls, ['fsync networks/ID.json.tmp', 'rename networks/ID.json', 'fsync networks']);
    calls.length = 0;
    s.delete('networks', id('a'));
    assert.deepEqual(calls, ['rm networks/ID.json', 'fsync networks']);
    calls.length = 0;
    for (const kind of ['endpoints', 'sandboxes', 'intents'] as const) {
      s.put(kind, id('b'), {});
      s.delete(kind, id('b'));
    }
    assert.deepEqual(calls, ['rename endpoints/ID.json', 'rm endpoints/ID.json', 'rename sandboxes/ID.json', 'rm sandboxes/ID.json', 'rename intents/ID.json', 'rm intents/ID.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
