/**
 * The daemon side of CNI (POST /netd/v1/cni) end to end: a real daemon in a throwaway "host" namespace,
 * containers as processes in their own namespaces, the plugin's wire requests sent over the socket as
 * netd-cni sends them. Every command is checked against the kernel (`ip -j` inside the container, links
 * on the host, iptables) and against netd's own listing.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { FIXTURES, TestDaemon, Topology, testFirewallBackend } from '../helpers/daemon.js';
import { netdFirewallEmpty, netdRulesThat } from '../helpers/firewall-state.js';
import { serve } from '../helpers/traffic.js';
import type { ChildProcess } from 'node:child_process';

interface Reply {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

interface Addr {
  ifname: string;
  address: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

describe('CNI on the daemon: POST /netd/v1/cni', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  const containers: TestContainer[] = [];
  const processes: ChildProcess[] = [];

  /** One CNI command, as the plugin forwards it. */
  function cni(env: Record<string, string>, config: unknown): Promise<Reply> {
    return post(JSON.stringify({ env, stdin: typeof config === 'string' ? config : JSON.stringify(config) }));
  }

  /** A raw POST to the route (what a broken or hostile client might send). */
  function post(payload: string, contentType = 'application/json'): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: join(daemon.dir, 'netd.sock'), path: '/netd/v1/cni', method: 'POST', headers: { 'Content-Type': contentType } }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text.trim() === '' ? undefined : JSON.parse(text) }));
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  const conf = (name: string, extra: Record<string, unknown> = {}) => ({ cniVersion: '1.0.0', name, type: 'netd-cni', ...extra });

  function envOf(command: string, c: TestContainer | undefined, id: string, ifname = 'eth0', extra: Record<string, string> = {}): Record<string, string> {
    return { CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: c ? c.netnsPath : '', CNI_IFNAME: ifname, CNI_PATH: '/opt/cni/bin', ...extra };
  }

  async function container(): Promise<TestContainer> {
    const c = await TestContainer.start();
    containers.push(c);
    return c;
  }

  async function links(c: TestContainer): Promise<{ ifname: string; address: string }[]> {
    return c.ipJson(['link', 'show']);
  }

  async function hostLink(name: string): Promise<{ ifname: string; address: string } | undefined> {
    const all = JSON.parse((await topo.host.exec(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string; address: string }[];
    return all.find((l) => l.ifname === name);
  }

  async function endpoints(): Promise<{ id: string; name: string; ifname: string; network: string; labels?: Record<string, string>; ipv4?: string }[]> {
    return daemon.client.call('GET', '/netd/v1/endpoints');
  }

  before(async () => {
    requireRoot();
    topo = await Topology.create('cni');
    daemon = await TestDaemon.start(topo.host);
  });

  after(async () => {
    for (const p of processes) p.kill('SIGKILL');
    for (const c of containers) await c.stop();
    await daemon?.destroy();
    await topo?.destroy();
  });

  const NET = conf('cninet', { subnet: '192.0.2.0/26' });

  test('ADD: eth0 with the address and default route in the container; the result names veth, MACs, sandbox, ips, routes, dns', async () => {
    const c = await container();
    const r = await cni(envOf('ADD', c, 'ctr-a'), NET);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const res = r.body;
    assert.equal(res.cniVersion, '1.0.0');
    const addrs = await c.ipJson<Addr[]>(['addr', 'show', 'dev', 'eth0']);
    assert.deepEqual(addrs[0].addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), ['192.0.2.2/26']);
    const routes = await c.ipJson<{ dst: string; gateway?: string; dev: string }[]>(['route', 'show', 'default']);
    assert.deepEqual(routes.map((x) => [x.gateway, x.dev]), [['192.0.2.1', 'eth0']]);

    const [hostIf, ctrIf] = res.interfaces;
    assert.match(hostIf.name, /^veth[0-9a-f]{7}$/);
    assert.equal(hostIf.mac, (await hostLink(hostIf.name))?.address, 'the host veth and its MAC');
    assert.deepEqual(ctrIf, { name: 'eth0', mac: addrs[0].address, sandbox: c.netnsPath }, 'the container interface with MAC and sandbox');
    assert.deepEqual(res.ips, [{ address: '192.0.2.2/26', gateway: '192.0.2.1', interface: 1 }]);
    assert.deepEqual(res.routes, [{ dst: '0.0.0.0/0', gw: '192.0.2.1' }]);
    // netd's embedded server, with the search/options netd writes into containers' resolv.conf.
    assert.deepEqual(res.dns.nameservers, ['192.0.2.1']);
    assert.deepEqual(Object.keys(res.dns).filter((k) => !['nameservers', 'search', 'options'].includes(k)), []);
    assert.ok(res.dns.options?.some((o: string) => o.startsWith('ndots:')), JSON.stringify(res.dns));

    const ep = (await endpoints()).find((e) => e.name === 'ctr-a');
    assert.ok(ep, '`netd endpoints` lists it under the container id');
    assert.equal(ep.ifname, 'eth0');
    assert.equal(ep.network, 'cninet');
    assert.deepEqual(ep.labels, { 'io.netd.origin': 'cni', 'io.netd.cni.name': 'cninet' }, 'made through CNI, under the conflist cninet');
    const table = (await daemon.cli(['endpoints'])).stdout;
    assert.match(table, /ctr-a\s+cninet\s+eth0\s.*io\.netd\.origin=cni/);
  });

  test('ADD twice for the same container and interface is an error and changes nothing', async () => {
    const c = await container();
    assert.equal((await cni(envOf('ADD', c, 'ctr-twice'), NET)).status, 200);
    const before = await links(c);
    const again = await cni(envOf('ADD', c, 'ctr-twice'), NET);
    assert.equal(again.status, 409);
    assert.equal(again.body.code, 100);
    assert.match(again.body.msg, /already/);
    assert.deepEqual(await links(c), before);
    assert.equal((await cni(envOf('DEL', c, 'ctr-twice'), NET)).status, 204);
  });

  test('a second interface (net1) on a second network; CHECK; DEL removes exactly it; DEL again and with CNI_NETNS="" succeed', async () => {
    const c = await container();
    assert.equal((await cni(envOf('ADD', c, 'ctr-b'), NET)).status, 200);
    const second = conf('cni2', { subnet: '192.0.2.64/26' });
    const clash = await cni(envOf('ADD', c, 'ctr-b', 'eth0'), second);
    assert.deepEqual([clash.status, clash.body.code], [409, 100], 'eth0 is taken in this sandbox, whatever the network');
    assert.match(clash.body.msg, /already has an interface named eth0/);
    await c.exec(['ip', 'link', 'add', 'own0', 'type', 'veth', 'peer', 'name', 'own1']);
    const own = await cni(envOf('ADD', c, 'ctr-b', 'own0'), second);
    assert.deepEqual([own.status, own.body.code], [409, 100], 'an interface of the container\'s own');
    await c.exec(['ip', 'link', 'del', 'own0']);
    const r = await cni(envOf('ADD', c, 'ctr-b', 'net1'), second);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.interfaces[1].name, 'net1');
    assert.deepEqual(r.body.routes, [], 'the default route stays on eth0');
    assert.deepEqual((await links(c)).map((l) => l.ifname).sort(), ['eth0', 'lo', 'net1']);
    const net1 = await c.ipJson<Addr[]>(['addr', 'show', 'dev', 'net1']);
    const inet = net1[0].addr_info.find((a) => a.family === 'inet');
    assert.equal(`${inet?.local}/${inet?.prefixlen}`, r.body.ips[0].address);
    assert.match(r.body.ips[0].address, /^192\.0\.2\.(6[5-9]|[7-9]\d|1[01]\d|12[0-6])\/26$/, 'on the second network');

    assert.equal((await cni(envOf('CHECK', c, 'ctr-b'), NET)).status, 204, 'CHECK eth0');
    assert.equal((await cni(envOf('CHECK', c, 'ctr-b', 'net1'), second)).status, 204, 'CHECK net1');

    const hostIf = r.body.interfaces[0].name as string;
    assert.equal((await cni(envOf('DEL', c, 'ctr-b', 'net1'), second)).status, 204);
    assert.deepEqual((await links(c)).map((l) => l.ifname).sort(), ['eth0', 'lo'], 'only net1 went');
    assert.equal(await hostLink(hostIf), undefined, 'its host veth went');
    assert.equal((await cni(envOf('DEL', c, 'ctr-b', 'net1'), second)).status, 204, 'DEL again');
    assert.equal((await cni(envOf('DEL', undefined, 'ctr-b'), NET)).status, 204, 'DEL with CNI_NETNS=""');
    assert.deepEqual((await links(c)).map((l) => l.ifname), ['lo']);
    assert.equal((await endpoints()).filter((e) => e.name === 'ctr-b').length, 0);
    assert.equal((await cni(envOf('DEL', undefined, 'ctr-never'), conf('no-such-network'))).status, 204, 'DEL on a network that does not exist');
    assert.equal((await cni(envOf('CHECK', c, 'ctr-b'), NET)).body.code, 3, 'CHECK after DEL: unknown container');
  });

  test('CHECK reports an address deleted in the namespace; DEL still cleans up', async () => {
    const c = await container();
    const r = await cni(envOf('ADD', c, 'ctr-c'), NET);
    const address = r.body.ips[0].address as string;
    const hostIf = r.body.interfaces[0].name as string;
    const faults: [string[], string[], RegExp][] = [
      [['ip', 'link', 'set', 'eth0', 'address', '02:00:00:00:00:99'], ['ip', 'link', 'set', 'eth0', 'address', r.body.interfaces[1].mac], /eth0 has the MAC 02:00:00:00:00:99/],
      [['ip', 'link', 'set', hostIf, 'down'], ['ip', 'link', 'set', hostIf, 'up'], new RegExp(`host end ${hostIf} of the veth pair is down`)],
      [['ip', 'link', 'set', hostIf, 'nomaster'], ['ip', 'link', 'set', hostIf, 'master', 'br-' + (await daemon.client.call<{ Id: string }>('GET', '/networks/cninet')).Id.slice(0, 12)], /not on the network's bridge/],
    ];
    for (const [breakIt, repair, want] of faults) {
      await (breakIt.includes('eth0') ? c.exec(breakIt) : topo.host.exec(breakIt));
      const bad = await cni(envOf('CHECK', c, 'ctr-c'), NET);
      assert.equal(bad.body?.code, 104, breakIt.join(' '));
      assert.match(bad.body.msg, want);
      await (repair.includes('eth0') ? c.exec(repair) : topo.host.exec(repair));
      assert.equal((await cni(envOf('CHECK', c, 'ctr-c'), NET)).status, 204, `repaired: ${repair.join(' ')}`);
    }
    await c.exec(['ip', 'addr', 'del', address, 'dev', 'eth0']);
    const check = await cni(envOf('CHECK', c, 'ctr-c'), NET);
    assert.equal(check.status, 409);
    assert.equal(check.body.code, 104);
    assert.match(check.body.msg, new RegExp(`lacks the address ${address}`));
    assert.match(check.body.details, /no default route via 192\.0\.2\.1/);
    assert.equal((await cni(envOf('DEL', c, 'ctr-c'), NET)).status, 204);
    assert.equal(await hostLink(r.body.interfaces[0].name), undefined);
  });

  test('CHECK compares prevResult with netd\'s record: the ADD\'s own result passes; another MAC, address, name or sandbox is code 104', async () => {
    const c = await container();
    const r = await cni(envOf('ADD', c, 'ctr-prev'), NET);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const prev = r.body as { interfaces: Record<string, unknown>[]; ips: Record<string, unknown>[] };
    const withPrev = (prevResult: unknown) => ({ ...NET, prevResult });
    assert.equal((await cni(envOf('CHECK', c, 'ctr-prev'), withPrev(prev))).status, 204, 'the cached ADD result agrees');
    const edit = (f: (p: typeof prev) => void) => {
      const copy = structuredClone(prev);
      f(copy);
      return copy;
    };
    const cases: [string, typeof prev, RegExp][] = [
      ['another MAC', edit((p) => (p.interfaces[1].mac = '02:00:00:00:00:77')), /MAC 02:00:00:00:00:77/],
      ['another address', edit((p) => (p.ips[0].address = '192.0.2.60/26')), /address 192\.0\.2\.60\/26/],
      ['another interface name', edit((p) => (p.interfaces[1].name = 'eth7')), /no interface eth0 in the sandbox/],
      ['another sandbox', edit((p) => (p.interfaces[1].sandbox = '/run/netns/elsewhere')), /sandbox \/run\/netns\/elsewhere/],
      ['no addresses', edit((p) => (p.ips = [])), /lacks address/],
    ];
    for (const [name, prevResult, want] of cases) {
      const bad = await cni(envOf('CHECK', c, 'ctr-prev'), withPrev(prevResult));
      assert.equal(bad.status, 409, `${name}: ${JSON.stringify(bad.body)}`);
      assert.equal(bad.body.code, 104, name);
      assert.match(bad.body.msg, /^prevResult of ctr-prev differs from netd's record: /, name);
      assert.match(bad.body.details, want, name);
    }
    // The kernel was never touched: CHECK without prevResult, and with the real one, still pass.
    assert.equal((await cni(envOf('CHECK', c, 'ctr-prev'), NET)).status, 204);
    assert.equal((await cni(envOf('CHECK', c, 'ctr-prev'), withPrev(prev))).status, 204);
    assert.equal((await cni(envOf('DEL', c, 'ctr-prev'), withPrev(prev))).status, 204);
  });

  test('CNI_ARGS IP and MAC (podman 4.3\'s --ip/--mac-address) are honoured; runtimeConfig ips/mac win over them', async () => {
    const c = await container();
    const args = 'IgnoreUnknown=1;K8S_POD_NAME=s2;MAC=02:00:00:00:00:51;IP=192.0.2.51';
    const r = await cni(envOf('ADD', c, 'ctr-args', 'eth0', { CNI_ARGS: args }), NET);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.ips.map((x: { address: string }) => x.address), ['192.0.2.51/26']);
    assert.equal(r.body.interfaces[1].mac, '02:00:00:00:00:51');
    const eth0 = await c.ipJson<Addr[]>(['addr', 'show', 'dev', 'eth0']);
    assert.equal(eth0[0].address, '02:00:00:00:00:51');
    assert.deepEqual(eth0[0].addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), ['192.0.2.51/26']);

    const d = await container();
    const both = { ...NET, runtimeConfig: { ips: ['192.0.2.52/26'], mac: '02:00:00:00:00:52' } };
    const w = await cni(envOf('ADD', d, 'ctr-args2', 'eth0', { CNI_ARGS: 'IP=192.0.2.53;MAC=02:00:00:00:00:53' }), both);
    assert.equal(w.status, 200, JSON.stringify(w.body));
    const eth0d = await d.ipJson<Addr[]>(['addr', 'show', 'dev', 'eth0']);
    assert.equal(eth0d[0].address, '02:00:00:00:00:52', 'runtimeConfig.mac wins');
    assert.deepEqual(eth0d[0].addr_info.filter((a) => a.family === 'inet').map((a) => a.local), ['192.0.2.52'], 'runtimeConfig.ips wins');

    const e = await container();
    const bad = await cni(envOf('ADD', e, 'ctr-args3', 'eth0', { CNI_ARGS: 'IP=192.0.2.300' }), NET);
    assert.equal(bad.body?.code, 4, JSON.stringify(bad.body));
    assert.deepEqual((await links(e)).map((l) => l.ifname), ['lo'], 'a refused ADD plumbs nothing');
    for (const [x, id] of [[c, 'ctr-args'], [d, 'ctr-args2']] as const) assert.equal((await cni(envOf('DEL', x, id), NET)).status, 204);
  });

  test('concurrent ADDs to a network that does not exist yet: one network, every container its own address; concurrent DELs', async () => {
    const net = conf('burst', { subnet: '192.0.2.208/28' });
    const cs = await Promise.all(Array.from({ length: 8 }, () => container()));
    const adds = await Promise.all(cs.map((c, i) => cni(envOf('ADD', c, `burst-${i}`), net)));
    assert.deepEqual(adds.map((r) => r.status), Array(8).fill(200), JSON.stringify(adds.find((r) => r.status !== 200)?.body));
    assert.equal(new Set(adds.map((r) => r.body.ips[0].address)).size, 8);
    const nets = JSON.parse((await daemon.cli(['networks', '--format', 'json'])).stdout) as { Name: string }[];
    assert.equal(nets.filter((n) => n.Name === 'burst').length, 1);
    const dels = await Promise.all(cs.map((c, i) => cni(envOf('DEL', c, `burst-${i}`), net)));
    assert.deepEqual(dels.map((r) => r.status), Array(8).fill(204));
    assert.equal((await endpoints()).filter((e) => e.network === 'burst').length, 0);
    for (const c of cs) assert.deepEqual((await links(c)).map((l) => l.ifname), ['lo']);
  });

  test('DEL after the network was removed succeeds', async () => {
    const net = conf('gone', { subnet: '192.0.2.192/28' });
    const c = await container();
    assert.equal((await cni(envOf('ADD', c, 'ctr-gone'), net)).status, 200);
    await daemon.cli(['detach', 'ctr-gone']);
    await daemon.cli(['rm-network', 'gone']);
    assert.equal((await cni(envOf('DEL', c, 'ctr-gone'), net)).status, 204);
  });

  test('GC releases the CNI attachments not listed, and nothing else (a CLI-attached endpoint survives)', async () => {
    const net = conf('gcnet', { subnet: '192.0.2.128/26', cniVersion: '1.1.0' });
    const [a, b, d] = [await container(), await container(), await container()];
    assert.equal((await cni(envOf('ADD', a, 'gc-a'), net)).status, 200);
    assert.equal((await cni(envOf('ADD', b, 'gc-b'), net)).status, 200);
    await daemon.cli(['attach', String(d.pid), '--network', 'gcnet', '--name', 'gc-cli']);
    // An endpoint made through the API that merely looks like CNI's (another label) is not GC's either.
    const e = await container();
    const api = await daemon.client.call<{ interface: string }>('POST', '/netd/v1/attach', { target: e.pid, network: 'gcnet', name: 'gc-api', ifname: 'ext9', labels: { 'io.netd.origin': 'api' } });
    assert.equal(api.interface, 'ext9');
    assert.ok((await links(e)).some((l) => l.ifname === 'ext9'), 'the API\'s ifname in the kernel');
    const gc = await cni({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, { ...net, 'cni.dev/valid-attachments': [{ containerID: 'gc-a', ifname: 'eth0' }] });
    assert.equal(gc.status, 204, JSON.stringify(gc.body));
    const names = (await endpoints()).filter((e) => e.network === 'gcnet').map((e) => e.name).sort();
    assert.deepEqual(names, ['gc-a', 'gc-api', 'gc-cli']);
    assert.deepEqual((await links(b)).map((l) => l.ifname), ['lo'], 'gc-b released in the kernel');
    assert.ok((await links(a)).some((l) => l.ifname === 'eth0'));
    assert.ok((await links(d)).some((l) => l.ifname === 'eth0'));
    // The 1.1.0 tag's key does the same.
    const gc2 = await cni({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, { ...net, 'cni.dev/attachments': [] });
    assert.equal(gc2.status, 204);
    assert.deepEqual((await endpoints()).filter((x) => x.network === 'gcnet').map((x) => x.name).sort(), ['gc-api', 'gc-cli']);
  });

  test('STATUS: 204 while the network has a free address, code 50 once a /30 is full; GC/STATUS need 1.1.0', async () => {
    const tiny = conf('tiny', { cniVersion: '1.1.0', subnet: '192.0.2.252/30' });
    const status = () => cni({ CNI_COMMAND: 'STATUS', CNI_PATH: '/opt/cni/bin' }, tiny);
    assert.equal((await cni({ CNI_COMMAND: 'STATUS' }, conf('not-yet', { cniVersion: '1.1.0' }))).status, 204, 'a missing network: a default pool is free');
    const clash = await cni({ CNI_COMMAND: 'STATUS' }, conf('not-yet', { cniVersion: '1.1.0', subnet: '192.0.2.0/24' }));
    assert.deepEqual([clash.body?.code, clash.body?.msg], [50, "network not-yet cannot be made: its subnet 192.0.2.0/24 overlaps another network's"]);
    assert.equal((await status()).status, 204);
    const c = await container();
    assert.equal((await cni(envOf('ADD', c, 'tiny-1'), tiny)).status, 200);
    const full = await status();
    assert.equal(full.body.code, 50);
    assert.match(full.body.msg, /no free address/);
    const old = await cni({ CNI_COMMAND: 'STATUS' }, conf('tiny'));
    assert.equal(old.body.code, 1, 'STATUS with a 1.0.0 config');
  });

  test('runtimeConfig: portMappings in both spellings publish ports (traffic from outside); ips and mac are honoured', async () => {
    const c = await container();
    const net = conf('ports', {
      subnet: '203.0.113.0/24',
      capabilities: { portMappings: true, ips: true, mac: true },
      runtimeConfig: {
        portMappings: [
          { HostPort: 8080, ContainerPort: 80, Protocol: 'tcp', HostIP: '' },
          { hostPort: 8081, containerPort: 81, protocol: 'tcp' },
        ],
        ips: ['203.0.113.10/24'],
        mac: '02:00:00:00:00:aa',
      },
    });
    const r = await cni(envOf('ADD', c, 'ctr-ports'), net);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.ips[0].address, '203.0.113.10/24');
    assert.equal(r.body.interfaces[1].mac, '02:00:00:00:00:aa');
    const eth0 = await c.ipJson<Addr[]>(['addr', 'show', 'dev', 'eth0']);
    assert.equal(eth0[0].address, '02:00:00:00:00:aa');
    assert.equal(eth0[0].addr_info.find((a) => a.family === 'inet')?.local, '203.0.113.10');
    if (testFirewallBackend() === 'iptables') {
      const rules = (await topo.host.exec(['iptables-save', '-t', 'nat'])).stdout;
      assert.match(rules, /--dport 8080 .*--to-destination 203\.0\.113\.10:80/);
      assert.match(rules, /--dport 8081 .*--to-destination 203\.0\.113\.10:81/);
    } else {
      assert.notDeepEqual(await netdRulesThat(topo.host, 'dnat', 8080, '203.0.113.10', 80), [], 'host 8080 → 203.0.113.10:80 in netd’s table');
      assert.notDeepEqual(await netdRulesThat(topo.host, 'dnat', 8081, '203.0.113.10', 81), [], 'host 8081 → 203.0.113.10:81 in netd’s table');
    }
    processes.push(await serve(['nsenter', '-t', String(c.pid), '-n', '--', 'node', join(FIXTURES, 'tcp-whoami.cjs'), '0.0.0.0', '80']));
    const got = await topo.outside.exec(['node', join(FIXTURES, 'tcp-get.cjs'), Topology.HOST_EXT, '8080', '2000']);
    assert.equal(got.stdout.trim(), Topology.OUTSIDE, 'outside → host:8080 → container:80');
    assert.equal((await cni(envOf('DEL', c, 'ctr-ports'), net)).status, 204);
    if (testFirewallBackend() === 'iptables') {
      assert.doesNotMatch((await topo.host.exec(['iptables-save', '-t', 'nat'])).stdout, /--dport 808[01] /, 'DEL unpublishes');
    } else {
      assert.equal(await netdFirewallEmpty(topo.host), false, 'netd’s table is still there');
      for (const port of [8080, 8081]) assert.deepEqual(await netdRulesThat(topo.host, 'dnat', port), [], `DEL unpublishes ${port}`);
      assert.deepEqual(await netdRulesThat(topo.host, 'dnat', '203.0.113.10'), [], 'nothing DNATs to the container any more');
    }
  });

  test('aliases (podman\'s map) and K8S_POD_NAME are answered by the network\'s DNS', async () => {
    const net = conf('dnsnet', { subnet: '192.0.2.224/28', runtimeConfig: { aliases: { dnsnet: ['web', 'www'] } } });
    const [c, client] = [await container(), await container()];
    const r = await cni(envOf('ADD', c, 'ctr-dns', 'eth0', { CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=mypod' }), net);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await cni(envOf('ADD', client, 'ctr-dig'), conf('dnsnet'))).status, 200);
    const want = (r.body.ips[0].address as string).split('/')[0];
    for (const name of ['web', 'www', 'mypod', 'ctr-dns']) {
      const dig = await client.exec(['dig', '+short', '+time=2', '+tries=1', '@192.0.2.225', name]);
      assert.equal(dig.stdout.trim(), want, `${name} resolves`);
    }
  });

  test('errors in CNI terms: versions (1), environment (4), stdin (6), config (7); VERSION answers', async () => {
    const c = await container();
    await daemon.cli(['create-network', 'cninet', '--subnet', '192.0.2.0/26'], true); // when run alone
    const version = await cni({ CNI_COMMAND: 'VERSION' }, { cniVersion: '0.4.0' });
    assert.deepEqual(version, { status: 200, body: { cniVersion: '0.4.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] } });
    const cases: [Record<string, string>, unknown, number][] = [
      [envOf('ADD', c, 'e1'), conf('cninet', { cniVersion: '0.2.0' }), 1],
      [envOf('CHECK', c, 'e1'), conf('cninet', { cniVersion: '0.3.1' }), 1],
      [{ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'e1', CNI_IFNAME: 'eth0' }, NET, 4],
      [envOf('ADD', c, 'e1', 'eth0', { CNI_NETNS: '/run/netns/does-not-exist' }), NET, 4],
      [envOf('ADD', c, 'e1', 'a/b'), NET, 4],
      [{ CNI_COMMAND: 'FROB' }, NET, 4],
      [envOf('ADD', c, 'e1'), '{not json', 6],
      [envOf('ADD', c, 'e1'), conf('cninet', { subnet: '10.99.0.0/24' }), 7],
      [envOf('ADD', c, 'e1'), conf('cninet', { subnet: 42 }), 7],
      [envOf('ADD', c, 'e1'), conf('cninet', { runtimeConfig: { portMappings: 'x' } }), 7],
    ];
    for (const [env, config, code] of cases) {
      const r = await cni(env, config);
      assert.ok(r.status >= 400, `${JSON.stringify(env)} → HTTP ${r.status}`);
      assert.equal(r.body.code, code, `${JSON.stringify(env)} ${JSON.stringify(config)}: ${JSON.stringify(r.body)}`);
      assert.equal(typeof r.body.msg, 'string');
    }
    // Hostile or broken requests: each gets a CNI error object, nothing is attached, the daemon lives on.
    await daemon.cli(['attach', String((await container()).pid), '--network', 'cninet', '--name', 'cli-owned']);
    const add = envOf('ADD', c, 'e2');
    const stdin = (o: unknown) => JSON.stringify({ env: add, stdin: JSON.stringify(o) });
    const hostile: [string, string, number][] = [
      ['{{', 'application/json', 6],
      ['{"env": {}}', 'text/plain', 6],
      ['[]', 'application/json', 4],
      ['"x"', 'application/json', 4],
      [JSON.stringify({ env: 'x', stdin: '{}' }), 'application/json', 4],
      [JSON.stringify({ env: { ...add, CNI_CONTAINERID: ['x'] }, stdin: '{}' }), 'application/json', 4],
      [JSON.stringify({ env: add, stdin: 5 }), 'application/json', 6],
      [JSON.stringify({ env: add }), 'application/json', 6],
      [JSON.stringify({ env: add, stdin: '['.repeat(200_000) }), 'application/json', 6],
      [stdin([]), 'application/json', 7],
      [stdin({ cniVersion: '1.0.0', name: '' }), 'application/json', 7],
      [stdin(conf('bad name!')), 'application/json', 7],
      [stdin({ ...NET, runtimeConfig: { ips: ['10.0.0.5'] } }), 'application/json', 7],
      [stdin({ ...NET, runtimeConfig: { ips: ['192.0.2.1'] } }), 'application/json', 100],
      [stdin({ ...NET, runtimeConfig: { mac: 'ff:ff:ff:ff:ff:ff' } }), 'application/json', 7],
      [stdin({ ...NET, runtimeConfig: { aliases: ['-bad-'] } }), 'application/json', 7],
      [stdin({ ...NET, runtimeConfig: { portMappings: Array.from({ length: 1025 }, (_, i) => ({ hostPort: 20000 + i, containerPort: 80 })) } }), 'application/json', 7],
      [stdin({ ...NET, runtimeConfig: { portMappings: [{ hostPort: 9000, containerPort: 80 }, { hostPort: 9000, containerPort: 81 }] } }), 'application/json', 100],
      [JSON.stringify({ env: { ...add, CNI_CONTAINERID: 'cli-owned' }, stdin: JSON.stringify(NET) }), 'application/json', 100],
      [JSON.stringify({ env: { ...add, CNI_NETNS: '/proc/self/ns/net' }, stdin: JSON.stringify(NET) }), 'application/json', 4],
      [JSON.stringify({ env: { ...add, CNI_NETNS: '/etc/hostname' }, stdin: JSON.stringify(NET) }), 'application/json', 4],
    ];
    for (const [payload, type, code] of hostile) {
      const r = await post(payload, type);
      assert.ok(r.status >= 400, `${payload.slice(0, 120)} → HTTP ${r.status}`);
      assert.equal(r.body?.code, code, `${payload.slice(0, 120)}: ${JSON.stringify(r.body).slice(0, 300)}`);
      assert.equal(typeof r.body.msg, 'string');
    }
    assert.deepEqual((await links(c)).map((l) => l.ifname), ['lo'], 'nothing attached by a refused ADD');
    assert.equal((await endpoints()).filter((e) => /^e\d$/.test(e.name)).length, 0);
    assert.match(daemon.logs, /"op":"cni","command":"ADD","containerId":"e1".*"durationMs":[\d.]+,"outcome":"error"/);
  });

  test('a CNI attachment survives a daemon restart (listed, CHECK passes); one whose namespace dies without DEL is released by the sweep', async () => {
    const c = await container();
    const dies = await container();
    assert.equal((await cni(envOf('ADD', c, 'ctr-keep'), NET)).status, 200);
    const r = await cni(envOf('ADD', dies, 'ctr-dies'), NET);
    assert.equal(r.status, 200);
    await daemon.restart();
    const ep = (await endpoints()).find((e) => e.name === 'ctr-keep');
    assert.deepEqual([ep?.ifname, ep?.labels], ['eth0', { 'io.netd.origin': 'cni', 'io.netd.cni.name': 'cninet' }]);
    assert.equal((await cni(envOf('CHECK', c, 'ctr-keep'), NET)).status, 204, 'CHECK after restart');
    await dies.stop(); // as with `ctr run -d`: the process ends, no DEL ever comes
    let left = true;
    for (let i = 0; i < 100 && left; i++) {
      await new Promise((res) => setTimeout(res, 100));
      left = (await endpoints()).some((e) => e.name === 'ctr-dies');
    }
    assert.equal(left, false, 'the sweep released it');
    assert.equal(await hostLink(r.body.interfaces[0].name), undefined);
  });
  test('two conflists on one netd network ("network": "shared"): GC, DEL and CHECK of one never touch the other\'s containers', async () => {
    const alpha = conf('alpha', { cniVersion: '1.1.0', network: 'shared', subnet: '198.51.100.0/26' });
    const beta = conf('beta', { cniVersion: '1.1.0', network: 'shared', subnet: '198.51.100.0/26' });
    const [a, b] = [await container(), await container()];
    assert.equal((await cni(envOf('ADD', a, 'sh-a'), alpha)).status, 200);
    const rb = await cni(envOf('ADD', b, 'sh-b'), beta);
    assert.equal(rb.status, 200, JSON.stringify(rb.body));
    assert.equal((await endpoints()).find((e) => e.name === 'sh-b')?.labels?.['io.netd.cni.name'], 'beta', 'the conflist name is recorded');
    // alpha's view: sh-b is not an attachment of alpha's.
    assert.equal((await cni(envOf('CHECK', b, 'sh-b'), alpha)).body?.code, 3);
    assert.equal((await cni(envOf('DEL', b, 'sh-b'), alpha)).status, 204);
    const gc = await cni({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, { ...alpha, 'cni.dev/valid-attachments': null });
    assert.equal(gc.status, 204, JSON.stringify(gc.body));
    assert.deepEqual((await links(a)).map((l) => l.ifname), ['lo'], 'alpha\'s own released (null = nothing valid)');
    assert.ok((await links(b)).some((l) => l.ifname === 'eth0'), 'beta\'s container keeps its interface');
    assert.equal((await cni(envOf('CHECK', b, 'sh-b'), beta)).status, 204);
    // No list at all also means nothing is valid.
    assert.equal((await cni({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, beta)).status, 204);
    assert.deepEqual((await links(b)).map((l) => l.ifname), ['lo']);
  });

  test('one container on one network twice with different CNI_IFNAMEs (Multus); DEL of one leaves the other working', async () => {
    const net = conf('multi', { subnet: '198.51.100.64/26' });
    const c = await container();
    const first = await cni(envOf('ADD', c, 'mu-a', 'eth0'), net);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const second = await cni(envOf('ADD', c, 'mu-a', 'net1'), net);
    assert.equal(second.status, 200, JSON.stringify(second.body));
    const addrOf = async (dev: string) => (await c.ipJson<Addr[]>(['addr', 'show', 'dev', dev]))[0].addr_info.filter((x) => x.family === 'inet').map((x) => `${x.local}/${x.prefixlen}`);
    assert.deepEqual(await addrOf('eth0'), [first.body.ips[0].address]);
    assert.deepEqual(await addrOf('net1'), [second.body.ips[0].address]);
    assert.notEqual(first.body.ips[0].address, second.body.ips[0].address);
    assert.equal((await cni(envOf('ADD', c, 'mu-a', 'net1'), net)).body?.code, 100, 'the same interface twice is still refused');
    assert.equal((await cni(envOf('DEL', c, 'mu-a', 'net1'), net)).status, 204);
    assert.deepEqual((await links(c)).map((l) => l.ifname).sort(), ['eth0', 'lo'], 'only net1 went');
    assert.equal((await cni(envOf('CHECK', c, 'mu-a', 'eth0'), net)).status, 204, 'eth0 as recorded');
    await c.exec(['ping', '-c1', '-W2', '198.51.100.65']);
    assert.equal((await cni(envOf('DEL', c, 'mu-a', 'eth0'), net)).status, 204);
    assert.deepEqual((await links(c)).map((l) => l.ifname), ['lo']);
  });

  test('ADD after another plugin (prevResult): its interfaces and addresses first, netd\'s appended and indexed after them', async () => {
    const c = await container();
    const prevResult = { cniVersion: '0.4.0', interfaces: [{ name: 'tap0', sandbox: c.netnsPath }], ips: [{ version: '4', address: '203.0.113.9/24', interface: 0 }], routes: [{ dst: '203.0.113.0/24' }], dns: { nameservers: ['203.0.113.53'] } };
    const r = await cni(envOf('ADD', c, 'chained'), conf('chainnet', { cniVersion: '0.4.0', subnet: '198.51.100.128/27', prevResult }));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.cniVersion, '0.4.0');
    assert.deepEqual(r.body.interfaces.map((i: { name: string }) => i.name).slice(0, 1), ['tap0']);
    assert.equal(r.body.interfaces[2].name, 'eth0');
    assert.deepEqual(r.body.ips, [
      { version: '4', address: '203.0.113.9/24', interface: 0 },
      { version: '4', address: '198.51.100.130/27', gateway: '198.51.100.129', interface: 2 },
    ]);
    assert.deepEqual(r.body.routes, [{ dst: '203.0.113.0/24' }, { dst: '0.0.0.0/0', gw: '198.51.100.129' }]);
    assert.deepEqual(r.body.dns.nameservers, ['203.0.113.53', '198.51.100.129']);
    assert.equal((await cni(envOf('DEL', c, 'chained'), conf('chainnet', { cniVersion: '0.4.0' }))).status, 204);
  });

  test('a config ADD refused can still be DELeted; a long container id works; a prefix length unlike the subnet\'s is code 7', async () => {
    const net = conf('lenient', { subnet: '198.51.100.160/27' });
    const c = await container();
    const refused = [
      [envOf('ADD', c, 'len-a'), { ...net, runtimeConfig: { ips: ['198.51.100.170/24'] } }, 7],
      [envOf('ADD', c, 'len-a', 'eth0', { CNI_ARGS: 'IgnoreUnknown=1;junk' }), net, 4],
    ] as const;
    for (const [env, config, code] of refused) {
      const r = await cni(env, config);
      assert.equal(r.body?.code, code, JSON.stringify(r.body));
      const del = await cni({ ...env, CNI_COMMAND: 'DEL' }, config);
      assert.equal(del.status, 204, `DEL of what ADD refused: ${JSON.stringify(del.body)}`);
    }
    assert.equal((await cni(envOf('ADD', c, 'len-a'), { ...net, runtimeConfig: { ips: ['198.51.100.170/27'] } })).status, 200, 'the subnet\'s own length is fine');
    assert.equal((await cni(envOf('DEL', c, 'len-a', 'eth0', { CNI_ARGS: 'junk' }), { ...net, cniVersion: '0.2.0', runtimeConfig: 5 })).status, 204, 'DEL reads only what names the attachment');
    assert.deepEqual((await links(c)).map((l) => l.ifname), ['lo'], 'and releases it');
    const long = 'k8s_POD_web-0_default_' + 'f'.repeat(150);
    const added = await cni(envOf('ADD', c, long), net);
    assert.equal(added.status, 200);
    const listed = (await endpoints()).find((e) => e.name === long);
    assert.ok(listed);
    // A name longer than a DNS label: the reverse lookup answers the short container id instead of failing.
    const address = (added.body.ips[0].address as string).split('/')[0];
    const ptr = await c.exec(['dig', '+short', '+time=2', '+tries=1', '-x', address, '@198.51.100.161']);
    assert.match(ptr.stdout.trim(), /^[0-9a-f]{12}\.lenient\.$/, `PTR of ${address}: ${ptr.stdout}`);
    assert.equal((await cni(envOf('DEL', c, long), net)).status, 204);
    assert.equal((await endpoints()).some((e) => e.name === long), false);
  });

  test('an ADD reusing the id of a container whose namespace died before the sweep ran releases the dead one first', async () => {
    daemon.env = { NETD_TEST_SWEEP_MS: '0' }; // no sweep at all: only the ADD itself can notice
    await daemon.restart();
    try {
      const net = conf('reuse', { subnet: '198.51.100.192/27' });
      const old = await container();
      const first = await cni(envOf('ADD', old, 'ctr-reused'), net);
      assert.equal(first.status, 200);
      await old.stop();
      const fresh = await container();
      const again = await cni(envOf('ADD', fresh, 'ctr-reused'), net);
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.equal(await hostLink(first.body.interfaces[0].name), undefined, 'the dead one\'s veth is gone');
      assert.deepEqual((await endpoints()).filter((e) => e.name === 'ctr-reused').length, 1);
      assert.equal((await cni(envOf('DEL', fresh, 'ctr-reused'), net)).status, 204);
    } finally {
      daemon.env = {};
      await daemon.restart();
    }
  });
});
