/**
 * The embedded DNS end to end: a daemon in a throwaway "host" namespace, containers in their own
 * namespaces asking with dig, an upstream resolver (test/fixtures/dns-upstream.cjs) in the "outside"
 * namespace at 198.51.100.2, which the daemon is told to use with --dns.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { FIXTURES, TestDaemon, Topology } from '../helpers/daemon.js';

interface AttachJson {
  network: string;
  endpointId: string;
  sandboxId: string;
  ipv4: string;
  ipv6?: string;
  gateway?: string;
  dns?: { nameservers: string[]; search: string[]; options: string[] };
  files?: { resolvConf?: string; hosts?: string; problems?: string[] };
}

const ip = (cidr: string) => cidr.split('/')[0];

/** Waits for a spawned process to print its first line (the fixtures print "listening"). */
function ready(child: ChildProcess, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr?.on('data', (d) => (err += d));
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`${what} exited ${code}: ${err}`)));
  });
}

describe('embedded DNS', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  let upstream: ChildProcess;
  let upstreamLog = '';
  const children: ChildProcess[] = [];
  const containers: TestContainer[] = [];
  let dir: string;

  async function container(): Promise<TestContainer> {
    const c = await TestContainer.start();
    containers.push(c);
    return c;
  }

  async function attach(c: TestContainer, args: string[]): Promise<AttachJson> {
    return JSON.parse((await daemon.cli(['attach', String(c.pid), ...args])).stdout) as AttachJson;
  }

  /** dig from inside a container; returns its full output. */
  async function dig(c: TestContainer, server: string, args: string[]): Promise<string> {
    return (await c.exec(['dig', `@${server}`, '+time=8', '+tries=1', ...args], { allowFail: true, timeoutMs: 20_000 })).stdout;
  }

  async function digShort(c: TestContainer, server: string, args: string[]): Promise<string[]> {
    return (await dig(c, server, ['+short', ...args])).split('\n').filter((l) => l !== '' && !l.startsWith(';'));
  }

  const status = (out: string) => /status: (\w+)/.exec(out)?.[1];

  before(async () => {
    requireRoot();
    dir = mkdtempSync(join(tmpdir(), 'netd-dns-'));
    topo = await Topology.create('dns');
    upstream = topo.outside.spawn(['node', join(FIXTURES, 'dns-upstream.cjs'), Topology.OUTSIDE, '53']);
    upstream.stdout!.on('data', (d) => (upstreamLog += d));
    await ready(upstream, 'upstream resolver');
    // Files the tests name (--resolv-conf, --hosts) are under `dir`, the only place netd may write them.
    daemon = await TestDaemon.start(topo.host, ['--dns', Topology.OUTSIDE, '--files-root', dir]);
  });

  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    upstream?.kill('SIGKILL');
    for (const c of containers) await c.stop();
    // DNS_TEST_LOG=FILE keeps the daemon's log of the run, for debugging.
    if (process.env.DNS_TEST_LOG) writeFileSync(process.env.DNS_TEST_LOG, daemon?.logs ?? '');
    await daemon?.destroy();
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // Shared by the tests below, in order.
  let web: TestContainer;
  let db: TestContainer;
  let rWeb: AttachJson;
  let rDb: AttachJson;
  const GW_A = '192.0.2.1';
  const GW_B = '203.0.113.1';

  test('1. containers on a network resolve each other by name, alias and short id, over UDP and TCP', async () => {
    await daemon.cli(['create-network', 'dnsa', '--subnet', '192.0.2.0/24', '--subnet', 'fd00:dd::/64']);
    web = await container();
    db = await container();
    const resolvConf = join(dir, 'web-resolv.conf');
    rWeb = await attach(web, ['--network', 'dnsa', '--name', 'web', '--alias', 'www', '--resolv-conf', resolvConf]);
    rDb = await attach(db, ['--network', 'dnsa', '--name', 'db', '--alias', 'database', '--alias', 'shared']);
    assert.deepEqual(rWeb.dns?.nameservers, [GW_A, 'fd00:dd::1'], 'the container is told to ask the gateway');
    assert.ok(rWeb.dns?.options.includes('ndots:0'));
    assert.equal(rWeb.files?.resolvConf, resolvConf);

    assert.deepEqual(await digShort(web, GW_A, ['db']), [ip(rDb.ipv4)]);
    assert.deepEqual(await digShort(web, GW_A, ['DataBase.']), [ip(rDb.ipv4)], 'aliases, case-insensitively');
    assert.deepEqual(await digShort(db, GW_A, ['www']), [ip(rWeb.ipv4)]);
    assert.deepEqual(await digShort(db, GW_A, [rWeb.endpointId.slice(0, 12)]), [ip(rWeb.ipv4)], 'short endpoint id');
    assert.deepEqual(await digShort(web, GW_A, ['db.dnsa']), [ip(rDb.ipv4)], 'name.network');
    assert.deepEqual(await digShort(web, GW_A, ['+tcp', 'db']), [ip(rDb.ipv4)], 'over TCP');
    assert.deepEqual(await digShort(web, GW_A, ['AAAA', 'db']), [ip(rDb.ipv6!)]);
    assert.deepEqual(await digShort(web, 'fd00:dd::1', ['db']), [ip(rDb.ipv4)], 'the IPv6 gateway answers too');
    assert.deepEqual(await digShort(web, GW_A, ['-x', ip(rDb.ipv4)]), ['db.dnsa.'], 'PTR');
    const mx = await dig(web, GW_A, ['MX', 'db']);
    assert.equal(status(mx), 'NOERROR', 'a name without records of that type: no data');
    assert.match(mx, /ANSWER: 0/);
    assert.match(await dig(web, GW_A, ['db']), /flags: qr aa rd ra/, 'authoritative for its own names');
    const unknownHere = await dig(web, GW_A, ['nosuchname']);
    assert.equal(status(unknownHere), 'NXDOMAIN', 'unknown single-label names are not forwarded');
    assert.doesNotMatch(upstreamLog, /nosuchname/);

    // A shared alias answers with every container holding it.
    const other = await container();
    const rOther = await attach(other, ['--network', 'dnsa', '--name', 'db2', '--alias', 'shared']);
    assert.deepEqual((await digShort(web, GW_A, ['shared'])).sort(), [ip(rDb.ipv4), ip(rOther.ipv4)].sort());
    await daemon.cli(['detach', 'db2']);
  });

  test('2. a container connects over TCP by name, through the resolv.conf attach wrote', async () => {
    const server = spawn('nsenter', ['-t', String(db.pid), '-n', '--', 'node', join(FIXTURES, 'tcp-whoami.cjs'), '0.0.0.0', '8080'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(server);
    await ready(server, 'tcp-whoami');
    const resolvConf = join(dir, 'web-resolv.conf');
    // The container's own view: a private mount namespace with the written file as /etc/resolv.conf.
    const res = await web.exec(
      ['unshare', '-m', 'sh', '-c', `mount --bind ${resolvConf} /etc/resolv.conf && getent hosts db && node ${join(FIXTURES, 'tcp-get.cjs')} db 8080 3000`],
      { allowFail: true },
    );
    assert.equal(res.code, 0, res.stderr);
    // getaddrinfo may prefer either family: both addresses are db's (and web's).
    const [hostsLine, seen] = res.stdout.trim().split('\n');
    const [resolved, resolvedName] = hostsLine.split(/\s+/);
    assert.equal(resolvedName, 'db');
    assert.ok([ip(rDb.ipv4), ip(rDb.ipv6!)].includes(resolved), `db resolved to ${resolved}`);
    assert.ok([ip(rWeb.ipv4), ip(rWeb.ipv6!)].includes(seen), `db saw ${seen} connect`);
    server.kill('SIGKILL');
  });

  test('3. a container on another network gets NXDOMAIN for them, and REFUSED from their gateway', async () => {
    await daemon.cli(['create-network', 'dnsb', '--subnet', '203.0.113.0/24']);
    const c = await container();
    await attach(c, ['--network', 'dnsb', '--name', 'loner']);
    for (const name of ['db', 'web', 'www', 'database', 'db.dnsa']) {
      assert.equal(status(await dig(c, GW_B, [name])), 'NXDOMAIN', name);
    }
    assert.deepEqual(await digShort(web, GW_A, ['loner']), [], 'and the other way round');
    // The host routes between networks, but network A's listener serves network A only.
    assert.equal(status(await dig(c, GW_A, ['db'])), 'REFUSED');
    // A container on both networks sees both, each name with its address on that network.
    const both = await container();
    await attach(both, ['--network', 'dnsb', '--name', 'both']);
    const rBothA = await attach(both, ['--network', 'dnsa']);
    assert.deepEqual(await digShort(both, GW_B, ['db']), [ip(rDb.ipv4)]);
    assert.deepEqual(await digShort(both, GW_B, ['loner']).then((l) => l.length), 1);
    assert.deepEqual(await digShort(web, GW_A, ['both']), [ip(rBothA.ipv4)]);
  });

  test('4. a detached container’s name disappears at once', async () => {
    assert.deepEqual(await digShort(web, GW_A, ['database']), [ip(rDb.ipv4)]);
    await daemon.cli(['detach', 'db', '--network', 'dnsa']);
    assert.equal(status(await dig(web, GW_A, ['db'])), 'NXDOMAIN');
    assert.equal(status(await dig(web, GW_A, ['database'])), 'NXDOMAIN');
    assert.equal(status(await dig(web, GW_A, ['-x', ip(rDb.ipv4)])), 'NXDOMAIN', 'its reverse name too');
    rDb = await attach(db, ['--network', 'dnsa', '--name', 'db', '--alias', 'database']);
    assert.deepEqual(await digShort(web, GW_A, ['db']), [ip(rDb.ipv4)], 'and comes back with the container');
  });

  test('5. other names are forwarded to the upstream (--dns) and the answer comes back', async () => {
    upstreamLog = '';
    assert.deepEqual(await digShort(web, GW_A, ['www.fwd.example']), ['203.0.113.99']);
    assert.match(upstreamLog, new RegExp(`^udp www\\.fwd\\.example A ${Topology.HOST_EXT.replace(/\./g, '\\.')}$`, 'm'), 'asked from the host, by netd');
    assert.equal(status(await dig(web, GW_A, ['no.such.domain'])), 'NXDOMAIN', 'upstream NXDOMAIN relayed');
    // A truncated UDP answer: dig retries over TCP, and netd fetches the full answer over TCP.
    const big = await digShort(web, GW_A, ['big.example']);
    assert.equal(big.length, 40);
    assert.match(upstreamLog, /^tcp big\.example A /m, 'netd fell back to TCP upstream');
    const tc = await dig(web, GW_A, ['+ignore', '+noedns', 'big.example']);
    assert.match(tc, /flags: qr tc/, 'over UDP the client is told to retry over TCP');
  });

  test('6. an upstream that never answers gives SERVFAIL within the timeout', async () => {
    const started = Date.now();
    const out = await dig(web, GW_A, ['+time=10', 'x.silent.example']);
    const elapsed = Date.now() - started;
    assert.equal(status(out), 'SERVFAIL');
    assert.ok(elapsed < 6500, `SERVFAIL after ${elapsed} ms`);
    assert.ok(elapsed >= 3000, `not before the deadline (${elapsed} ms)`);
  });

  test('7. garbage, oversized packets and a flood: the daemon answers throughout, its API too', async (t) => {
    const abuse = web.exec(['node', join(FIXTURES, 'dns-abuse.cjs'), GW_A, '53', '4', 'db'], { timeoutMs: 60_000 });
    const latencies: number[] = [];
    const stopAt = Date.now() + 4000;
    while (Date.now() < stopAt) {
      const t = Date.now();
      await daemon.client.call('GET', '/networks');
      latencies.push(Date.now() - t);
      await new Promise((r) => setTimeout(r, 100));
    }
    const result = JSON.parse((await abuse).stdout) as { garbageReplies: number; sent: number; answered: number };
    t.diagnostic(`flood: ${JSON.stringify(result)}; API latency max ${Math.max(...latencies)} ms over ${latencies.length} calls`);
    assert.ok(Math.max(...latencies) < 2000, `API latency during the flood: max ${Math.max(...latencies)} ms`);
    assert.ok(result.answered > 0, `answered ${result.answered} of ${result.sent}`);
    assert.deepEqual(await digShort(web, GW_A, ['db']), [ip(rDb.ipv4)], 'still answering');
    assert.deepEqual(await digShort(web, GW_A, ['+tcp', 'db']), [ip(rDb.ipv4)], 'still answering over TCP');
    assert.ok((await daemon.cli(['networks'])).stdout.includes('dnsa'));
  });

  test('8. attach writes resolv.conf and hosts files, with links', async () => {
    const c = await container();
    const resolvConf = join(dir, 'app-resolv.conf');
    const hosts = join(dir, 'app-hosts');
    writeFileSync(hosts, 'old content\n');
    const r = await attach(c, ['--network', 'dnsa', '--name', 'app', '--resolv-conf', resolvConf, '--hosts', hosts, '--link', 'db:sql', '--link', 'web']);
    assert.deepEqual(r.files, { resolvConf, hosts });
    const conf = readFileSync(resolvConf, 'utf8');
    assert.match(conf, /^nameserver 192\.0\.2\.1$/m);
    assert.match(conf, /^nameserver fd00:dd::1$/m);
    assert.match(conf, /^options (.* )?ndots:0$/m);
    const lines = readFileSync(hosts, 'utf8').split('\n');
    assert.ok(lines.includes('127.0.0.1\tlocalhost'));
    assert.ok(lines.includes('::1\tlocalhost ip6-localhost ip6-loopback'));
    assert.ok(lines.includes(`${ip(r.ipv4)}\tapp`), 'its own name');
    assert.ok(lines.includes(`${ip(rDb.ipv4)}\tsql db`), 'link with alias');
    assert.ok(lines.includes(`${ip(rWeb.ipv4)}\tweb`), 'link without alias');
    assert.ok(!lines.includes('old content'));

    // A link to nobody: refused before anything is attached (issue 11; it used to attach and then fail).
    const d = await container();
    const bad = await daemon.cli(['attach', String(d.pid), '--network', 'dnsa', '--hosts', join(dir, 'bad-hosts'), '--link', 'ghost'], true);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no container named ghost on network dnsa/);
    assert.throws(() => readFileSync(join(dir, 'bad-hosts')), 'no half-written hosts file');
    assert.deepEqual((await d.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname), ['lo'], 'not attached');
  });

  test('9. the default bridge network forwards but resolves no names; containers get the upstreams', async () => {
    const a = await container();
    const b = await container();
    const ra = await attach(a, ['--name', 'plain-a']);
    await attach(b, ['--name', 'plain-b']);
    assert.deepEqual(ra.dns?.nameservers, [Topology.OUTSIDE], 'as Docker: the upstream servers themselves');
    assert.ok(!ra.dns?.options.includes('ndots:0'));
    upstreamLog = '';
    assert.equal(status(await dig(a, ra.gateway!, ['plain-b'])), 'NXDOMAIN', 'no container names on the default bridge');
    assert.match(upstreamLog, /plain-b/, 'the name went upstream');
    assert.deepEqual(await digShort(a, ra.gateway!, ['x.fwd.example']), ['203.0.113.99'], 'the gateway forwards');
  });

  test('10. when port 53 is taken the daemon goes on and containers get the upstreams', async () => {
    await topo.host.exec(['sysctl', '-qw', 'net.ipv4.ip_nonlocal_bind=1']);
    const holder = topo.host.spawn(['node', '-e', "require('dgram').createSocket('udp4').bind(53, '198.18.5.1', () => console.log('bound'))"]);
    children.push(holder);
    await ready(holder, 'port holder');
    await daemon.cli(['create-network', 'busy', '--subnet', '198.18.5.0/24', '--gateway', '198.18.5.1']);
    const c = await container();
    const r = await attach(c, ['--network', 'busy']);
    assert.deepEqual(r.dns?.nameservers, [Topology.OUTSIDE]);
    assert.match(daemon.logs, /DNS listener could not start/);
    assert.ok((await daemon.cli(['networks'])).stdout.includes('busy'));
    holder.kill('SIGKILL');
  });

  test('11. listeners stop with their network; a restarted daemon serves names again', async () => {
    await daemon.restart();
    assert.deepEqual(await digShort(web, GW_A, ['db']), [ip(rDb.ipv4)], 'names restored from state');
    const c = await container();
    await daemon.cli(['create-network', 'gone', '--subnet', '198.18.7.0/24']);
    await attach(c, ['--network', 'gone', '--name', 'tmp']);
    assert.deepEqual((await digShort(c, '198.18.7.1', ['tmp'])).length, 1);
    await daemon.cli(['detach', 'tmp']);
    await daemon.cli(['rm-network', 'gone']);
    const ss = (await topo.host.exec(['ss', '-Hlnu', 'sport', '=', ':53'])).stdout;
    assert.doesNotMatch(ss, /198\.18\.7\.1/, 'no listener left behind');
    assert.match(ss, /192\.0\.2\.1/);
  });
});
