/**
 * Network modes, multiple networks per container, isolation, and the bridge options, with real traffic:
 * none, host, container:<other>, sandboxes netd creates, connect/disconnect (eth0 + eth1, one default
 * route), isolation between networks both ways, ICC off, masquerade off, MTU, prune, and IPv6.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { FIXTURES, TestDaemon, Topology, kernelSnapshot, startWhoami } from '../helpers/daemon.js';
import { converged } from '../helpers/settle.js';

interface AttachJson {
  network: string;
  endpointId: string;
  sandboxId: string;
  interface: string;
  ipv4?: string;
  ipv6?: string;
  gateway?: string;
  gateway6?: string;
}

const ip = (cidr: string) => cidr.split('/')[0];

describe('modes, networks and isolation', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  const containers: TestContainer[] = [];
  let outsideServer: Awaited<ReturnType<typeof startWhoami>>;

  async function container(): Promise<TestContainer> {
    const c = await TestContainer.start();
    containers.push(c);
    return c;
  }

  async function attach(target: string, args: string[] = []): Promise<AttachJson> {
    return JSON.parse((await daemon.cli(['attach', target, ...args])).stdout) as AttachJson;
  }

  const reaches = async (c: TestContainer, to: string) => (await c.exec(['ping', '-c', '1', '-W', '1', to], { allowFail: true })).code === 0;
  const tcp = async (c: TestContainer, host: string, port: number) => {
    const res = await c.exec(['node', join(FIXTURES, 'tcp-get.cjs'), host, String(port), '1500'], { allowFail: true });
    return { ok: res.code === 0, text: res.stdout.trim() };
  };

  before(async () => {
    requireRoot();
    topo = await Topology.create('md');
    daemon = await TestDaemon.start(topo.host);
    outsideServer = await startWhoami(topo.outside, '0.0.0.0', 8080);
  });

  after(async () => {
    outsideServer?.kill('SIGKILL');
    for (const c of containers) await c.stop();
    await daemon?.destroy();
    await topo?.destroy();
  });

  test('none: the container gets lo, up, and nothing else', async () => {
    const c = await container();
    const r = await attach(String(c.pid), ['--mode', 'none']);
    assert.equal(r.network, 'none');
    const links = await c.ipJson<{ ifname: string; flags: string[] }[]>(['link', 'show']);
    assert.deepEqual(links.map((l) => l.ifname), ['lo']);
    assert.ok(links[0].flags.includes('UP'));
    const refused = await daemon.cli(['attach', String(c.pid), '--network', 'bridge'], true);
    assert.match(refused.stderr, /none network and another/);
    await daemon.cli(['detach', String(c.pid)]);
  });

  test('host: a process in the host namespace is recorded, and nothing in the kernel changes', async () => {
    const proc = topo.host.spawn(['sleep', 'infinity']);
    await new Promise((r) => setTimeout(r, 200));
    try {
      const before = await kernelSnapshot(topo.host);
      const r = await attach(String(proc.pid), ['--mode', 'host', '--name', 'hosty']);
      assert.equal(r.network, 'host');
      assert.deepEqual(await kernelSnapshot(topo.host), before);
      const inspect = JSON.parse((await daemon.cli(['inspect', 'host'])).stdout)[0] as { Containers: Record<string, { Name: string }> };
      assert.deepEqual(Object.values(inspect.Containers).map((c) => c.Name), ['hosty']);
      const own = await container();
      assert.match((await daemon.cli(['attach', String(own.pid), '--mode', 'host'], true)).stderr, /namespace of its own/);
      await daemon.cli(['detach', 'hosty']);
      assert.deepEqual(await kernelSnapshot(topo.host), before);
    } finally {
      proc.kill('SIGKILL');
    }
  });

  test('container:<other> shares the namespace; the second keeps working after the first is gone', async () => {
    const first = await container();
    const r = await attach(String(first.pid), ['--name', 'app']);
    const second = await TestContainer.startSharing(first);
    containers.push(second);
    const shared = JSON.parse((await daemon.cli(['attach', String(second.pid), '--mode', 'container:app', '--name', 'sidecar'])).stdout) as { sharedWith: string; endpoints: AttachJson[] };
    assert.equal(shared.sharedWith, 'app');
    assert.equal(shared.endpoints[0].ipv4, r.ipv4, 'same IP');
    const stranger = await container();
    assert.match((await daemon.cli(['attach', String(stranger.pid), '--mode', 'container:app'], true)).stderr, /not in the network namespace of container app/);

    await daemon.cli(['detach', 'app']);
    await first.stop();
    assert.ok(await reaches(second, r.gateway!), 'the second container still has the network');
    assert.ok(await reaches(second, ip(r.ipv4!)), 'and its address');
    await daemon.cli(['detach', 'sidecar']);
    await converged(daemon); // a detach answers once cut off; the veth is deleted right after (teardown queue)
    assert.deepEqual((await second.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname), ['lo'], 'the last one out takes eth0 away');
  });

  test('sandboxes netd creates: create, attach by name, reach it, remove it', async () => {
    const path = (await daemon.cli(['sandbox', 'create', 'pod1'])).stdout.trim();
    assert.equal(path, join(daemon.dir, 'run', 'netns', 'pod1'));
    const r = await attach('pod1');
    assert.equal(r.interface, 'eth0');
    assert.equal((await topo.host.exec(['ping', '-c', '1', '-W', '1', ip(r.ipv4!)], { allowFail: true })).code, 0, 'the host reaches the sandbox');
    const listed = JSON.parse((await daemon.cli(['sandbox', 'ls', '--format', 'json'])).stdout) as { name: string; persistent: boolean }[];
    assert.ok(listed.some((s) => s.name === 'pod1' && s.persistent));
    await daemon.cli(['sandbox', 'rm', 'pod1']);
    const endpoints = JSON.parse((await daemon.cli(['endpoints', '--format', 'json'])).stdout) as { name: string }[];
    assert.ok(!endpoints.some((e) => e.name === 'pod1'));
    assert.notEqual((await topo.host.exec(['ping', '-c', '1', '-W', '1', ip(r.ipv4!)], { allowFail: true })).code, 0);
  });

  test('two networks: eth0 and eth1, one default route, reaches both; isolation between networks both ways', async () => {
    await daemon.cli(['create-network', 'red', '--subnet', '192.0.2.0/25']);
    await daemon.cli(['create-network', 'blue', '--subnet', '192.0.2.128/25']);
    const onRed = await container();
    const onBlue = await container();
    const both = await container();
    const rRed = await attach(String(onRed.pid), ['--network', 'red']);
    const rBlue = await attach(String(onBlue.pid), ['--network', 'blue']);
    const b0 = await attach(String(both.pid), ['--network', 'red', '--name', 'both']);
    await daemon.cli(['connect', 'blue', 'both']);

    const links = (await both.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname).sort();
    assert.deepEqual(links, ['eth0', 'eth1', 'lo']);
    const defaults = (await both.ipJson<{ dst: string; gateway: string }[]>(['route', 'show'])).filter((r) => r.dst === 'default');
    assert.deepEqual(defaults.map((r) => r.gateway), [b0.gateway], 'exactly one default route, via the first network');
    assert.ok(await reaches(both, ip(rRed.ipv4!)), 'both → red');
    assert.ok(await reaches(both, ip(rBlue.ipv4!)), 'both → blue');

    assert.equal(await reaches(onRed, ip(rBlue.ipv4!)), false, 'red ↛ blue');
    assert.equal(await reaches(onBlue, ip(rRed.ipv4!)), false, 'blue ↛ red');
    assert.equal(await reaches(onRed, '192.0.2.129'), true, 'a container reaches the host (another network’s gateway address is the host’s)');

    await daemon.cli(['disconnect', 'blue', 'both']);
    assert.deepEqual((await both.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname).sort(), ['eth0', 'lo']);
    for (const c of [onRed, onBlue, both]) await daemon.cli(['detach', String(c.pid)]);
  });

  test('enable_icc=false: containers on the network cannot reach each other but still reach the outside', async () => {
    await daemon.cli(['create-network', 'noicc', '--subnet', '203.0.113.0/26', '-o', 'com.docker.network.bridge.enable_icc=false']);
    const a = await container();
    const b = await container();
    const ra = await attach(String(a.pid), ['--network', 'noicc']);
    const rb = await attach(String(b.pid), ['--network', 'noicc']);
    assert.equal(await reaches(a, ip(rb.ipv4!)), false, 'a ↛ b');
    assert.equal(await reaches(b, ip(ra.ipv4!)), false, 'b ↛ a');
    const out = await tcp(a, Topology.OUTSIDE, 8080);
    assert.ok(out.ok, 'the outside is still reachable');
    assert.equal(out.text, Topology.HOST_EXT);
    for (const c of [a, b]) await daemon.cli(['detach', String(c.pid)]);
    await daemon.cli(['rm-network', 'noicc']);
  });

  test('enable_ip_masquerade=false: the outside sees the container’s own address; MTU option applies', async () => {
    await daemon.cli(['create-network', 'routed', '--subnet', '203.0.113.64/26', '-o', 'com.docker.network.bridge.enable_ip_masquerade=false', '-o', 'com.docker.network.driver.mtu=1280', '-o', 'com.docker.network.bridge.name=routed0']);
    await topo.outside.exec(['ip', 'route', 'add', '203.0.113.64/26', 'via', Topology.HOST_EXT]);
    try {
      const c = await container();
      const r = await attach(String(c.pid), ['--network', 'routed']);
      const out = await tcp(c, Topology.OUTSIDE, 8080);
      assert.ok(out.ok);
      assert.equal(out.text, ip(r.ipv4!), 'no masquerade');
      const eth0 = (await c.ipJson<{ mtu: number }[]>(['link', 'show', 'eth0']))[0];
      assert.equal(eth0.mtu, 1280);
      const br = JSON.parse((await topo.host.exec(['ip', '-j', 'link', 'show', 'routed0'])).stdout)[0] as { mtu: number };
      assert.equal(br.mtu, 1280);
      await daemon.cli(['detach', String(c.pid)]);
    } finally {
      await topo.outside.exec(['ip', 'route', 'del', '203.0.113.64/26'], { allowFail: true });
    }
    await daemon.cli(['rm-network', 'routed']);
  });

  test('IPv6: dual-stack network, v6 addresses and default route, v6 traffic between containers', async () => {
    await daemon.cli(['create-network', 'six', '--ipv6', '--subnet', '198.51.100.128/26', '--subnet', '2001:db8:6::/64']);
    const a = await container();
    const b = await container();
    const ra = await attach(String(a.pid), ['--network', 'six']);
    const rb = await attach(String(b.pid), ['--network', 'six', '--ip6', '2001:db8:6::66']);
    assert.equal(ra.ipv6, '2001:db8:6::2/64');
    assert.equal(rb.ipv6, '2001:db8:6::66/64');
    assert.equal(ra.gateway6, '2001:db8:6::1');
    const routes = await a.ipJson<{ dst: string; gateway?: string }[]>(['-6', 'route', 'show']);
    assert.ok(routes.some((r) => r.dst === 'default' && r.gateway === '2001:db8:6::1'));
    assert.equal((await a.exec(['ping', '-6', '-c', '1', '-W', '2', '2001:db8:6::66'], { allowFail: true })).code, 0, 'a → b over v6');
    assert.equal((await b.exec(['ping', '-6', '-c', '1', '-W', '2', '2001:db8:6::1'], { allowFail: true })).code, 0, 'b → gateway over v6');
    for (const c of [a, b]) await daemon.cli(['detach', String(c.pid)]);
  });

  test('prune removes the networks without containers, prints them, keeps the rest', async () => {
    // Networks earlier tests left without containers (red, blue, six) go first.
    const first = (await daemon.cli(['prune'])).stdout.trim().split('\n').sort();
    assert.deepEqual(first, ['blue', 'red', 'six']);
    const keep = await container();
    await daemon.cli(['create-network', 'kept', '--subnet', '192.0.2.0/28']);
    await attach(String(keep.pid), ['--network', 'kept']);
    await daemon.cli(['create-network', 'spare1']);
    assert.deepEqual((await daemon.cli(['prune'])).stdout.trim().split('\n'), ['spare1']);
    const names = (JSON.parse((await daemon.cli(['networks', '--format', 'json'])).stdout) as { Name: string }[]).map((n) => n.Name).sort();
    assert.deepEqual(names, ['bridge', 'host', 'kept', 'none']);
    await daemon.cli(['detach', String(keep.pid)]);
  });
});
