/**
 * Two netd instances on one host (issue 11, item 4): different data roots, sockets, bridges and pools in
 * one namespace. Each marks what it makes with its own instance id, and neither one's start, reload,
 * watchdog or crash-restart changes the other's links, addresses or rules, or its containers' traffic.
 * A daemon refuses a socket another daemon answers on, and replaces a stale one. A data root written
 * before instances existed keeps its objects: their old marks are adopted and replaced, and only theirs: the
 * objects of another old data root on the host stay untouched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { CLI, FIXTURES, TestDaemon, Topology, kernelSnapshot, startWhoami, testFirewallBackend } from '../helpers/daemon.js';
import { NETD_TABLE, nftNetdState, nftObjects, nftRuleset, rulesThat, wipeNetdFirewall } from '../helpers/firewall-state.js';

const OUTSIDE_PORT = 9000;

interface Side {
  name: string;
  daemon: TestDaemon;
  /** Container on the user-defined network, serving whoami on port 80, published on `port`. */
  web: TestContainer;
  /** Container on the default network. */
  plain: TestContainer;
  port: number;
}

async function tcp(from: TestContainer | Topology['outside'], host: string, port: number): Promise<string | undefined> {
  const res = await from.exec(['node', join(FIXTURES, 'tcp-get.cjs'), host, String(port), '1500'], { allowFail: true });
  return res.code === 0 ? res.stdout.trim() : undefined;
}

function instanceId(d: TestDaemon): string {
  return (JSON.parse(readFileSync(join(d.dataRoot, 'instance.json'), 'utf8')) as { id: string }).id;
}

async function aliases(topo: Topology): Promise<Map<string, string>> {
  const links = JSON.parse((await topo.host.exec(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string; ifalias?: string }[];
  return new Map(links.filter((l) => l.ifalias).map((l) => [l.ifname, l.ifalias!]));
}

async function side(topo: Topology, name: string, bridge: string, pool: string, port: number, containers: TestContainer[]): Promise<Side> {
  const daemon = await TestDaemon.start(topo.host, ['--bridge', bridge, '--default-address-pool', `base=${pool},size=26`, '--firewall-check-interval', '500']);
  await daemon.cli(['create-network', `web-${name}`]);
  const web = await TestContainer.start();
  const plain = await TestContainer.start();
  containers.push(web, plain);
  await daemon.cli(['attach', String(web.pid), '--network', `web-${name}`, '--name', `web-${name}`, '-p', `${port}:80`]);
  await daemon.cli(['attach', String(plain.pid), '--name', `plain-${name}`]);
  return { name, daemon, web, plain, port };
}

/** The side's containers reach the outside (masqueraded) and the outside reaches its published port. */
async function assertTraffic(s: Side): Promise<void> {
  assert.equal(await tcp(s.web, Topology.OUTSIDE, OUTSIDE_PORT), Topology.HOST_EXT, `${s.name}: web → outside`);
  assert.equal(await tcp(s.plain, Topology.OUTSIDE, OUTSIDE_PORT), Topology.HOST_EXT, `${s.name}: plain → outside`);
}

test('two daemons on one host: restarts, crashes and reloads of one leave the other untouched', async () => {
  requireRoot();
  const topo = await Topology.create('in');
  const containers: TestContainer[] = [];
  const sides: Side[] = [];
  const processes = [await startWhoami(topo.outside, Topology.OUTSIDE, OUTSIDE_PORT)];
  try {
    sides.push(await side(topo, 'a', 'netda0', '192.0.2.0/24', 8081, containers));
    sides.push(await side(topo, 'b', 'netdb0', '203.0.113.0/24', 8082, containers));
    const [a, b] = sides;
    for (const s of sides) {
      const inC = ['nsenter', '-t', String(s.web.pid), '-n', '--', 'node', join(FIXTURES, 'tcp-whoami.cjs'), '0.0.0.0', '80'];
      const server = topo.host.spawn(inC);
      processes.push(server);
      await new Promise<void>((resolve) => server.stdout!.once('data', () => resolve()));
    }
    const published = async (s: Side) => assert.equal(await tcp(topo.outside, Topology.HOST_EXT, s.port), Topology.OUTSIDE, `${s.name}: outside → published port`);
    for (const s of sides) {
      await assertTraffic(s);
      await published(s);
    }

    // Each instance's marks carry its own id, on links and on rules.
    const ids = [instanceId(a.daemon), instanceId(b.daemon)];
    assert.notEqual(ids[0], ids[1]);
    const links = await aliases(topo);
    for (const [i, bridge] of [[0, 'netda0'], [1, 'netdb0']] as const) {
      assert.match(links.get(bridge) ?? '', new RegExp(`^netd:${ids[i]}:[0-9a-f]{12}$`), `${bridge} marked by its instance`);
    }
    const vethMarks = [...links].filter(([n]) => n.startsWith('veth')).map(([, alias]) => alias.split(':')[1]).sort();
    assert.deepEqual(vethMarks, [ids[0], ids[0], ids[1], ids[1]].sort(), 'two veths per instance, each with its id');
    const nft = testFirewallBackend() === 'nftables';
    if (!nft) {
      const saved = (await topo.host.exec(['iptables-save'])).stdout;
      for (const id of ids) {
        assert.ok(saved.includes(`netd:${id}:pf:`), `port-forward rules of ${id}`);
        assert.ok(saved.includes(`NETD-PF-${id}-`), `port-forward chain of ${id}`);
      }
    } else {
      // One table per instance (`inet netd-<id>`), each holding its own port forward and not the other's.
      const state = await nftNetdState(topo.host);
      for (const [i, id] of ids.entries()) {
        assert.ok(state.includes(`table inet netd-${id}`), `table inet netd-${id}:\n${state.join('\n')}`);
        const own = state.filter((l) => l.split(' ')[2] === `netd-${id}`);
        assert.notDeepEqual(rulesThat(own, 'dnat', sides[i].port), [], `port-forward of ${id} in its table`);
        assert.deepEqual(rulesThat(own, 'dnat', sides[1 - i].port), [], `not the other instance's port-forward in ${id}'s table`);
      }
    }

    const before = await kernelSnapshot(topo.host);
    const unchanged = async (what: string) => {
      assert.deepEqual(await kernelSnapshot(topo.host), before, `kernel state unchanged after ${what}`);
      for (const s of sides) await assertTraffic(s);
      await published(b);
    };

    await b.daemon.cli(['firewall-reload']);
    await unchanged('a firewall reload of b');

    await a.daemon.restart('SIGTERM');
    await unchanged('a clean restart of a');

    await a.daemon.stop('SIGKILL');
    await a.daemon.launch();
    await unchanged('a crash and restart of a');
    await published(a);

    // Both watchdogs (every 500 ms) have run a few times meanwhile; and b crashes too.
    await b.daemon.stop('SIGKILL');
    await b.daemon.launch();
    await new Promise((r) => setTimeout(r, 1200));
    await unchanged('a crash and restart of b, and both watchdogs');
    await published(a);

    // Someone flushes every table: both watchdogs heal at once, each putting back its own rules and
    // the shared base, and neither one's healing undoes the other's (the order inside shared chains
    // may differ from before, so rules are compared as sets).
    // On nftables: someone deletes both instances' tables.
    if (!nft) {
      for (const table of ['filter', 'nat', 'raw']) {
        await topo.host.exec(['iptables', '-w', '-t', table, '-F']);
        await topo.host.exec(['iptables', '-w', '-t', table, '-X']);
      }
    }
    // nftables: the nf_tables monitor may put a table back within milliseconds, so "gone" cannot be read after
    // the fact; each `nft delete table` succeeded (wipeNetdFirewall throws otherwise), and a table put back is a
    // new one (its handle changes), checked after healing.
    const tableHandles = async () => nftObjects(await nftRuleset(topo.host)).filter(([k, b]) => k === 'table' && NETD_TABLE.test(String(b.name))).map(([, b]) => `${String(b.name)} ${String(b.handle)}`).sort();
    const handlesBefore = nft ? await tableHandles() : [];
    if (nft) assert.equal((await wipeNetdFirewall(topo.host)).length, 2, 'both instances’ tables deleted');
    const firewall = (snap: Record<string, string[]>) => [...snap.rules, ...(snap.nftables ?? [])];
    const ruleSet = (rules: string[]) => [...rules].sort();
    let healed = firewall(await kernelSnapshot(topo.host));
    for (let i = 0; i < 40 && JSON.stringify(ruleSet(healed)) !== JSON.stringify(ruleSet(firewall(before))); i++) {
      await new Promise((r) => setTimeout(r, 250));
      healed = firewall(await kernelSnapshot(topo.host));
    }
    assert.deepEqual(ruleSet(healed), ruleSet(firewall(before)), 'both instances healed their rules after a flush');
    if (nft) {
      const after = await tableHandles();
      assert.equal(after.length, 2);
      for (const h of after) assert.ok(!handlesBefore.includes(h), `${h}: a new table (the old one was deleted): before ${handlesBefore.join(', ')}`);
    }
    for (const s of sides) {
      await assertTraffic(s);
      await published(s);
    }
  } finally {
    for (const p of processes) p.kill('SIGKILL');
    for (const c of containers) await c.stop();
    for (const s of sides) await s.daemon.destroy();
    await topo.destroy();
  }
});

test('a daemon refuses a socket or an exec root another daemon uses, and replaces a stale socket', async () => {
  requireRoot();
  const topo = await Topology.create('so');
  const first = await TestDaemon.start(topo.host, ['--bridge', 'netdf0']);
  const second = new TestDaemon(topo.host, `${first.dir}-second`, ['--bridge', 'netds0', '--default-address-pool', 'base=192.0.2.0/24,size=26']);
  try {
    const before = await kernelSnapshot(topo.host);
    const res = await topo.host.exec(
      ['node', CLI, '--host', first.host, 'daemon', '--data-root', second.dataRoot, '--exec-root', join(second.dir, 'run'), '--bridge', 'netds0'],
      { allowFail: true, timeoutMs: 15_000 },
    );
    assert.equal(res.code, 1, `exits 1 (stderr: ${res.stderr.trim()})`);
    assert.match(res.stderr, new RegExp(`another daemon is listening on ${first.host.slice('unix://'.length)}`));
    assert.equal(res.stderr.trim().split('\n').length, 1, 'one line');
    assert.deepEqual(await kernelSnapshot(topo.host), before, 'the refused daemon changed nothing in the kernel');
    await first.client.call('GET', '/_ping'); // the first one still serves its socket

    // Its exec root (namespaces, container files) is the first one's too: refused as well.
    const shared = await topo.host.exec(
      ['node', CLI, '--host', `unix://${join(second.dir, 'own.sock')}`, 'daemon', '--data-root', second.dataRoot, '--exec-root', join(first.dir, 'run'), '--bridge', 'netds0'],
      { allowFail: true, timeoutMs: 15_000 },
    );
    assert.equal(shared.code, 1, `exits 1 (stderr: ${shared.stderr.trim()})`);
    assert.match(shared.stderr, /^netd: another netd \(pid \d+\) is already running on exec root .*\/run\n$/);
    assert.deepEqual(await kernelSnapshot(topo.host), before, 'nothing changed in the kernel');

    // A daemon that died leaves its socket behind: the next one on that path starts.
    await first.stop('SIGKILL');
    await first.launch();
    await first.client.call('GET', '/_ping');
  } finally {
    await first.destroy();
    rmSync(second.dir, { recursive: true, force: true });
    await topo.destroy();
  }
});

test('a data root from before instances: its objects keep working, their old marks are replaced', async () => {
  requireRoot();
  const topo = await Topology.create('up');
  // Data roots from before instances only ever had iptables rules: this upgrade is the iptables backend's.
  const daemon = await TestDaemon.start(topo.host, ['--firewall-check-interval', '0', '--firewall-backend', 'iptables']);
  const web = await TestContainer.start();
  const processes = [await startWhoami(topo.outside, Topology.OUTSIDE, OUTSIDE_PORT)];
  try {
    await daemon.cli(['create-network', 'old', '--subnet', '192.0.2.0/24']);
    await daemon.cli(['attach', String(web.pid), '--network', 'old', '--name', 'web', '-p', '8081:80']);
    const server = topo.host.spawn(['nsenter', '-t', String(web.pid), '-n', '--', 'node', join(FIXTURES, 'tcp-whoami.cjs'), '0.0.0.0', '80']);
    processes.push(server);
    await new Promise<void>((resolve) => server.stdout!.once('data', () => resolve()));
    const id = instanceId(daemon);
    await daemon.stop();

    // Turn the kernel state into what netd wrote before instances: marks without an instance id.
    const legacy = (text: string) => text.replaceAll(`netd:${id}:`, 'netd:').replaceAll(`NETD-PF-${id}-`, 'NETD-PF-').replaceAll(`NETD-PFB-${id}-`, 'NETD-PFB-');
    for (const [alias, name] of [...(await aliases(topo))].map(([n, al]) => [al, n] as const)) {
      if (alias.startsWith(`netd:${id}:`)) await topo.host.exec(['ip', 'link', 'set', 'dev', name, 'alias', legacy(alias)]);
    }
    for (const [save, restore] of [['iptables-save', 'iptables-restore'], ['ip6tables-save', 'ip6tables-restore']]) {
      const text = (await topo.host.exec([save])).stdout;
      await topo.host.exec([restore], { input: legacy(text) });
    }
    rmSync(join(daemon.dataRoot, 'instance.json'));
    const oldState = await kernelSnapshot(topo.host);
    assert.ok(oldState.rules.some((r) => /netd:pf:[0-9a-f]{12}/.test(r)), 'legacy port-forward marks in place');
    // Another data root from before instances on the same host (its daemon not upgraded yet): a veth, a
    // network rule and two port forwards with old marks, one of them in the old bucket this data root's
    // endpoint uses too. The upgrade must leave every one of them alone.
    const shared = /NETD-PFB-([0-9a-f]{2})/.exec(oldState.rules.join('\n'))![1];
    const lone = shared === 'e1' ? 'f1' : 'e1';
    await topo.host.exec(['ip', 'link', 'add', 'vethc0ffee1', 'type', 'veth', 'peer', 'name', 'vethc0ffee2']);
    await topo.host.exec(['ip', 'link', 'set', 'dev', 'vethc0ffee1', 'alias', 'netd:c0ffee000000']);
    const forward = (bucket: string, id12: string, port: number) => [
      `-N NETD-PF-${id12}`,
      `-A NETD-PF-${id12} -p tcp -m tcp --dport ${port} -m comment --comment netd:pf:${id12} -j DNAT --to-destination 203.0.113.2:80`,
      `-A NETD-PFB-${bucket} -m comment --comment netd:pf:${id12} -j NETD-PF-${id12}`,
    ];
    const otherRoot = [
      '*nat',
      `-N NETD-PFB-${lone}`,
      `-A NETD -m comment --comment netd:pf -j NETD-PFB-${lone}`,
      ...forward(shared, `${shared}0ffee1111a`, 8090),
      ...forward(lone, `${lone}0ffee1111b`, 8091),
      '-A NETD-POSTROUTING -s 203.0.113.0/24 ! -o brother0 -m comment --comment netd:c0ffee000000 -j MASQUERADE',
      'COMMIT',
      '',
    ].join('\n');
    await topo.host.exec(['iptables-restore', '-w', '--noflush'], { input: otherRoot });
    const otherRules = (await kernelSnapshot(topo.host)).rules.filter((r) => r.includes('0ffee') || r.includes(`NETD-PFB-${lone}`));
    assert.equal(otherRules.length, 9, 'the other old data root\'s rules and chains are in place');

    await daemon.launch();
    const newId = instanceId(daemon);
    const marks = [...(await aliases(topo))].filter(([n]) => n !== 'vethc0ffee1').map(([, m]) => m);
    assert.ok(marks.length >= 3, 'bridges and the veth are marked');
    for (const m of marks) assert.match(m, new RegExp(`^netd:${newId}:[0-9a-f]{12}$`), 'every link carries the new mark');
    const rules = (await kernelSnapshot(topo.host)).rules;
    const legacyMark = /netd:(pf|[0-9a-f]{12})\b|NETD-PF-[0-9a-f]{12}\b|NETD-PFB-[0-9a-f]{2}\b/;
    for (const r of otherRules) assert.ok(rules.includes(r), `the other old data root's ${r} is untouched`);
    assert.ok(rules.includes(`-A NETD -m comment --comment "netd:pf" -j NETD-PFB-${shared}`), 'the shared old bucket stays reachable');
    const ours = rules.filter((r) => legacyMark.test(r) && !r.includes('0ffee') && !r.includes(`NETD-PFB-${lone}`) && !r.includes(`NETD-PFB-${shared}`));
    assert.deepEqual(ours, [], 'no legacy mark or chain of this data root left');
    assert.ok(!rules.some((r) => r.includes(`NETD-PFB-${shared}`) && r.includes('"netd:pf:') && !r.includes('0ffee')), "this data root's jump left the shared old bucket");
    assert.equal((await aliases(topo)).get('vethc0ffee1'), 'netd:c0ffee000000', "the other old data root's veth is untouched");
    assert.ok(rules.some((r) => r.includes(`netd:${newId}:pf:`)), 'the published port is marked by the instance');
    assert.equal(await tcp(topo.outside, Topology.HOST_EXT, 8081), Topology.OUTSIDE, 'the published port still works');
    assert.equal(await tcp(web, Topology.OUTSIDE, OUTSIDE_PORT), Topology.HOST_EXT, 'the container still reaches the outside');
    assert.equal((JSON.parse(readFileSync(join(daemon.dataRoot, 'instance.json'), 'utf8')) as { adoptLegacy: boolean }).adoptLegacy, false, 'adopted once');
  } finally {
    for (const p of processes) p.kill('SIGKILL');
    await web.stop();
    await daemon.destroy();
    await topo.destroy();
  }
});
