/**
 * `netd info` (GET /netd/v1/info) reports the firewall backend and what in the host's firewall drops netd's
 * traffic. nftables backend: iptables-nft's FORWARD policy DROP and another table's forward chain with
 * policy drop are named with the rule to add; once that rule is in (or the drop is gone) the warning goes
 * at the next look; real traffic confirms each state. iptables backend: the same shape, no warnings.
 * Both backends run here whatever NETD_TEST_FIREWALL_BACKEND says (each daemon names its own).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { FIXTURES, TestDaemon, Topology, startWhoami } from '../helpers/daemon.js';
import { stopAll } from '../helpers/traffic.js';
import type { DaemonInfo } from '../../src/api/info-api.js';

const FIX = 'iptables -I FORWARD -m mark --mark 0x00200000/0x00200000 -j ACCEPT';
const MARK_ACCEPT = ['-m', 'mark', '--mark', '0x00200000/0x00200000', '-j', 'ACCEPT'];
/** Longer than the second for which `netd info` may answer with the last look. */
const nextLook = () => new Promise((r) => setTimeout(r, 1100));

describe('netd info: firewall backend and coexistence warnings', () => {
  let daemon: TestDaemon | undefined;
  /** Every daemon started, destroyed at the end even when a test failed half-way. */
  const daemons: TestDaemon[] = [];
  const topologies: Topology[] = [];
  const servers: ChildProcess[] = [];
  const containers: TestContainer[] = [];

  const info = async () => daemon!.client.call<DaemonInfo>('GET', '/netd/v1/info');
  const infoText = async () => (await daemon!.cli(['info'])).stdout;
  const outsideOk = async (c: TestContainer) => (await c.exec(['node', join(FIXTURES, 'tcp-get.cjs'), Topology.OUTSIDE, '8080', '1500'], { allowFail: true })).code === 0;

  /**
   * A host namespace of its own per backend (a killed daemon's tables and bridge stay in it), a server
   * outside, a daemon with `backend`, and a container attached to its default network.
   */
  const setUp = async (tag: string, backend: string) => {
    const topo = await Topology.create(tag);
    topologies.push(topo);
    servers.push(await startWhoami(topo.outside, Topology.OUTSIDE, 8080));
    daemon = await TestDaemon.start(topo.host, ['--firewall-backend', backend]);
    daemons.push(daemon);
    const c = await TestContainer.start();
    containers.push(c);
    await daemon.cli(['attach', String(c.pid)]);
    return { topo, daemon, c };
  };

  before(() => requireRoot());

  after(async () => {
    await stopAll(servers, containers);
    for (const d of daemons) await d.destroy();
    for (const t of topologies) await t.destroy();
  });

  test('nftables: a FORWARD policy DROP of iptables-nft, and another table\'s drop chain, are named with their fix; gone once fixed or removed', async () => {
    const { topo, daemon, c } = await setUp('infon', 'nftables');
    const clean = await info();
    assert.equal(clean.firewall.backend, 'nftables');
    assert.deepEqual(clean.firewall.warnings, [], 'nothing drops netd\'s traffic yet');
    assert.match(await infoText(), /Firewall backend: nftables\nFirewall warnings: none/);
    assert.ok(await outsideOk(c), 'NAT to the outside works');

    // iptables-nft's FORWARD with policy DROP drops what netd's own table accepted.
    await topo.host.exec(['iptables', '-w', '-P', 'FORWARD', 'DROP']);
    assert.equal(await outsideOk(c), false, 'the policy drops netd\'s forwarded traffic');
    await nextLook();
    const [w, ...more] = (await info()).firewall.warnings;
    assert.deepEqual(more, [], 'one warning');
    assert.deepEqual([w.family, w.table, w.chain], ['ip', 'filter', 'FORWARD']);
    assert.match(w.problem, /policy drop/);
    assert.ok(w.fix.includes(FIX), `the fix names the rule: ${w.fix}`);
    const text = await infoText();
    assert.match(text, /Firewall warnings: 1\n {2}ip filter FORWARD: base chain at the forward hook with policy drop/);
    assert.ok(text.includes(`    fix: accept what netd accepted (netd's bridges: netd0): ${FIX}`), text);
    assert.ok(daemon.logs.split('\n').some((l) => l.includes('"op":"coexistence"') && l.includes('ip filter FORWARD')), 'logged too');
    const json = JSON.parse((await daemon.cli(['info', '--format', 'json'])).stdout) as DaemonInfo;
    assert.deepEqual(json.firewall.warnings, [w], 'the CLI\'s JSON is the API\'s');

    // The administrator adds the rule named: traffic flows, and the warning goes.
    await topo.host.exec(['iptables', '-w', '-I', 'FORWARD', ...MARK_ACCEPT]);
    assert.ok(await outsideOk(c), 'the fix lets netd\'s traffic through');
    await nextLook();
    assert.deepEqual((await info()).firewall.warnings, [], 'no warning once the fix is in');
    assert.match(await infoText(), /Firewall warnings: none/);

    // Without the fix again, then without the drop: named again, then gone.
    await topo.host.exec(['iptables', '-w', '-D', 'FORWARD', ...MARK_ACCEPT]);
    await nextLook();
    assert.deepEqual((await info()).firewall.warnings.map((x) => x.chain), ['FORWARD']);
    await topo.host.exec(['iptables', '-w', '-P', 'FORWARD', 'ACCEPT']);
    await nextLook();
    assert.deepEqual((await info()).firewall.warnings, [], 'gone with the drop');
    assert.ok(await outsideOk(c));

    // Another nf_tables table (as firewalld's) with a forward chain of policy drop: the nft form of the fix.
    await topo.host.exec(['nft', 'add table inet other; add chain inet other fw_forward { type filter hook forward priority 0; policy drop; }']);
    assert.equal(await outsideOk(c), false, 'the other table drops netd\'s traffic');
    await nextLook();
    const [o] = (await info()).firewall.warnings;
    assert.deepEqual([o.family, o.table, o.chain], ['inet', 'other', 'fw_forward']);
    const nftFix = 'nft insert rule inet other fw_forward meta mark and 0x00200000 == 0x00200000 accept';
    assert.ok(o.fix.includes(nftFix), o.fix);
    assert.ok((await infoText()).includes(`  inet other fw_forward: base chain at the forward hook with policy drop`));
    await topo.host.exec(['nft', nftFix.replace(/^nft /, '')]);
    assert.ok(await outsideOk(c), 'the nft fix lets netd\'s traffic through');
    await nextLook();
    assert.deepEqual((await info()).firewall.warnings, [], 'no warning once the nft fix is in');
    await topo.host.exec(['nft', 'delete table inet other']);
    await daemon.cli(['detach', String(c.pid)]);
    await daemon.stop();
  });

  test('iptables: info names the backend, with no warnings (its accepts are in iptables\' own FORWARD chain)', async () => {
    const { topo, daemon, c } = await setUp('infoi', 'iptables');
    await topo.host.exec(['iptables', '-w', '-P', 'FORWARD', 'DROP']);
    assert.ok(await outsideOk(c), 'iptables\' FORWARD policy DROP does not drop what netd accepts there');
    const got = await info();
    assert.deepEqual(Object.keys(got).sort(), ['firewall', 'instance']);
    assert.equal(got.instance, daemon.instance);
    assert.deepEqual(got.firewall, { backend: 'iptables', warnings: [] });
    assert.equal(await infoText(), `Instance: ${daemon.instance}\nFirewall backend: iptables\nFirewall warnings: none\n`);
    await daemon.cli(['detach', String(c.pid)]);
  });
});
