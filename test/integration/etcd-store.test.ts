/**
 * EtcdStore (src/cluster/etcd-store.ts) against a real etcd 3.4 running in a test namespace
 * (test/helpers/etcd.ts). The test process stays in the machine's namespace and talks to etcd through the
 * unix socket etcd also serves on; nothing listens in the machine's namespace.
 *
 * Faults injected: etcd paused past the lease TTL, etcd killed for 8 s and restarted on its data dir, a
 * compaction between the watch's list and its watch, and a host that stops its keepalive (as kill -9).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { EtcdStore, type Snapshot, type WatchEvent } from '../../src/cluster/etcd-store.js';
import { requireRoot, run, TestNetns } from '../helpers/netns.js';
import { etcdMissing, TestEtcd } from '../helpers/etcd.js';
import { REPO } from '../helpers/daemon.js';

requireRoot();
const missing = etcdMissing();
if (missing) throw new Error(`etcd-store tests cannot run: ${missing}`);

let ns: TestNetns;
let etcd: TestEtcd;
const stores: EtcdStore[] = [];
const logLines: string[] = [];

before(async () => {
  ns = await TestNetns.create('etcd');
  etcd = await TestEtcd.start(ns, '127.0.0.1');
});

after(async () => {
  try {
    const closed = await Promise.allSettled(stores.map((s) => s.close()));
    const failed = closed.filter((r) => r.status === 'rejected');
    assert.deepEqual(failed, [], 'a store failed to close');
  } finally {
    if (process.env.NETD_TEST_ETCD_LOG) writeFileSync(process.env.NETD_TEST_ETCD_LOG, logLines.join(''));
    await etcd?.remove();
    await ns?.destroy();
  }
});

function store(leaseTtlSeconds = 3): EtcdStore {
  const log = pino({ level: process.env.NETD_TEST_ETCD_LOG_LEVEL ?? 'info' }, { write: (line: string) => void logLines.push(line) });
  const s = new EtcdStore({ endpoints: [etcd.socketUrl], leaseTtlSeconds, log, dialTimeoutMs: 1000 });
  stores.push(s);
  return s;
}

/** Polls `cond` every 50 ms until it is true or `ms` passed; fails with `what` and the store log's tail. */
async function waitFor(what: string, ms: number, cond: () => boolean | Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await cond()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: not within ${ms} ms\n${logLines.slice(-15).join('')}\n${etcd.logs.slice(-2000)}`);
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Key → lease id (decimal) of the keys under `prefix`, read raw. */
async function leases(s: EtcdStore, prefix: string): Promise<Map<string, string>> {
  const r = await s.client.getAll().prefix(prefix).exec();
  return new Map(r.kvs.map((kv) => [kv.key.toString(), kv.lease]));
}

test('the helper: etcd answers on its URL inside its namespace', async () => {
  const script = "require('http').get(process.argv[1] + '/health', (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => console.log(b)); })";
  const r = await ns.exec(['env', '-u', 'http_proxy', '-u', 'HTTP_PROXY', 'node', '-e', script, etcd.url]);
  assert.match(r.stdout, /"health":\s*"true"/);
});

test('createIfAbsent claims every key or none', async () => {
  const s = store();
  const claim = (name: string, vni: number, id: string) =>
    s.createIfAbsent([
      { key: `/t1/network-names/${name}`, value: id },
      { key: `/t1/vni/${vni}`, value: id },
      { key: `/t1/networks/${id}`, value: JSON.stringify({ name, vni }) },
    ]);
  assert.equal(await claim('blue', 100, 'n1'), true);
  assert.equal(await claim('blue', 101, 'n2'), false, 'the name is taken');
  assert.equal(await s.get('/t1/vni/101'), undefined, 'the failed claim wrote its VNI key');
  assert.equal(await s.get('/t1/networks/n2'), undefined, 'the failed claim wrote its network record');
  assert.equal(await claim('green', 100, 'n3'), false, 'the VNI is taken');
  assert.equal(await s.get('/t1/network-names/green'), undefined, 'the failed claim wrote its name key');
  assert.equal((await s.get('/t1/network-names/blue'))?.value, 'n1');
  assert.equal((await s.list('/t1/')).kvs.length, 3);
});

test('replaceIf, deleteIf and deletePrefixWhen refuse a stale revision', async () => {
  const s = store();
  assert.equal(await s.createIfAbsent([{ key: '/t2/k', value: 'v1' }]), true);
  const r1 = (await s.get('/t2/k'))!;
  assert.equal(r1.createRevision, r1.modRevision);
  assert.equal(await s.replaceIf('/t2/k', 'v2', r1.modRevision), true);
  assert.equal(await s.replaceIf('/t2/k', 'v3', r1.modRevision), false);
  const r2 = (await s.get('/t2/k'))!;
  assert.equal(r2.value, 'v2');
  assert.ok(r2.modRevision > r1.modRevision);
  assert.equal(await s.deleteIf('/t2/k', r1.modRevision), false);
  assert.equal((await s.get('/t2/k'))?.value, 'v2');
  assert.equal(await s.deleteIf('/t2/k', r2.modRevision), true);
  assert.equal(await s.get('/t2/k'), undefined);

  await s.createIfAbsent([{ key: '/t2/net', value: 'x' }, { key: '/t2/name', value: 'n' }, { key: '/t2/blocks/a', value: '1' }, { key: '/t2/blocks/b', value: '2' }, { key: '/t2/blocksX', value: 'keep' }]);
  const guard = (await s.get('/t2/net'))!;
  await s.replaceIf('/t2/net', 'deleting', guard.modRevision);
  assert.equal(await s.deletePrefixWhen('/t2/net', guard.modRevision, ['/t2/net', '/t2/name'], ['/t2/blocks/']), false, 'stale guard');
  assert.equal((await s.list('/t2/')).kvs.length, 5, 'a refused deletePrefixWhen deleted something');
  const now = (await s.get('/t2/net'))!;
  assert.equal(await s.deletePrefixWhen('/t2/net', now.modRevision, ['/t2/net', '/t2/name'], ['/t2/blocks/']), true);
  assert.deepEqual((await s.list('/t2/')).kvs.map((kv) => kv.key), ['/t2/blocksX']);
});

test('leased keys expire within TTL + 2 s after abandon() (no revoke: as after kill -9)', async () => {
  const host = store(2);
  const peer = store();
  assert.equal(await host.leasedPut('/t3/hosts/h1', 'a'), true);
  assert.equal(await host.leasedPut('/t3/endpoints/e1', 'b'), true);
  const held = await leases(peer, '/t3/');
  assert.equal(held.size, 2);
  assert.ok([...held.values()].every((l) => l !== '0' && l === host.leaseId), 'keys are on the host lease');
  host.abandon();
  const start = Date.now();
  await delay(500);
  assert.equal((await peer.list('/t3/')).kvs.length, 2, 'abandon() revoked the lease: keys vanished at once');
  await waitFor('leased keys expired', 4000, async () => (await peer.list('/t3/')).kvs.length === 0);
  assert.ok(Date.now() - start >= 1500, `keys vanished after ${Date.now() - start} ms, before the TTL`);
});

test('lease lost while etcd is paused past the TTL: a new lease, and the keys are put again', async () => {
  const host = store(2);
  const peer = store();
  await host.leasedPut('/t4/hosts/h1', 'a');
  await host.leasedPut('/t4/endpoints/e1', 'b');
  const before = host.leaseId!;
  await etcd.pause();
  try {
    await waitFor('down while etcd is paused', 5000, () => !host.up);
    await delay(4000); // past the TTL: once resumed, etcd expires the lease
  } finally {
    await etcd.resume();
  }
  await waitFor('keys re-put on a new lease', 10_000, async () => {
    const l = await leases(peer, '/t4/');
    return l.size === 2 && [...l.values()].every((id) => id === host.leaseId && id !== before);
  });
  await delay(3000); // past the old lease's expiry: keys still on the old lease would vanish now
  const l = await leases(peer, '/t4/');
  assert.equal(l.size, 2, 'keys vanished with the old lease');
  assert.ok(host.up);
  const ttl = await peer.client.leaseClient.leaseTimeToLive({ ID: before });
  assert.equal(ttl.TTL, '-1', `the old lease still lives (TTL ${ttl.TTL})`);
});

function recorder() {
  const resyncs: Snapshot[] = [];
  const events: WatchEvent[] = [];
  return { resyncs, events, onEvents: (e: WatchEvent[]) => void events.push(...e), onResync: (snap: Snapshot) => void resyncs.push(snap) };
}

test('watch: a snapshot first, then puts and deletes with previous values', async () => {
  const s = store();
  await s.createIfAbsent([{ key: '/t5/a', value: 'old' }]);
  const rec = recorder();
  const w = s.watch('/t5/', rec);
  await waitFor('first snapshot', 5000, () => rec.resyncs.length === 1);
  assert.deepEqual(rec.resyncs[0].kvs.map((kv) => [kv.key, kv.value]), [['/t5/a', 'old']]);
  await delay(200); // let the watch be created
  await s.createIfAbsent([{ key: '/t5/b', value: 'v1' }]);
  await s.replaceIf('/t5/b', 'v2', (await s.get('/t5/b'))!.modRevision);
  await s.deleteIf('/t5/b', (await s.get('/t5/b'))!.modRevision);
  await s.createIfAbsent([{ key: '/t5x', value: 'outside the prefix' }]);
  await waitFor('three events', 5000, () => rec.events.length >= 3);
  await delay(200);
  assert.deepEqual(
    rec.events.map((e) => [e.type, e.key, e.value, e.prevValue]),
    [['put', '/t5/b', 'v1', undefined], ['put', '/t5/b', 'v2', 'v1'], ['delete', '/t5/b', undefined, 'v2']],
  );
  assert.ok(rec.events[0].modRevision > rec.resyncs[0].revision && rec.events[1].modRevision > rec.events[0].modRevision);
  assert.equal(rec.resyncs.length, 1);
  await w.stop();
});

test('compaction past the watch revision: onResync with the full snapshot, and later events still arrive', async () => {
  const s = store();
  await s.createIfAbsent([{ key: '/t6/a', value: '1' }]);
  const rec = recorder();
  // Between the watch's list and its watch (onResync runs in between), another client writes and
  // compacts past the listed revision; the watch then starts at a compacted revision.
  const writer = `
    const { Etcd3 } = require('etcd3');
    const c = new Etcd3({ hosts: [process.argv[1]], grpcOptions: { 'grpc.enable_http_proxy': 0 } });
    (async () => {
      await c.put('/t6/b').value('2');
      await c.put('/t6/a').value('1b');
      const r = await c.put('/t6/c').value('3');
      await c.delete().key('/t6/c');
      const h = await c.put('/t6/d').value('4');
      await c.kv.compact({ revision: h.header.revision, physical: true });
      console.log(h.header.revision);
      c.close();
      process.exit(0);
    })().catch((e) => { console.error(e); process.exit(1); });`;
  let compactedAt = 0n;
  const w = s.watch('/t6/', {
    onEvents: rec.onEvents,
    onResync: (snap) => {
      rec.onResync(snap);
      if (rec.resyncs.length === 1) {
        const r = spawnSync('node', ['-e', writer, etcd.socketUrl], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
        assert.equal(r.status, 0, r.stderr);
        compactedAt = BigInt(r.stdout.trim());
      }
    },
  });
  await waitFor('a resync after the compaction', 10_000, () => rec.resyncs.length >= 2);
  const snap = rec.resyncs[1];
  assert.ok(compactedAt > rec.resyncs[0].revision);
  assert.ok(snap.revision >= compactedAt);
  assert.deepEqual(snap.kvs.map((kv) => [kv.key, kv.value]), [['/t6/a', '1b'], ['/t6/b', '2'], ['/t6/d', '4']]);
  await s.createIfAbsent([{ key: '/t6/e', value: '5' }]);
  await waitFor('an event after the resync', 5000, () => rec.events.some((e) => e.key === '/t6/e'));
  assert.deepEqual(rec.events.map((e) => e.key), ['/t6/e'], 'events from before the resync were delivered');
  assert.ok(logLines.some((l) => /re-listing/.test(l) && /canceled/i.test(l)), 'the watch did not log why it re-listed');
  await w.stop();
});

test('etcd killed for 8 s: little CPU meanwhile, then up again, the watch resumes, queued and leased writes land', async (t) => {
  const s = store(3);
  const peer = store();
  const ups: string[] = [];
  s.on('up', () => ups.push('up'));
  s.on('down', () => ups.push('down'));
  await s.leasedPut('/t7/hosts/h1', 'before');
  const rec = recorder();
  const w = s.watch('/t7/', rec);
  await waitFor('watching', 5000, () => rec.resyncs.length === 1);
  await delay(300);
  assert.ok(s.up);

  await etcd.kill();
  const wall0 = Date.now();
  const cpu0 = process.cpuUsage();
  await waitFor('down', 5000, () => !s.up);
  const during = s.leasedPut('/t7/endpoints/e1', 'during');
  let landed = false;
  void during.then((ok) => (landed = ok));
  await delay(8000 - (Date.now() - wall0));
  const cpu = process.cpuUsage(cpu0);
  const wallMs = Date.now() - wall0;
  const share = (cpu.user + cpu.system) / 1000 / wallMs;
  t.diagnostic(`CPU while etcd was down: ${(share * 100).toFixed(1)} % of ${wallMs} ms`);
  assert.ok(share < 0.10, `the process used ${(share * 100).toFixed(1)} % CPU while etcd was down`);
  assert.equal(landed, false);
  assert.ok(s.pendingWrites >= 1, `${s.pendingWrites} writes pending`);

  await etcd.restart();
  await waitFor('up again', 15_000, () => s.up);
  assert.equal(await during, true);
  assert.equal(s.pendingWrites, 0);
  const l = await leases(peer, '/t7/');
  assert.deepEqual([...l.keys()].sort(), ['/t7/endpoints/e1', '/t7/hosts/h1'], 'a leased key is missing after the outage');
  assert.equal((await peer.get('/t7/endpoints/e1'))?.value, 'during');
  await waitFor('the watch re-listed after the restart', 5000, () => rec.resyncs.length >= 2);
  await delay(200); // let the new watch be created
  await peer.createIfAbsent([{ key: '/t7/after', value: 'x' }]);
  await waitFor('an event after the restart', 5000, () => rec.events.some((e) => e.key === '/t7/after'));
  assert.deepEqual(ups.slice(0, 3), ['up', 'down', 'up'], 'up/down events');
  // etcd renewed the lease on restart (a new leader extends every lease by its TTL): from here on only
  // the store's keepalive holds it. Two TTLs later the keys are still there, on the same lease.
  const lease = s.leaseId;
  await delay(7000);
  assert.deepEqual([...(await leases(peer, '/t7/')).keys()].sort(), ['/t7/after', '/t7/endpoints/e1', '/t7/hosts/h1'], 'a leased key expired after the outage');
  assert.ok([...(await leases(peer, '/t7/hosts/')).values()].every((id) => id === s.leaseId));
  assert.equal(s.leaseId, lease, 'the lease changed after the outage');
  await w.stop();
});

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all P-256, valid one day. */
async function makeCerts(dir: string): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(['openssl', 'req', '-x509', ...ec, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-days', '1', '-subj', '/CN=netd-test-ca']);
  for (const [name, usage, san] of [['server', 'serverAuth', 'subjectAltName=IP:127.0.0.1'], ['client', 'clientAuth', '']]) {
    writeFileSync(join(dir, `${name}.ext`), `${san ? `${san}\n` : ''}extendedKeyUsage=${usage}\n`);
    await run(['openssl', 'req', ...ec, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`), '-subj', `/CN=netd-test-${name}`]);
    await run(['openssl', 'x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, `${name}.pem`), '-days', '1', '-extfile', join(dir, `${name}.ext`)]);
  }
}

test('TLS: https endpoints from etcd:// with the CA and a client certificate; refused without the certificate', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'netd-etcd-tls-'));
  const tlsNs = await TestNetns.create('etcdtls');
  let tlsEtcd: TestEtcd | undefined;
  try {
    await makeCerts(dir);
    tlsEtcd = await TestEtcd.start(tlsNs, '127.0.0.1', 2379, { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem') });
    assert.equal(tlsEtcd.url, 'https://127.0.0.1:2379');
    // The client runs inside etcd's namespace (the only place its https port exists).
    const client = `
      const [repo, url, dir, withCert] = process.argv.slice(1);
      const { EtcdStore } = require(repo + '/dist/src/cluster/etcd-store.js');
      const { silentLogger } = require(repo + '/dist/src/log.js');
      const tls = { ca: dir + '/ca.pem', ...(withCert === 'yes' ? { cert: dir + '/client.pem', key: dir + '/client.key' } : {}) };
      const s = new EtcdStore({ endpoints: EtcdStore.parseUrl(url, true), tls, log: silentLogger(), dialTimeoutMs: 2000 });
      (async () => {
        try {
          const ok = await s.createIfAbsent([{ key: '/tls/k', value: withCert }]);
          console.log(JSON.stringify({ ok, value: (await s.get('/tls/k'))?.value }));
        } catch (e) {
          console.log(JSON.stringify({ error: e.constructor.name, message: e.message }));
        }
        await s.close();
      })();`;
    const attempt = async (withCert: string) => JSON.parse((await tlsNs.exec(['env', '-u', 'http_proxy', '-u', 'https_proxy', 'node', '-e', client, REPO, 'etcd://127.0.0.1:2379', dir, withCert])).stdout);
    assert.deepEqual(await attempt('yes'), { ok: true, value: 'yes' });
    const refused = await attempt('no');
    assert.equal(refused.error, 'StoreUnavailableError', JSON.stringify(refused));
    // Seen from the plain socket: only the client with a certificate wrote.
    const plain = new EtcdStore({ endpoints: [tlsEtcd.socketUrl], log: pino({ level: 'silent' }), dialTimeoutMs: 1000 });
    stores.push(plain);
    assert.equal((await plain.get('/tls/k'))?.value, 'yes');
  } finally {
    await tlsEtcd?.remove();
    await tlsNs.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('close() is idempotent and leaves no timers behind', async () => {
  const s = store();
  const w = s.watch('/t8/', recorder());
  await s.leasedPut('/t8/x', 'y');
  await Promise.all([s.close(), s.close()]);
  await w.done;
  assert.equal(await s.leasedPut('/t8/z', 'y'), false);
});
