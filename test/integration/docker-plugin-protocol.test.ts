/**
 * netd as dockerd's remote network + IPAM plugin, driven over its socket with the calls dockerd 20.10
 * makes (../shared/observed/dockerd-20.10-remote-plugin-calls.txt, in that order, with netd's own PoolIDs),
 * without dockerd: the test plays dockerd's part, moving each handed-over interface into a real sandbox
 * namespace on Join (renamed `eth*`, addressed, default route) and back on Leave. After each step it checks
 * the kernel (bridges, the veth pair's names, iptables-save for the published port, traffic) and `netd
 * networks` / `netd endpoints`; midway the daemon is killed with SIGKILL and restarted, keeping pools,
 * holds, endpoints and the published port.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { FIXTURES, TestDaemon, Topology, startWhoami, testFirewallBackend, uncaughtIn } from '../helpers/daemon.js';
import { netdFirewallState, rulesThat } from '../helpers/firewall-state.js';
import { TestNetns } from '../helpers/netns.js';
import { callPlugin, type PluginAnswer } from '../helpers/plugin-client.js';
import { settle } from '../helpers/settle.js';

const N1 = 'a71aff9a6e3beafa5431d5a78ac36a4694ae7b862d900c23a4a55f6b4ff24fa3';
const N2 = 'a63f0fa473b13dacd6b05c9d7478daafa462859a1f57a422935a9273643ae779';
const EP_RUN = '31657ccdec87b064e8a0ff8ed4d3acf4457cb8e7b916d4718ac89adb2887c46a';
const EP_C1 = '3969db0b288f1fcd19390c7f5bf1fdadf13f2ba577ad6f83b4ad33a353499787';
const EP_CONNECT = '3e272e6977bc754cb204f02101b34c75e397e50d45fedfddabc22e9aaa738ab3';
const POOL2 = '203.0.113.0/24';
const PORTS = { 'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }], 'com.docker.network.portmap': [{ Proto: 6, IP: '', Port: 80, HostIP: '127.0.0.1', HostPort: 8080, HostPortEnd: 8080 }] };
const NO_PORTS = { 'com.docker.network.endpoint.exposedports': [], 'com.docker.network.portmap': [] };

interface Link {
  ifname: string;
  operstate: string;
  address: string;
  mtu: number;
  master?: string;
  linkinfo?: { info_kind?: string };
}

async function links(ns: TestNetns): Promise<Link[]> {
  return JSON.parse((await ns.exec(['ip', '-j', '-d', 'link', 'show'])).stdout) as Link[];
}

async function link(ns: TestNetns, name: string): Promise<Link | undefined> {
  return (await links(ns)).find((l) => l.ifname === name);
}

/** dockerd's part at Join: the handed-over interface into the sandbox, renamed, addressed, up, default route. */
async function moveIn(host: TestNetns, sandbox: TestNetns, src: string, ifname: string, address: string, gateway: string): Promise<void> {
  await host.exec(['ip', 'link', 'set', src, 'netns', sandbox.name]);
  await sandbox.exec(['ip', 'link', 'set', src, 'name', ifname]);
  await sandbox.exec(['ip', 'addr', 'add', address, 'dev', ifname]);
  await sandbox.exec(['ip', 'link', 'set', ifname, 'up']);
  if (ifname === 'eth0') await sandbox.exec(['ip', 'route', 'add', 'default', 'via', gateway]);
}

/** dockerd's part at Leave: the interface back to its namespace under its source name. */
async function moveOut(host: TestNetns, sandbox: TestNetns, ifname: string, src: string): Promise<void> {
  await sandbox.exec(['ip', 'link', 'set', ifname, 'down']);
  await sandbox.exec(['ip', 'link', 'set', ifname, 'name', src]);
  await sandbox.exec(['ip', 'link', 'set', src, 'netns', host.name]);
}

interface EndpointJson {
  id: string;
  name: string;
  network: string;
  ifname: string;
  mac?: string;
  ipv4?: string;
  labels?: Record<string, string>;
  driverState: { hostIfname?: string };
}

test('dockerd 20.10 call sequence over the plugin socket: kernel state and netd listings at each step, SIGKILL and restart midway', { timeout: 240_000 }, async (t) => {
  const topo = await Topology.create('dplug');
  const sandboxes: TestNetns[] = [];
  const servers: ChildProcess[] = [];
  const pluginDir = mkdtempSync(join(tmpdir(), 'netd-plugin-sock-'));
  // A directory the daemon makes (0755), as /run/docker/plugins may not exist yet.
  const sock = join(pluginDir, 'plugins', 'netd.sock');
  let daemon: TestDaemon | undefined;
  t.after(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await daemon?.destroy();
    for (const s of sandboxes) await s.destroy();
    await topo.destroy();
    rmSync(pluginDir, { recursive: true, force: true });
  });
  daemon = await TestDaemon.start(topo.host, ['--docker-plugin', `unix://${sock}`]);
  const d = daemon;
  const host = topo.host;
  const call = async (name: string, body: unknown = null, expect = 200): Promise<PluginAnswer> => {
    const answer = await callPlugin(sock, name, body);
    assert.equal(answer.status, expect, `${name}: ${answer.status} ${JSON.stringify(answer.body)}`);
    assert.equal(answer.contentType, 'application/vnd.docker.plugins.v1.2+json');
    return answer;
  };
  const endpoints = async (): Promise<EndpointJson[]> => JSON.parse((await d.cli(['endpoints', '--format', 'json'])).stdout) as EndpointJson[];
  const networks = async (): Promise<{ Id: string; Name: string }[]> => JSON.parse((await d.cli(['networks', '--format', 'json'])).stdout) as { Id: string; Name: string }[];
  const rules = async (): Promise<string> => (await host.exec(['iptables-save'])).stdout;
  // On the nftables backend the same questions are asked of netd's table (test/helpers/firewall-state.ts).
  const nft = testFirewallBackend() === 'nftables';
  /** netd DNATs host port 8080 (from `from` when given) to 192.0.2.2:80. */
  const published = async (from?: string): Promise<boolean> =>
    nft ? rulesThat(await netdFirewallState(host), 'dnat', 8080, '192.0.2.2', 80, ...(from ? [from] : [])).length > 0 : (from ? /-d 127\.0\.0\.1\/32 .*--dport 8080 .*-j DNAT --to-destination 192\.0\.2\.2:80/ : /--dport 8080 .*-j DNAT --to-destination 192\.0\.2\.2:80/).test(await rules());
  /** Anything of netd's about port 8080 (iptables: `--dport 8080`; nftables: a DNAT of 8080 in netd's table). */
  const any8080 = async (): Promise<boolean> => {
    if (!nft) return /--dport 8080/.test(await rules());
    const state = await netdFirewallState(host);
    assert.ok(state.some((l) => l.startsWith('table ')), 'netd’s table is there');
    return rulesThat(state, 'dnat', 8080).length > 0;
  };

  // ---------------------------------------------------------------- the socket
  const mode = statSync(sock).mode;
  assert.ok(statSync(sock).isSocket());
  assert.equal(mode & 0o777, 0o660);
  assert.equal(statSync(join(pluginDir, 'plugins')).mode & 0o777, 0o755);
  const unknown = await callPlugin(sock, 'NetworkDriver.Nope', {});
  assert.equal(unknown.status, 404);
  assert.equal(typeof unknown.body.Err, 'string');
  const notJson = await callPlugin(sock, 'NetworkDriver.CreateNetwork', null, { raw: '{"NetworkID": ' });
  assert.equal(notJson.status, 400);
  assert.match(String(notJson.body.Err), /malformed JSON/);
  const huge = await callPlugin(sock, 'IpamDriver.RequestPool', null, { raw: Buffer.alloc(2 << 20, 0x20) }).catch((err: Error): PluginAnswer => ({ status: 0, contentType: '', body: { Err: err.message } }));
  assert.ok(huge.status === 413 || huge.status === 0, `a body over 1 MiB is refused (${huge.status})`);
  const get = await callPlugin(sock, 'Plugin.Activate', null, { method: 'GET', raw: '' });
  assert.equal(get.status, 405);

  // ---------------------------------------------------------------- discovery (dockerd's first calls)
  assert.deepEqual((await call('Plugin.Activate')).body, { Implements: ['NetworkDriver', 'IpamDriver'] });
  assert.deepEqual((await call('NetworkDriver.GetCapabilities')).body, { Scope: 'local', ConnectivityScope: 'local' });
  assert.deepEqual((await call('IpamDriver.GetCapabilities')).body, { RequiresMACAddress: false, RequiresRequestReplay: false });
  assert.deepEqual((await call('IpamDriver.GetDefaultAddressSpaces')).body, { LocalDefaultAddressSpace: 'netd', GlobalDefaultAddressSpace: 'netd-global' });

  // ---------------------------------------------------------------- docker network create -d netd n1 (Docker's IPAM)
  await call('NetworkDriver.CreateNetwork', {
    NetworkID: N1,
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { 'com.docker.network.bridge.name': 'dkn1' } },
    IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: '192.0.2.1/24', Pool: '192.0.2.0/24' }],
    IPv6Data: [],
  });
  const br1 = await link(host, 'dkn1');
  assert.equal(br1?.linkinfo?.info_kind, 'bridge');
  assert.match((await host.exec(['ip', '-4', 'addr', 'show', 'dkn1'])).stdout, /192\.0\.2\.1\/24/);
  assert.ok((await networks()).some((n) => n.Id === N1 && n.Name === 'docker-a71aff9a6e3b'), 'netd networks lists it with dockerd\'s id');
  // netd's own CLI may not remove what dockerd manages.
  const rm = await d.cli(['rm-network', 'docker-a71aff9a6e3b'], true);
  assert.equal(rm.code, 1);
  assert.match(rm.stderr, /managed by docker/);
  // ...nor the plugin what netd's CLI made: not {} as "the same network", not removed.
  await d.cli(['create-network', 'cli1', '--subnet', '198.51.100.64/26']);
  const cliId = (await networks()).find((n) => n.Name === 'cli1')!.Id;
  const cliAsDocker = { NetworkID: cliId, Options: {}, IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: '198.51.100.65/26', Pool: '198.51.100.64/26' }], IPv6Data: [] };
  assert.match(String((await call('NetworkDriver.CreateNetwork', cliAsDocker, 403)).body.Err), /not a Docker network/);
  await call('NetworkDriver.DeleteNetwork', { NetworkID: cliId }, 403);
  assert.ok((await networks()).some((n) => n.Id === cliId));
  await d.cli(['rm-network', 'cli1']);
  // A known call's own error is never 404 (dockerd would take it for "not implemented": `-p` with nothing published).
  await call('NetworkDriver.ProgramExternalConnectivity', { NetworkID: N1, EndpointID: 'f'.repeat(64), Options: {} }, 500);

  // ---------------------------------------------------------------- docker network create -d netd --ipam-driver netd --subnet 203.0.113.0/24 --aux-address r=… -o … n2
  const pool = await call('IpamDriver.RequestPool', { AddressSpace: 'netd', Pool: POOL2, SubPool: '', Options: {}, V6: false });
  assert.deepEqual(pool.body, { PoolID: `netd/${POOL2}`, Pool: POOL2, Data: {} });
  const pool2 = pool.body.PoolID as string;
  assert.deepEqual((await call('IpamDriver.RequestAddress', { PoolID: pool2, Address: '203.0.113.1', Options: { RequestAddressType: 'com.docker.network.gateway' } })).body, { Address: '203.0.113.1/24', Data: {} });
  assert.deepEqual((await call('IpamDriver.RequestAddress', { PoolID: pool2, Address: '203.0.113.9', Options: null })).body, { Address: '203.0.113.9/24', Data: {} });
  // netd's IPAM serves the pool: nothing else netd makes may take it now.
  const clash = await d.cli(['create-network', 'clash', '--subnet', POOL2], true);
  assert.equal(clash.code, 1, 'a netd network on a pool dockerd holds is refused');
  // A pool netd picks itself (no Pool): one that no network has.
  const picked = await call('IpamDriver.RequestPool', { AddressSpace: 'netd', Pool: '', SubPool: '', Options: {}, V6: false });
  const pickedSubnet = picked.body.Pool as string;
  assert.ok(!(await networks()).some((n) => JSON.stringify(n).includes(`"${pickedSubnet}"`)));
  await call('NetworkDriver.CreateNetwork', {
    NetworkID: N2,
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { 'com.docker.network.bridge.name': 'dkn2', 'com.docker.network.driver.mtu': '1400', foo: 'bar' } },
    IPv4Data: [{ AddressSpace: 'netd', AuxAddresses: { r: '203.0.113.9/24' }, Gateway: '203.0.113.1/24', Pool: POOL2 }],
    IPv6Data: [],
  });
  assert.equal((await link(host, 'dkn2'))?.mtu, 1400, '-o com.docker.network.driver.mtu');
  assert.match((await host.exec(['ip', '-4', 'addr', 'show', 'dkn2'])).stdout, /203\.0\.113\.1\/24/);

  // ---------------------------------------------------------------- docker run --rm --network n2 --ip 203.0.113.50
  const sbRun = await TestNetns.create('dsbrun');
  sandboxes.push(sbRun);
  await call('IpamDriver.RequestAddress', { PoolID: pool2, Address: '203.0.113.50', Options: null });
  const created = await call('NetworkDriver.CreateEndpoint', { NetworkID: N2, EndpointID: EP_RUN, Interface: { Address: '203.0.113.50/24', AddressIPv6: '', MacAddress: '' }, Options: NO_PORTS });
  const macRun = (created.body.Interface as { MacAddress: string }).MacAddress;
  assert.match(macRun, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/);
  const joined = await call('NetworkDriver.Join', { NetworkID: N2, EndpointID: EP_RUN, SandboxKey: sbRun.path, Options: NO_PORTS });
  assert.deepEqual(joined.body, { InterfaceName: { SrcName: 'netdc31657cc', DstPrefix: 'eth' }, Gateway: '203.0.113.1', DisableGatewayService: false });
  // The veth pair in dockerd's (here: the daemon's) namespace: the host end on the bridge, the other end down with the MAC.
  const handed = await link(host, 'netdc31657cc');
  assert.equal(handed?.linkinfo?.info_kind, 'veth');
  assert.equal(handed?.address, macRun);
  assert.equal(handed?.mtu, 1400);
  let [epRun] = (await endpoints()).filter((e) => e.id === EP_RUN);
  assert.ok(epRun, 'netd endpoints lists dockerd\'s EndpointID');
  assert.equal(epRun.name, sbRun.name);
  assert.equal(epRun.ipv4, '203.0.113.50/24');
  assert.equal(epRun.labels?.['io.netd.origin'], 'docker');
  const hostEnd = epRun.driverState.hostIfname!;
  assert.match(hostEnd, /^veth[0-9a-f]{7}$/);
  assert.equal((await link(host, hostEnd))?.master, 'dkn2');
  await moveIn(host, sbRun, 'netdc31657cc', 'eth0', '203.0.113.50/24', '203.0.113.1');
  await sbRun.exec(['ping', '-c1', '-W2', '203.0.113.1']);
  await call('NetworkDriver.ProgramExternalConnectivity', { NetworkID: N2, EndpointID: EP_RUN, Options: NO_PORTS });
  const info = await call('NetworkDriver.EndpointOperInfo', { NetworkID: N2, EndpointID: EP_RUN });
  assert.deepEqual(info.body, { Value: { 'com.docker.network.portmap': [], 'com.docker.network.endpoint.macaddress': macRun, hostInterface: hostEnd } });
  await call('NetworkDriver.RevokeExternalConnectivity', { NetworkID: N2, EndpointID: EP_RUN });
  await call('NetworkDriver.Leave', { NetworkID: N2, EndpointID: EP_RUN });
  await moveOut(host, sbRun, 'eth0', 'netdc31657cc');
  await call('NetworkDriver.DeleteEndpoint', { NetworkID: N2, EndpointID: EP_RUN });
  assert.equal(await link(host, 'netdc31657cc'), undefined, 'DeleteEndpoint removes the pair');
  assert.equal(await link(host, hostEnd), undefined);
  assert.ok(!(await endpoints()).some((e) => e.id === EP_RUN));
  await call('IpamDriver.ReleaseAddress', { PoolID: pool2, Address: '203.0.113.50' });

  // ---------------------------------------------------------------- docker run -d --name c1 --network n1 -p 127.0.0.1:8080:80
  const sbC1 = await TestNetns.create('dsbc1');
  sandboxes.push(sbC1);
  await call('NetworkDriver.CreateEndpoint', { NetworkID: N1, EndpointID: EP_C1, Interface: { Address: '192.0.2.2/24', AddressIPv6: '', MacAddress: '' }, Options: PORTS });
  const j1 = await call('NetworkDriver.Join', { NetworkID: N1, EndpointID: EP_C1, SandboxKey: sbC1.path, Options: PORTS });
  assert.deepEqual(j1.body.InterfaceName, { SrcName: 'netdc3969db0', DstPrefix: 'eth' });
  assert.equal(j1.body.Gateway, '192.0.2.1');
  assert.equal(await any8080(), false, 'nothing published at Join');
  await moveIn(host, sbC1, 'netdc3969db0', 'eth0', '192.0.2.2/24', '192.0.2.1');
  await call('NetworkDriver.ProgramExternalConnectivity', { NetworkID: N1, EndpointID: EP_C1, Options: PORTS });
  assert.ok(await published('127.0.0.1'), 'published on 127.0.0.1:8080');
  servers.push(await startWhoami(sbC1, '192.0.2.2', 80));
  const reach = async (): Promise<string> => (await host.exec(['node', join(FIXTURES, 'tcp-get.cjs'), '127.0.0.1', '8080', '3000'])).stdout;
  assert.match(await reach(), /\d+\.\d+\.\d+\.\d+/, 'the published port answers from the host (no docker-proxy)');
  const info1 = await call('NetworkDriver.EndpointOperInfo', { NetworkID: N1, EndpointID: EP_C1 });
  assert.deepEqual((info1.body.Value as Record<string, unknown>)['com.docker.network.portmap'], [{ Proto: 6, IP: '192.0.2.2', Port: 80, HostIP: '127.0.0.1', HostPort: 8080, HostPortEnd: 8080 }]);

  // ---------------------------------------------------------------- docker network connect --ip 203.0.113.60 n2 c1
  await call('IpamDriver.RequestAddress', { PoolID: pool2, Address: '203.0.113.60', Options: null });
  await call('NetworkDriver.CreateEndpoint', { NetworkID: N2, EndpointID: EP_CONNECT, Interface: { Address: '203.0.113.60/24', AddressIPv6: '', MacAddress: '' }, Options: PORTS });
  const j2 = await call('NetworkDriver.Join', { NetworkID: N2, EndpointID: EP_CONNECT, SandboxKey: sbC1.path, Options: PORTS });
  assert.equal((j2.body.InterfaceName as { SrcName: string }).SrcName, 'netdc3e272e6');
  await moveIn(host, sbC1, 'netdc3e272e6', 'eth1', '203.0.113.60/24', '203.0.113.1');
  await sbC1.exec(['ping', '-c1', '-W2', '203.0.113.1']);
  const both = (await endpoints()).filter((e) => e.id === EP_C1 || e.id === EP_CONNECT);
  assert.equal(both.length, 2);
  assert.deepEqual(new Set(both.map((e) => e.name)), new Set([sbC1.name]), 'one sandbox, two endpoints');

  // ---------------------------------------------------------------- docker network disconnect n2 c1
  await call('NetworkDriver.Leave', { NetworkID: N2, EndpointID: EP_CONNECT });
  await moveOut(host, sbC1, 'eth1', 'netdc3e272e6');
  await call('NetworkDriver.DeleteEndpoint', { NetworkID: N2, EndpointID: EP_CONNECT });
  await call('IpamDriver.ReleaseAddress', { PoolID: pool2, Address: '203.0.113.60' });
  assert.equal(await link(host, 'netdc3e272e6'), undefined);
  assert.ok(!(await endpoints()).some((e) => e.id === EP_CONNECT));

  // ---------------------------------------------------------------- a container that dies without dockerd calling (dockerd down)
  const EP_DEAD = 'dead'.padEnd(64, '0').replace(/[^0-9a-f]/g, 'd');
  const sbDead = await TestNetns.create('dsbdead');
  await call('NetworkDriver.CreateEndpoint', { NetworkID: N1, EndpointID: EP_DEAD, Interface: { Address: '192.0.2.3/24', AddressIPv6: '', MacAddress: '' }, Options: NO_PORTS });
  await call('NetworkDriver.Join', { NetworkID: N1, EndpointID: EP_DEAD, SandboxKey: sbDead.path, Options: NO_PORTS });
  await moveIn(host, sbDead, `netdc${EP_DEAD.slice(0, 7)}`, 'eth0', '192.0.2.3/24', '192.0.2.1');
  assert.ok(existsSync(join(d.dataRoot, 'docker-plugin', 'endpoints', `${EP_DEAD}.json`)));
  await sbDead.destroy();
  const deadline = Date.now() + 15_000;
  while ((await endpoints()).some((e) => e.id === EP_DEAD) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  assert.ok(!(await endpoints()).some((e) => e.id === EP_DEAD), 'the sweep released it');
  await settle(d);
  assert.ok(!existsSync(join(d.dataRoot, 'docker-plugin', 'endpoints', `${EP_DEAD}.json`)), 'and the plugin dropped its record');
  assert.match(d.logs, /endpoint released without dockerd/);
  // dockerd, back, deletes it: nothing left to do.
  await call('NetworkDriver.DeleteEndpoint', { NetworkID: N1, EndpointID: EP_DEAD });

  // ---------------------------------------------------------------- kill -9 netd while c1 runs, restart
  await settle(d);
  await d.restart('SIGKILL');
  assert.ok(existsSync(sock), 'the plugin socket is back');
  assert.ok((await endpoints()).some((e) => e.id === EP_C1), 'the endpoint survives');
  assert.ok(await published(), 'the published port survives');
  assert.match(await reach(), /\d+\.\d+\.\d+\.\d+/);
  // The holds survive: the aux address is still held, the pools still dockerd's (the same request counts one more).
  const heldAgain = await call('IpamDriver.RequestAddress', { PoolID: pool2, Address: '203.0.113.9', Options: null }, 409);
  assert.match(String(heldAgain.body.Error), /203\.0\.113\.9/);
  assert.deepEqual((await call('IpamDriver.RequestPool', { AddressSpace: 'netd', Pool: pickedSubnet, SubPool: '', Options: {}, V6: false })).body.PoolID, picked.body.PoolID);
  const probe = await d.cli(['create-network', 'probe', '--subnet', pickedSubnet], true);
  assert.equal(probe.code, 1, 'the pool picked before the restart is still held');
  const state = storedPools(d.dataRoot) as { id: string; refs: number }[];
  assert.deepEqual(state.map((p) => [p.id, p.refs]).sort(), [[pool2, 1], [picked.body.PoolID, 2]].sort());
  // dockerd replays CreateNetwork after its own restart: the same network, {}.
  await call('NetworkDriver.CreateNetwork', { NetworkID: N1, Options: { 'com.docker.network.generic': { 'com.docker.network.bridge.name': 'dkn1' } }, IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: '192.0.2.1/24', Pool: '192.0.2.0/24' }], IPv6Data: [] });

  // ---------------------------------------------------------------- docker rm -f c1
  await call('NetworkDriver.RevokeExternalConnectivity', { NetworkID: N1, EndpointID: EP_C1 });
  assert.equal(await any8080(), false, 'RevokeExternalConnectivity removes the forward');
  await call('NetworkDriver.Leave', { NetworkID: N1, EndpointID: EP_C1 });
  await moveOut(host, sbC1, 'eth0', 'netdc3969db0');
  await call('NetworkDriver.DeleteEndpoint', { NetworkID: N1, EndpointID: EP_C1 });
  assert.equal(await link(host, 'netdc3969db0'), undefined);
  assert.ok(!(await endpoints()).some((e) => e.labels?.['io.netd.origin'] === 'docker'));

  // ---------------------------------------------------------------- a container whose DeleteEndpoint dockerd lost (netd was down)
  const sbLost = await TestNetns.create('dsblost');
  sandboxes.push(sbLost);
  const EP_LOST = 'f'.repeat(64);
  await call('NetworkDriver.CreateEndpoint', { NetworkID: N1, EndpointID: EP_LOST, Interface: { Address: '192.0.2.7/24', AddressIPv6: '', MacAddress: '' }, Options: NO_PORTS });
  await call('NetworkDriver.Join', { NetworkID: N1, EndpointID: EP_LOST, SandboxKey: sbLost.path, Options: NO_PORTS });
  await moveIn(host, sbLost, 'netdcfffffff', 'eth0', '192.0.2.7/24', '192.0.2.1');
  const lostHostEnd = (await endpoints()).find((e) => e.id === EP_LOST)!.driverState.hostIfname!;
  assert.equal((await link(host, lostHostEnd))?.master, 'dkn1');

  // ---------------------------------------------------------------- docker network rm n1 n2 (n1: the lost endpoint goes first) (in dockerd's order: n2's IPAM releases before its DeleteNetwork)
  await call('NetworkDriver.DeleteNetwork', { NetworkID: N1 });
  assert.equal(await link(host, lostHostEnd), undefined, 'the lost endpoint\'s pair is gone');
  assert.doesNotMatch((await sbLost.exec(['ip', '-o', 'link'])).stdout, /eth0/);
  assert.ok(!(await endpoints()).some((e) => e.id === EP_LOST));
  assert.ok(!readdirSync(join(d.dataRoot, 'docker-plugin', 'endpoints')).some((f) => f.startsWith(EP_LOST)), 'its record is gone');
  await call('IpamDriver.ReleaseAddress', { PoolID: pool2, Address: '203.0.113.1' });
  await call('IpamDriver.ReleaseAddress', { PoolID: pool2, Address: '203.0.113.9' });
  await call('IpamDriver.ReleasePool', { PoolID: pool2 });
  await call('NetworkDriver.DeleteNetwork', { NetworkID: N2 });
  assert.equal(await link(host, 'dkn1'), undefined);
  assert.equal(await link(host, 'dkn2'), undefined);
  assert.ok(!(await networks()).some((n) => n.Id === N1 || n.Id === N2));
  const left = (await rules()).split('\n').filter((l) => /192\.0\.2\.|203\.0\.113\.|dkn[12]/.test(l));
  assert.deepEqual(left, [], 'no rule of either network is left');
  if (nft) {
    const state = await netdFirewallState(host);
    assert.ok(state.some((l) => l.startsWith('table ')), 'netd’s table is there (the default network)');
    assert.deepEqual(state.filter((l) => /192\.0\.2\.|203\.0\.113\.|dkn[12]/.test(l)), [], 'nothing of either network is left in netd’s table');
  }
  // The pool is free again for anyone; the other one goes with its last two releases.
  await d.cli(['create-network', 'after', '--subnet', POOL2]);
  await call('IpamDriver.ReleasePool', { PoolID: picked.body.PoolID });
  await call('IpamDriver.ReleasePool', { PoolID: picked.body.PoolID });
  assert.deepEqual(storedPools(d.dataRoot), []);
  await d.cli(['create-network', 'probe2', '--subnet', pickedSubnet]);
  assert.deepEqual(uncaughtIn(d.logs), []);
  assert.match(d.logs, /"op":"docker-plugin","call":"NetworkDriver.Join","network":"a63f0fa4/);
});

test('IPv6 from netd\'s pools and --internal through the plugin: gateways in Join, v6 traffic, no way out', { timeout: 120_000 }, async (t) => {
  const host = await TestNetns.create('dplug6');
  const sandbox = await TestNetns.create('dsb6');
  const pluginDir = mkdtempSync(join(tmpdir(), 'netd-plugin-sock-'));
  const sock = join(pluginDir, 'netd.sock');
  let daemon: TestDaemon | undefined;
  t.after(async () => {
    await daemon?.destroy();
    await sandbox.destroy();
    await host.destroy();
    rmSync(pluginDir, { recursive: true, force: true });
  });
  // A bare path works as well as unix://.
  daemon = await TestDaemon.start(host, ['--docker-plugin', sock]);
  const call = async (name: string, body: unknown): Promise<Record<string, unknown>> => {
    const answer = await callPlugin(sock, name, body);
    assert.equal(answer.status, 200, `${name}: ${JSON.stringify(answer.body)}`);
    return answer.body;
  };
  // docker network create -d netd --ipam-driver netd --ipv6 --subnet 192.0.2.0/24 n6 (no v6 subnet: netd's ULA pool)
  const v4 = await call('IpamDriver.RequestPool', { AddressSpace: 'netd', Pool: '192.0.2.0/24', V6: false });
  const v6 = await call('IpamDriver.RequestPool', { AddressSpace: 'netd', Pool: '', V6: true });
  assert.match(String(v6.Pool), /^fd[0-9a-f]{2}:[0-9a-f:]+\/64$/);
  const gw4 = await call('IpamDriver.RequestAddress', { PoolID: v4.PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  const gw6 = await call('IpamDriver.RequestAddress', { PoolID: v6.PoolID, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  const N6 = 'b'.repeat(64);
  await call('NetworkDriver.CreateNetwork', {
    NetworkID: N6,
    Options: { 'com.docker.network.enable_ipv6': true, 'com.docker.network.generic': { 'com.docker.network.bridge.name': 'dkn6' } },
    IPv4Data: [{ AddressSpace: 'netd', Gateway: gw4.Address, Pool: v4.Pool }],
    IPv6Data: [{ AddressSpace: 'netd', Gateway: gw6.Address, Pool: v6.Pool }],
  });
  const a4 = await call('IpamDriver.RequestAddress', { PoolID: v4.PoolID, Address: '', Options: null });
  const a6 = await call('IpamDriver.RequestAddress', { PoolID: v6.PoolID, Address: '', Options: null });
  const EP = 'c'.repeat(64);
  await call('NetworkDriver.CreateEndpoint', { NetworkID: N6, EndpointID: EP, Interface: { Address: a4.Address, AddressIPv6: a6.Address, MacAddress: '' }, Options: {} });
  const joined = await call('NetworkDriver.Join', { NetworkID: N6, EndpointID: EP, SandboxKey: sandbox.path, Options: {} });
  const gateway6 = String(gw6.Address).split('/')[0];
  assert.equal(joined.Gateway, '192.0.2.1');
  assert.equal(joined.GatewayIPv6, gateway6);
  await moveIn(host, sandbox, `netdc${EP.slice(0, 7)}`, 'eth0', String(a4.Address), '192.0.2.1');
  await sandbox.exec(['ip', '-6', 'addr', 'add', String(a6.Address), 'dev', 'eth0', 'nodad']);
  await sandbox.exec(['ip', '-6', 'route', 'add', 'default', 'via', gateway6]);
  // The bridge's own v6 address may still be in DAD for a moment.
  let pinged = false;
  for (let i = 0; i < 20 && !pinged; i++) {
    pinged = (await sandbox.exec(['ping', '-6', '-c1', '-W1', gateway6], { allowFail: true })).code === 0;
    if (!pinged) await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(pinged, 'IPv6 to the gateway');

  // docker network create -d netd --internal --subnet 198.51.100.0/24 ni (Docker's IPAM)
  const NI = 'd'.repeat(64);
  await call('NetworkDriver.CreateNetwork', { NetworkID: NI, Options: { 'com.docker.network.internal': true, 'com.docker.network.generic': { 'com.docker.network.bridge.name': 'dkni' } }, IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: '198.51.100.1/24', Pool: '198.51.100.0/24' }], IPv6Data: [] });
  const EPI = 'e'.repeat(64);
  await call('NetworkDriver.CreateEndpoint', { NetworkID: NI, EndpointID: EPI, Interface: { Address: '198.51.100.2/24', AddressIPv6: '', MacAddress: '' }, Options: {} });
  const internal = await call('NetworkDriver.Join', { NetworkID: NI, EndpointID: EPI, SandboxKey: sandbox.path, Options: {} });
  assert.deepEqual(internal, { InterfaceName: { SrcName: 'netdceeeeeee', DstPrefix: 'eth' }, DisableGatewayService: false }, 'no gateway on an internal network');
  if (testFirewallBackend() === 'iptables') {
    const rules = (await host.exec(['iptables-save'])).stdout;
    assert.doesNotMatch(rules, /-s 198\.51\.100\.0\/24 .*MASQUERADE/, 'no NAT for an internal network');
    assert.match(rules, /-A NETD-INTERNAL ! -d 198\.51\.100\.0\/24 -i dkni .*-j DROP/, 'nothing leaves an internal network');
  } else {
    const state = await netdFirewallState(host);
    assert.notDeepEqual(rulesThat(state, 'masquerade', '172.17.0.0/16'), [], 'the default network is masqueraded');
    assert.deepEqual(rulesThat(state, 'masquerade', '198.51.100.0/24'), [], 'no NAT for an internal network');
    assert.notDeepEqual(rulesThat(state, 'drop', '198.51.100.0/24'), [], 'nothing leaves an internal network');
  }
  assert.deepEqual(uncaughtIn(daemon.logs), []);
});

/** The pool records the plugin keeps (one file each, docker-plugin/state.ts). */
function storedPools(dataRoot: string): unknown[] {
  const dir = join(dataRoot, 'docker-plugin', 'pools');
  return readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as unknown);
}
