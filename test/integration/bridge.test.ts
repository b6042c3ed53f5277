/**
 * The bridge driver end to end: a daemon in a throwaway "host" namespace, containers as processes in
 * their own namespaces, an "outside" namespace behind the host. Real traffic and real kernel state.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { FIXTURES, TestDaemon, Topology, kernelSnapshot, startWhoami, testFirewallBackend } from '../helpers/daemon.js';
import { mentioning, netdFirewallState, netdRulesThat } from '../helpers/firewall-state.js';

interface AttachJson {
  network: string;
  endpointId: string;
  interface: string;
  mac: string;
  ipv4: string;
  gateway?: string;
}

const ip = (cidr: string) => cidr.split('/')[0];

describe('bridge networks', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  const containers: TestContainer[] = [];
  let outsideServer: Awaited<ReturnType<typeof startWhoami>>;

  async function container(): Promise<TestContainer> {
    const c = await TestContainer.start();
    containers.push(c);
    return c;
  }

  async function attach(c: TestContainer, args: string[] = []): Promise<AttachJson> {
    const res = await daemon.cli(['attach', String(c.pid), ...args]);
    return JSON.parse(res.stdout) as AttachJson;
  }

  async function ping(from: TestContainer | Topology['host'], to: string): Promise<boolean> {
    const argv = ['ping', '-c', '1', '-W', '1', to];
    const res = from instanceof TestContainer ? await from.exec(argv, { allowFail: true }) : await from.exec(argv, { allowFail: true });
    return res.code === 0;
  }

  async function tcpGet(c: TestContainer, host: string, port: number): Promise<{ ok: boolean; text: string }> {
    const res = await c.exec(['node', join(FIXTURES, 'tcp-get.cjs'), host, String(port), '1500'], { allowFail: true });
    return { ok: res.code === 0, text: res.stdout.trim() };
  }

  before(async () => {
    requireRoot();
    topo = await Topology.create('br');
    daemon = await TestDaemon.start(topo.host);
    outsideServer = await startWhoami(topo.outside, Topology.OUTSIDE, 8080);
  });

  after(async () => {
    outsideServer?.kill('SIGKILL');
    for (const c of containers) await c.stop();
    await daemon?.destroy();
    await topo?.destroy();
  });

  test('the default network exists on netd0 with the first default pool', async () => {
    const list = JSON.parse((await daemon.cli(['networks', '--format', 'json'])).stdout) as { Name: string; IPAM: { Config: { Subnet: string }[] } }[];
    const bridge = list.find((n) => n.Name === 'bridge');
    assert.ok(bridge, 'bridge network listed');
    assert.equal(bridge.IPAM.Config[0].Subnet, '172.17.0.0/16');
    const link = JSON.parse((await topo.host.exec(['ip', '-j', '-d', 'addr', 'show', 'dev', 'netd0'])).stdout)[0];
    assert.equal(link.linkinfo.info_kind, 'bridge');
    assert.ok(link.addr_info.some((a: { local: string }) => a.local === '172.17.0.1'));
    assert.equal((await topo.host.exec(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim(), '1');
  });

  test('1. two containers ping each other and the gateway; the host reaches both', async () => {
    const a = await container();
    const b = await container();
    const ra = await attach(a);
    const rb = await attach(b);
    assert.equal(ra.interface, 'eth0');
    assert.match(ra.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    assert.equal(parseInt(ra.mac.slice(0, 2), 16) & 0x03, 0x02, 'locally administered unicast MAC');

    // Kernel state inside the container: eth0 with the address and MAC, lo up, default route via the gateway.
    const links = await a.ipJson<{ ifname: string; address: string; operstate: string; flags: string[] }[]>(['addr', 'show']);
    const eth0 = links.find((l) => l.ifname === 'eth0')!;
    assert.equal(eth0.address, ra.mac);
    assert.ok(eth0.flags.includes('UP'));
    assert.ok(links.find((l) => l.ifname === 'lo')!.flags.includes('UP'));
    const routes = await a.ipJson<{ dst: string; gateway?: string; dev: string }[]>(['route', 'show']);
    assert.deepEqual(routes.filter((r) => r.dst === 'default').map((r) => [r.gateway, r.dev]), [[ra.gateway, 'eth0']]);

    // The host end: veth + 7 hex, enslaved to netd0, up.
    const endpoints = JSON.parse((await daemon.cli(['endpoints', '--format', 'json'])).stdout) as { id: string; driverState: { hostIfname: string } }[];
    const hostIf = endpoints.find((e) => e.id === ra.endpointId)!.driverState.hostIfname;
    assert.match(hostIf, /^veth[0-9a-f]{7}$/);
    const hostLink = JSON.parse((await topo.host.exec(['ip', '-j', '-d', 'link', 'show', 'dev', hostIf])).stdout)[0];
    assert.equal(hostLink.master, 'netd0');
    assert.ok(hostLink.flags.includes('UP'));

    assert.ok(await ping(a, ip(rb.ipv4)), 'a → b');
    assert.ok(await ping(b, ip(ra.ipv4)), 'b → a');
    assert.ok(await ping(a, ra.gateway!), 'a → gateway');
    assert.ok(await ping(topo.host, ip(ra.ipv4)), 'host → a');
    assert.ok(await ping(topo.host, ip(rb.ipv4)), 'host → b');
  });

  test('2. a container reaches the outside through MASQUERADE, only while ip_forward is 1', async () => {
    const c = await container();
    await attach(c);
    const seen = await tcpGet(c, Topology.OUTSIDE, 8080);
    assert.ok(seen.ok, 'the outside server answers');
    assert.equal(seen.text, Topology.HOST_EXT, 'the outside sees the host’s address');
    if (testFirewallBackend() === 'iptables') {
      const rules = (await topo.host.exec(['iptables-save', '-t', 'nat'])).stdout;
      assert.match(rules, /-s 172\.17\.0\.0\/16 ! -o netd0 .*-j MASQUERADE/);
    } else {
      assert.notDeepEqual(await netdRulesThat(topo.host, 'masquerade', '172.17.0.0/16'), [], 'netd masquerades the default network in its table');
    }

    await topo.host.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    try {
      assert.equal((await tcpGet(c, Topology.OUTSIDE, 8080)).ok, false, 'no forwarding, no outside');
    } finally {
      await topo.host.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    }
    assert.ok((await tcpGet(c, Topology.OUTSIDE, 8080)).ok, 'back once forwarding is on');
  });

  test('3. an internal network’s containers cannot reach the outside, but reach each other', async () => {
    await daemon.cli(['create-network', 'intern', '--internal', '--subnet', '192.0.2.0/24']);
    const a = await container();
    const b = await container();
    const ra = await attach(a, ['--network', 'intern']);
    const rb = await attach(b, ['--network', 'intern']);
    assert.equal(ra.gateway, undefined, 'no default route on an internal network');
    assert.ok(await ping(a, ip(rb.ipv4)), 'inside the network');
    assert.equal((await tcpGet(a, Topology.OUTSIDE, 8080)).ok, false, 'no way out');
    // Even with a route out, the firewall stops it.
    await a.exec(['ip', 'route', 'add', 'default', 'via', '192.0.2.1']);
    assert.equal((await tcpGet(a, Topology.OUTSIDE, 8080)).ok, false, 'internal traffic is dropped at the host');
    if (testFirewallBackend() === 'iptables') {
      const nat = (await topo.host.exec(['iptables-save', '-t', 'nat'])).stdout;
      assert.doesNotMatch(nat, /192\.0\.2\.0\/24.*MASQUERADE/);
    } else {
      const state = await netdFirewallState(topo.host);
      assert.notDeepEqual(mentioning(state, '192.0.2.0/24'), [], 'the internal network has rules of its own (isolation)');
      assert.notDeepEqual(await netdRulesThat(topo.host, 'masquerade', '172.17.0.0/16'), [], 'masquerading is there for the default network');
      assert.deepEqual(await netdRulesThat(topo.host, 'masquerade', '192.0.2.0/24'), [], 'but not for the internal one');
    }
    await daemon.cli(['detach', String(a.pid)]);
    await daemon.cli(['detach', String(b.pid)]);
    await daemon.cli(['rm-network', 'intern']);
  });

  test('4. addresses are unique and sequential; --ip is honoured; a taken --ip is refused', async () => {
    await daemon.cli(['create-network', 'seq', '--subnet', '203.0.113.0/24', '--gateway', '203.0.113.1']);
    const results: AttachJson[] = [];
    for (let i = 0; i < 4; i++) results.push(await attach(await container(), ['--network', 'seq']));
    assert.deepEqual(results.map((r) => r.ipv4), ['203.0.113.2/24', '203.0.113.3/24', '203.0.113.4/24', '203.0.113.5/24']);
    const chosen = await container();
    const r = await attach(chosen, ['--network', 'seq', '--ip', '203.0.113.77']);
    assert.equal(r.ipv4, '203.0.113.77/24');
    const addr = (await chosen.ipJson<{ ifname: string; addr_info: { local: string }[] }[]>(['addr', 'show', 'eth0']))[0];
    assert.ok(addr.addr_info.some((a) => a.local === '203.0.113.77'));

    const other = await container();
    const before = await kernelSnapshot(topo.host);
    const refused = await daemon.cli(['attach', String(other.pid), '--network', 'seq', '--ip', '203.0.113.77'], true);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /^netd: address 203\.0\.113\.77 is already in use\n$/);
    const outside = await daemon.cli(['attach', String(other.pid), '--network', 'seq', '--ip', '10.0.0.5'], true);
    assert.match(outside.stderr, /not inside subnet/);
    assert.deepEqual(await kernelSnapshot(topo.host), before, 'a refused attach changes nothing');
    assert.deepEqual((await other.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname), ['lo']);

    for (const c of containers) await daemon.cli(['detach', String(c.pid), '--network', 'seq'], true);
    await daemon.cli(['rm-network', 'seq']);
  });

  test('5. detach and rm-network leave no link, address, route or rule behind', async () => {
    const before = await kernelSnapshot(topo.host);
    const id = (await daemon.cli(['create-network', 'tidy', '--subnet', '198.51.100.128/25', '-o', 'com.docker.network.bridge.name=tidy0'])).stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    const c = await container();
    await attach(c, ['--network', 'tidy', '--name', 'tidy-c']);
    const during = await kernelSnapshot(topo.host);
    assert.ok(during.links.some((l) => l.startsWith('tidy0 bridge')));
    // netd's firewall names the bridge: iptables-save's lines, or (nftables) netd's table (vmap elements).
    const firewall = testFirewallBackend() === 'nftables' ? during.nftables : during.rules;
    assert.ok(firewall.some((l) => l.includes('tidy0')), `netd's firewall names tidy0: ${firewall.join('\n')}`);

    const busy = await daemon.cli(['rm-network', 'tidy'], true);
    assert.notEqual(busy.code, 0);
    assert.match(busy.stderr, /active endpoint/);

    await daemon.cli(['detach', 'tidy-c']);
    assert.deepEqual((await c.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname), ['lo'], 'eth0 gone from the container');
    await daemon.cli(['rm-network', 'tidy']);
    assert.deepEqual(await kernelSnapshot(topo.host), before);
  });

  test('bad input is refused with one clear line and a non-zero exit', async () => {
    // A process sharing the daemon's (host) namespace: attaching it must be refused. (Never the test
    // runner's own PID: that namespace is the machine's.)
    const hostProcess = topo.host.spawn(['sleep', 'infinity']);
    await new Promise((r) => setTimeout(r, 200));
    const cases: [string[], RegExp][] = [
      [['attach', '999999999'], /no process with PID 999999999/],
      [['attach', String(hostProcess.pid)], /own \(the host's\) network namespace/],
      [['create-network', 'x1', '--subnet', '10.0.0.0/33'], /prefix longer than 32/],
      [['create-network', 'x2', '-o', 'com.docker.network.bridge.name=br0;reboot'], /invalid bridge name/],
      [['create-network', 'x3', '-o', 'com.docker.network.bridge.name=abcdefghijklmnopq'], /invalid bridge name/],
      [['create-network', 'x6', '-o', 'com.docker.network.bridge.name=br+'], /invalid bridge name/],
      [['create-network', 'x4', '--driver', 'overlay'], /unknown network driver/],
      [['create-network', 'x5', '-o', 'com.docker.network.driver.mtu=nine'], /mtu/],
      [['rm-network', 'bridge'], /pre-defined network/],
      [['rm-network', 'nope'], /network nope not found/],
      [['detach', 'nobody'], /no attached container nobody/],
    ];
    const before = await kernelSnapshot(topo.host);
    for (const [args, message] of cases) {
      const res = await daemon.cli(args, true);
      assert.equal(res.code, 1, `${args.join(' ')} exits 1`);
      assert.match(res.stderr, message, args.join(' '));
      assert.equal(res.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
    }
    hostProcess.kill('SIGKILL');
    assert.deepEqual(await kernelSnapshot(topo.host), before);
  });
});
