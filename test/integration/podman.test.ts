/**
 * podman (Debian's 4.3, CNI backend) drives netd, against a real daemon in a throwaway "host" namespace:
 * the conflist podman reads names `netd-cni` (the package's bin, linked into podman's CNI plugin dir), which
 * forwards every ADD/DEL to the daemon; and `netd oci-hook` run by podman from a hooks.d file for a container
 * with `--network none`. podman and the daemon share one mount namespace (helpers/podman.ts), since the daemon
 * opens the /run/netns/netns-… path podman hands to the plugin.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireRoot } from '../helpers/netns.js';
import { CLI, REPO, TestDaemon, Topology, testFirewallBackend } from '../helpers/daemon.js';
import { netdFirewallEmpty, netdRulesThat } from '../helpers/firewall-state.js';
import { IMAGE, INDEX, Podman, RecordingProxy, podmanMissing } from '../helpers/podman.js';
import { listEndpoints, type EndpointJson } from '../helpers/endpoints.js';

const NET = 'podnet'; // made by netd-cni's first ADD, 192.0.2.0/24
const HOOKNET = 'podhooknet'; // made with netd's CLI for the hook, 203.0.113.0/24
const ip = (cidr: string | undefined) => String(cidr).split('/')[0];

/** examples/cni/podman.conflist with this test's network name, subnet and daemon socket. */
function conflist(name: string, host: string, subnet: string): { name: string } & Record<string, unknown> {
  const example = JSON.parse(readFileSync(join(REPO, 'examples/cni/podman.conflist'), 'utf8')) as { name: string; plugins: Record<string, unknown>[] };
  assert.equal(example.plugins.length, 1);
  return { ...example, name, plugins: [{ ...example.plugins[0], host, subnet }] };
}

describe('podman drives netd (CNI plugin and OCI hook)', () => {
  let topo: Topology;
  let podman: Podman;
  let daemon: TestDaemon;

  async function endpoints(): Promise<EndpointJson[]> {
    return listEndpoints(daemon);
  }

  async function endpointOf(containerId: string): Promise<EndpointJson | undefined> {
    const found = (await endpoints()).filter((e) => e.name === containerId);
    assert.ok(found.length <= 1, `one endpoint per container: ${JSON.stringify(found)}`);
    return found[0];
  }

  /** The container's IPv4 addresses on eth0, as the container itself (busybox ip) sees them. */
  async function eth0Addresses(name: string): Promise<string[]> {
    const out = (await podman.exec(name, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'], { allowFail: true })).stdout;
    return [...out.matchAll(/inet (\S+)/g)].map((m) => m[1]);
  }

  /** An HTTP GET by busybox wget inside a container (its -T crashes the static busybox: timeout(1) instead). */
  async function fetchIn(name: string, url: string): Promise<string> {
    const res = await podman.exec(name, ['timeout', '5', 'wget', '-q', '-O', '-', url], { allowFail: true });
    return res.code === 0 ? res.stdout : `wget exited ${res.code}: ${res.stderr}`;
  }

  /** An HTTP GET from the outside namespace (the host's busybox-static wget). */
  async function fetchFromOutside(url: string): Promise<string> {
    const res = await topo.outside.exec(['timeout', '5', 'busybox', 'wget', '-q', '-O', '-', url], { allowFail: true });
    return res.code === 0 ? res.stdout : `wget exited ${res.code}: ${res.stderr}`;
  }

  async function hostLinkExists(name: string): Promise<boolean> {
    return (await topo.host.exec(['ip', 'link', 'show', 'dev', name], { allowFail: true })).code === 0;
  }

  /** The daemon's `op: "cni"` log entries for a container. */
  function cniLog(containerId: string): { command: string; outcome: string }[] {
    return daemon.logs
      .split('\n')
      .filter((l) => l.includes('"op":"cni"') && l.includes(containerId))
      .map((l) => JSON.parse(l) as { command: string; outcome: string });
  }

  async function waitFor(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  before(async () => {
    requireRoot();
    // Never a silent pass: the clients are test dependencies (scripts/install-deps.sh --test, Dockerfile.test).
    const missing = podmanMissing();
    if (missing) throw new Error(`the podman test cannot run: ${missing}; run scripts/install-deps.sh --test`);
    topo = await Topology.create('pdm');
    podman = await Podman.start(topo.host);
    // No dead-container sweep (NETD_TEST_SWEEP_MS=0): every release seen here is podman's DEL or its poststop hook.
    daemon = await TestDaemon.start(podman.ns, [], { NETD_TEST_SWEEP_MS: '0' });
    podman.writeConflist(conflist(NET, daemon.host, '192.0.2.0/24'));
  });

  after(async () => {
    await podman?.destroy();
    await daemon?.destroy();
    await topo?.destroy();
  });

  test('podman run --network NET: the container gets its address from netd', async () => {
    const id = (await podman.run(['run', '-d', '--name', 'web1', '--network', NET, IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www'])).stdout.trim();
    const ep = await endpointOf(id);
    assert.ok(ep, `netd has an endpoint for ${id}: ${JSON.stringify(await endpoints())}\n${daemon.logs.slice(-3000)}`);
    assert.equal(ep.network, NET);
    assert.equal(ep.ifname, 'eth0');
    assert.deepEqual(ep.labels, { 'io.netd.origin': 'cni', 'io.netd.cni.name': NET }, 'made through CNI, under the conflist named NET');
    assert.match(ip(ep.ipv4), /^192\.0\.2\.\d+$/);
    assert.deepEqual(await eth0Addresses('web1'), [ep.ipv4]);
    assert.ok(await hostLinkExists(ep.driverState.hostIfname!), 'the host side of the veth is in the host namespace');
    // podman parsed netd's result (0.4.0, with the container interface's MAC): its record matches netd's.
    const inspect = await podman.inspect('web1');
    const net = inspect.NetworkSettings.Networks[NET];
    assert.equal(net.IPAddress, ip(ep.ipv4));
    assert.equal(net.MacAddress, ep.mac);
    assert.equal(net.Gateway, '192.0.2.1');
    assert.deepEqual(cniLog(id).map((e) => `${e.command} ${e.outcome}`), ['ADD ok']);
  });

  test('two podman containers on the network reach each other, by address and by name (netd\'s DNS)', async () => {
    await podman.run(['run', '-d', '--name', 'web2', '--network', NET, '--network-alias', 'db', IMAGE, 'sleep', '1000']);
    const web1 = (await endpointOf((await podman.inspect('web1')).Id))!;
    const web2 = (await endpointOf((await podman.inspect('web2')).Id))!;
    assert.notEqual(ip(web1.ipv4), ip(web2.ipv4));
    const ping = await podman.exec('web2', ['ping', '-c', '1', '-W', '2', ip(web1.ipv4)], { allowFail: true });
    assert.equal(ping.code, 0, `web2 pings web1: ${ping.stdout}${ping.stderr}`);
    assert.equal(await fetchIn('web2', `http://${ip(web1.ipv4)}/`), INDEX, "web2 fetches web1's page by address");
    // podman took the nameserver from netd's result (dns.nameservers: the network's embedded DNS).
    const resolvConf = (await podman.exec('web2', ['cat', '/etc/resolv.conf'])).stdout;
    assert.match(resolvConf, /^nameserver 192\.0\.2\.1$/m, resolvConf);
    // The container's name comes as CNI_ARGS' K8S_POD_NAME; --network-alias (and the short id) in runtimeConfig.aliases.
    assert.equal(await fetchIn('web2', 'http://web1/'), INDEX, "web2 fetches web1's page by name");
    const lookup = await podman.exec('web1', ['nslookup', 'db'], { allowFail: true });
    assert.match(lookup.stdout, new RegExp(`Address:\\s+${ip(web2.ipv4).replace(/\./g, '\\.')}$`, 'm'), `web2's --network-alias resolves: ${lookup.stdout}${lookup.stderr}`);
  });

  test('podman run -p 8080:80: the published port is reachable from an outside namespace', async () => {
    await podman.run(['run', '-d', '--name', 'pub', '--network', NET, '-p', '8080:80', IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    const id = (await podman.inspect('pub')).Id;
    assert.deepEqual((await daemon.cli(['port', id])).stdout.split('\n').filter(Boolean), ['80/tcp -> 0.0.0.0:8080']);
    assert.equal(await fetchFromOutside(`http://${Topology.HOST_EXT}:8080/`), INDEX, `outside → ${Topology.HOST_EXT}:8080 → pub:80`);
  });

  test('podman restart: a DEL then an ADD for the same container id; the container is reachable again', async () => {
    const id = (await podman.inspect('web1')).Id;
    const before = (await endpointOf(id))!;
    await podman.run(['restart', '-t', '0', 'web1']);
    const after = await endpointOf(id);
    assert.ok(after, `web1 is attached again: ${JSON.stringify(await endpoints())}`);
    assert.notEqual(after.id, before.id, 'a new endpoint');
    assert.equal(await hostLinkExists(before.driverState.hostIfname!), false, 'the old veth is gone');
    assert.deepEqual(await eth0Addresses('web1'), [after.ipv4]);
    assert.deepEqual(cniLog(id).map((e) => `${e.command} ${e.outcome}`), ['ADD ok', 'DEL ok', 'ADD ok']);
    assert.equal(await fetchIn('web2', 'http://web1/'), INDEX, 'web2 reaches the restarted web1 by name');
  });

  test('podman rm -f: the DEL removes the endpoint, its veth and its port mapping', async () => {
    for (const name of ['web1', 'web2', 'pub']) {
      const id = (await podman.inspect(name)).Id;
      const ep = (await endpointOf(id))!;
      await podman.run(['rm', '-f', '-t', '0', name]);
      assert.equal(await endpointOf(id), undefined, `${name}: no endpoint left`);
      assert.equal(await hostLinkExists(ep.driverState.hostIfname!), false, `${name}: veth ${ep.driverState.hostIfname} is gone`);
      assert.deepEqual(cniLog(id).map((e) => `${e.command} ${e.outcome}`).slice(-1), ['DEL ok'], `${name}: removed by podman's DEL`);
    }
    assert.deepEqual(await endpoints(), []);
    assert.ok(JSON.parse((await daemon.cli(['inspect', NET])).stdout), 'DEL never removes the network');
    const rules = (await topo.host.exec(['iptables-save', '-t', 'nat'])).stdout;
    assert.doesNotMatch(rules, /dport 8080/, 'the port mapping is gone');
    if (testFirewallBackend() === 'nftables') {
      assert.equal(await netdFirewallEmpty(topo.host), false, 'netd’s table is still there (the network is)');
      assert.deepEqual(await netdRulesThat(topo.host, 'dnat', 8080), [], 'the port mapping is gone from netd’s table');
    }
    assert.match(await fetchFromOutside(`http://${Topology.HOST_EXT}:8080/`), /^wget exited/, 'nothing answers on 8080 any more');
  });

  test('podman run --rm in the foreground: the container sees its netd address; its exit releases the endpoint', async () => {
    const out = (await podman.run(['run', '--rm', '--name', 'once', '--network', NET, IMAGE, 'ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout;
    const address = /inet (192\.0\.2\.\d+\/24)/.exec(out)?.[1];
    assert.ok(address, `the container printed its address: ${out}`);
    const ids = [...daemon.logs.matchAll(/"op":"cni","command":"(ADD|DEL)","containerId":"([0-9a-f]{64})"/g)].filter((m) => m[1] === 'ADD').map((m) => m[2]);
    const id = ids[ids.length - 1];
    assert.deepEqual(cniLog(id).map((e) => `${e.command} ${e.outcome}`), ['ADD ok', 'DEL ok']);
    assert.deepEqual(await endpoints(), []);
  });

  test('the OCI hook: podman run --network none --hooks-dir DIR is attached by netd, and detached once it exits', async (t) => {
    await daemon.cli(['create-network', HOOKNET, '--subnet', '203.0.113.0/24']);
    // The hook reaches the daemon through a recording proxy: what podman's hooks asked netd is observable.
    const proxy = await RecordingProxy.start(join(podman.dir, 'hook-proxy.sock'), daemon.host.slice('unix://'.length));
    try {
      const hooksDir = join(podman.dir, 'hooks.d');
      mkdirSync(hooksDir);
      // The shipped file; only where netd is built and this test's socket differ.
      const shipped = JSON.parse(readFileSync(join(REPO, 'examples/oci-hooks.d/netd.json'), 'utf8')) as { hook: { path: string; args: string[] }; stages: string[] };
      assert.deepEqual(shipped.hook.args.slice(1), ['/opt/netd/dist/src/cli/main.js', 'oci-hook']);
      shipped.hook.path = process.execPath;
      shipped.hook.args = [shipped.hook.args[0], CLI, '--host', proxy.host, 'oci-hook'];
      writeFileSync(join(hooksDir, 'netd.json'), JSON.stringify(shipped));

      const id = (await podman.run(['run', '-d', '--name', 'hooked', '--network', 'none', '--hooks-dir', hooksDir, '--annotation', `io.netd.network=${HOOKNET}`, IMAGE, 'sleep', '1000'])).stdout.trim();
      const ep = await endpointOf(id);
      assert.ok(ep, `the hook attached ${id}: ${JSON.stringify(await endpoints())}; hook requests: ${proxy.exchanges()}`);
      assert.ok(proxy.exchanges().includes('POST /netd/v1/attach 201') || proxy.exchanges().includes('POST /netd/v1/attach 200'), `createRuntime attached: ${proxy.exchanges()}`);
      assert.equal(ep.network, HOOKNET);
      assert.deepEqual(await eth0Addresses('hooked'), [ep.ipv4]);
      const ping = await podman.exec('hooked', ['ping', '-c', '1', '-W', '2', '203.0.113.1'], { allowFail: true });
      assert.equal(ping.code, 0, `the container reaches its gateway: ${ping.stdout}${ping.stderr}`);

      const mark = proxy.requests.length;
      await podman.run(['stop', '-t', '0', 'hooked']);
      await waitFor('the endpoint to go', async () => (await endpointOf(id)) === undefined);
      assert.equal(await hostLinkExists(ep.driverState.hostIfname!), false, 'the veth is gone');
      // podman ran the poststop hook: it looked the container up and detached it. The daemon runs without the
      // dead-container sweep, so nothing else could have released it.
      await waitFor("the poststop hook's detach", async () => proxy.exchanges(mark).some((e) => /^POST \/netd\/v1\/detach \d+$/.test(e)));
      const poststop = proxy.exchanges(mark);
      assert.ok(poststop.some((e) => /^POST \/netd\/v1\/detach 20\d$/.test(e)), `the poststop hook detached it: ${poststop}`);
      assert.ok(poststop.every((e) => / 20\d$/.test(e)), `poststop: ${poststop}`);
      assert.doesNotMatch(daemon.logs, /"container gone"/, 'nothing was released as a dead container');
      t.diagnostic(`poststop hook: ${poststop.join(', ')}`);
      await podman.run(['rm', 'hooked']);
      assert.deepEqual(await endpoints(), []);
    } finally {
      await proxy.close();
    }
  });
  test('podman run --ip --mac-address (sent as CNI_ARGS IP/MAC): the container\'s eth0 has exactly that address and MAC', async () => {
    const id = (await podman.run(['run', '-d', '--name', 's2', '--network', NET, '--ip', '192.0.2.51', '--mac-address', '02:00:00:00:00:51', IMAGE, 'sleep', '1000'])).stdout.trim();
    try {
      const ep = await endpointOf(id);
      assert.ok(ep, `netd has an endpoint for ${id}: ${JSON.stringify(await endpoints())}`);
      assert.equal(ep.ipv4, '192.0.2.51/24', '`netd endpoints`: the requested address');
      assert.equal(ep.mac, '02:00:00:00:00:51', '`netd endpoints`: the requested MAC');
      assert.deepEqual(await eth0Addresses('s2'), ['192.0.2.51/24'], 'inside the container: exactly that address');
      const link = (await podman.exec('s2', ['ip', '-o', 'link', 'show', 'dev', 'eth0'])).stdout;
      assert.equal(/link\/ether (\S+)/.exec(link)?.[1], '02:00:00:00:00:51', `inside the container: that MAC (${link})`);
      const net = (await podman.inspect('s2')).NetworkSettings.Networks[NET];
      assert.equal(net.IPAddress, '192.0.2.51');
      assert.equal(net.MacAddress, '02:00:00:00:00:51');
    } finally {
      await podman.run(['rm', '-f', '-t', '0', 's2']);
    }
    assert.equal(await endpointOf(id), undefined, 'podman rm -f released it (DEL)');
  });
});
