/**
 * Integration tests of the iptables backend against the real kernel. Every test works in fresh network
 * namespaces it creates (TestNetns) and runs iptables only through a runner that prefixes
 * `ip netns exec NAME`: nothing here touches the namespace the test process runs in.
 *
 * The states after init and after each option combination are pinned in test/golden/firewall/*.save
 * (regenerate with NETD_UPDATE_GOLDEN=1, then review by eye); the unit tests start from them.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CommandError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import type { CommandRunner, Firewall, NetworkFirewallSpec } from '../../src/firewall/firewall.js';
import { createFirewall } from '../../src/firewall/factory.js';
import { networkSpec, type NetworkSpecText } from '../helpers/firewall-spec.js';
import { Prefix } from '../../src/net/index.js';
import { normalizeSave } from '../../src/firewall/iptables-save.js';
import { spawnRunner } from '../../src/firewall/exec.js';
import { requireRoot, TestNetns } from '../helpers/netns.js';
import { GOLDEN_DIR, golden } from '../helpers/golden.js';

interface Recorded {
  argv: string[];
  stdin?: string;
}

/** A firewall whose commands run inside `ns`; `calls` records them (without the netns prefix). */
function firewallIn(ns: TestNetns, opts: { wrap?: (next: CommandRunner) => CommandRunner; prefix?: string[] } = {}) {
  const calls: Recorded[] = [];
  const prefix = opts.prefix ?? ['ip', 'netns', 'exec', ns.name];
  const base: CommandRunner = (argv, stdin) => spawnRunner([...prefix, ...argv], stdin);
  const wrapped = opts.wrap ? opts.wrap(base) : base;
  const exec: CommandRunner = (argv, stdin) => {
    calls.push({ argv, stdin });
    return wrapped(argv, stdin);
  };
  const fw = createFirewall({ logger: silentLogger(), exec });
  const restores = () => calls.filter((c) => c.argv[0].endsWith('-restore')).length;
  return { fw, calls, restores };
}

/**
 * Runs a command inside `ns`. (spawnRunner rather than the helper's run(): a command that exits without
 * reading its stdin must not surface as an uncaught EPIPE.)
 */
async function sh(ns: TestNetns, argv: string[], opts: { input?: string; allowFail?: boolean } = {}) {
  const res = await spawnRunner(['ip', 'netns', 'exec', ns.name, ...argv], opts.input);
  if (res.code !== 0 && !opts.allowFail) throw new Error(`${argv.join(' ')} in ${ns.name} exited ${res.code}: ${res.stderr.trim()}`);
  return res;
}

/** Both families' iptables-save, normalised (no '#' lines, counters zeroed), in the golden format. */
async function saveState(ns: TestNetns): Promise<string> {
  const v4 = normalizeSave((await sh(ns, ['iptables-save'])).stdout);
  const v6 = normalizeSave((await sh(ns, ['ip6tables-save'])).stdout);
  return `# iptables-save\n${v4 ? v4 + '\n' : ''}# ip6tables-save\n${v6 ? v6 + '\n' : ''}`;
}

async function inNetns<T>(tag: string, fn: (ns: TestNetns) => Promise<T>): Promise<T> {
  const ns = await TestNetns.create(tag);
  try {
    return await fn(ns);
  } finally {
    await ns.destroy();
  }
}

async function restoreIn(ns: TestNetns, family: 4 | 6, text: string) {
  return sh(ns, [family === 4 ? 'iptables-restore' : 'ip6tables-restore', '-w', '--noflush'], { input: text, allowFail: true });
}

const ID = '0123456789ab' + 'cdef'.repeat(13);
const ID2 = 'fedcba987654' + '3210'.repeat(13);

function spec(over: Partial<NetworkSpecText> = {}): NetworkFirewallSpec {
  return networkSpec({ id: ID, bridge: 'br-0123456789ab', subnets: ['192.0.2.0/24'], internal: false, masquerade: true, icc: true, ...over });
}
const OTHER = spec({ id: ID2, bridge: 'br-fedcba987654', subnets: ['203.0.113.0/24', '2001:db8:2::/64'] });

/** Same table as the unit tests: each pinned by `<name>.save`. */
const COMBOS: Record<string, NetworkFirewallSpec> = {
  plain: spec(),
  internal: spec({ internal: true }),
  'internal-noicc': spec({ internal: true, icc: false }),
  noicc: spec({ icc: false }),
  nomasq: spec({ masquerade: false }),
  v6: spec({ subnets: ['2001:db8:1::/64'] }),
  dual: spec({ subnets: ['192.0.2.0/24', '2001:db8:1::/64'] }),
  'dual-internal': spec({ subnets: ['192.0.2.0/24', '2001:db8:1::/64'], internal: true }),
};

// Not a before() hook: a failing hook reports its tests as "cancelled"; this way each test fails, loudly.
test('the suite runs as root', () => requireRoot());

describe('firewall on a real kernel (iptables-nft, in a test netns)', () => {
  test('init twice leaves one copy of everything', async () => {
    await inNetns('fwinit', async (ns) => {
      const { fw, restores } = firewallIn(ns);
      await fw.init();
      const once = await saveState(ns);
      golden('init.save', once, 'iptables-save');
      await fw.init();
      assert.equal(restores(), 2, 'the second init must not write (one restore per family for the first)');
      assert.equal(await saveState(ns), once);
    });
  });

  for (const [name, n] of Object.entries(COMBOS)) {
    test(`${name}: setup twice = once, teardown restores the exact previous state`, async () => {
      await inNetns(`fw${name}`, async (ns) => {
        const { fw, restores } = firewallIn(ns);
        await fw.init();
        const before = await saveState(ns);
        await fw.setupNetwork(n);
        const afterSetup = await saveState(ns);
        golden(`${name}.save`, afterSetup, 'iptables-save');

        const writes = restores();
        await fw.setupNetwork(n);
        assert.equal(restores(), writes, 'a second setup must not write');
        assert.equal(await saveState(ns), afterSetup);

        await fw.teardownNetwork(n);
        assert.equal(await saveState(ns), before, 'teardown must restore the state before setup exactly');
        const writes2 = restores();
        await fw.teardownNetwork(n);
        assert.equal(restores(), writes2, 'tearing down again finds nothing to do');
      });
    });
  }

  test("NETD-USER's contents and foreign rules survive init, setup, teardown and reconcile", async () => {
    await inNetns('fwuser', async (ns) => {
      // The administrator was here first: NETD-USER exists with rules (one even tagged like netd's).
      const user = '*filter\n:NETD-USER - [0:0]\n-A NETD-USER -s 203.0.113.7/32 -j DROP\n' +
        '-A NETD-USER -m comment --comment netd -j RETURN\n-A FORWARD -i eth9 -j ACCEPT\nCOMMIT\n';
      assert.equal((await restoreIn(ns, 4, user)).code, 0);
      const userRules = async () => (await saveState(ns)).split('\n').filter((l) => l.startsWith('-A NETD-USER')).join('\n');
      const expected = '-A NETD-USER -s 203.0.113.7/32 -j DROP\n-A NETD-USER -m comment --comment netd -j RETURN';

      const { fw } = firewallIn(ns);
      await fw.init();
      assert.equal(await userRules(), expected);
      const forward = (await saveState(ns)).split('\n').filter((l) => l.startsWith('-A FORWARD')).slice(0, 3);
      assert.deepEqual(forward, [
        '-A FORWARD -m comment --comment netd -j NETD-USER',
        '-A FORWARD -m comment --comment netd -j NETD-FORWARD',
        '-A FORWARD -i eth9 -j ACCEPT',
      ]);
      for (const step of [
        () => fw.setupNetwork(spec()),
        () => fw.init(),
        () => fw.reconcile([spec()]),
        () => fw.teardownNetwork(spec()),
        () => fw.reconcile([]),
      ]) {
        await step();
        assert.equal(await userRules(), expected);
        assert.ok((await saveState(ns)).includes('-A FORWARD -i eth9 -j ACCEPT'));
      }
    });
  });

  test('reconcile after `iptables -t nat -F` restores everything', async () => {
    await inNetns('fwnatf', async (ns) => {
      const { fw } = firewallIn(ns);
      await fw.init();
      await fw.setupNetwork(COMBOS.dual);
      await fw.setupNetwork(OTHER);
      const want = await saveState(ns);
      await sh(ns, ['iptables', '-t', 'nat', '-F']);
      await sh(ns, ['ip6tables', '-t', 'nat', '-F']);
      assert.notEqual(await saveState(ns), want);
      await fw.reconcile([COMBOS.dual, OTHER]);
      assert.equal(await saveState(ns), want);
    });
  });

  test('reconcile after `iptables -F FORWARD` puts the jumps back on top', async () => {
    await inNetns('fwfwdf', async (ns) => {
      const { fw } = firewallIn(ns);
      await fw.init();
      await fw.setupNetwork(COMBOS.dual);
      const want = await saveState(ns);
      await sh(ns, ['iptables', '-F', 'FORWARD']);
      await sh(ns, ['ip6tables', '-F', 'FORWARD']);
      await sh(ns, ['iptables', '-A', 'FORWARD', '-i', 'eth9', '-j', 'ACCEPT']); // someone else's rule, now first
      await fw.reconcile([COMBOS.dual]);
      const got = await saveState(ns);
      const withForeign = want.replace(
        '-A FORWARD -m comment --comment netd -j NETD-FORWARD\n',
        '-A FORWARD -m comment --comment netd -j NETD-FORWARD\n-A FORWARD -i eth9 -j ACCEPT\n',
      );
      assert.equal(got, withForeign);
    });
  });

  test('reconcile after every table was flushed and every chain deleted restores everything', async () => {
    await inNetns('fwflush', async (ns) => {
      const { fw } = firewallIn(ns);
      await fw.init();
      await fw.setupNetwork(COMBOS.dual);
      await fw.setupNetwork(OTHER);
      const want = await saveState(ns);
      for (const cmd of ['iptables', 'ip6tables']) {
        for (const table of ['filter', 'nat']) {
          await sh(ns, [cmd, '-t', table, '-F']);
          await sh(ns, [cmd, '-t', table, '-X']);
        }
      }
      await fw.reconcile([COMBOS.dual, OTHER]);
      assert.equal(await saveState(ns), want);
    });
  });

  test('reconcile removes the rules of networks not in the list, and duplicates left by a crash', async () => {
    await inNetns('fwstale', async (ns) => {
      const { fw } = firewallIn(ns);
      await fw.init();
      await fw.setupNetwork(COMBOS.plain);
      await fw.setupNetwork(OTHER);
      // Duplicates of netd rules, as an interrupted older run could leave them.
      const dup = '-m comment --comment netd:0123456789ab';
      await sh(ns, ['iptables', '-A', 'NETD-FORWARD', '-i', 'br-0123456789ab', ...dup.split(' '), '-j', 'ACCEPT']);
      for (let i = 0; i < 2; i++) {
        await sh(ns, ['iptables', '-t', 'nat', '-A', 'NETD-POSTROUTING', '-s', '192.0.2.0/24', '!', '-o', 'br-0123456789ab', ...dup.split(' '), '-j', 'MASQUERADE']);
      }
      await fw.reconcile([COMBOS.plain]);
      // Exactly the rules of "plain" alone. (Order aside: reconcile keeps the last copy of a duplicate,
      // which may stand after rules that setup put after the first.)
      const sorted = (text: string) => text.split('\n').sort().join('\n');
      assert.equal(sorted(await saveState(ns)), sorted(readFileSync(join(GOLDEN_DIR, 'plain.save'), 'utf8')));
    });
  });

  test('setup converges a changed spec: stale rules of the same network go, new ones come', async () => {
    await inNetns('fwchange', async (ns) => {
      const { fw } = firewallIn(ns);
      await fw.init();
      await fw.setupNetwork(COMBOS.plain);
      await fw.setupNetwork(COMBOS.noicc);
      golden('noicc.save', await saveState(ns), 'iptables-save');
    });
  });
});

describe('atomicity', () => {
  test('a batch with one bad line applies nothing', async () => {
    await inNetns('fwbad', async (ns) => {
      const { fw } = firewallIn(ns);
      await fw.init();
      const before = await saveState(ns);
      const bad = '*filter\n-A NETD-FORWARD -i br-x -j ACCEPT\n-A NETD-FORWARD -i br-y -j NO-SUCH-CHAIN\nCOMMIT\n';
      const res = await restoreIn(ns, 4, bad);
      assert.notEqual(res.code, 0);
      assert.equal(await saveState(ns), before);
    });
  });

  test('a table that fails after another committed: the operation is reverted as a whole', async () => {
    await inNetns('fwrace', async (ns) => {
      const masq = ['-s', '192.0.2.0/24', '!', '-o', 'br-0123456789ab', '-m', 'comment', '--comment', 'netd:0123456789ab', '-j', 'MASQUERADE'];
      // Between teardown's read and its write, someone removes the MASQUERADE rule: the nat section's -D fails
      // after the filter section has been committed.
      const { fw } = firewallIn(ns, {
        wrap: (next) => async (argv, stdin) => {
          if (argv[0] === 'iptables-restore' && stdin?.includes('-D NETD-POSTROUTING')) {
            await sh(ns, ['iptables', '-t', 'nat', '-D', 'NETD-POSTROUTING', ...masq]);
          }
          return next(argv, stdin);
        },
      });
      await fw.init();
      await fw.setupNetwork(COMBOS.plain);
      const before = await saveState(ns);
      const err = await fw.teardownNetwork(COMBOS.plain).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof CommandError, `expected CommandError, got ${String(err)}`);
      assert.match(err.stderr, /line \d+ failed/);
      // Filter rules are back where they were; only the rule removed behind netd's back is gone.
      const masqLine = before.split('\n').find((l) => l.startsWith('-A NETD-POSTROUTING'));
      assert.ok(masqLine);
      assert.equal(await saveState(ns), before.replace(masqLine + '\n', ''));
    });
  });

  test('IPv6 failing after IPv4 was applied: IPv4 is reverted too', async () => {
    await inNetns('fwfam', async (ns) => {
      // Sabotage ip6tables just before netd writes to it (once): its NETD-POSTROUTING chain disappears.
      let sabotaged = false;
      const { fw } = firewallIn(ns, {
        wrap: (next) => async (argv, stdin) => {
          if (!sabotaged && argv[0] === 'ip6tables-restore' && stdin?.includes('-A NETD-POSTROUTING')) {
            sabotaged = true;
            await sh(ns, ['ip6tables', '-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'netd', '-j', 'NETD-POSTROUTING']);
            await sh(ns, ['ip6tables', '-t', 'nat', '-X', 'NETD-POSTROUTING']);
          }
          return next(argv, stdin);
        },
      });
      await fw.init();
      const before = await saveState(ns);
      await assert.rejects(fw.setupNetwork(COMBOS.dual), CommandError);
      const [v4Before, v6Before] = before.split('# ip6tables-save\n');
      const [v4After, v6After] = (await saveState(ns)).split('# ip6tables-save\n');
      assert.equal(v4After, v4Before, 'IPv4 must be reverted');
      const v6Expected = v6Before
        .replace(':NETD-POSTROUTING - [0:0]\n', '')
        .replace('-A POSTROUTING -m comment --comment netd -j NETD-POSTROUTING\n', '');
      assert.equal(v6After, v6Expected, 'IPv6 filter (committed before nat failed) must be reverted');
      // And reconcile repairs the sabotage.
      await fw.reconcile([COMBOS.dual]);
      golden('dual.save', await saveState(ns), 'iptables-save');
    });
  });
});

// ------------------------------------------------------------------------------------------------------
// Real traffic: containers behind two bridges and an "outside" host, all in namespaces made here.
//
//   C1 192.0.2.2 ─┐                      ┌─ vo 198.51.100.1 ── O 198.51.100.2 (routes back to both subnets)
//   C3 192.0.2.3 ─┴─ br-t1 192.0.2.1  H ─┤
//   C2 203.0.113.2 ── br-t2 203.0.113.1 ─┘   (H: ip_forward=1; bridged traffic goes through iptables)
// ------------------------------------------------------------------------------------------------------

const SERVER = "require('net').createServer((c) => c.end(c.remoteAddress)).listen(8080, '0.0.0.0', () => console.log('ready'));";
const CLIENT = `const [host, port] = process.argv.slice(1);
const c = require('net').connect({ host, port: Number(port), timeout: 1000 });
let d = ''; c.on('data', (x) => (d += x)); c.on('end', () => { console.log(d); process.exit(0); });
c.on('timeout', () => { console.log('TIMEOUT'); process.exit(0); });
c.on('error', (e) => { console.log('ERR ' + e.code); process.exit(0); });`;

async function startServer(ns: TestNetns): Promise<ChildProcess> {
  const child = ns.spawn([process.execPath, '-e', SERVER]);
  await new Promise<void>((resolveReady, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolveReady();
    });
    child.on('exit', (code) => reject(new Error(`server in ${ns.name} exited ${code}`)));
  });
  return child;
}

/** What the server at host:8080 saw as our address, or TIMEOUT / ERR code. */
async function probe(from: TestNetns, host: string): Promise<string> {
  return (await sh(from, [process.execPath, '-e', CLIENT, host, '8080'])).stdout.trim();
}

describe('real traffic', () => {
  test('MASQUERADE, isolation between bridges, icc=false and internal, as seen by real TCP connections', async () => {
    const made: TestNetns[] = [];
    const servers: ChildProcess[] = [];
    try {
      const [H, C1, C2, C3, O] = await Promise.all(['fwh', 'fwc1', 'fwc2', 'fwc3', 'fwout'].map((t) => TestNetns.create(t)));
      made.push(H, C1, C2, C3, O);
      const h = (...a: string[]) => sh(H, a);
      await h('sysctl', '-qw', 'net.ipv4.ip_forward=1');
      for (const [br, addr] of [['br-t1', '192.0.2.1/24'], ['br-t2', '203.0.113.1/24']]) {
        await h('ip', 'link', 'add', br, 'type', 'bridge');
        await h('ip', 'addr', 'add', addr, 'dev', br);
        await h('ip', 'link', 'set', br, 'up');
      }
      const plug = async (c: TestNetns, hostIf: string, br: string | undefined, addr: string, gw: string) => {
        await h('ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c.name);
        if (br) await h('ip', 'link', 'set', hostIf, 'master', br);
        await h('ip', 'link', 'set', hostIf, 'up');
        await sh(c, ['ip', 'addr', 'add', addr, 'dev', 'eth0']);
        await sh(c, ['ip', 'link', 'set', 'eth0', 'up']);
        if (gw) await sh(c, ['ip', 'route', 'add', 'default', 'via', gw]);
      };
      await plug(C1, 'vc1', 'br-t1', '192.0.2.2/24', '192.0.2.1');
      await plug(C3, 'vc3', 'br-t1', '192.0.2.3/24', '192.0.2.1');
      await plug(C2, 'vc2', 'br-t2', '203.0.113.2/24', '203.0.113.1');
      await plug(O, 'vo', undefined, '198.51.100.2/24', '');
      await h('ip', 'addr', 'add', '198.51.100.1/24', 'dev', 'vo');
      for (const net of ['192.0.2.0/24', '203.0.113.0/24']) await sh(O, ['ip', 'route', 'add', net, 'via', '198.51.100.1']);
      for (const ns of [O, C1, C2, C3]) servers.push(await startServer(ns));

      const net1 = spec({ bridge: 'br-t1' });
      const net2 = spec({ id: ID2, bridge: 'br-t2', subnets: ['203.0.113.0/24'], masquerade: false });

      // Baseline without netd: everything routes, nothing is translated.
      assert.equal(await probe(C1, '198.51.100.2'), '192.0.2.2');
      assert.equal(await probe(C1, '203.0.113.2'), '192.0.2.2');

      const { fw } = firewallIn(H);
      await fw.init();
      await fw.setupNetwork(net1);
      await fw.setupNetwork(net2);
      assert.equal(await probe(C1, '198.51.100.2'), '198.51.100.1', 'C1 is masqueraded to the outside');
      assert.equal(await probe(C2, '198.51.100.2'), '203.0.113.2', 'masquerade=false keeps the source');
      assert.equal(await probe(C1, '203.0.113.2'), 'TIMEOUT', 'bridge 1 cannot reach bridge 2');
      assert.equal(await probe(C2, '192.0.2.2'), 'TIMEOUT', 'bridge 2 cannot reach bridge 1');
      assert.equal(await probe(O, '192.0.2.2'), 'TIMEOUT', 'the outside cannot reach a container (nothing published)');
      assert.equal(await probe(C1, '192.0.2.3'), '192.0.2.2', 'icc=true: containers on one bridge talk');

      await fw.setupNetwork({ ...net1, icc: false });
      assert.equal(await probe(C1, '192.0.2.3'), 'TIMEOUT', 'icc=false: containers on one bridge cannot talk');
      assert.equal(await probe(C1, '198.51.100.2'), '198.51.100.1', 'icc=false still reaches the outside');

      await fw.setupNetwork({ ...net1, internal: true });
      assert.equal(await probe(C1, '198.51.100.2'), 'TIMEOUT', 'internal: no way out');
      assert.equal(await probe(C1, '192.0.2.3'), '192.0.2.2', 'internal with icc: the subnet still talks');
      assert.equal(await probe(C2, '192.0.2.2'), 'TIMEOUT', 'internal: no way in');

      await fw.teardownNetwork(net1);
      await fw.teardownNetwork(net2);
      assert.equal(await probe(C1, '198.51.100.2'), '192.0.2.2', 'after teardown nothing is translated');
      assert.equal(await probe(C1, '203.0.113.2'), '192.0.2.2', 'after teardown nothing is blocked');
    } finally {
      for (const s of servers) s.kill('SIGKILL');
      await Promise.all(made.map((ns) => ns.destroy()));
    }
  });
});

// ------------------------------------------------------------------------------------------------------
// Timings (reported as diagnostics, not asserted): setup/teardown with 0 and 100 networks present.
// ------------------------------------------------------------------------------------------------------

function nthSpec(i: number): NetworkFirewallSpec {
  // /30s from the documentation ranges: 64 in each /24.
  const base = i < 64 ? '198.51.100' : '203.0.113';
  const hex = i.toString(16).padStart(4, '0');
  return spec({ id: `${hex}${'ab'.repeat(30)}`, bridge: `brt-${hex}`, subnets: [`${base}.${(i % 64) * 4}/30`] });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function timeOps(fw: Firewall, n: NetworkFirewallSpec, rounds: number): Promise<{ setup: number; teardown: number }> {
  const setup: number[] = [];
  const teardown: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    await fw.setupNetwork(n);
    setup.push(performance.now() - t);
    t = performance.now();
    await fw.teardownNetwork(n);
    teardown.push(performance.now() - t);
  }
  return { setup: median(setup), teardown: median(teardown) };
}

describe('timings', () => {
  test('setupNetwork / teardownNetwork with 0 and 100 networks present (median of 20)', async (t) => {
    await inNetns('fwtime', async (ns) => {
      const runners: [string, string[]][] = [
        ['ip netns exec', ['ip', 'netns', 'exec', ns.name]],
        ['nsenter --net', ['nsenter', `--net=/run/netns/${ns.name}`, '--']],
      ];
      const probeNet = nthSpec(120);
      const dualProbe = { ...probeNet, subnets: [...probeNet.subnets, Prefix.parse('2001:db8:ffff::/64')] };
      const results: string[] = [];
      for (const [label, prefix] of runners) {
        const { fw } = firewallIn(ns, { prefix });
        await fw.init();
        const before = await saveState(ns);
        for (const [what, n] of [['v4', probeNet], ['dual', dualProbe]] as const) {
          const r0 = await timeOps(fw, n, 20);
          results.push(`${label}, ${what}, 0 networks: setup ${r0.setup.toFixed(1)} ms, teardown ${r0.teardown.toFixed(1)} ms`);
        }
        for (let i = 0; i < 100; i++) await fw.setupNetwork(nthSpec(i));
        for (const [what, n] of [['v4', probeNet], ['dual', dualProbe]] as const) {
          const r100 = await timeOps(fw, n, 20);
          results.push(`${label}, ${what}, 100 networks: setup ${r100.setup.toFixed(1)} ms, teardown ${r100.teardown.toFixed(1)} ms`);
        }
        let t0 = performance.now();
        await fw.reconcile(Array.from({ length: 100 }, (_, i) => nthSpec(i)));
        results.push(`${label}, reconcile of 100 unchanged networks: ${(performance.now() - t0).toFixed(1)} ms`);
        t0 = performance.now();
        await fw.reconcile([]);
        results.push(`${label}, reconcile removing 100 networks: ${(performance.now() - t0).toFixed(1)} ms`);
        assert.equal(await saveState(ns), before);
      }
      for (const r of results) t.diagnostic(r);
      if (process.env.NETD_FIREWALL_TIMINGS) writeFileSync(process.env.NETD_FIREWALL_TIMINGS, results.join('\n') + '\n');
    });
  });
});
