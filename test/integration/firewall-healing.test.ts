/**
 * Healing without polling: with the timed firewall check off (--firewall-check-interval 0), the daemon's
 * nf_tables monitor alone puts its rules back when another process flushes the ruleset, flushes one of its
 * chains or deletes a table it uses, and NAT traffic works again; netd's own changes (50 attaches and
 * detaches with published ports) trigger no reload. The iptables backend (iptables-nft on this machine).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { FIXTURES, TestDaemon, Topology, startWhoami } from '../helpers/daemon.js';
import { stopAll } from '../helpers/traffic.js';

interface LogEvent {
  time: number;
  op?: string;
  reason?: string;
  msg?: string;
}

function events(daemon: TestDaemon): LogEvent[] {
  return daemon.logs
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogEvent);
}

const kernelReloads = (daemon: TestDaemon) => events(daemon).filter((e) => e.op === 'firewall-reload' && e.reason === 'kernel-event');

/** Polls `check` every 20 ms until it holds; fails after `ms`. */
async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + ms; !(await check()); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
  }
}

describe('firewall healing from nf_tables notifications', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  const containers: TestContainer[] = [];
  let outsideServer: Awaited<ReturnType<typeof startWhoami>>;

  const outsideOk = async (c: TestContainer) => (await c.exec(['node', join(FIXTURES, 'tcp-get.cjs'), Topology.OUTSIDE, '8080', '1500'], { allowFail: true })).code === 0;
  const rulesBack = async () => {
    const [filter, nat] = await Promise.all([topo.host.exec(['iptables-save', '-t', 'filter'], { allowFail: true }), topo.host.exec(['iptables-save', '-t', 'nat'], { allowFail: true })]);
    return filter.stdout.includes('-j NETD-FORWARD') && /-A NETD-POSTROUTING .*-j MASQUERADE/.test(nat.stdout);
  };

  before(async () => {
    requireRoot();
    topo = await Topology.create('heal');
    daemon = await TestDaemon.start(topo.host, ['--firewall-backend', 'iptables', '--firewall-check-interval', '0']);
    outsideServer = await startWhoami(topo.outside, Topology.OUTSIDE, 8080);
  });

  after(() => stopAll(outsideServer ? [outsideServer] : [], containers, daemon, topo));

  test('nft flush ruleset, a flushed NETD-POSTROUTING, a deleted ip nat table: rules back, NAT works again', async () => {
    const c = await TestContainer.start();
    containers.push(c);
    await daemon.cli(['attach', String(c.pid)]);
    assert.ok(await outsideOk(c), 'NAT to the outside works before');
    for (const argv of [
      ['nft', 'flush', 'ruleset'],
      ['iptables', '-t', 'nat', '-F', 'NETD-POSTROUTING'],
      ['nft', 'delete', 'table', 'ip', 'nat'],
    ]) {
      const reloadsBefore = kernelReloads(daemon).length;
      const started = Date.now();
      await topo.host.exec(argv);
      await until(`rules back after ${argv.join(' ')}`, 5000, rulesBack);
      const polled = Date.now() - started;
      await until('the reload logged', 2000, async () => kernelReloads(daemon).length > reloadsBefore);
      const reload = kernelReloads(daemon)[reloadsBefore];
      const seen = events(daemon).filter((e) => e.op === 'firewall-watch' && e.time >= started)[0];
      assert.ok(seen, 'the foreign change was reported');
      console.log(`# ${argv.join(' ')}: seen ${seen.time - started} ms after the command started (ip netns exec + the command), rules back ${reload.time - seen.time} ms later (reload: debounce + iptables-save + restore); ${polled} ms polled through iptables-save`);
      assert.ok(await outsideOk(c), `NAT traffic works again after ${argv.join(' ')}`);
    }
    // A FORWARD policy reset (netd turned forwarding on, so it keeps DROP) is a chain update: put back too.
    if (/-P FORWARD DROP/.test((await topo.host.exec(['iptables', '-S', 'FORWARD'])).stdout)) {
      await topo.host.exec(['iptables', '-w', '-P', 'FORWARD', 'ACCEPT']);
      await until('FORWARD policy DROP again', 5000, async () => /-P FORWARD DROP/.test((await topo.host.exec(['iptables', '-S', 'FORWARD'])).stdout));
    } else console.log('# FORWARD policy not DROP here (forwarding was on already): policy reset not exercised');
    await daemon.cli(['detach', String(c.pid)]);
  });

  test("netd's own changes (50 attaches and detaches with published ports) trigger no kernel-event reload", async () => {
    const c = await TestContainer.start();
    containers.push(c);
    const before = kernelReloads(daemon).length;
    const watchBefore = events(daemon).filter((e) => e.op === 'firewall-watch').length;
    for (let i = 0; i < 50; i++) {
      await daemon.client.call('POST', '/netd/v1/attach', { target: { pid: c.pid }, ports: [{ Proto: 6, Port: 80, HostIP: '', HostPort: 18_000 + i, HostPortEnd: 18_000 + i }, { Proto: 17, Port: 53, HostIP: '', HostPort: 19_000 + i, HostPortEnd: 19_000 + i }] });
      await daemon.client.call('POST', '/netd/v1/detach', { container: String(c.pid) });
    }
    await new Promise((r) => setTimeout(r, 300)); // later than the 20 ms debounce
    assert.equal(kernelReloads(daemon).length, before, 'no reload from netd-made transactions');
    assert.equal(events(daemon).filter((e) => e.op === 'firewall-watch').length, watchBefore, 'no foreign change reported');
  });
});

describe('the timed firewall check, where nf_tables cannot be watched', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  let c: TestContainer | undefined;

  before(async () => {
    requireRoot();
    topo = await Topology.create('fwchk');
    // NETD_TEST_NO_FIREWALL_WATCH: as with iptables-legacy (no notifications), the timed check runs.
    daemon = await TestDaemon.start(topo.host, ['--firewall-backend', 'iptables', '--firewall-check-interval', '200'], { NETD_TEST_NO_FIREWALL_WATCH: '1' });
  });

  after(async () => {
    await c?.stop();
    await daemon?.destroy();
    await topo?.destroy();
  });

  test('reads without reconciling while nothing is missing; reconciles once something is', async () => {
    c = await TestContainer.start();
    await daemon.client.call('POST', '/netd/v1/attach', { target: { pid: c.pid }, ports: [{ Proto: 6, Port: 80, HostIP: '', HostPort: 18_080, HostPortEnd: 18_080 }] });
    const reconciles = () => events(daemon).filter((e) => e.op === 'reconcile').length;
    await new Promise((r) => setTimeout(r, 300));
    const settled = reconciles();
    await new Promise((r) => setTimeout(r, 2000)); // ~10 checks
    assert.equal(reconciles(), settled, 'no reconcile (no controller lock, no restore) while the rules are all there');
    await topo.host.exec(['iptables', '-t', 'nat', '-F', 'NETD-POSTROUTING']);
    await until('rules back through the timed check', 5000, async () => /-A NETD-POSTROUTING .*-j MASQUERADE/.test((await topo.host.exec(['iptables-save', '-t', 'nat'])).stdout));
    assert.ok(reconciles() > settled, 'the check reconciled');
    assert.ok(!events(daemon).some((e) => e.op === 'firewall-watch'), 'no nf_tables monitor here');
  });
});
