/**
 * Overlay networks across a cluster of three netd daemons coordinated through a real etcd
 * (test/helpers/cluster.ts: every host, the underlay switch and etcd in throwaway namespaces). Checked by
 * traffic (ping, TCP, DNS across hosts, NAT to the outside) and by the kernel's FDB and neighbour tables.
 * The scenarios run in order and share the cluster.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { requireRoot } from '../helpers/netns.js';
import { serve } from '../helpers/traffic.js';
import { OUTSIDE, TestCluster, pings, within } from '../helpers/cluster.js';

requireRoot();

const TTL_S = 3;

/** `netd networks --format json`: Docker's shape. */
interface NetworkJson {
  Id: string;
  Name: string;
  Driver: string;
  Scope: string;
}

describe('overlay networks across three hosts (etcd)', () => {
  let cl: TestCluster;
  const servers: ChildProcess[] = [];
  const cli = (i: number, args: string[], allowFail = false) => cl.hosts[i].daemon.cli(args, allowFail);
  const networksOn = async (i: number) => JSON.parse((await cli(i, ['networks', '--format', 'json'])).stdout) as NetworkJson[];
  const fdbOn = async (i: number, dev: string) => JSON.parse((await cl.hosts[i].ns.exec(['bridge', '-j', 'fdb', 'show', 'dev', dev])).stdout) as { mac: string; dst?: string }[];
  const vxlanOf = (id: string) => `vx-${id.slice(0, 12)}`;

  let netA: NetworkJson;
  let a1: Awaited<ReturnType<TestCluster['attach']>>;
  let a2: Awaited<ReturnType<TestCluster['attach']>>;
  let a3: Awaited<ReturnType<TestCluster['attach']>>;

  before(async () => {
    cl = await TestCluster.create('ov', { leaseTtl: TTL_S, outside: true });
  });

  after(async () => {
    for (const s of servers) s.kill('SIGKILL');
    if (process.env.OVERLAY_TEST_LOG) for (const [i, h] of cl?.hosts.entries() ?? []) require('node:fs').writeFileSync(`${process.env.OVERLAY_TEST_LOG}.h${i + 1}`, h.daemon.logs);
    await cl?.destroy();
  });

  test('a network created on one host appears on every host, scope global', async () => {
    await cli(0, ['create-network', '--driver', 'overlay', '--subnet', '10.240.0.0/16', 'ova']);
    for (const i of [0, 1, 2]) {
      await within(5000, `ova on host ${i + 1}`, async () => (await networksOn(i)).some((n) => n.Name === 'ova'));
    }
    const seen = await Promise.all([0, 1, 2].map(async (i) => (await networksOn(i)).find((n) => n.Name === 'ova')!));
    netA = seen[0];
    assert.equal(netA.Driver, 'overlay');
    assert.equal(netA.Scope, 'global');
    assert.ok(seen.every((n) => n.Id === netA.Id), 'one id on every host');
    const again = await cli(1, ['create-network', '--driver', 'overlay', '--subnet', '10.241.0.0/16', 'ova'], true);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already exists/);
    // The VXLAN device: learning off, port 4789, on the bridge, MTU 1450 from the underlay's 1500.
    const link = JSON.parse((await cl.hosts[1].ns.exec(['ip', '-d', '-j', 'link', 'show', vxlanOf(netA.Id)])).stdout)[0];
    assert.equal(link.linkinfo.info_kind, 'vxlan');
    assert.equal(link.linkinfo.info_data.port, 4789);
    assert.equal(link.linkinfo.info_data.learning, false);
    assert.equal(link.mtu, 1450);
  });

  test('containers on three hosts reach each other by IP (ping, TCP) with addresses from per-host blocks', async () => {
    a1 = await cl.attach(0, 'ova', 'web');
    a2 = await cl.attach(1, 'ova', 'db', ['--alias', 'database']);
    a3 = await cl.attach(2, 'ova', 'cache');
    const ips = [a1.ip, a2.ip, a3.ip];
    assert.equal(new Set(ips).size, 3, `unique addresses across the cluster: ${ips}`);
    // Each host allocates in its own /26: three hosts, three different blocks.
    assert.equal(new Set(ips.map((ip) => ip.split('.').slice(0, 3).join('.') + '.' + (Number(ip.split('.')[3]) >> 6))).size, 3, `one block per host: ${ips}`);
    await within(3000, 'h1 → h2', () => pings(a1.c, a2.ip));
    await within(3000, 'h2 → h3', () => pings(a2.c, a3.ip));
    await within(3000, 'h3 → h1', () => pings(a3.c, a1.ip));
    servers.push(await serve(['nsenter', '-t', String(a2.c.pid), '-n', 'node', '-e', "require('net').createServer((s)=>s.end('pong')).listen(8080,()=>console.log('listening'))"]));
    const tcp = await a1.c.exec(['node', '-e', `const s=require('net').connect(8080,'${a2.ip}');s.on('data',(d)=>{process.stdout.write(d)});s.on('error',(e)=>{console.error(e.code);process.exit(1)})`]);
    assert.equal(tcp.stdout, 'pong');
    // A full-size packet crosses: 1450 − 28 bytes of ICMP payload with DF set.
    assert.ok(await pings(a1.c, a2.ip, ['-M', 'do', '-s', '1422']), 'a 1450-byte packet with DF crosses the overlay');
    // No flooding entry: only the remote containers' MACs, each to its host.
    const fdb = (await fdbOn(0, vxlanOf(netA.Id))).filter((e) => e.dst);
    assert.ok(!fdb.some((e) => e.mac === '00:00:00:00:00:00'), 'no all-zeros (flood) entry');
    assert.ok(fdb.some((e) => e.dst === cl.hosts[1].ip) && fdb.some((e) => e.dst === cl.hosts[2].ip), JSON.stringify(fdb));
  });

  test('names and aliases resolve across hosts through each host\'s embedded DNS', async () => {
    const gw = '10.240.0.1';
    const dig = async (c: typeof a1, name: string) => (await c.c.exec(['dig', `@${gw}`, '+short', '+time=3', '+tries=1', name], { allowFail: true })).stdout.trim();
    await within(3000, 'db from h1', async () => (await dig(a1, 'db')) === a2.ip);
    assert.equal(await dig(a1, 'database'), a2.ip);
    assert.equal(await dig(a3, 'web'), a1.ip);
  });

  test('a container reaches the outside through its own host (NAT), and a NATed TCP connection completes', async () => {
    servers.push(await serve(['ip', 'netns', 'exec', cl.outside!.name, 'node', '-e', "require('net').createServer((s)=>s.end('out')).listen(9090,()=>console.log('listening'))"]));
    const res = await a1.c.exec(['node', '-e', `const s=require('net').connect(9090,'${OUTSIDE}');s.setTimeout(5000,()=>{console.error('timeout');process.exit(1)});s.on('data',(d)=>{process.stdout.write(d)})`]);
    assert.equal(res.stdout, 'out');
  });

  test('a published port works on the container\'s own host: from the outside, and from a container on another host through it', async () => {
    const p = await cl.attach(1, 'ova', 'pub', ['-p', '8082:8080']);
    servers.push(await serve(['nsenter', '-t', String(p.c.pid), '-n', 'node', '-e', "require('net').createServer((s)=>s.end('published')).listen(8080,()=>console.log('listening'))"]));
    const get = (c: typeof a1.c, host: string) =>
      c.exec(['node', '-e', `const s=require('net').connect(8082,'${host}');s.setTimeout(5000,()=>{console.error('timeout');process.exit(1)});s.on('data',(d)=>{process.stdout.write(d)})`], { allowFail: true });
    // From host 1's container: out through host 1's NAT, over the underlay to host 2's address, DNAT there.
    assert.equal((await get(a1.c, cl.hosts[1].ip)).stdout, 'published');
    // From host 2 itself (localhost).
    const local = await cl.hosts[1].ns.exec(['node', '-e', "const s=require('net').connect(8082,'127.0.0.1');s.setTimeout(5000,()=>{process.exit(1)});s.on('data',(d)=>{process.stdout.write(d)})"], { allowFail: true });
    assert.equal(local.stdout, 'published');
  });

  test('a second overlay network is isolated from the first', async () => {
    await cli(2, ['create-network', '--driver', 'overlay', '--subnet', '10.250.0.0/24', 'ovb']);
    await within(5000, 'ovb on host 1', async () => (await networksOn(0)).some((n) => n.Name === 'ovb'));
    const b1 = await cl.attach(0, 'ovb', 'b1');
    const b2 = await cl.attach(1, 'ovb', 'b2');
    await within(3000, 'b1 → b2', () => pings(b1.c, b2.ip));
    assert.equal(await pings(b1.c, a2.ip), false, 'ovb cannot reach ova on another host');
    assert.equal(await pings(b1.c, a1.ip), false, 'ovb cannot reach ova on the same host');
  });

  test('rm-network is refused while another host has endpoints, names them, and changes nothing', async () => {
    // Host 3 made ovb and has no endpoint on it; hosts 1 and 2 have one each.
    const res = await cli(2, ['rm-network', 'ovb'], true);
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /active endpoints on other hosts: .*192\.0\.2\.1[12].*192\.0\.2\.1[12]/);
    for (const i of [0, 1, 2]) assert.ok((await networksOn(i)).some((n) => n.Name === 'ovb'), `ovb still on host ${i + 1}`);
    // Attaching goes on: the network was not left half-removed.
    await cl.attach(2, 'ovb', 'b3');
  });

  test('a container attached on one host is reachable from another within a bounded time', async () => {
    const times: number[] = [];
    for (let k = 0; k < 3; k++) {
      const c = await cl.attach(1, 'ova', `conv${k}`);
      times.push(await within(2000, `conv${k} from h1`, () => pings(a1.c, c.ip)));
    }
    assert.ok(times.every((t) => t < 2000), `convergence: ${times}`);
  });

  test('kill -9 of a host\'s daemon and its containers: the others drop its entries and names within the TTL', async () => {
    const h3 = cl.hosts[2];
    await h3.daemon.stop('SIGKILL');
    await a3.c.stop();
    const took = await within((TTL_S + 4) * 1000, 'h3\'s entry gone from h1', async () => !(await fdbOn(0, vxlanOf(netA.Id))).some((e) => e.dst === h3.ip));
    assert.ok(took <= (TTL_S + 4) * 1000);
    const neigh = (await cl.hosts[0].ns.exec(['ip', '-j', 'neigh', 'show', 'dev', vxlanOf(netA.Id)])).stdout;
    assert.ok(!neigh.includes(`"${a3.ip}"`), `h3's container address gone from h1's neighbours: ${neigh}`);
    const status = JSON.parse((await cli(0, ['cluster', '--format', 'json'])).stdout) as { hosts: { advertise: string; alive: boolean }[] };
    assert.equal(status.hosts.find((h) => h.advertise === h3.ip)?.alive, false);
  });

  test('etcd stopped: existing traffic goes on and a local attach still works; etcd back: state converges', async () => {
    await cl.etcd.stop();
    assert.ok(await pings(a1.c, a2.ip), 'traffic across the overlay without etcd');
    const late = await cl.attach(1, 'ova', 'late');
    assert.ok(await pings(late.c, a2.ip), 'the new container reaches a local one');
    // No spinning while etcd is away (flannel#1830): the daemons' CPU over 4 s of outage.
    const cpu = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ').slice(11, 13).reduce((s, t) => s + Number(t), 0);
    const pids = [0, 1].map((i) => cl.hosts[i].daemon.pid!);
    const before = pids.map(cpu);
    await new Promise((r) => setTimeout(r, 4000));
    const used = pids.map((p, i) => (cpu(p) - before[i]) / 100); // clock ticks (USER_HZ = 100) → s
    assert.ok(used.every((s) => s < 0.4), `CPU seconds in 4 s of outage: ${used}`);
    await cl.etcd.restart();
    await within(10_000, 'late reachable from h1 after etcd returns', () => pings(a1.c, late.ip));
  });
});
