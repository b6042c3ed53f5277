/**
 * The pure parts of the cluster store: `--cluster-store` URL parsing and the retry pace (backoff bounds),
 * plus the store's refusal of bad options before it talks to anyone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, Waker, sleep } from '../../src/cluster/backoff.js';
import { EtcdStore } from '../../src/cluster/etcd-store.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';

test('parseUrl: etcd:// lists, explicit schemes, default port, TLS', () => {
  assert.deepEqual(EtcdStore.parseUrl('etcd://198.51.100.100:2379'), ['http://198.51.100.100:2379']);
  assert.deepEqual(EtcdStore.parseUrl('etcd://a.example:2379,b.example:32379'), ['http://a.example:2379', 'http://b.example:32379']);
  assert.deepEqual(EtcdStore.parseUrl('etcd://[2001:db8::1]:2379,etcd1'), ['http://[2001:db8::1]:2379', 'http://etcd1:2379']);
  assert.deepEqual(EtcdStore.parseUrl('etcd://10.0.0.1:2379', true), ['https://10.0.0.1:2379']);
  assert.deepEqual(EtcdStore.parseUrl('http://10.0.0.1:2379,http://10.0.0.2:2379'), ['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
  assert.deepEqual(EtcdStore.parseUrl('https://10.0.0.1:2379'), ['https://10.0.0.1:2379']);
  assert.deepEqual(EtcdStore.parseUrl('etcd://https://10.0.0.1:2379'), ['https://10.0.0.1:2379']);
  assert.deepEqual(EtcdStore.parseUrl('etcd://h:2379/'), ['http://h:2379']);
});

test('parseUrl: anything else is an InvalidArgumentError', () => {
  const bad = [
    '', 'etcd://', 'consul://h:8500', 'zk://h:2181', 'h:2379', 'etcd://h:0', 'etcd://h:65536', 'etcd://h:99999', 'etcd://h:x',
    'etcd://h:2379,', 'etcd://,h:2379', 'etcd://h 1:2379', 'etcd://-h:2379', 'etcd://h:2379/path', 'etcd://h:2379?x=1',
    'etcd://user@h:2379', 'etcd://2001:db8::1:2379', 'http://a:1,https://b:2', 'etcd://http://h:2379,https://g:2379',
    'unix:///run/etcd.sock', 'etcd://h:2379\n', 'etcd://' + 'a'.repeat(5000),
  ];
  for (const text of bad) assert.throws(() => EtcdStore.parseUrl(text), InvalidArgumentError, JSON.stringify(text));
  assert.throws(() => EtcdStore.parseUrl('http://10.0.0.1:2379', true), InvalidArgumentError, 'plain http with TLS files');
});

test('the store refuses bad options before dialling', () => {
  const log = silentLogger();
  assert.throws(() => new EtcdStore({ endpoints: [], log }), InvalidArgumentError);
  assert.throws(() => new EtcdStore({ endpoints: ['http://192.0.2.1:2379'], leaseTtlSeconds: 0, log }), InvalidArgumentError);
  assert.throws(() => new EtcdStore({ endpoints: ['http://192.0.2.1:2379'], leaseTtlSeconds: 2.5, log }), InvalidArgumentError);
  assert.throws(() => new EtcdStore({ endpoints: ['https://192.0.2.1:2379'], tls: { ca: '/nonexistent/ca.pem' }, log }), /TLS CA \/nonexistent\/ca.pem/);
  assert.throws(() => new EtcdStore({ endpoints: ['https://192.0.2.1:2379'], tls: { cert: '/etc/hostname' }, log }), /needs its key/);
});

test('backoff: 100 ms doubling to a 5 s cap, each delay within [ceiling/2, ceiling], reset on success', () => {
  const ceilings = [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000];
  for (const r of [0, 0.5, 0.999999]) {
    const b = new Backoff({ random: () => r });
    for (const ceiling of ceilings) {
      assert.equal(b.ceilingMs, ceiling);
      const d = b.next();
      assert.ok(d >= ceiling / 2 && d <= ceiling, `delay ${d} for ceiling ${ceiling} (random ${r})`);
    }
    assert.equal(b.attempts, ceilings.length);
    b.reset();
    assert.equal(b.ceilingMs, 100);
    assert.ok(b.next() <= 100);
  }
  // Never a busy loop, whatever the random source says; and a thousand failures stay capped.
  const b = new Backoff();
  const delays = Array.from({ length: 1000 }, () => b.next());
  assert.ok(Math.min(...delays) >= 50 && Math.max(...delays) <= 5000);
  assert.ok(delays.slice(10).every((d) => d >= 2500), 'after ten failures every delay is at least half the cap');
  assert.throws(() => new Backoff({ initialMs: 0 }), RangeError);
  assert.throws(() => new Backoff({ initialMs: 200, maxMs: 100 }), RangeError);
});

test('sleep ends early on abort; a Waker ends every sleep at once', async () => {
  const ac = new AbortController();
  const t0 = Date.now();
  const s = sleep(10_000, ac.signal);
  ac.abort();
  await s;
  assert.ok(Date.now() - t0 < 1000);
  await sleep(1, ac.signal); // already aborted: at once
  const w = new Waker();
  const t1 = Date.now();
  const both = Promise.all([w.sleep(10_000), w.sleep(20_000)]);
  setTimeout(() => w.wake(), 20);
  await both;
  assert.ok(Date.now() - t1 < 1000);
});
