/**
 * The one atomic-write helper (src/store/atomic-file.ts) and its users that must survive a power cut:
 * the instance id (instance.json) and the ULA prefix are fsync'd, file and directory; temporary names are
 * unique per write, so a leftover of a crash (or anything else at a fixed `.tmp` name) never blocks a write.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs = require('node:fs');
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tempNameFor, writeFileAtomic } from '../../src/store/atomic-file.js';
import crypto = require('node:crypto');
import { Store } from '../../src/store/store.js';
import { loadInstance } from '../../src/daemon/instance.js';
import { ULA_FILE, hostUlaPrefix } from '../../src/ipam/ula.js';

/** Records fsyncs (by the path the fd was opened at) and renames (target), in order. */
function spy(t: TestContext, dir: string): string[] {
  const real = { openSync: fs.openSync, fsyncSync: fs.fsyncSync, renameSync: fs.renameSync };
  const fds = new Map<number, string>();
  const calls: string[] = [];
  const rel = (p: string) =>
    p
      .replace(/^\/proc\/self\/fd\/(\d+)/, (_, fd: string) => fds.get(Number(fd)) ?? '?')
      .slice(dir.length)
      .replace(/\.([^/]+)\.\d+\.[0-9a-f]+\.tmp$/, '$1.tmp') || '.';
  t.mock.method(fs, 'openSync', (...a: Parameters<typeof fs.openSync>) => {
    const fd = real.openSync(...a);
    fds.set(fd, String(a[0]));
    return fd;
  });
  t.mock.method(fs, 'fsyncSync', (fd: number) => {
    calls.push(`fsync ${rel(fds.get(fd) ?? '?')}`);
    real.fsyncSync(fd);
  });
  t.mock.method(fs, 'renameSync', (from: string, to: string) => {
    calls.push(`rename ${rel(to)}`);
    real.renameSync(from, to);
  });
  return calls;
}

test('atomic file: durable fsyncs the file before the rename and the directory after; volatile does neither', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'netd-atomic-'));
  try {
    const calls = spy(t, dir);
    writeFileAtomic(join(dir, 'a'), 'one', { durable: true });
    assert.deepEqual(calls, ['fsync /a.tmp', 'rename /a', 'fsync .']);
    calls.length = 0;
    writeFileAtomic(join(dir, 'a'), 'two');
    assert.deepEqual(calls, ['rename /a']);
    assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'two');
    assert.deepEqual(readdirSync(dir), ['a'], 'no temporary file left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('atomic file: temporary names are unique per write; fixed-name leftovers and planted links do not matter', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'netd-atomic-'));
  try {
    mkdirSync(join(dir, 'a.tmp')); // what a writer with a fixed temporary name would trip on
    symlinkSync('/nonexistent-netd-target', join(dir, 'a.tmp2'));
    const temps: string[] = [];
    const realRename = fs.renameSync;
    t.mock.method(fs, 'renameSync', (from: string, to: string) => {
      temps.push(from.split('/').at(-1)!);
      realRename(from, to);
    });
    for (let i = 0; i < 5; i++) writeFileAtomic(join(dir, 'a'), `v${i}`, { durable: i % 2 === 0 });
    assert.equal(new Set(temps).size, 5, `distinct temporary names: ${temps.join(' ')}`);
    for (const name of temps) assert.match(name, new RegExp(`^\\.a\\.${process.pid}\\.[0-9a-f]+\\.tmp$`));
    assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'v4');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('instance.json and the ULA prefix are written durably (file and data-root directory fsync\'d), past a stale .tmp', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'netd-atomic-'));
  try {
    // A directory at the old fixed temporary names: a write through them fails (EISDIR).
    mkdirSync(join(dir, 'instance.json.tmp'));
    mkdirSync(join(dir, `${ULA_FILE}.tmp`));
    const calls = spy(t, dir);
    const instance = loadInstance(dir);
    assert.deepEqual(calls, ['fsync /instance.json.tmp', 'rename /instance.json', 'fsync .']);
    assert.equal(JSON.parse(readFileSync(join(dir, 'instance.json'), 'utf8')).id, instance.id);
    calls.length = 0;
    const prefix = hostUlaPrefix(dir);
    assert.deepEqual(calls, [`fsync /${ULA_FILE}.tmp`, `rename /${ULA_FILE}`, 'fsync .']);
    assert.equal(readFileSync(join(dir, ULA_FILE), 'utf8'), `${prefix}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('state writes on the attach path: a volatile write opens no directory and draws no random bytes; a delete is one unlink', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'netd-atomic-'));
  try {
    const store = new Store(dir);
    const calls: string[] = [];
    const real = { openSync: fs.openSync, rmSync: fs.rmSync, unlinkSync: fs.unlinkSync, randomBytes: crypto.randomBytes };
    t.mock.method(fs, 'openSync', (...a: Parameters<typeof fs.openSync>) => {
      if (typeof a[1] === 'number' && a[1] & fs.constants.O_DIRECTORY) calls.push('open directory');
      return real.openSync(...a);
    });
    t.mock.method(fs, 'rmSync', (...a: Parameters<typeof fs.rmSync>) => {
      calls.push('rm');
      return real.rmSync(...a);
    });
    t.mock.method(fs, 'unlinkSync', (p: string) => {
      calls.push('unlink');
      return real.unlinkSync(p);
    });
    t.mock.method(crypto, 'randomBytes', (n: number) => {
      calls.push('randomBytes');
      return real.randomBytes(n);
    });
    const id = 'e'.repeat(64);
    for (const kind of ['intents', 'endpoints', 'sandboxes'] as const) store.put(kind, id, { kind });
    for (const kind of ['intents', 'endpoints', 'sandboxes'] as const) store.delete(kind, id);
    store.delete('endpoints', id); // already gone: fine
    assert.deepEqual(calls, ['unlink', 'unlink', 'unlink', 'unlink']);
    assert.deepEqual(readdirSync(join(dir, 'endpoints')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('atomic file: a temporary name already taken (a crashed process with the same pid) is skipped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netd-atomic-'));
  try {
    // The next names this process would use, planted (one as a symlink, which must not be followed).
    const probe = tempNameFor('a');
    const next = Number.parseInt(probe.split('.')[3], 16);
    for (let i = 1; i <= 3; i++) mkdirSync(join(dir, `.a.${process.pid}.${((next + i) >>> 0).toString(16)}.tmp`));
    symlinkSync('/etc/passwd', join(dir, `.a.${process.pid}.${((next + 4) >>> 0).toString(16)}.tmp`));
    writeFileAtomic(join(dir, 'a'), 'new');
    assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'new');
    assert.equal(readdirSync(dir).length, 5, 'the planted names are left alone');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
