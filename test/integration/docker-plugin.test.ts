/**
 * Issue 14: the real dockerd (Debian's docker.io 20.10) drives netd as a remote network driver and IPAM
 * driver (`docker network create -d netd --ipam-driver netd`). dockerd and the netd daemon under test run in
 * one throwaway "host" network namespace and one mount namespace (helpers/dockerd.ts), so dockerd finds
 * netd's plugin socket at /run/docker/plugins/netd.sock and netd opens dockerd's SandboxKey paths; an
 * "outside" namespace (198.51.100.2) sits behind the host's ext0 (198.51.100.1). Every scenario asserts real
 * traffic between busybox containers, kernel state (`ip -j`, `iptables-save`) and netd's own listings.
 * Where dockerd is missing the suite is skipped saying why, except under CI=true, where it fails.
 * A failure that comes from a plugin call carries dockerd's debug log of that call.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { requireRoot, type TestNetns } from '../helpers/netns.js';
import { TestDaemon, Topology, kernelSnapshot, startWhoami, testFirewallBackend, uncaughtIn } from '../helpers/daemon.js';
import { mentioning, netdFirewallState, rulesThat } from '../helpers/firewall-state.js';
import { listEndpoints, type EndpointJson } from '../helpers/endpoints.js';
import { settle } from '../helpers/settle.js';
import { INDEX, PLUGIN_ARGS, PLUGIN_SOCKET, PrivateDockerd, WHOAMI_PATH, dockerdSkip, requireDockerd } from '../helpers/dockerd.js';

const HOST = Topology.HOST_EXT; // 198.51.100.1, the host's address the outside reaches
const OUTSIDE = Topology.OUTSIDE; // 198.51.100.2
const N1 = '192.0.2.0/26'; // netd IPAM, the main network
const NINT = '192.0.2.64/26'; // netd IPAM, --internal
const N6 = '192.0.2.128/26'; // netd IPAM, --ipv6
const N6V6 = 'fd00:d0c:14::/64';
const NMTU = '192.0.2.192/26'; // netd IPAM, bridge name and MTU options
const N0 = '203.0.113.0/26'; // Docker's default IPAM, netd driver
const WHOAMI_PORT = 9000; // tcp-whoami in the outside namespace

/** busybox httpd's REMOTE_ADDR (`[::ffff:1.2.3.4]` on its dual-stack socket) as a plain address. */
const plain = (addr: string) => addr.trim().replace(/^\[|\]$/g, '').replace(/^::ffff:/, '');
const inSubnet = (ip: string, cidr: string): boolean => {
  const [net, len] = cidr.split('/');
  const n = (a: string) => a.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(len));
  return Math.floor(n(ip) / size) === Math.floor(n(net) / size);
};

interface NetworkJson {
  Id: string;
  Name: string;
  Driver: string;
  Internal: boolean;
  EnableIPv6: boolean;
  IPAM: { Config: { Subnet: string; Gateway?: string }[] };
  Labels: Record<string, string>;
  Options: Record<string, string>;
}

describe('dockerd drives netd: remote network and IPAM driver (issue 14)', { skip: dockerdSkip() }, () => {
  let topo: Topology;
  let dockerd: PrivateDockerd;
  let daemon: TestDaemon;
  let whoami: ChildProcess | undefined;
  /** The host namespace's links, addresses, routes and rules once dockerd and netd run, before any network. */
  let baseline: Record<string, string[]>;
  const ids: Record<string, string> = {}; // docker network name → id

  const docker = (args: string[]) => dockerd.docker(args, { allowFail: true });
  const host = (): TestNetns => topo.host;

  async function netdNetworks(): Promise<NetworkJson[]> {
    return JSON.parse((await daemon.cli(['networks', '--format', 'json'])).stdout) as NetworkJson[];
  }

  async function endpoints(): Promise<EndpointJson[]> {
    return listEndpoints(daemon);
  }

  /** netd's endpoint for a container on a docker network: the one with dockerd's EndpointID. */
  async function endpointOf(container: string, network: string): Promise<{ docker: string; netd?: EndpointJson; sandboxKey: string }> {
    const c = await dockerd.inspect(container);
    const docker = c.NetworkSettings.Networks[network]?.EndpointID;
    assert.match(docker ?? '', /^[0-9a-f]{64}$/, `${container} has an endpoint on ${network}: ${JSON.stringify(c.NetworkSettings.Networks)}`);
    return { docker, netd: (await endpoints()).find((e) => e.id === docker), sandboxKey: c.NetworkSettings.SandboxKey };
  }

  async function addressOf(container: string, network: string): Promise<string> {
    const ip = (await dockerd.inspect(container)).NetworkSettings.Networks[network]?.IPAddress;
    assert.ok(ip, `${container} has an address on ${network}`);
    return ip;
  }

  async function links(): Promise<{ ifname: string; mtu: number; master?: string; linkinfo?: { info_kind?: string } }[]> {
    return JSON.parse((await host().exec(['ip', '-j', '-d', 'link', 'show'])).stdout);
  }

  async function linkExists(name: string): Promise<boolean> {
    return (await host().exec(['ip', 'link', 'show', 'dev', name], { allowFail: true })).code === 0;
  }

  async function addressesOf(name: string): Promise<string[]> {
    const a = JSON.parse((await host().exec(['ip', '-j', 'addr', 'show', 'dev', name])).stdout) as { addr_info: { local: string; prefixlen: number }[] }[];
    return a[0].addr_info.map((i) => `${i.local}/${i.prefixlen}`);
  }

  async function rules(): Promise<string[]> {
    const text = (await host().exec(['iptables-save'])).stdout + (await host().exec(['ip6tables-save'])).stdout;
    return text.split('\n').filter((l) => l.startsWith('-A') || l.startsWith(':'));
  }

  /** netd's rules that name a network or endpoint (by the first 12 hex of its id). */
  async function rulesOf(id: string): Promise<string[]> {
    return (await rules()).filter((l) => l.includes(id.slice(0, 12)));
  }

  // On the nftables backend the same questions go to netd's table (test/helpers/firewall-state.ts), where a
  // published port is a map element (no rule carrying the endpoint's id): its address stands for it.
  const nft = testFirewallBackend() === 'nftables';
  /** netd's state (nftables), checked to hold netd's table so that an absence means something. */
  async function netdState(): Promise<string[]> {
    const state = await netdFirewallState(host());
    assert.ok(state.some((l) => l.startsWith('table ')), `netd’s nftables table is there:\n${state.join('\n')}`);
    return state;
  }
  /** What netd has left of a network or endpoint: rules naming its id, and (nftables) anything naming `names` (its address, bridge). */
  async function leftOf(id: string, ...names: string[]): Promise<string[]> {
    if (!nft) return rulesOf(id);
    const state = await netdState();
    return [...new Set([...mentioning(state, id.slice(0, 12)), ...names.flatMap((n) => mentioning(state, n))])];
  }
  /** netd's DNATs of host port `port`, to any of `to` when given (iptables: `--dport P ... A:80` rules). */
  async function dnats(port: number, ...to: string[]): Promise<string[]> {
    if (!nft) return (await rules()).filter((l) => new RegExp(`--dport ${port}\\b`).test(l) && /DNAT/.test(l) && (to.length === 0 || to.some((a) => l.includes(`${a}:80`))));
    const all = rulesThat(await netdState(), 'dnat', port);
    return to.length === 0 ? all : all.filter((l) => to.some((a) => mentioning([l], a, 80).length > 0));
  }

  /** An HTTP GET from a namespace of the test (the host's busybox-static wget); '' when it fails. */
  async function fetchFrom(ns: TestNetns, url: string): Promise<string> {
    const res = await ns.exec(['timeout', '5', 'busybox', 'wget', '-q', '-O', '-', url], { allowFail: true });
    return res.code === 0 ? res.stdout : '';
  }

  /** The address a container's tcp connection to the outside whoami server arrived from; '' when none did. */
  async function egressFrom(container: string): Promise<string> {
    const res = await dockerd.exec(container, ['timeout', '5', 'nc', OUTSIDE, String(WHOAMI_PORT)]);
    return plain(res.stdout);
  }

  async function waitFor(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\ndockerd:\n${dockerd.tail(20)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** netd's log of plugin calls (one event per call), for failure messages. */
  function pluginLog(): string {
    return daemon.logs
      .split('\n')
      .filter((l) => l.includes('docker-plugin'))
      .slice(-20)
      .join('\n');
  }

  before(async () => {
    requireRoot();
    requireDockerd();
    topo = await Topology.create('dkp');
    whoami = await startWhoami(topo.outside, OUTSIDE, WHOAMI_PORT);
    dockerd = await PrivateDockerd.start(topo.host);
    // netd in dockerd's network and mount namespaces; the plugin socket on their private /run.
    // A quick dead-container sweep: one that took a container whose namespace dockerd has not made yet (it
    // calls Join before runc creates it) for a dead one would show at once.
    daemon = await TestDaemon.start(dockerd.ns, PLUGIN_ARGS, { NETD_TEST_SWEEP_MS: '100' });
    if (testFirewallBackend() === 'nftables') {
      // dockerd (iptables) turned forwarding on and set iptables' FORWARD policy to DROP, which drops what
      // netd's own table accepts: netd must say so, and the one rule it names (accept by netd's mark, in
      // DOCKER-USER) is what an administrator adds.
      const warning = daemon.logs.split('\n').find((l) => l.includes('"op":"coexistence"') && l.includes('ip filter FORWARD'));
      assert.ok(warning, 'netd says that iptables\' FORWARD drops its traffic');
      assert.match(warning, /policy drop/);
      assert.match(warning, /-m mark --mark 0x00200000\/0x00200000 -j ACCEPT/, 'and names the rule to add');
      await dockerd.ns.exec(['iptables', '-w', '-I', 'DOCKER-USER', '-m', 'mark', '--mark', '0x00200000/0x00200000', '-j', 'ACCEPT']);
    }
    baseline = await kernelSnapshot(topo.host);
  });

  after(async () => {
    await dockerd?.destroy();
    const uncaught = daemon ? uncaughtIn(daemon.logs) : [];
    await daemon?.destroy();
    whoami?.kill('SIGKILL');
    await topo?.destroy();
    assert.deepEqual(uncaught, [], 'no uncaught error in the daemon');
  });

  test('1. netd IPAM: two containers reach each other by IP and by name; netd lists dockerd’s network and endpoints', async () => {
    ids.n1 = await dockerd.createNetwork('n1', ['-d', 'netd', '--ipam-driver', 'netd', '--subnet', N1]);
    assert.match(ids.n1, /^[0-9a-f]{64}$/);
    const net = (await netdNetworks()).find((n) => n.Id === ids.n1);
    assert.ok(net, `netd lists dockerd's network by its id: ${JSON.stringify(await netdNetworks())}`);
    assert.deepEqual(net.IPAM.Config.map((c) => c.Subnet), [N1]);
    assert.equal(net.Name, `docker-${ids.n1.slice(0, 12)}`);
    assert.equal(net.Labels?.['io.netd.origin'], 'docker');
    // dockerd manages it: netd's own CLI leaves it alone (one line, exit 1).
    const refused = await daemon.cli(['rm-network', ids.n1], true);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr.trim(), /^[^\n]*managed by docker[^\n]*$/);
    const bridge = `br-${ids.n1.slice(0, 12)}`;
    assert.ok((await addressesOf(bridge)).includes('192.0.2.1/26'), `${bridge} carries the gateway`);

    await dockerd.runContainer('a1', ['--network', 'n1']);
    await dockerd.runContainer('a2', ['--network', 'n1']);
    const a1 = await addressOf('a1', 'n1');
    const a2 = await addressOf('a2', 'n1');
    assert.ok(inSubnet(a1, N1) && inSubnet(a2, N1) && a1 !== a2, `${a1}, ${a2} in ${N1}`);

    for (const name of ['a1', 'a2']) {
      const { docker, netd, sandboxKey } = await endpointOf(name, 'n1');
      assert.ok(netd, `netd lists ${name}'s endpoint under dockerd's EndpointID ${docker}:\n${pluginLog()}`);
      assert.equal(netd.networkId, ids.n1);
      assert.equal(netd.ipv4?.split('/')[0], await addressOf(name, 'n1'));
      assert.equal(netd.labels?.['io.netd.docker.sandbox'], sandboxKey.split('/').pop(), 'the sandbox id dockerd named');
      assert.equal(netd.name, sandboxKey.split('/').pop(), 'named after the sandbox');
      assert.equal(netd.labels?.['io.netd.origin'], 'docker');
      assert.equal((await daemon.cli(['detach', netd.name], true)).code, 1, 'netd detach leaves dockerd’s endpoint alone');
      const hostIf = netd.driverState.hostIfname ?? `veth${docker.slice(0, 7)}`;
      const link = (await links()).find((l) => l.ifname === hostIf);
      assert.equal(link?.master, bridge, `${hostIf} is a port of ${bridge}`);
      // Inside: dockerd moved and renamed netd's interface to eth0 and gave it the address and the gateway.
      const eth0 = (await dockerd.exec(name, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'])).stdout;
      assert.match(eth0, new RegExp(`inet ${netd.ipv4?.replace(/\./g, '\\.')}`));
      assert.match((await dockerd.exec(name, ['ip', 'route'])).stdout, /^default via 192\.0\.2\.1 dev eth0/m);
    }

    assert.ok(await dockerd.pingIn('a1', a2), 'a1 → a2 by IP (ping)');
    assert.equal(await dockerd.fetchIn('a1', `http://${a2}/`), INDEX, 'a1 → a2 by IP (http)');
    assert.equal(plain(await dockerd.fetchIn('a2', `http://${a1}${WHOAMI_PATH}`)), a2, 'a2 → a1: a1 sees a2’s own address');
    assert.deepEqual(await dockerd.lookupIn('a1', 'a2'), [a2], 'dockerd’s embedded DNS answers a2');
    assert.equal(await dockerd.fetchIn('a1', 'http://a2/'), INDEX, 'a1 → a2 by name (http)');
    assert.ok(await dockerd.pingIn('a2', 'a1'), 'a2 → a1 by name (ping)');
    // The way out: masqueraded to the host's address.
    assert.equal(await egressFrom('a1'), HOST, 'a1 → outside, masqueraded');
  });

  test('1b. Docker’s default IPAM with -d netd: the netd network takes the pool dockerd gives it', async () => {
    ids.n0 = await dockerd.createNetwork('n0', ['-d', 'netd', '--subnet', N0]);
    const net = (await netdNetworks()).find((n) => n.Id === ids.n0);
    assert.deepEqual(net?.IPAM.Config.map((c) => c.Subnet), [N0]);
    assert.equal((await dockerd.inspectNetwork('n0')).IPAM.Driver, 'default');
    await dockerd.runContainer('d1', ['--network', 'n0']);
    const d1 = await addressOf('d1', 'n0');
    assert.ok(inSubnet(d1, N0), `${d1} in ${N0}`);
    const { netd } = await endpointOf('d1', 'n0');
    assert.equal(netd?.ipv4?.split('/')[0], d1, 'netd’s endpoint has the address Docker’s IPAM chose');
    assert.ok(await dockerd.pingIn('d1', '203.0.113.1'), 'd1 → its gateway');
    assert.equal(await egressFrom('d1'), HOST, 'd1 → outside, masqueraded');
  });

  test('2. -p 8080:80 from outside (source kept), from the host and from another container; docker rm -f removes the forward', async () => {
    await dockerd.runContainer('web', ['--network', 'n1', '-p', '8080:80']);
    const webIp = await addressOf('web', 'n1');
    const { docker: ep } = await endpointOf('web', 'n1');
    if (!nft) {
      const dnat = async () => (await rules()).filter((l) => /--dport 8080\b/.test(l) && l.includes(`${webIp}:80`));
      assert.equal((await dnat()).length, 1, `one DNAT rule for 8080 → ${webIp}:80:\n${(await rules()).join('\n')}\n${pluginLog()}`);
      assert.ok((await rulesOf(ep)).length > 0, 'the rule is marked with the endpoint id netd got from dockerd');
    } else {
      assert.notDeepEqual(await dnats(8080, webIp), [], `a DNAT of 8080 → ${webIp}:80 in netd’s table:\n${(await netdState()).join('\n')}\n${pluginLog()}`);
    }
    // dockerd 20.10 shows no binding of a remote driver (`docker port` is empty): netd's own listing has it.
    const sandbox = (await dockerd.inspect('web')).NetworkSettings.SandboxKey.split('/').pop()!;
    assert.equal((await daemon.cli(['port', sandbox])).stdout, '80/tcp -> 0.0.0.0:8080\n', 'netd port <sandbox>');

    assert.equal(plain(await fetchFrom(topo.outside, `http://${HOST}:8080${WHOAMI_PATH}`)), OUTSIDE, 'outside → web: the client’s own address (no proxy)');
    assert.equal(await fetchFrom(topo.outside, `http://${HOST}:8080/`), INDEX);
    const fromHost = plain(await fetchFrom(host(), `http://${HOST}:8080${WHOAMI_PATH}`));
    assert.ok([HOST, '192.0.2.1'].includes(fromHost), `host → web arrives from one of the host's addresses: ${JSON.stringify(fromHost)}`);
    assert.ok(plain(await fetchFrom(host(), `http://127.0.0.1:8080${WHOAMI_PATH}`)), 'host 127.0.0.1:8080 → web');
    assert.equal(await dockerd.fetchIn('a1', `http://${HOST}:8080/`), INDEX, 'another container on n1 → host:8080 (hairpin)');
    assert.equal(await dockerd.fetchIn('d1', `http://${HOST}:8080/`), INDEX, 'a container on another network → host:8080');

    // docker restart: dockerd leaves and deletes the endpoint, then makes a new one and programs the ports again.
    const restart = await docker(['restart', '-t', '0', 'web']);
    assert.equal(restart.code, 0, `${restart.stderr}\ndockerd:\n${dockerd.tail(20)}`);
    await settle(daemon);
    const { docker: ep2 } = await endpointOf('web', 'n1');
    const webIp2 = await addressOf('web', 'n1');
    assert.equal((await endpoints()).find((e) => e.id === ep && ep !== ep2), undefined, 'the old endpoint is gone');
    if (!nft) assert.deepEqual((await rules()).filter((l) => /--dport 8080\b/.test(l) && /DNAT/.test(l)).length, 1, 'one DNAT rule, not two');
    else {
      // Map elements cannot be duplicated: every DNAT of 8080 goes to the new endpoint's address.
      const all = await dnats(8080);
      assert.notDeepEqual(all, [], 'port 8080 is published again');
      assert.deepEqual(all.filter((l) => mentioning([l], webIp2).length === 0), [], `every DNAT of 8080 goes to ${webIp2}`);
    }
    assert.equal(plain(await fetchFrom(topo.outside, `http://${HOST}:8080${WHOAMI_PATH}`)), OUTSIDE, 'outside → web after docker restart');
    if (ep2 !== ep) assert.deepEqual(await leftOf(ep, ...(webIp2 !== webIp ? [webIp] : [])), [], 'no rule of the old endpoint');

    const hostIf = `veth${ep2.slice(0, 7)}`;
    assert.ok(await linkExists(hostIf));
    const rm = await docker(['rm', '-f', 'web']);
    assert.equal(rm.code, 0, rm.stderr);
    await settle(daemon);
    if (!nft) assert.deepEqual((await rules()).filter((l) => /--dport 8080\b/.test(l) && (l.includes(webIp) || l.includes(webIp2))), [], 'docker rm -f removed the DNAT rule');
    else assert.deepEqual(await dnats(8080, webIp, webIp2), [], 'docker rm -f removed the DNAT');
    assert.deepEqual(await leftOf(ep2, webIp2), [], 'and every rule of the endpoint');
    assert.equal(await fetchFrom(topo.outside, `http://${HOST}:8080/`), '', 'nothing answers on 8080 any more');
    assert.equal((await endpoints()).find((e) => e.id === ep2), undefined, 'netd has no endpoint for it');
    assert.equal(await linkExists(hostIf), false, `${hostIf} is gone`);
  });

  test('3. two netd networks cannot reach each other; an --internal network has no way out', async () => {
    // No --subnet: netd's IPAM picks a pool that overlaps none of its networks.
    ids.n2 = await dockerd.createNetwork('n2', ['-d', 'netd', '--ipam-driver', 'netd']);
    const n2 = (await dockerd.inspectNetwork('n2')).IPAM.Config[0].Subnet;
    const others = (await netdNetworks()).filter((n) => n.Id !== ids.n2).flatMap((n) => n.IPAM.Config.map((c) => c.Subnet));
    assert.ok(n2 && !others.includes(n2), `n2 got ${n2}, none of ${others}`);
    await dockerd.runContainer('b1', ['--network', 'n2']);
    const b1 = await addressOf('b1', 'n2');
    const a1 = await addressOf('a1', 'n1');
    assert.ok(await dockerd.pingIn('b1', n2.replace(/\.0\/\d+$/, '.1')), 'b1 → its gateway works');
    assert.equal(await dockerd.pingIn('a1', b1), false, 'n1 → n2 blocked (ping)');
    assert.equal(await dockerd.pingIn('b1', a1), false, 'n2 → n1 blocked (ping)');
    assert.equal(await dockerd.fetchIn('b1', `http://${a1}/`, 3), '', 'n2 → n1 blocked (http)');

    ids.nint = await dockerd.createNetwork('nint', ['-d', 'netd', '--ipam-driver', 'netd', '--internal', '--subnet', NINT]);
    assert.equal((await netdNetworks()).find((n) => n.Id === ids.nint)?.Internal, true, 'netd’s network is internal');
    await dockerd.runContainer('i1', ['--network', 'nint']);
    await dockerd.runContainer('i2', ['--network', 'nint']);
    const i2 = await addressOf('i2', 'nint');
    assert.equal(await dockerd.fetchIn('i1', `http://${i2}/`), INDEX, 'inside the internal network: fine');
    assert.doesNotMatch((await dockerd.exec('i1', ['ip', 'route'])).stdout, /^default/m, 'no default route on an internal network');
    assert.equal(await egressFrom('i1'), '', 'i1 → outside: no way out');
    assert.equal(await dockerd.pingIn('i1', OUTSIDE), false, 'i1 → outside (ping): no way out');
    assert.equal(await dockerd.pingIn('i1', HOST), false, 'i1 → the host’s outside address: no way out');
    assert.equal(await dockerd.pingIn('i1', a1), false, 'i1 → n1: blocked');
    assert.equal(await fetchFrom(topo.outside, `http://${await addressOf('i1', 'nint')}/`), '', 'outside → i1: nothing');
  });

  test('docker network connect / disconnect of a running container', async () => {
    const b1 = await addressOf('b1', 'n2');
    assert.equal(await dockerd.pingIn('a1', b1), false);
    const conn = await docker(['network', 'connect', 'n2', 'a1']);
    assert.equal(conn.code, 0, `${conn.stderr}\ndockerd:\n${dockerd.tail(30)}`);
    const { docker: ep, netd } = await endpointOf('a1', 'n2');
    assert.ok(netd, `netd lists a1's second endpoint ${ep}`);
    const a1n2 = await addressOf('a1', 'n2');
    assert.match((await dockerd.exec('a1', ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth1'])).stdout, new RegExp(`inet ${a1n2.replace(/\./g, '\\.')}/`));
    assert.ok(await dockerd.pingIn('a1', b1), 'a1 → b1 once connected');
    assert.equal(await dockerd.fetchIn('b1', 'http://a1/'), INDEX, 'b1 → a1 by name on n2');
    const hostIf = netd.driverState.hostIfname ?? `veth${ep.slice(0, 7)}`;
    assert.ok(await linkExists(hostIf));

    const disc = await docker(['network', 'disconnect', 'n2', 'a1']);
    assert.equal(disc.code, 0, disc.stderr);
    await settle(daemon);
    assert.equal((await dockerd.exec('a1', ['ip', 'link', 'show', 'dev', 'eth1'])).code !== 0, true, 'eth1 is gone from a1');
    assert.equal((await endpoints()).find((e) => e.id === ep), undefined, 'netd dropped the endpoint');
    assert.equal(await linkExists(hostIf), false, `${hostIf} is gone`);
    assert.equal(await dockerd.pingIn('a1', b1), false, 'isolated again');
    assert.equal(await dockerd.fetchIn('a1', `http://${await addressOf('a2', 'n1')}/`), INDEX, 'a1 still on n1');
  });

  test('--ipv6 with a v6 subnet: containers talk IPv6', async () => {
    ids.n6 = await dockerd.createNetwork('n6', ['-d', 'netd', '--ipam-driver', 'netd', '--ipv6', '--subnet', N6, '--subnet', N6V6]);
    const net = (await netdNetworks()).find((n) => n.Id === ids.n6);
    assert.deepEqual(net?.IPAM.Config.map((c) => c.Subnet).sort(), [N6, N6V6].sort());
    const bridge = `br-${ids.n6.slice(0, 12)}`;
    assert.ok((await addressesOf(bridge)).some((a) => a.startsWith('fd00:d0c:14::') && a.endsWith('/64')), `${bridge} has a v6 gateway: ${await addressesOf(bridge)}`);
    await dockerd.runContainer('v1', ['--network', 'n6']);
    await dockerd.runContainer('v2', ['--network', 'n6']);
    const v2 = (await dockerd.inspect('v2')).NetworkSettings.Networks.n6?.GlobalIPv6Address;
    assert.match(v2 ?? '', /^fd00:d0c:14::/, 'v2 has a v6 address from the subnet');
    const { netd } = await endpointOf('v2', 'n6');
    assert.equal(netd?.ipv6?.split('/')[0], v2, 'netd’s endpoint has the same v6 address');
    // Duplicate address detection must finish on both sides before v6 traffic flows.
    await waitFor('v1 → v2 over IPv6', () => dockerd.pingIn('v1', v2!));
    assert.equal(await dockerd.fetchIn('v1', `http://[${v2}]/`), INDEX, 'v1 → v2 http over IPv6');
    assert.match((await dockerd.exec('v1', ['ip', '-6', 'route'])).stdout, /^default via fd00:d0c:14::/m, 'a v6 default route via the gateway');
  });

  test('-o com.docker.network.bridge.name and com.docker.network.driver.mtu reach the bridge and the container', async () => {
    ids.nmtu = await dockerd.createNetwork('nmtu', ['-d', 'netd', '--ipam-driver', 'netd', '--subnet', NMTU, '-o', 'com.docker.network.bridge.name=dkt-br0', '-o', 'com.docker.network.driver.mtu=1400']);
    const bridge = (await links()).find((l) => l.ifname === 'dkt-br0');
    assert.equal(bridge?.linkinfo?.info_kind, 'bridge', 'the bridge has the name asked for');
    assert.equal(bridge?.mtu, 1400);
    await dockerd.runContainer('m1', ['--network', 'nmtu']);
    assert.match((await dockerd.exec('m1', ['ip', 'link', 'show', 'dev', 'eth0'])).stdout, /mtu 1400\b/, 'the container’s eth0 has the MTU');
    const { docker: ep, netd } = await endpointOf('m1', 'nmtu');
    const hostIf = netd?.driverState.hostIfname ?? `veth${ep.slice(0, 7)}`;
    const port = (await links()).find((l) => l.ifname === hostIf);
    assert.equal(port?.master, 'dkt-br0');
    assert.equal(port?.mtu, 1400);
  });

  test('4a. docker network rm removes the bridge and every rule', async () => {
    const rm = await docker(['rm', '-f', 'm1', 'b1', 'i1', 'i2']);
    assert.equal(rm.code, 0, rm.stderr);
    for (const name of ['nmtu', 'n2', 'nint']) {
      const id = ids[name];
      const bridge = name === 'nmtu' ? 'dkt-br0' : `br-${id.slice(0, 12)}`;
      assert.ok(await linkExists(bridge), `${bridge} exists before`);
      assert.ok((await leftOf(id, bridge)).length > 0, `${name} has rules before`);
      const res = await docker(['network', 'rm', name]);
      assert.equal(res.code, 0, `${res.stderr}\ndockerd:\n${dockerd.tail(20)}`);
      await settle(daemon);
      assert.equal(await linkExists(bridge), false, `${bridge} is gone`);
      assert.deepEqual(await leftOf(id, bridge), [], `no rule of ${name} is left`);
      assert.equal((await netdNetworks()).find((n) => n.Id === id), undefined, `netd no longer lists ${name}`);
    }
    // netd IPAM released the pool: the same subnet can be had again.
    const again = await dockerd.createNetwork('nint2', ['-d', 'netd', '--ipam-driver', 'netd', '--subnet', NINT]);
    assert.equal((await docker(['network', 'rm', 'nint2'])).code, 0);
    assert.match(again, /^[0-9a-f]{64}$/);
  });

  test('4b. kill -9 netd while dockerd runs containers, restart it: traffic still works and netd still lists them', async () => {
    await dockerd.runContainer('web2', ['--network', 'n1', '-p', '8090:80']);
    const before = (await endpoints()).map((e) => e.id).sort();
    const rulesBefore = (await rules()).filter((l) => !/DOCKER/.test(l)).sort();
    const stateBefore = nft ? (await netdState()).sort() : [];
    const a2 = await addressOf('a2', 'n1');
    await daemon.stop('SIGKILL');
    assert.equal(await dockerd.fetchIn('a1', `http://${a2}/`), INDEX, 'while netd is down, the kernel still forwards');
    await daemon.launch();
    await settle(daemon);
    assert.deepEqual((await endpoints()).map((e) => e.id).sort(), before, 'netd still lists every endpoint dockerd made');
    assert.deepEqual((await rules()).filter((l) => !/DOCKER/.test(l)).sort(), rulesBefore, 'the same rules, no duplicate');
    if (nft) assert.deepEqual((await netdState()).sort(), stateBefore, 'the same nftables state, no duplicate');
    assert.equal(await dockerd.fetchIn('a1', 'http://a2/'), INDEX, 'a1 → a2 by name after the restart');
    assert.equal(plain(await fetchFrom(topo.outside, `http://${HOST}:8090${WHOAMI_PATH}`)), OUTSIDE, 'outside → web2 after the restart');
    // The plugin serves again: a new container, and its removal.
    await dockerd.runContainer('a3', ['--network', 'n1']);
    assert.ok(await dockerd.pingIn('a3', a2), 'a new container after the restart');
    const { docker: ep } = await endpointOf('a3', 'n1');
    assert.equal((await docker(['rm', '-f', 'a3'])).code, 0);
    await settle(daemon);
    assert.equal((await endpoints()).find((e) => e.id === ep), undefined);
  });

  /** A container on n1 publishing `port`: its endpoint id, host veth and address. */
  async function publishedOnN1(name: string, port: number): Promise<{ ep: string; hostIf: string; ip: string }> {
    await dockerd.runContainer(name, ['--network', 'n1', '-p', `${port}:80`]);
    const { docker: ep, netd } = await endpointOf(name, 'n1');
    return { ep, hostIf: netd?.driverState.hostIfname ?? `veth${ep.slice(0, 7)}`, ip: await addressOf(name, 'n1') };
  }

  /** Nothing of a removed container is left in netd: endpoint, veth, rules, published port, held address. */
  async function nothingLeftOf({ ep, hostIf, ip }: { ep: string; hostIf: string; ip: string }, port: number, why = ''): Promise<void> {
    await waitFor('netd to drop the endpoint of the removed container', async () => !(await endpoints()).some((e) => e.id === ep), 30_000);
    await settle(daemon);
    assert.equal(await linkExists(hostIf), false, `${hostIf} is gone`);
    assert.deepEqual(await leftOf(ep, ip), [], 'no rule of it is left');
    assert.equal(await fetchFrom(topo.outside, `http://${HOST}:${port}/`), '', `nothing answers on ${port}`);
    // Its address is free again: dockerd can hand it out by --ip.
    await dockerd.runContainer('reuse', ['--network', 'n1', '--ip', ip]).catch((err: Error) => {
      throw new Error(`netd still holds ${ip} of the removed container${why}\n${err.message.split('\n')[0]}`);
    });
    assert.equal(await addressOf('reuse', 'n1'), ip);
    assert.equal((await docker(['rm', '-f', 'reuse'])).code, 0);
  }

  test('4d. docker rm -f while netd is down (killed), netd back within seconds: nothing of the container is left', async () => {
    const gone = await publishedOnN1('gone', 8095);
    await daemon.stop('SIGKILL');
    // dockerd retries its plugin calls for a while: they land on the restarted daemon, or the sweep finds the
    // namespace gone. Either way the endpoint, its veth, its rules and its address must go.
    const rm = docker(['rm', '-f', 'gone']);
    await new Promise((r) => setTimeout(r, 2000));
    await daemon.launch();
    const res = await rm;
    assert.equal(res.code, 0, `${res.stderr}\ndockerd:\n${dockerd.tail(20)}`);
    await nothingLeftOf(gone, 8095);
  });

  test('4e. docker rm -f while netd stays down until dockerd gave up: the sweep releases what dockerd could not', async () => {
    const gone = await publishedOnN1('gone3', 8096);
    await daemon.stop('SIGKILL');
    const mark = dockerd.logs.length;
    const t0 = Date.now();
    const rm = await dockerd.docker(['rm', '-f', 'gone3'], { allowFail: true, timeoutMs: 240_000 });
    // dockerd 20.10 retries each plugin call for 15 s (1+2+4+8), then gives up and removes the container:
    // RevokeExternalConnectivity, Leave, DeleteEndpoint and IpamDriver.ReleaseAddress are never sent again.
    console.log(`docker rm -f with netd down took ${Date.now() - t0} ms (exit ${rm.code})`);
    const gaveUp = dockerd.logs.slice(mark).split('\n').filter((l) => /Failed to release ip address|driver error/.test(l));
    assert.equal(await dockerd.inspect('gone3').catch(() => undefined), undefined, `dockerd removed the container anyway: ${rm.stderr}`);
    await daemon.launch();
    await nothingLeftOf(gone, 8096, ` after dockerd gave up releasing it:\n${gaveUp.join('\n')}`);
  });

  test('4c. kill -9 dockerd, restart it, docker rm -f: netd has no endpoint, veth, rule or held address left', async () => {
    const n1Eps = (await endpoints()).filter((e) => e.networkId === ids.n1 || e.networkId === ids.n0);
    assert.ok(n1Eps.length >= 4, `a1, a2, web2, d1: ${n1Eps.map((e) => e.name)}`);
    const addresses = n1Eps.filter((e) => e.networkId === ids.n1).map((e) => e.ipv4!.split('/')[0]);
    const containers = ['a1', 'a2', 'web2', 'd1', 'v1', 'v2'];
    await dockerd.kill9();
    await dockerd.launch();
    const rm = await docker(['rm', '-f', ...containers]);
    assert.equal(rm.code, 0, rm.stderr);
    await waitFor('netd to drop every endpoint dockerd made', async () => (await endpoints()).length === 0);
    await settle(daemon);
    const veths = (await links()).filter((l) => l.linkinfo?.info_kind === 'veth' && l.ifname !== 'ext0');
    assert.deepEqual(veths.map((l) => l.ifname), [], 'no veth left');
    for (const e of n1Eps) assert.deepEqual(await leftOf(e.id, e.ipv4!.split('/')[0]), [], `no rule of ${e.name} left`);
    assert.deepEqual((await rules()).filter((l) => /--dport 80[89]0\b/.test(l)), [], 'no published port left');
    if (nft) assert.deepEqual([...(await dnats(8080)), ...(await dnats(8090))], [], 'no published port left in netd’s table');
    // Every address the containers held is free again: dockerd can hand out each one by --ip.
    for (const [i, ip] of addresses.entries()) {
      await dockerd.runContainer(`re${i}`, ['--network', 'n1', '--ip', ip]);
      assert.equal(await addressOf(`re${i}`, 'n1'), ip);
    }
    assert.equal((await docker(['rm', '-f', ...addresses.map((_, i) => `re${i}`)])).code, 0);
  });

  test('5. start order: dockerd restarts while netd is stopped; with the spec file, a --restart always container is back once netd is up', async () => {
    // README "Use netd from Docker", step 2: the spec file tells dockerd the plugin exists before its socket does.
    await dockerd.ns.exec(['mkdir', '-p', '/etc/docker/plugins']);
    await dockerd.ns.writeFile('/etc/docker/plugins/netd.spec', `unix://${PLUGIN_SOCKET}\n`);
    await dockerd.runContainer('rs', ['--network', 'n1', '--restart', 'always']);
    const before = (await endpointOf('rs', 'n1')).docker;
    await daemon.stop('SIGTERM');
    await dockerd.kill9();
    const up = dockerd.launch(); // restores rs: its network waits for the plugin
    await new Promise((r) => setTimeout(r, 3000));
    await daemon.launch();
    await up;
    await waitFor('rs running again', async () => (await dockerd.inspect('rs')).State.Running, 60_000);
    const { docker: ep, netd } = await endpointOf('rs', 'n1');
    assert.notEqual(ep, before, 'a new endpoint for the restarted container');
    assert.ok(netd, `netd lists it:\n${pluginLog()}`);
    assert.equal((await endpoints()).find((e) => e.id === before), undefined, 'and not the old one');
    assert.ok(await dockerd.pingIn('rs', '192.0.2.1'), 'rs → its gateway');
    assert.equal(await egressFrom('rs'), HOST, 'rs → outside');
    assert.equal((await docker(['rm', '-f', 'rs'])).code, 0);
    await settle(daemon);
    assert.equal((await endpoints()).find((e) => e.id === ep), undefined);
  });

  test('every docker network removed: the host namespace is as it was before the first one', async () => {
    for (const name of ['n1', 'n0', 'n6']) {
      const res = await docker(['network', 'rm', name]);
      assert.equal(res.code, 0, `${name}: ${res.stderr}`);
    }
    await settle(daemon);
    assert.deepEqual(await endpoints(), []);
    assert.deepEqual((await netdNetworks()).filter((n) => Object.values(ids).includes(n.Id)), []);
    const now = await kernelSnapshot(topo.host);
    // dockerd re-lays its own chains at each start: compare netd's side only. The FORWARD policies are not
    // compared: netd keeps forwarding on, with policy DROP, once it turned it on (IPv6 with the --ipv6 network);
    // with nftables that is netd's forward-drop chain.
    const notDockers = (s: Record<string, string[]>) => ({
      ...s,
      rules: s.rules.filter((l) => !/DOCKER|^:FORWARD /.test(l)),
      ...(s.nftables ? { nftables: s.nftables.filter((l) => !/ forward-drop\b/.test(l)) } : {}),
    });
    assert.deepEqual(notDockers(now), notDockers(baseline));
  });
});
