/**
 * Several netd instances on one host (issue 11, item 4), as the firewall and the data root see them:
 * marks carry the instance id; one instance's reconcile never touches another's rules or chains; old
 * marks are adopted only when asked; a chain made meanwhile by another instance makes the operation plan
 * again instead of flushing it; the instance id is made once per data root.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createFirewall } from '../../src/firewall/factory.js';
import { FirewallMarks, type InstanceIdentity } from '../../src/firewall/marks.js';
import type { CommandRunner, NetworkFirewallSpec } from '../../src/firewall/firewall.js';
import type { PortForwardSpec } from '../../src/firewall/port-forward.js';
import { IPAddress, Prefix } from '../../src/net/index.js';
import { loadInstance } from '../../src/daemon/instance.js';

const A = { id: 'aaaaaa' };
const B = { id: 'bbbbbb' };

/** Rules of instance A, of instance B, and of a netd from before instances, side by side. */
const SAVED = `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:NETD-PF-aaaaaa-a1b2c3d4e5f6 - [0:0]
:NETD-PFB-aaaaaa-a1 - [0:0]
:NETD-PF-bbbbbb-b1b2c3d4e5f6 - [0:0]
:NETD-PFB-bbbbbb-b1 - [0:0]
:NETD-PF-c1b2c3d4e5f6 - [0:0]
:NETD-PFB-c1 - [0:0]
:NETD-PF-c1ffffffffff - [0:0]
:NETD-PF-d1ffffffffff - [0:0]
:NETD-PFB-d1 - [0:0]
:NETD - [0:0]
:NETD-POSTROUTING - [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment netd -j NETD
-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment netd -j NETD
-A POSTROUTING -m comment --comment netd -j NETD-POSTROUTING
-A NETD -m comment --comment "netd:aaaaaa:pf" -j NETD-PFB-aaaaaa-a1
-A NETD -m comment --comment "netd:bbbbbb:pf" -j NETD-PFB-bbbbbb-b1
-A NETD -m comment --comment "netd:pf" -j NETD-PFB-c1
-A NETD -m comment --comment "netd:pf" -j NETD-PFB-d1
-A NETD-PF-aaaaaa-a1b2c3d4e5f6 -p tcp -m tcp --dport 8080 -m comment --comment "netd:aaaaaa:pf:a1b2c3d4e5f6" -j DNAT --to-destination 192.0.2.2:80
-A NETD-PFB-aaaaaa-a1 -m comment --comment "netd:aaaaaa:pf:a1b2c3d4e5f6" -j NETD-PF-aaaaaa-a1b2c3d4e5f6
-A NETD-PF-bbbbbb-b1b2c3d4e5f6 -p tcp -m tcp --dport 8081 -m comment --comment "netd:bbbbbb:pf:b1b2c3d4e5f6" -j DNAT --to-destination 203.0.113.2:80
-A NETD-PFB-bbbbbb-b1 -m comment --comment "netd:bbbbbb:pf:b1b2c3d4e5f6" -j NETD-PF-bbbbbb-b1b2c3d4e5f6
-A NETD-PF-c1b2c3d4e5f6 -p tcp -m tcp --dport 8082 -m comment --comment "netd:pf:c1b2c3d4e5f6" -j DNAT --to-destination 198.51.100.2:80
-A NETD-PFB-c1 -m comment --comment "netd:pf:c1b2c3d4e5f6" -j NETD-PF-c1b2c3d4e5f6
-A NETD-PF-c1ffffffffff -p tcp -m tcp --dport 8083 -m comment --comment "netd:pf:c1ffffffffff" -j DNAT --to-destination 198.51.100.130:80
-A NETD-PFB-c1 -m comment --comment "netd:pf:c1ffffffffff" -j NETD-PF-c1ffffffffff
-A NETD-PF-d1ffffffffff -p tcp -m tcp --dport 8084 -m comment --comment "netd:pf:d1ffffffffff" -j DNAT --to-destination 198.51.100.131:80
-A NETD-PFB-d1 -m comment --comment "netd:pf:d1ffffffffff" -j NETD-PF-d1ffffffffff
-A NETD-POSTROUTING -s 192.0.2.0/24 ! -o br-a -m comment --comment "netd:aaaaaa:0123456789ab" -j MASQUERADE
-A NETD-POSTROUTING -s 203.0.113.0/24 ! -o br-b -m comment --comment "netd:bbbbbb:fedcba987654" -j MASQUERADE
-A NETD-POSTROUTING -s 198.51.100.0/25 ! -o br-c -m comment --comment "netd:c0c0c0c0c0c0" -j MASQUERADE
-A NETD-POSTROUTING -s 198.51.100.128/25 ! -o br-d -m comment --comment "netd:d0d0d0d0d0d0" -j MASQUERADE
COMMIT
`;

/** iptables-save plays SAVED; each restore answers with the next of `answers` (then success); records the scripts. */
function runner(answers: { code: number; stderr: string }[] = []) {
  const scripts: string[] = [];
  let reads = 0;
  const exec: CommandRunner = async (argv, stdin) => {
    if (argv[0] === 'iptables-save') {
      reads++;
      return { code: 0, stdout: SAVED, stderr: '' };
    }
    scripts.push(`${argv.join(' ')}\n${stdin ?? ''}`);
    return { stdout: '', ...(answers.shift() ?? { code: 0, stderr: '' }) };
  };
  return { exec, scripts, reads: () => reads };
}

/** The old data root being upgraded: network c0c0c0c0c0c0 (br-c) and endpoint c1b2c3d4e5f6 publishing 8082. */
const OLD_NETWORK: NetworkFirewallSpec = {
  id: `c0c0c0c0c0c0${'0'.repeat(52)}`,
  bridge: 'br-c',
  subnets: [Prefix.parse('198.51.100.0/25')],
  internal: false,
  masquerade: true,
  icc: true,
};
const OLD_FORWARD: PortForwardSpec = {
  endpointId: `c1b2c3d4e5f6${'0'.repeat(52)}`,
  bridge: 'br-c',
  containerV4: IPAddress.parse('198.51.100.2'),
  ports: [{ proto: 'tcp', hostIp: IPAddress.parse('0.0.0.0'), hostPort: 8082, containerPort: 80 }],
};

async function reconcileAs(instance: InstanceIdentity, specs: NetworkFirewallSpec[] = [], forwards: PortForwardSpec[] = []): Promise<string> {
  const r = runner();
  await createFirewall({ logger: silentLogger(), exec: r.exec, ipv6: false, instance }).reconcile(specs, forwards);
  return r.scripts.join('');
}

describe('firewall marks per instance', () => {
  test('tags and chain names carry the instance id and fit the kernel limits', () => {
    const m = new FirewallMarks(A);
    assert.equal(m.networkTag('0123456789ab'), 'netd:aaaaaa:0123456789ab');
    assert.equal(m.forwardTag('0123456789ab'), 'netd:aaaaaa:pf:0123456789ab');
    assert.equal(m.bucketTag, 'netd:aaaaaa:pf');
    assert.equal(m.forwardChain('0123456789ab'), 'NETD-PF-aaaaaa-0123456789ab');
    assert.equal(m.bucketChain('0123456789ab'), 'NETD-PFB-aaaaaa-01');
    assert.ok(m.forwardChain('0123456789ab').length <= 28, 'iptables chain names have at most 28 characters');
    // Without an instance: the marks netd used before.
    assert.equal(FirewallMarks.LEGACY.networkTag('0123456789ab'), 'netd:0123456789ab');
    assert.equal(FirewallMarks.LEGACY.forwardChain('0123456789ab'), 'NETD-PF-0123456789ab');
    for (const id of ['', 'AAAAAA', 'aaaaa', 'aaaaaaa', 'pf', '../x']) assert.throws(() => new FirewallMarks({ id }), InvalidArgumentError);
  });

  test('ownership: the shared base, its own marks, old marks only when adopting', () => {
    const mine = new FirewallMarks(B);
    const adopting = new FirewallMarks({ ...B, adoptLegacy: true });
    for (const m of [mine, adopting]) {
      assert.ok(m.owns('netd') && m.owns('netd:bbbbbb:0123456789ab') && m.owns('netd:bbbbbb:pf'));
      assert.ok(!m.owns('netd:aaaaaa:0123456789ab') && !m.owns('netd:aaaaaa:pf:0123456789ab') && !m.owns(undefined) && !m.owns('other'));
      assert.ok(m.ownsChain('nat', 'NETD-PF-bbbbbb-0123456789ab') && !m.ownsChain('nat', 'NETD-PF-aaaaaa-0123456789ab'));
      assert.ok(!m.ownsChain('raw', 'NETD-PF-bbbbbb-0123456789ab') && !m.ownsChain('filter', 'NETD'));
    }
    // Old marks: only those whose id is one of this data root's records, and only when adopting.
    const records = new Set(['0123456789ab']);
    for (const legacy of ['netd:0123456789ab', 'netd:pf:0123456789ab']) {
      assert.ok(!mine.owns(legacy, records) && adopting.owns(legacy, records), legacy);
      assert.ok(!adopting.owns(legacy), `${legacy}: not a record of this data root`);
    }
    assert.ok(!adopting.owns('netd:pf', records), 'an old bucket jump is shared by old data roots');
    assert.ok(adopting.ownsChain('nat', 'NETD-PF-0123456789ab', records) && !adopting.ownsChain('nat', 'NETD-PF-0123456789ab'));
    assert.ok(!mine.ownsChain('nat', 'NETD-PF-0123456789ab', records));
    // An old bucket: adopted when empty or when every rule in it is adopted.
    const own = { comment: 'netd:pf:0123456789ab' };
    const foreign = { comment: 'netd:pf:ffffffffffff' };
    assert.ok(adopting.ownsChain('nat', 'NETD-PFB-01', records, [own]) && adopting.ownsChain('nat', 'NETD-PFB-01', records, []));
    assert.ok(!adopting.ownsChain('nat', 'NETD-PFB-01', records, [own, foreign]) && !mine.ownsChain('nat', 'NETD-PFB-01', records, [own]));
    // Links: the instance's own mark; an old one only for a record of this data root.
    assert.ok(adopting.ownsLink('netd:bbbbbb:0123456789ab') && !adopting.ownsLink('netd:aaaaaa:0123456789ab'));
    assert.ok(adopting.ownsLink('netd:0123456789ab', records) && !adopting.ownsLink('netd:ffffffffffff', records));
    assert.ok(!mine.ownsLink('netd:0123456789ab', records) && !adopting.ownsLink(undefined) && !adopting.ownsLink('netd'));
  });
});

describe('reconcile of one instance beside others', () => {
  test("removes its own stale rules and chains, never another instance's or old ones it does not adopt", async () => {
    const script = await reconcileAs(B);
    assert.match(script, /-D NETD-POSTROUTING -s 203\.0\.113\.0\/24 .*netd:bbbbbb:fedcba987654/);
    assert.match(script, /-X NETD-PF-bbbbbb-b1b2c3d4e5f6\n/);
    assert.match(script, /-X NETD-PFB-bbbbbb-b1\n/);
    assert.doesNotMatch(script, /aaaaaa/, "instance A's rules are not B's business");
    assert.doesNotMatch(script, /c1b2c3d4e5f6|NETD-PFB-c1|c0c0c0c0c0c0/, 'old marks are left alone');
  });

  test("an instance adopting old marks removes those of its own records, never another old data root's", async () => {
    const script = await reconcileAs({ ...B, adoptLegacy: true }, [OLD_NETWORK], [OLD_FORWARD]);
    assert.match(script, /-X NETD-PF-c1b2c3d4e5f6\n/);
    assert.match(script, /-D NETD-POSTROUTING -s 198\.51\.100\.0\/25 .*netd:c0c0c0c0c0c0/);
    assert.match(script, /-D NETD-PFB-c1 .*netd:pf:c1b2c3d4e5f6/, 'its jump in the shared old bucket goes');
    assert.doesNotMatch(script, /c1ffffffffff|d1ffffffffff|d0d0d0d0d0d0|NETD-PFB-d1/, "the other old data root's rules and chains stay");
    assert.doesNotMatch(script, /-X NETD-PFB-c1|-F NETD-PFB-c1|-D NETD .*NETD-PFB-c1/, 'the old bucket still used by the other data root stays');
    assert.doesNotMatch(script, /aaaaaa/);
    // Nothing of its own records: nothing old is adopted.
    assert.doesNotMatch(await reconcileAs({ ...B, adoptLegacy: true }), /c1b2c3d4e5f6|c0c0c0c0c0c0|NETD-PFB-c1/);
  });

  test('an old bucket holding only adopted jumps goes, with the old jump to it', async () => {
    const other = { ...OLD_FORWARD, endpointId: `d1ffffffffff${'0'.repeat(52)}`, containerV4: IPAddress.parse('198.51.100.131') };
    const script = await reconcileAs({ ...B, adoptLegacy: true }, [OLD_NETWORK], [other]);
    assert.match(script, /-X NETD-PFB-d1\n/);
    assert.match(script, /-D NETD -m comment --comment "?netd:pf"? -j NETD-PFB-d1/);
    assert.doesNotMatch(script, /-D NETD .*NETD-PFB-c1|-X NETD-PFB-c1/);
  });

  test('new chains are made with -N (never `:CHAIN`, which flushes a chain another instance just made)', async () => {
    const script = await reconcileAs(B);
    assert.match(script, /^-N NETD-FORWARD$/m);
    assert.doesNotMatch(script, /^:/m);
  });

  test('a chain made meanwhile by another instance: the operation plans again from a fresh read', async () => {
    const raced = runner([{ code: 1, stderr: 'iptables-restore: line 2 failed: Chain already exists.\n' }]);
    await createFirewall({ logger: silentLogger(), exec: raced.exec, ipv6: false, instance: B }).init();
    assert.equal(raced.reads(), 2);
    assert.equal(raced.scripts.length, 2);
    const stuck = runner(Array.from({ length: 5 }, () => ({ code: 1, stderr: 'iptables-restore: line 2 failed: Chain already exists.\n' })));
    await assert.rejects(createFirewall({ logger: silentLogger(), exec: stuck.exec, ipv6: false, instance: B }).init());
    assert.equal(stuck.reads(), 3, 'three attempts, then the error');
  });

  test('the FORWARD policy is set to DROP in the families asked for', async () => {
    const r = runner();
    const fw = createFirewall({ logger: silentLogger(), exec: r.exec, ipv6: false, instance: B });
    assert.deepEqual(await fw.dropForwardByDefault([4, 6]), [4], 'IPv6 is not programmed by this firewall: not reported as protected');
    assert.deepEqual(r.scripts, ['iptables-restore -w --noflush\n*filter\n:FORWARD DROP [0:0]\nCOMMIT\n']);
    // The policy is kept: a later convergence that finds it changed sets it back.
    await fw.reconcile([]);
    assert.match(r.scripts[1], /^\*filter\n:FORWARD DROP \[0:0\]\n/m);
  });
});

describe('instance id of a data root', () => {
  test('made once; a data root with state from before instances adopts old marks until one start completes', () => {
    const root = mkdtempSync(join(tmpdir(), 'netd-inst-'));
    try {
      const fresh = join(root, 'fresh');
      mkdirSync(fresh);
      const first = loadInstance(fresh);
      assert.match(first.id, /^[0-9a-f]{6}$/);
      assert.equal(first.adoptLegacy, false, 'a fresh data root adopts nothing');
      assert.equal(loadInstance(fresh).id, first.id, 'stable');

      const old = join(root, 'old');
      mkdirSync(join(old, 'networks'), { recursive: true });
      writeFileSync(join(old, 'networks', `${'a'.repeat(64)}.json`), '{}');
      const upgraded = loadInstance(old);
      assert.equal(upgraded.adoptLegacy, true);
      assert.equal(loadInstance(old).adoptLegacy, true, 'until a start completes (a crash meanwhile adopts again)');
      upgraded.adopted();
      const after = loadInstance(old);
      assert.deepEqual([after.id, after.adoptLegacy], [upgraded.id, false]);
      assert.deepEqual(JSON.parse(readFileSync(join(old, 'instance.json'), 'utf8')), { id: upgraded.id, adoptLegacy: false });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
