/**
 * Integration tests of the nftables backend against the real kernel, in namespaces made here (nft runs
 * through a runner that prefixes `ip netns exec NAME`): real traffic through NAT, isolation, ICC,
 * internal, published ports (outside, localhost, hairpin, ranges with an offset, UDP, IPv6); teardown
 * leaving nothing; reconcile removing strays and restoring a deleted table; two instances apart.
 *
 *   C1 192.0.2.2 2001:db8:1::2 ─┐                  ┌─ vo 198.51.100.1 2001:db8:9::1 ── O 198.51.100.2 2001:db8:9::2
 *   C3 192.0.2.3 ───────────────┴─ br-t1  H ───────┤
 *   C2 203.0.113.2 ─────────────── br-t2 ──────────┘
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { silentLogger } from '../../src/log.js';
import type { CommandRunner, Firewall } from '../../src/firewall/firewall.js';
import { createFirewall } from '../../src/firewall/factory.js';
import { spawnRunner } from '../../src/firewall/exec.js';
import { forwardSpec, networkSpec, type ForwardSpecText, type NetworkSpecText } from '../helpers/firewall-spec.js';
import { requireRoot, TestNetns } from '../helpers/netns.js';

function firewallIn(ns: TestNetns, instance?: string): { fw: Firewall; writes: () => number } {
  let writes = 0;
  const exec: CommandRunner = (argv, stdin) => {
    if (argv[0] === 'nft' && argv.includes('-f')) writes++;
    return spawnRunner(['ip', 'netns', 'exec', ns.name, ...argv], stdin);
  };
  const fw = createFirewall({ logger: silentLogger(), exec, backend: 'nftables', ...(instance ? { instance: { id: instance } } : {}) });
  return { fw, writes: () => writes };
}

async function sh(ns: TestNetns, argv: string[], allowFail = false) {
  const res = await spawnRunner(['ip', 'netns', 'exec', ns.name, ...argv]);
  if (res.code !== 0 && !allowFail) throw new Error(`${argv.join(' ')} in ${ns.name} exited ${res.code}: ${res.stderr.trim()}`);
  return res;
}

/** `nft list table` lines, sorted (element order within a line is the kernel's). */
async function tableText(ns: TestNetns, table = 'netd'): Promise<string> {
  const res = await sh(ns, ['nft', 'list', 'table', 'inet', table], true);
  return res.code === 0 ? res.stdout.split('\n').map((l) => l.trim()).filter(Boolean).sort().join('\n') : 'NO TABLE';
}

const ID = '0123456789ab' + 'cdef'.repeat(13);
const ID2 = 'fedcba987654' + '3210'.repeat(13);
const EP = 'aa'.repeat(32);
const net = (over: Partial<NetworkSpecText> = {}) =>
  networkSpec({ id: ID, bridge: 'br-t1', subnets: ['192.0.2.0/24', '2001:db8:1::/64'], internal: false, masquerade: true, icc: true, ...over });
const NET2 = networkSpec({ id: ID2, bridge: 'br-t2', subnets: ['203.0.113.0/24'], internal: false, masquerade: false, icc: true });
const fwd = (over: Partial<ForwardSpecText> = {}) =>
  forwardSpec({
    endpointId: EP,
    bridge: 'br-t1',
    containerV4: '192.0.2.2',
    containerV6: '2001:db8:1::2',
    ports: [
      { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 9080, containerPort: 80 },
      { proto: 'tcp', hostIp: '198.51.100.1', hostPort: 7000, hostPortEnd: 7002, containerPort: 6000 },
      { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8000, hostPortEnd: 8001, containerPort: 8000 },
      { proto: 'udp', hostIp: '0.0.0.0', hostPort: 5353, containerPort: 53 },
      { proto: 'tcp', hostIp: '::', hostPort: 9080, containerPort: 80 },
    ],
    ...over,
  });

// A server answering "<local port> <remote address>" on TCP and UDP ports (dual stack).
const SERVER = `const ports = process.argv.slice(1).map(Number);
for (const p of ports) {
  require('net').createServer((c) => c.end(p + ' ' + c.remoteAddress.replace(/^::ffff:/, ''))).listen(p, '::');
  const u = require('dgram').createSocket('udp6');
  u.on('message', (m, r) => u.send(p + ' ' + r.address.replace(/^::ffff:/, ''), r.port, r.address)); u.bind(p, '::');
}
setTimeout(() => console.log('ready'), 200);`;
const CLIENT = `const [proto, host, port] = process.argv.slice(1);
const done = (s) => { console.log(s); process.exit(0); };
setTimeout(() => done('TIMEOUT'), 1000);
if (proto === 'udp') { const d = require('dgram').createSocket(host.includes(':') ? 'udp6' : 'udp4');
  d.on('message', (m) => done(m.toString())); d.send('x', Number(port), host); }
else { const c = require('net').connect({ host, port: Number(port) }); let d = '';
  c.on('data', (x) => (d += x)); c.on('end', () => done(d)); c.on('error', (e) => done('ERR ' + e.code)); }`;

async function startServer(ns: TestNetns, ports: number[]): Promise<ChildProcess> {
  const child = ns.spawn([process.execPath, '-e', SERVER, ...ports.map(String)]);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`server in ${ns.name} exited ${code}`)));
  });
  return child;
}

async function probe(from: TestNetns, host: string, port: number, proto = 'tcp'): Promise<string> {
  return (await sh(from, [process.execPath, '-e', CLIENT, proto, host, String(port)])).stdout.trim();
}

interface Topology {
  H: TestNetns;
  C1: TestNetns;
  C2: TestNetns;
  C3: TestNetns;
  O: TestNetns;
}

async function withTopology(fn: (t: Topology) => Promise<void>): Promise<void> {
  const made: TestNetns[] = [];
  const servers: ChildProcess[] = [];
  try {
    const [H, C1, C2, C3, O] = await Promise.all(['nfh', 'nfc1', 'nfc2', 'nfc3', 'nfo'].map((t) => TestNetns.create(t)));
    made.push(H, C1, C2, C3, O);
    const h = (...a: string[]) => sh(H, a);
    await h('sysctl', '-qw', 'net.ipv4.ip_forward=1');
    await h('sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
    for (const [br, ...addrs] of [['br-t1', '192.0.2.1/24', '2001:db8:1::1/64'], ['br-t2', '203.0.113.1/24']]) {
      await h('ip', 'link', 'add', br, 'type', 'bridge');
      for (const a of addrs) await h('ip', 'addr', 'add', a, 'dev', br, ...(a.includes(':') ? ['nodad'] : []));
      await h('ip', 'link', 'set', br, 'up');
    }
    await h('sysctl', '-qw', 'net.ipv4.conf.br-t1.route_localnet=1');
    const plug = async (c: TestNetns, hostIf: string, br: string | undefined, addrs: string[], gws: string[]) => {
      await h('ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c.name);
      if (br) await h('ip', 'link', 'set', hostIf, 'master', br);
      await h('ip', 'link', 'set', hostIf, 'up');
      for (const a of addrs) await sh(c, ['ip', 'addr', 'add', a, 'dev', 'eth0', ...(a.includes(':') ? ['nodad'] : [])]);
      await sh(c, ['ip', 'link', 'set', 'eth0', 'up']);
      for (const gw of gws) await sh(c, ['ip', ...(gw.includes(':') ? ['-6'] : []), 'route', 'add', 'default', 'via', gw]);
    };
    await plug(C1, 'vc1', 'br-t1', ['192.0.2.2/24', '2001:db8:1::2/64'], ['192.0.2.1', '2001:db8:1::1']);
    await plug(C3, 'vc3', 'br-t1', ['192.0.2.3/24'], ['192.0.2.1']);
    await plug(C2, 'vc2', 'br-t2', ['203.0.113.2/24'], ['203.0.113.1']);
    await plug(O, 'vo', undefined, ['198.51.100.2/24', '2001:db8:9::2/64'], []);
    await h('ip', 'addr', 'add', '198.51.100.1/24', 'dev', 'vo');
    await h('ip', 'addr', 'add', '2001:db8:9::1/64', 'dev', 'vo', 'nodad');
    for (const n of ['192.0.2.0/24', '203.0.113.0/24']) await sh(O, ['ip', 'route', 'add', n, 'via', '198.51.100.1']);
    await sh(O, ['ip', '-6', 'route', 'add', '2001:db8:1::/64', 'via', '2001:db8:9::1']);
    for (const ns of [C1, C2, C3, O]) servers.push(await startServer(ns, [80, 53, 6000, 6001, 6002, 8000, 8001, 8080]));
    await fn({ H, C1, C2, C3, O });
  } finally {
    for (const s of servers) s.kill('SIGKILL');
    await Promise.all(made.map((ns) => ns.destroy()));
  }
}

test('the suite runs as root', () => requireRoot());

describe('nftables backend, real traffic', () => {
  test('NAT, isolation, ICC, internal, published ports (outside, localhost, hairpin, ranges, UDP, IPv6), teardown', async () => {
    await withTopology(async ({ H, C1, C2, C3, O }) => {
      const { fw } = firewallIn(H);
      await fw.init();
      const empty = await tableText(H);
      await fw.setupNetwork(net());
      await fw.setupNetwork(NET2);
      assert.equal(await probe(C1, '198.51.100.2', 8080), '8080 198.51.100.1', 'C1 is masqueraded to the outside');
      assert.equal(await probe(C2, '198.51.100.2', 8080), '8080 203.0.113.2', 'masquerade=false keeps the source');
      assert.equal(await probe(C1, '203.0.113.2', 8080), 'TIMEOUT', 'bridge 1 cannot reach bridge 2');
      assert.equal(await probe(C2, '192.0.2.2', 8080), 'TIMEOUT', 'bridge 2 cannot reach bridge 1');
      assert.equal(await probe(O, '192.0.2.2', 8080), 'TIMEOUT', 'the outside cannot reach a container directly');
      assert.equal(await probe(C1, '192.0.2.3', 8080), '8080 192.0.2.2', 'icc: containers on one bridge talk');

      await fw.setupPortForward(fwd());
      assert.equal(await probe(O, '198.51.100.1', 9080), '80 198.51.100.2', 'published port from outside, source kept');
      assert.equal(await probe(O, '2001:db8:9::1', 9080), '80 2001:db8:9::2', 'IPv6 published port');
      assert.equal(await probe(O, '198.51.100.1', 7001), '6001 198.51.100.2', 'range with an offset: 7001 -> 6001');
      assert.equal(await probe(O, '198.51.100.1', 8001), '8001 198.51.100.2', 'range kept whole: 8001 -> 8001');
      assert.equal(await probe(O, '198.51.100.1', 5353, 'udp'), '53 198.51.100.2', 'UDP published port');
      assert.equal(await probe(H, '127.0.0.1', 9080), '80 192.0.2.1', 'from the host on 127.0.0.1 (masqueraded to the bridge)');
      assert.equal(await probe(C3, '198.51.100.1', 9080), '80 192.0.2.1', 'hairpin: a neighbour through the host address');
      assert.equal(await probe(O, '198.51.100.1', 7005), 'ERR ECONNREFUSED', 'an unpublished port is the host\'s');

      await fw.setupNetwork(net({ icc: false }));
      assert.equal(await probe(C1, '192.0.2.3', 8080), 'TIMEOUT', 'icc=false: containers on one bridge cannot talk');
      assert.equal(await probe(C1, '198.51.100.2', 8080), '8080 198.51.100.1', 'icc=false still reaches the outside');
      assert.equal(await probe(O, '198.51.100.1', 9080), '80 198.51.100.2', 'published ports survive a network change');

      await fw.teardownPortForward(fwd());
      assert.equal(await probe(O, '198.51.100.1', 9080), 'ERR ECONNREFUSED', 'unpublished');

      await fw.setupNetwork(net({ internal: true }));
      assert.equal(await probe(C1, '198.51.100.2', 8080), 'TIMEOUT', 'internal: no way out');
      assert.equal(await probe(C1, '192.0.2.3', 8080), '8080 192.0.2.2', 'internal with icc: the subnet still talks');
      assert.equal(await probe(C2, '192.0.2.2', 8080), 'TIMEOUT', 'internal: no way in');

      await fw.teardownNetwork(net());
      await fw.teardownNetwork(NET2);
      assert.equal(await tableText(H), empty, 'teardown leaves the table as init made it');
      assert.equal(await probe(C1, '198.51.100.2', 8080), '8080 192.0.2.2', 'after teardown nothing is translated');
      assert.equal(await probe(C1, '203.0.113.2', 8080), '8080 192.0.2.2', 'after teardown nothing is blocked');
    });
  });
});

describe('nftables backend, convergence', () => {
  test('reconcile removes strays, writes nothing when all is in place, and restores a deleted table', async () => {
    const ns = await TestNetns.create('nfrec');
    try {
      const { fw, writes } = firewallIn(ns);
      await fw.reconcile([net(), NET2], [fwd()]);
      const good = await tableText(ns);
      assert.match(good, /tcp \. 9080 : 192\.0\.2\.2 \. 80/);
      const before = writes();
      await fw.reconcile([net(), NET2], [fwd()]);
      assert.equal(writes(), before, 'a reconcile with nothing to do writes nothing');

      await sh(ns, ['nft', 'add', 'element', 'inet', 'netd', 'pf4_any', '{ tcp . 1234 : 192.0.2.9 . 1 }']);
      await sh(ns, ['nft', 'add', 'chain', 'inet', 'netd', 'nw-ffffffffffff-out']);
      await sh(ns, ['nft', 'delete', 'element', 'inet', 'netd', 'fwd_out', '{ "br-t2" }']);
      await sh(ns, ['nft', 'flush', 'chain', 'inet', 'netd', 'pf']);
      await fw.reconcile([net(), NET2], [fwd()]);
      assert.equal(await tableText(ns), good, 'strays removed, what was missing put back');

      await sh(ns, ['nft', 'delete', 'table', 'inet', 'netd']);
      await fw.init();
      assert.equal(await tableText(ns), good, 'init rebuilds a deleted table with every network and published port');
      await sh(ns, ['nft', 'flush', 'ruleset']);
      await fw.setupPortForward(fwd({ ports: [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 9081, containerPort: 80 }] }));
      assert.match(await tableText(ns), /tcp \. 9081 : 192\.0\.2\.2 \. 80/, 'a publish after a flushed ruleset repairs the table');

      await fw.reconcile([], []);
      const bare = await tableText(ns);
      assert.doesNotMatch(bare, /nw-|192\.0\.2\.2/, 'reconcile with nothing wanted leaves no network and no element');
    } finally {
      await ns.destroy();
    }
  });

  test('two instances keep to their own tables', async () => {
    const ns = await TestNetns.create('nfinst');
    try {
      const a = firewallIn(ns, 'aaaaaa').fw;
      const b = firewallIn(ns, 'bbbbbb').fw;
      await a.reconcile([net()], [fwd()]);
      const ofA = await tableText(ns, 'netd-aaaaaa');
      await b.reconcile([NET2], []);
      await b.dropForwardByDefault([4]);
      await b.teardownNetwork(NET2);
      await b.reconcile([], []);
      assert.equal(await tableText(ns, 'netd-aaaaaa'), ofA, "instance b never touches instance a's table");
      assert.notEqual(await tableText(ns, 'netd-bbbbbb'), 'NO TABLE');
      assert.deepEqual(a.watchedTables, [{ family: 'inet', name: 'netd-aaaaaa' }]);
    } finally {
      await ns.destroy();
    }
  });

  test('forward drop: only what some netd instance accepts is forwarded', async () => {
    await withTopology(async ({ H, C1, C2, O }) => {
      const a = firewallIn(H, 'aaaaaa').fw;
      const b = firewallIn(H, 'bbbbbb').fw;
      await a.reconcile([net()], []);
      await b.reconcile([NET2], []);
      assert.equal(await probe(O, '203.0.113.2', 8080), 'TIMEOUT', 'nothing routes into a bridge');
      await a.dropForwardByDefault([4]);
      assert.equal(await probe(C1, '198.51.100.2', 8080), '8080 198.51.100.1', "a's own traffic passes a's drop");
      assert.equal(await probe(C2, '198.51.100.2', 8080), '8080 203.0.113.2', "b's traffic passes a's drop (b accepted it)");
      await b.reconcile([], []);
      assert.equal(await probe(C2, '198.51.100.2', 8080), 'TIMEOUT', 'what no instance accepts is dropped');
      await a.reconcile([], []);
      assert.equal(await probe(C2, '198.51.100.2', 8080), 'TIMEOUT', 'the drop is kept by every convergence');
    });
  });

  test("netd's accept bit is cleared after its forward decision: later hooks and tables never see it", async () => {
    await withTopology(async ({ H, C1, O }) => {
      const a = firewallIn(H).fw;
      await a.reconcile([net()], []);
      await a.dropForwardByDefault([4]);
      // Someone else's table counts packets carrying netd's bit between netd's accept and drop (5) and after
      // both (30), and at postrouting.
      const count = 'meta mark & 0x00200000 == 0x00200000 counter';
      for (const [chain, hook, prio] of [['mid', 'forward', '5'], ['late', 'forward', '30'], ['post', 'postrouting', '0']]) {
        await sh(H, ['nft', 'add', 'table', 'inet', 'watch']);
        await sh(H, ['nft', 'add', 'chain', 'inet', 'watch', chain, `{ type filter hook ${hook} priority ${prio}; policy accept; }`]);
        await sh(H, ['nft', 'add', 'rule', 'inet', 'watch', chain, ...count.split(' ')]);
      }
      assert.equal(await probe(C1, '198.51.100.2', 8080), '8080 198.51.100.1', 'forwarded (and masqueraded)');
      const packets = async (chain: string) => Number(/counter packets (\d+)/.exec((await sh(H, ['nft', 'list', 'chain', 'inet', 'watch', chain])).stdout)?.[1]);
      assert.ok((await packets('mid')) > 0, 'netd marks what it accepts (its drop chain relies on it)');
      assert.equal(await packets('late'), 0, 'nothing after netd\'s forward decision sees the bit');
      assert.equal(await packets('post'), 0, 'nor postrouting');
    });
  });
});
