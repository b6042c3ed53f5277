/**
 * Port forwards in the iptables backend, without a kernel: a fake CommandRunner plays iptables-save from
 * a given text and records every command. The restore scripts are compared with golden files in
 * test/golden/firewall/pf-*.restore (regenerate with NETD_UPDATE_GOLDEN=1, then review the diff by eye).
 * The integration test (ports.test.ts) pins the same layout against the real kernel.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { CommandError, InvalidArgumentError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { golden } from '../helpers/golden.js';
import type { CommandRunner, NetworkFirewallSpec, PortForwardSpec } from '../../src/firewall/firewall.js';
import { createFirewall } from '../../src/firewall/factory.js';
import { ruleArgs } from '../../src/firewall/model.js';
import { staleEntries, type ConntrackSweep } from '../../src/firewall/conntrack.js';
import type { CtEntry } from '../../src/firewall/ctnetlink.js';
import { IPAddress } from '../../src/net/index.js';
import { forwardSpec, networkSpec, type ForwardSpecText } from '../helpers/firewall-spec.js';

interface Call {
  argv: string[];
  stdin?: string;
}

/** Plays iptables-save from fixed texts; restores succeed unless `fail` says otherwise; conntrack finds nothing. */
function fakeRunner(state: { v4: string; v6: string } = { v4: '', v6: '' }, fail?: (argv: string[], stdin: string) => string | undefined) {
  const calls: Call[] = [];
  const exec: CommandRunner = async (argv, stdin) => {
    calls.push({ argv, stdin });
    if (argv[0] === 'iptables-save') return { code: 0, stdout: state.v4, stderr: '' };
    if (argv[0] === 'ip6tables-save') return { code: 0, stdout: state.v6, stderr: '' };
    if (argv[0].endsWith('-restore')) {
      const stderr = fail?.(argv, stdin ?? '');
      return stderr ? { code: 1, stdout: '', stderr } : { code: 0, stdout: '', stderr: '' };
    }
    if (argv[0] === 'conntrack') return { code: 1, stdout: '', stderr: 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n' };
    return { code: 127, stdout: '', stderr: `unexpected command ${argv[0]}` };
  };
  const restores = () => calls.filter((c) => c.argv[0].endsWith('-restore'));
  const transcript = () => restores().map((c) => `# ${c.argv.join(' ')}\n${c.stdin}`).join('');
  const commands = (name: string) => calls.filter((c) => c.argv[0] === name).map((c) => c.argv.join(' '));
  return { exec, calls, restores, transcript, commands };
}

const NET: NetworkFirewallSpec = networkSpec({ id: '0123456789ab' + 'cdef'.repeat(13), bridge: 'netd0', subnets: ['172.17.0.0/16'], internal: false, masquerade: true, icc: true });
const EP = 'a1b2c3d4e5f6' + '0'.repeat(52);
const EP_SAME_BUCKET = 'a1ffffffffff' + '1'.repeat(52);

function forward(over: Partial<ForwardSpecText> = {}): PortForwardSpec {
  return forwardSpec({
    endpointId: EP,
    bridge: 'netd0',
    containerV4: '172.17.0.2',
    ports: [
      { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 },
      { proto: 'udp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 },
      { proto: 'tcp', hostIp: '127.0.0.1', hostPort: 8081, containerPort: 81 },
    ],
    ...over,
  });
}

const DUAL_ROUTED = forward({
  containerV6: '2001:db8:1::2',
  ports: [
    { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8443, containerPort: 443 },
    { proto: 'tcp', hostIp: '::', hostPort: 8443, containerPort: 443 },
    { proto: 'sctp', hostIp: '2001:db8::1', hostPort: 3868, containerPort: 3868 },
  ],
  routed: [4, 6],
});

/** What iptables-save prints once EP's three mappings are in place (as the integration test sees it). */
const SAVED_V4 = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:NETD - [0:0]
:NETD-PF-a1b2c3d4e5f6 - [0:0]
:NETD-PFB-a1 - [0:0]
:NETD-POSTROUTING - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment netd -j NETD
-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment netd -j NETD
-A POSTROUTING -m comment --comment netd -j NETD-POSTROUTING
-A NETD -m comment --comment "netd:pf" -j NETD-PFB-a1
-A NETD-PF-a1b2c3d4e5f6 -p tcp -m tcp --dport 8080 -m comment --comment "netd:pf:a1b2c3d4e5f6" -j DNAT --to-destination 172.17.0.2:80
-A NETD-PF-a1b2c3d4e5f6 -p udp -m udp --dport 8080 -m comment --comment "netd:pf:a1b2c3d4e5f6" -j DNAT --to-destination 172.17.0.2:80
-A NETD-PF-a1b2c3d4e5f6 -d 127.0.0.1/32 -p tcp -m tcp --dport 8081 -m comment --comment "netd:pf:a1b2c3d4e5f6" -j DNAT --to-destination 172.17.0.2:81
-A NETD-PFB-a1 -m comment --comment "netd:pf:a1b2c3d4e5f6" -j NETD-PF-a1b2c3d4e5f6
COMMIT
`;

/** A sweep that records what it was asked to clear, as text (family, protocol, address, ports). */
function recordingSweep(): { sweep: ConntrackSweep; swept: string[] } {
  const swept: string[] = [];
  const sweep: ConntrackSweep = async (_log, sweeps) => {
    for (const s of sweeps) for (const m of s.mappings) swept.push(`${s.family} ${m.proto} ${m.hostIp}:${m.hostPort}-${m.hostPortEnd ?? m.hostPort}`);
  };
  return { sweep, swept };
}

describe('port forwards: fast path (no iptables-save read)', () => {
  test('setup declares the bucket and the endpoint chain, fills it, jumps to it; UDP host ports lose stale conntrack entries', async () => {
    const f = fakeRunner();
    const r = recordingSweep();
    const fw = createFirewall({ logger: silentLogger(), exec: f.exec, sweep: r.sweep });
    await fw.setupPortForward(forward());
    golden('pf-setup.restore', f.transcript());
    assert.deepEqual(f.commands('iptables-save'), [], 'no read');
    assert.deepEqual(f.commands('ip6tables-restore'), [], 'an IPv4-only forward does not touch ip6tables');
    assert.deepEqual(f.commands('conntrack'), [], 'stale entries are cleared in-process, not by processes');
    assert.deepEqual(r.swept, ['4 udp 0.0.0.0:8080-8080']);

    const calls = f.calls.length;
    await fw.setupPortForward(forward());
    assert.equal(f.calls.length, calls, 'the same forward again: nothing to do');
  });

  test('the rendered DNAT rule is the text iptables-save prints (so reconcile finds it)', async () => {
    const f = fakeRunner();
    await createFirewall({ logger: silentLogger(), exec: f.exec }).setupPortForward(forward());
    for (const line of f.restores()[0].stdin!.split('\n').filter((l) => l.startsWith('-A NETD-PF-'))) {
      const saved = SAVED_V4.split('\n').find((l) => l.replace(/"/g, '') === line);
      assert.ok(saved, `${line} is in the saved state`);
    }
  });

  test('teardown removes the jump, the chain and the emptied bucket, then the flows to the container ports', async () => {
    const f = fakeRunner();
    const fw = createFirewall({ logger: silentLogger(), exec: f.exec });
    await fw.setupPortForward(forward());
    f.calls.length = 0;
    await fw.teardownPortForward(forward());
    await fw.settled();
    golden('pf-teardown.restore', f.transcript());
    assert.deepEqual(f.commands('iptables-save'), [], 'no read');
    assert.deepEqual(f.commands('conntrack'), ['conntrack -D -p udp --reply-src 172.17.0.2'], 'connectionless flows only: TCP connections end by themselves');
  });

  test('a bucket stays while another endpoint uses it, and is made only once', async () => {
    const f = fakeRunner();
    const fw = createFirewall({ logger: silentLogger(), exec: f.exec });
    await fw.setupPortForward(forward());
    await fw.setupPortForward(forward({ endpointId: EP_SAME_BUCKET, containerV4: '172.17.0.3', ports: [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 9000, containerPort: 80 }] }));
    assert.ok(!f.restores()[1].stdin!.includes('-N NETD-PFB-a1'), 'the bucket exists already');
    await fw.teardownPortForward(forward());
    await fw.settled();
    assert.ok(!f.restores()[2].stdin!.includes('-X NETD-PFB-a1'), 'still used by the other endpoint');
    await fw.teardownPortForward(forward({ endpointId: EP_SAME_BUCKET, containerV4: '172.17.0.3', ports: [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 9000, containerPort: 80 }] }));
    assert.match(f.restores()[3].stdin!, /-D NETD -m comment --comment netd:pf -j NETD-PFB-a1\n-X NETD-PFB-a1\n/);
  });

  test('dual-stack, a specific IPv6 host address, SCTP, routed mode (filter chain reached from the top of NETD)', async () => {
    const f = fakeRunner();
    const fw = createFirewall({ logger: silentLogger(), exec: f.exec });
    await fw.setupPortForward(DUAL_ROUTED);
    golden('pf-setup-dual-routed.restore', f.transcript());
    f.calls.length = 0;
    await fw.teardownPortForward(DUAL_ROUTED);
    await fw.settled();
    golden('pf-teardown-dual-routed.restore', f.transcript());
  });

  test('many ports: one conntrack command per protocol instead of one per port; none for TCP', async () => {
    const f = fakeRunner();
    const fw = createFirewall({ logger: silentLogger(), exec: f.exec });
    const ports = Array.from({ length: 40 }, (_, i) => ({ proto: 'udp' as const, hostIp: '0.0.0.0', hostPort: 20000 + i, containerPort: 20000 + i }));
    await fw.setupPortForward(forward({ ports }));
    f.calls.length = 0;
    await fw.teardownPortForward(forward({ ports }));
    await fw.settled();
    assert.deepEqual(f.commands('conntrack'), ['conntrack -D -p udp --reply-src 172.17.0.2']);

    const tcp = ports.map((p) => ({ ...p, proto: 'tcp' as const }));
    await fw.setupPortForward(forward({ ports: tcp }));
    f.calls.length = 0;
    await fw.teardownPortForward(forward({ ports: tcp }));
    await fw.settled();
    assert.deepEqual(f.commands('conntrack'), []);
  });
});

describe('port forwards: ranges cost a constant number of rules and processes', () => {
  const RANGES = forward({
    containerV6: '2001:db8:1::2',
    ports: [
      { proto: 'udp', hostIp: '0.0.0.0', hostPort: 1, hostPortEnd: 65535, containerPort: 1 },
      { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 20000, hostPortEnd: 20009, containerPort: 30000 },
      { proto: 'tcp', hostIp: '::', hostPort: 20000, hostPortEnd: 20009, containerPort: 30000 },
      { proto: 'tcp', hostIp: '::', hostPort: 7000, hostPortEnd: 7001, containerPort: 7000 },
    ],
    routed: [4],
  });

  test('an equal range DNATs to the address alone, a shifted one with the port offset; as iptables-save prints them', async () => {
    const f = fakeRunner();
    await createFirewall({ logger: silentLogger(), exec: f.exec }).setupPortForward(RANGES);
    golden('pf-setup-ranges.restore', f.transcript());
    const lines = f.restores().flatMap((r) => r.stdin!.split('\n')).filter((l) => l.startsWith('-A NETD-PF-'));
    const tag = '-m comment --comment netd:pf:a1b2c3d4e5f6';
    assert.deepEqual(lines, [
      `-A NETD-PF-a1b2c3d4e5f6 -d 172.17.0.2/32 ! -i netd0 -o netd0 -p udp -m udp --dport 1:65535 ${tag} -j ACCEPT`,
      `-A NETD-PF-a1b2c3d4e5f6 -d 172.17.0.2/32 ! -i netd0 -o netd0 -p tcp -m tcp --dport 30000:30009 ${tag} -j ACCEPT`,
      `-A NETD-PF-a1b2c3d4e5f6 -p udp -m udp --dport 1:65535 ${tag} -j DNAT --to-destination 172.17.0.2`,
      `-A NETD-PF-a1b2c3d4e5f6 -p tcp -m tcp --dport 20000:20009 ${tag} -j DNAT --to-destination 172.17.0.2:30000-30009/20000`,
      `-A NETD-PF-a1b2c3d4e5f6 -p tcp -m tcp --dport 20000:20009 ${tag} -j DNAT --to-destination [2001:db8:1::2]:30000-30009/20000`,
      `-A NETD-PF-a1b2c3d4e5f6 -p tcp -m tcp --dport 7000:7001 ${tag} -j DNAT --to-destination 2001:db8:1::2`,
    ]);
  });

  test('a full UDP range: no process and one sweep on setup, one delete on teardown', async () => {
    const f = fakeRunner();
    const r = recordingSweep();
    const fw = createFirewall({ logger: silentLogger(), exec: f.exec, sweep: r.sweep });
    const full = forward({ ports: [{ proto: 'udp', hostIp: '0.0.0.0', hostPort: 1, hostPortEnd: 65535, containerPort: 1 }] });
    await fw.setupPortForward(full);
    assert.deepEqual(f.commands('conntrack'), []);
    assert.deepEqual(r.swept, ['4 udp 0.0.0.0:1-65535']);
    f.calls.length = 0;
    await fw.teardownPortForward(full);
    await fw.settled();
    assert.deepEqual(f.commands('conntrack'), ['conntrack -D -p udp --reply-src 172.17.0.2']);
    assert.equal(f.restores().length, 1, 'one restore per family, whatever the range');
  });

  test('a sweep picks entries to a new host port at a local address, not DNATed; never outbound flows', () => {
    const b = (a: string) => IPAddress.parse(a).bytes;
    const entry = (src: string, dst: string, dport: number, replySrc = dst, proto = 17): CtEntry => ({
      proto,
      src: b(src),
      dst: b(dst),
      sport: 40000,
      dport,
      replySrc: b(replySrc),
      replySport: dport,
      zone: 0,
    });
    const entries = {
      stale: entry('198.51.100.2', '198.51.100.1', 5000),
      loopback: entry('127.0.0.1', '127.0.0.5', 5001),
      dnated: entry('198.51.100.2', '198.51.100.1', 5002, '172.17.0.9'),
      outbound: entry('198.51.100.1', '203.0.113.7', 5003),
      tcp: entry('198.51.100.2', '198.51.100.1', 5004, '198.51.100.1', 6),
      outOfRange: entry('198.51.100.2', '198.51.100.1', 7000),
      otherLocal: entry('198.51.100.2', '192.0.2.1', 5005),
    };
    const wildcard = [{ proto: 'udp' as const, hostIp: IPAddress.parse('0.0.0.0'), hostPort: 5000, hostPortEnd: 5999, containerPort: 5000 }];
    const local = [IPAddress.parse('198.51.100.1'), IPAddress.parse('192.0.2.1')];
    const picked = (mappings: typeof wildcard) => Object.entries(entries).filter(([, e]) => staleEntries(mappings, local)(e)).map(([k]) => k);
    assert.deepEqual(picked(wildcard), ['stale', 'loopback', 'otherLocal']);
    assert.deepEqual(picked([{ ...wildcard[0], hostIp: IPAddress.parse('192.0.2.1') }]), ['otherLocal']);
  });

  test('overlapping ranges of one forward are refused', async () => {
    const f = fakeRunner();
    const fw = createFirewall({ logger: silentLogger(), exec: f.exec });
    const overlapping = forward({
      ports: [
        { proto: 'udp', hostIp: '0.0.0.0', hostPort: 1000, hostPortEnd: 2000, containerPort: 1000 },
        { proto: 'udp', hostIp: '0.0.0.0', hostPort: 1500, containerPort: 80 },
      ],
    });
    await assert.rejects(fw.setupPortForward(overlapping), /host port 1500\/udp on 0\.0\.0\.0 is mapped twice/);
    const past = forward({ ports: [{ proto: 'udp', hostIp: '0.0.0.0', hostPort: 65000, hostPortEnd: 65100, containerPort: 65500 }] });
    await assert.rejects(fw.setupPortForward(past), /invalid last container port number 65600/);
    assert.equal(f.calls.length, 0);
  });
});

describe('port forwards: repair, revert, reconcile', () => {
  test('a failing fast setup is reverted by iptables-restore itself, then repaired from a read', async () => {
    let first = true;
    const f = fakeRunner({ v4: '', v6: '' }, () => {
      if (!first) return undefined;
      first = false;
      return 'iptables-restore: line 4 failed: No chain/target/match by that name.\n';
    });
    await createFirewall({ logger: silentLogger(), exec: f.exec }).setupPortForward(forward());
    assert.deepEqual(f.commands('iptables-save'), ['iptables-save'], 'the repair reads');
    golden('pf-setup-repair.restore', f.transcript());
  });

  test('IPv6 failing after IPv4 committed: IPv4 is reverted (chains deleted again)', async () => {
    const f = fakeRunner({ v4: '', v6: '' }, (argv) => (argv[0] === 'ip6tables-restore' ? 'ip6tables-restore: line 3 failed: x\n' : undefined));
    await assert.rejects(createFirewall({ logger: silentLogger(), exec: f.exec }).setupPortForward(DUAL_ROUTED), CommandError);
    golden('pf-revert-family.restore', f.transcript());
  });

  test('teardown by a process that did not set it up reads the kernel and removes exactly that endpoint', async () => {
    const other = SAVED_V4.replace('COMMIT\n', '-A NETD-POSTROUTING -s 172.17.0.0/16 ! -o netd0 -m comment --comment "netd:0123456789ab" -j MASQUERADE\nCOMMIT\n');
    const f = fakeRunner({ v4: other, v6: '' });
    await createFirewall({ logger: silentLogger(), exec: f.exec }).teardownPortForward(forward());
    golden('pf-teardown-read.restore', f.transcript());
    assert.ok(!f.transcript().includes('MASQUERADE'), 'the network’s rules stay');
  });

  test('reconcile with the forward changes nothing; without it, removes its chain and its bucket', async () => {
    const keep = fakeRunner({ v4: SAVED_V4, v6: '' });
    await createFirewall({ logger: silentLogger(), exec: keep.exec, ipv6: false }).reconcile([], [forward()]);
    assert.ok(!/NETD-PF/.test(keep.transcript()), `reconcile with the forward must not touch it:\n${keep.transcript()}`);

    const drop = fakeRunner({ v4: SAVED_V4, v6: '' });
    await createFirewall({ logger: silentLogger(), exec: drop.exec, ipv6: false }).reconcile([], []);
    golden('pf-reconcile-stale.restore', drop.transcript());
    assert.match(drop.transcript(), /-F NETD-PF-a1b2c3d4e5f6\n-F NETD-PFB-a1\n-X NETD-PF-a1b2c3d4e5f6\n-X NETD-PFB-a1\n/);
  });

  test('a stale chain a foreign rule still jumps to is flushed but kept', async () => {
    const foreign = SAVED_V4.replace('COMMIT\n', '-A PREROUTING -i eth9 -j NETD-PF-a1b2c3d4e5f6\nCOMMIT\n');
    const f = fakeRunner({ v4: foreign, v6: '' });
    await createFirewall({ logger: silentLogger(), exec: f.exec, ipv6: false }).reconcile([], []);
    assert.match(f.transcript(), /-F NETD-PF-a1b2c3d4e5f6\n/);
    assert.doesNotMatch(f.transcript(), /-X NETD-PF-a1b2c3d4e5f6/);
    assert.doesNotMatch(f.transcript(), /eth9/);
  });

  test('reconcile on an empty kernel builds base, network and forward', async () => {
    const f = fakeRunner();
    const fw = createFirewall({ logger: silentLogger(), exec: f.exec });
    await fw.reconcile([NET], [forward(), { ...DUAL_ROUTED, endpointId: EP_SAME_BUCKET }]);
    golden('pf-reconcile.restore', f.transcript());
    // Afterwards the fast path knows both: tearing one down reads nothing.
    f.calls.length = 0;
    await fw.teardownPortForward(forward());
    await fw.settled();
    assert.deepEqual(f.commands('iptables-save'), []);
    assert.doesNotMatch(f.transcript(), /-X NETD-PFB-a1/, 'the bucket is still used by the other');
  });
});

describe('port forwards: validation, nothing runs on bad input', () => {
  const bad: [string, () => PortForwardSpec][] = [
    ['a short endpoint id', () => forward({ endpointId: 'abc' })],
    ['a bridge with an option', () => forward({ bridge: 'br0 -j ACCEPT' })],
    ['a container address with a prefix', () => forward({ containerV4: '172.17.0.2/16' })],
    ['a container address that is a name', () => forward({ containerV4: 'web.local' })],
    ['an IPv6 address as containerV4', () => forward({ containerV4: '2001:db8::2' })],
    ['an IPv6 host IP without a container IPv6 address', () => forward({ ports: [{ proto: 'tcp', hostIp: '::', hostPort: 80, containerPort: 80 }] })],
    ['port 0', () => forward({ ports: [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 0, containerPort: 80 }] })],
    ['port 65536', () => forward({ ports: [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 65536 }] })],
    ['icmp', () => forward({ ports: [{ proto: 'icmp' as 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 }] })],
    ['a host IP with a newline', () => forward({ ports: [{ proto: 'tcp', hostIp: '0.0.0.0\n-A', hostPort: 8080, containerPort: 80 }] })],
    ['the same host port twice', () => forward({ ports: [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 }, { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 81 }] })],
    ['a bad routed family', () => forward({ routed: [5 as 4] })],
  ];
  for (const [what, spec] of bad) {
    test(`rejects ${what}`, async () => {
      const f = fakeRunner();
      const fw = createFirewall({ logger: silentLogger(), exec: f.exec });
      await assert.rejects(async () => fw.setupPortForward(spec()), InvalidArgumentError);
      await assert.rejects(async () => fw.teardownPortForward(spec()), InvalidArgumentError);
      await assert.rejects(async () => fw.reconcile([], [spec()]), InvalidArgumentError);
      assert.equal(f.calls.length, 0, 'no command may run');
    });
  }

  test('a DNAT target is re-validated when rendered', () => {
    const base = { table: 'nat', chain: 'NETD', target: { kind: 'dnat', address: IPAddress.parse('172.17.0.2'), port: 80 } } as const;
    assert.deepEqual(ruleArgs(base, 4).slice(-3), ['DNAT', '--to-destination', '172.17.0.2:80']);
    assert.deepEqual(ruleArgs({ ...base, target: { kind: 'dnat', address: IPAddress.parse('2001:db8::2'), port: 80 } }, 6).slice(-1), ['[2001:db8::2]:80']);
    for (const target of [
      { kind: 'dnat', address: '172.17.0.2 -j ACCEPT', port: 80 },
      { kind: 'dnat', address: '2001:DB8::2', port: 80 }, // not canonical
      { kind: 'dnat', address: '2001:db8::2', port: 80 }, // wrong family for the batch
      { kind: 'dnat', address: '172.17.0.2', port: 0 },
    ] as const) {
      // A real IPAddress where the text is one (canonical), else the raw string forged into the rule.
      const forged = { ...target, address: IPAddress.tryParse(target.address)?.toString() === target.address ? IPAddress.parse(target.address) : (target.address as unknown as IPAddress) };
      assert.throws(() => ruleArgs({ ...base, target: forged }, 4), InvalidArgumentError, JSON.stringify(target));
    }
    assert.throws(() => ruleArgs({ ...base, proto: { name: 'icmp' as 'tcp', dport: 80 } }, 4), InvalidArgumentError);
  });

  test('port ranges are rendered only when whole: a first port, an end not before it, an offset with a DNAT range', () => {
    const base = { table: 'nat', chain: 'NETD', target: { kind: 'dnat', address: IPAddress.parse('172.17.0.2') } } as const;
    assert.deepEqual(ruleArgs({ ...base, proto: { name: 'udp', dport: 1, dportEnd: 65535 } }, 4), ['-p', 'udp', '-m', 'udp', '--dport', '1:65535', '-j', 'DNAT', '--to-destination', '172.17.0.2']);
    assert.deepEqual(ruleArgs({ ...base, proto: { name: 'udp', dport: 80, dportEnd: 80 } }, 4).slice(0, 5), ['-p', 'udp', '-m', 'udp', '--dport'], 'a one-port range is a port');
    const bad: unknown[] = [
      { proto: { name: 'udp', dportEnd: 80 } },
      { proto: { name: 'udp', dport: 90, dportEnd: 80 } },
      { proto: { name: 'udp', dport: 80, dportEnd: 65536 } },
      { target: { kind: 'dnat', address: IPAddress.parse('172.17.0.2'), port: 80, portEnd: 89 } }, // a range without its offset base
      { target: { kind: 'dnat', address: IPAddress.parse('172.17.0.2'), port: 80, base: 8000 } },
      { target: { kind: 'dnat', address: IPAddress.parse('172.17.0.2'), portEnd: 89, base: 8000 } },
      { target: { kind: 'dnat', address: IPAddress.parse('172.17.0.2'), port: 80, portEnd: 89, base: 0 } },
    ];
    for (const over of bad) assert.throws(() => ruleArgs({ ...base, ...(over as object) } as Parameters<typeof ruleArgs>[0], 4), InvalidArgumentError, JSON.stringify(over));
  });
});
