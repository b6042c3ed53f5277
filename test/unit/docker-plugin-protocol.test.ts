/**
 * The Docker plugin's protocol: every call's body parsed strictly, hostile bodies refused with a clean
 * `{"Err"}` (IPAM: `{"Error"}` too) that changes nothing — not the core, not the persisted state — and the
 * network-driver calls in dockerd 20.10's order (../shared/observed) on a stand-in core. No kernel.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { InvalidArgumentError } from '../../src/errors.js';
import { IPAddress, Prefix } from '../../src/net/index.js';
import pino from 'pino';
import { silentLogger, type Logger } from '../../src/log.js';
import { DockerPlugin } from '../../src/docker-plugin/plugin.js';
import { parseCreateEndpoint, parseCreateNetwork, parseJoin, parseRequestAddress, parseRequestPool } from '../../src/docker-plugin/requests.js';
import { EP1, EP2, FakePluginCore, NET1, NET2, fakePlugin, snapshotDir } from '../helpers/fake-plugin-core.js';

const HUGE = 'a'.repeat(1 << 20);
const BAD_IDS: unknown[] = [undefined, null, '', 42, true, [], {}, NET1.slice(1), NET1.toUpperCase(), `${NET1}0`, `../${NET1.slice(3)}`, HUGE, NET1.replace('a', 'g')];
const GARBAGE_BODIES: unknown[] = [42, 'text', true, [], [NET1], HUGE];

const NETWORK = { NetworkID: NET1, Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} }, IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: '172.18.0.1/16', Pool: '172.18.0.0/16' }], IPv6Data: [] };
const ENDPOINT = { NetworkID: NET1, EndpointID: EP2, Interface: { Address: '172.18.0.2/16', AddressIPv6: '', MacAddress: '' }, Options: { 'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }], 'com.docker.network.portmap': [{ Proto: 6, IP: '', Port: 80, HostIP: '127.0.0.1', HostPort: 8080, HostPortEnd: 8080 }] } };
const JOIN = { NetworkID: NET1, EndpointID: EP2, SandboxKey: '/var/run/docker/netns/17ebc161c1f3', Options: ENDPOINT.Options };

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidArgumentError, `an InvalidArgumentError, not ${String(err)}`);
    assert.ok(err.message.length < 600, `a short message, not ${err.message.length} characters`);
    return err.message;
  }
  assert.fail('accepted');
}

describe('request parsing', () => {
  test('CreateNetwork as dockerd 20.10 sends it (default IPAM, netd IPAM with aux addresses, -o options, --internal, --ipv6)', () => {
    const r = parseCreateNetwork(NETWORK);
    assert.equal(r.networkId, NET1);
    assert.equal(r.v4?.pool.toString(), '172.18.0.0/16');
    assert.equal(r.v4?.gateway?.toString(), '172.18.0.1');
    assert.equal(r.v6, undefined);
    assert.equal(r.enableIPv6, false);
    assert.equal(r.internal, false);
    const r2 = parseCreateNetwork({
      NetworkID: NET2,
      Options: { 'com.docker.network.enable_ipv6': true, 'com.docker.network.internal': true, 'com.docker.network.generic': { 'com.docker.network.driver.mtu': '1400', foo: 'bar' } },
      IPv4Data: [{ AddressSpace: 'netd', AuxAddresses: { r: '10.124.0.9/24' }, Gateway: '10.124.0.1/24', Pool: '10.124.0.0/24' }],
      IPv6Data: [{ AddressSpace: 'netd', Gateway: 'fd00:1::1/64', Pool: 'fd00:1::/64' }],
    });
    assert.deepEqual(r2.options, { 'com.docker.network.driver.mtu': '1400', foo: 'bar' });
    assert.deepEqual(r2.v4?.aux.map(String), ['10.124.0.9']);
    assert.equal(r2.v6?.gateway?.toString(), 'fd00:1::1');
    assert.equal(r2.internal, true);
    assert.equal(r2.enableIPv6, true);
  });

  test('CreateNetwork: malformed fields are refused', () => {
    for (const id of BAD_IDS) refused(() => parseCreateNetwork({ ...NETWORK, NetworkID: id }));
    const pool = NETWORK.IPv4Data[0];
    const bad: unknown[] = [
      { ...NETWORK, IPv4Data: 'x' },
      { ...NETWORK, IPv4Data: [pool, pool] },
      { ...NETWORK, IPv4Data: [42] },
      { ...NETWORK, IPv4Data: [{ ...pool, Pool: '172.18.0.1/16' }] },
      { ...NETWORK, IPv4Data: [{ ...pool, Pool: 'fd00::/64' }] },
      { ...NETWORK, IPv4Data: [{ ...pool, Pool: 17 }] },
      { ...NETWORK, IPv4Data: [{ ...pool, Pool: '' }] },
      { ...NETWORK, IPv4Data: [{ ...pool, Gateway: '10.0.0.1/8' }] },
      { ...NETWORK, IPv4Data: [{ ...pool, Gateway: '172.18.0.999/16' }] },
      { ...NETWORK, IPv4Data: [{ ...pool, AuxAddresses: { r: 5 } }] },
      { ...NETWORK, IPv4Data: [{ ...pool, AuxAddresses: { r: '10.0.0.9/8' } }] },
      { ...NETWORK, IPv4Data: [{ ...pool, AuxAddresses: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`a${i}`, `172.18.1.${i % 250}/16`])) }] },
      { ...NETWORK, IPv6Data: [{ Pool: '172.19.0.0/16' }] },
      { ...NETWORK, Options: [] },
      { ...NETWORK, Options: { 'com.docker.network.enable_ipv6': 'true' } },
      { ...NETWORK, Options: { 'com.docker.network.internal': 1 } },
      { ...NETWORK, Options: { 'com.docker.network.generic': { mtu: 1400 } } },
      { ...NETWORK, Options: { 'com.docker.network.generic': 'mtu=1400' } },
      { ...NETWORK, IPv4Data: [{ ...pool, Pool: HUGE }] },
    ];
    for (const body of bad) refused(() => parseCreateNetwork(body));
  });

  test('CreateEndpoint: addresses, MAC, port map; no address, a bad MAC or port map refused', () => {
    const r = parseCreateEndpoint(ENDPOINT);
    assert.equal(r.ipv4?.toString(), '172.18.0.2/16');
    assert.equal(r.mac, undefined);
    assert.equal(parseCreateEndpoint({ ...ENDPOINT, Interface: { ...ENDPOINT.Interface, MacAddress: '02:42:AC:12:00:02' } }).mac?.toString(), '02:42:ac:12:00:02');
    const iface = ENDPOINT.Interface;
    const bad: unknown[] = [
      { ...ENDPOINT, Interface: { Address: '', AddressIPv6: '', MacAddress: '' } },
      { ...ENDPOINT, Interface: null },
      { ...ENDPOINT, Interface: 'eth0' },
      { ...ENDPOINT, Interface: { ...iface, Address: '172.18.0.2' } },
      { ...ENDPOINT, Interface: { ...iface, Address: 'fd00::2/64' } },
      { ...ENDPOINT, Interface: { ...iface, AddressIPv6: '172.18.0.3/16' } },
      { ...ENDPOINT, Interface: { ...iface, MacAddress: '01:00:5e:00:00:01' } },
      { ...ENDPOINT, Interface: { ...iface, MacAddress: '00:00:00:00:00:00' } },
      { ...ENDPOINT, Interface: { ...iface, MacAddress: 'zz:42:ac:12:00:02' } },
      { ...ENDPOINT, Interface: { ...iface, MacAddress: HUGE } },
      { ...ENDPOINT, Options: { 'com.docker.network.portmap': {} } },
      { ...ENDPOINT, Options: { 'com.docker.network.portmap': [{ Proto: 1, Port: 80 }] } },
      { ...ENDPOINT, Options: { 'com.docker.network.endpoint.exposedports': 'all' } },
    ];
    for (const body of bad) refused(() => parseCreateEndpoint(body));
  });

  test('Join: the SandboxKey must be an absolute path without . or ..', () => {
    assert.equal(parseJoin(JOIN).sandboxKey, '/var/run/docker/netns/17ebc161c1f3');
    for (const key of [undefined, null, '', 5, 'netns/x', '/var/run/../x', '/a/./b', '/a\0b', `/${HUGE}`]) refused(() => parseJoin({ ...JOIN, SandboxKey: key }));
    for (const id of BAD_IDS) refused(() => parseJoin({ ...JOIN, EndpointID: id }));
  });

  test('RequestPool / RequestAddress: families, sub-pools, PoolIDs and addresses checked', () => {
    assert.deepEqual(parseRequestPool({ AddressSpace: 'netd', Pool: '', SubPool: '', Options: {}, V6: false }), { space: 'netd', pool: undefined, subPool: undefined, v6: false });
    const bad: unknown[] = [
      { AddressSpace: 'netd', Pool: '10.0.0.0/8', V6: true },
      { AddressSpace: 'netd', Pool: 'fd00::/64', V6: false },
      { AddressSpace: 'netd', Pool: '10.0.0.1/8' },
      { AddressSpace: 'netd', SubPool: '10.0.0.0/24' },
      { AddressSpace: 'netd', Pool: '10.0.0.0/24', SubPool: '10.0.1.0/25' },
      { AddressSpace: 'netd', V6: 'yes' },
      { AddressSpace: 7 },
      { AddressSpace: 'netd', Options: 'x' },
    ];
    for (const body of bad) refused(() => parseRequestPool(body));
    const r = parseRequestAddress({ PoolID: 'netd/10.124.0.0/24', Address: '10.124.0.1', Options: { RequestAddressType: 'com.docker.network.gateway' } });
    assert.equal(r.address?.toString(), '10.124.0.1');
    assert.equal(r.gateway, true);
    assert.equal(parseRequestAddress({ PoolID: 'netd/10.124.0.0/24', Address: '', Options: null }).address, undefined);
    for (const body of [{ PoolID: 'netd/10.124.0.0/24', Address: '10.125.0.1' }, { PoolID: 'netdlocal/10.124.0.0/24' }, { PoolID: 'netd/10.124.0.0' }, { PoolID: 'netd/10.124.0.1/24' }, { PoolID: 'netd/10.124.0.0/24/10.125.0.0/25' }, { PoolID: 5 }, { PoolID: HUGE }, {}]) {
      refused(() => parseRequestAddress(body));
    }
  });
});

describe('hostile bodies through the plugin', () => {
  const CALLS = ['CreateNetwork', 'DeleteNetwork', 'CreateEndpoint', 'Join', 'Leave', 'DeleteEndpoint', 'ProgramExternalConnectivity', 'RevokeExternalConnectivity', 'EndpointOperInfo'].map((c) => `NetworkDriver.${c}`);
  const IPAM_CALLS = ['RequestPool', 'ReleasePool', 'RequestAddress', 'ReleaseAddress'].map((c) => `IpamDriver.${c}`);

  test('empty, null, wrong types, huge, bad ids: a clean error, nothing changed', async () => {
    const { plugin, core, dir } = await fakePlugin();
    // Some state first, so "nothing changed" covers persisted pools, networks and endpoints.
    const pool = await plugin.handle('IpamDriver.RequestPool', { AddressSpace: 'netd', Pool: '10.124.0.0/24', V6: false });
    assert.equal(pool.status, 200);
    assert.equal((await plugin.handle('NetworkDriver.CreateNetwork', NETWORK)).status, 200);
    assert.equal((await plugin.handle('NetworkDriver.CreateEndpoint', ENDPOINT)).status, 200);
    const before = snapshotDir(dir);
    const calls = core.calls.length;
    let tried = 0;
    const bodies: unknown[] = [...GARBAGE_BODIES, ...BAD_IDS.map((id) => ({ NetworkID: id, EndpointID: id, PoolID: id }))];
    for (const call of [...CALLS, ...IPAM_CALLS]) {
      for (const body of bodies) {
        // A body naming nothing known is fine for the idempotent removals (DeleteNetwork of an unknown id is {}); malformed ones are not.
        const reply = await plugin.handle(call, body);
        tried++;
        if (reply.status === 200) {
          assert.ok(/Release|Delete|Leave|Revoke/.test(call) === false || body === null, `${call} accepted ${JSON.stringify(body)?.slice(0, 80)}`);
          continue;
        }
        assert.ok(reply.status >= 400 && reply.status < 500, `${call}: ${reply.status} ${JSON.stringify(reply.body).slice(0, 200)}`);
        assert.equal(typeof reply.body.Err, 'string', `${call}: Err`);
        if (call.startsWith('IpamDriver.')) assert.equal(reply.body.Error, reply.body.Err);
        assert.ok(String(reply.body.Err).length < 600);
      }
    }
    assert.ok(tried > 200);
    assert.deepEqual(core.calls.slice(calls), [], 'the core was not asked to change anything');
    assert.deepEqual(snapshotDir(dir), before, 'the persisted state is unchanged');
    rmSync(dir, { recursive: true, force: true });
  });

  test('unknown calls: 404 with Err; calls without arguments take null or nothing', async () => {
    const { plugin, dir } = await fakePlugin();
    for (const name of ['NetworkDriver.Nope', 'Plugin.Deactivate', '__proto__', 'constructor', 'IpamDriver.toString', '']) {
      const r = await plugin.handle(name, null);
      assert.equal(r.status, 404, name);
      assert.equal(typeof r.body.Err, 'string');
    }
    assert.deepEqual((await plugin.handle('Plugin.Activate', null)).body, { Implements: ['NetworkDriver', 'IpamDriver'] });
    assert.deepEqual((await plugin.handle('NetworkDriver.GetCapabilities', undefined)).body, { Scope: 'local', ConnectivityScope: 'local' });
    assert.deepEqual((await plugin.handle('IpamDriver.GetCapabilities', null)).body, { RequiresMACAddress: false, RequiresRequestReplay: false });
    assert.deepEqual((await plugin.handle('IpamDriver.GetDefaultAddressSpaces', null)).body, { LocalDefaultAddressSpace: 'netd', GlobalDefaultAddressSpace: 'netd-global' });
    assert.deepEqual((await plugin.handle('NetworkDriver.DiscoverNew', { DiscoveryType: 1, DiscoveryData: {} })).body, {});
    assert.deepEqual((await plugin.handle('NetworkDriver.AllocateNetwork', null)).body, { Options: {} });
    rmSync(dir, { recursive: true, force: true });
  });

  test('calls that need the controller wait until it is ready; Activate does not', async () => {
    const plugin = new DockerPlugin((await fakePlugin()).dir + '-early', silentLogger());
    assert.equal((await plugin.handle('Plugin.Activate', null)).status, 200);
    let answered = false;
    const pending = plugin.handle('NetworkDriver.CreateNetwork', NETWORK).then((r) => ((answered = true), r));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(answered, false);
    await plugin.ready(new FakePluginCore());
    assert.equal((await pending).status, 200);
  });
});

/** A plugin with network NET1 and endpoint EP2 joined (dockerd's `docker run --network n1`). */
async function joinedPlugin(): Promise<Awaited<ReturnType<typeof fakePlugin>>> {
  const made = await fakePlugin();
  for (const [call, body] of [['CreateNetwork', NETWORK], ['CreateEndpoint', ENDPOINT], ['Join', JOIN]] as const) {
    assert.equal((await made.plugin.handle(`NetworkDriver.${call}`, body)).status, 200, call);
  }
  return made;
}

describe('network driver calls in dockerd 20.10 order', () => {
  test('create, endpoint (MAC chosen), join (hand-off name, eth prefix, gateway), ports, leave, delete', async () => {
    const { plugin, core, dir } = await fakePlugin();
    assert.deepEqual((await plugin.handle('NetworkDriver.CreateNetwork', NETWORK)).body, {});
    assert.equal(core.nets.get(NET1)?.name, 'docker-a71aff9a6e3b');
    assert.deepEqual(core.nets.get(NET1)?.driverState, { managedBy: 'docker', adoptHeldPool: true });
    // The same CreateNetwork again (dockerd replays after a restart): {} and no second network.
    assert.equal((await plugin.handle('NetworkDriver.CreateNetwork', NETWORK)).status, 200);
    assert.equal(core.calls.filter((c) => c.startsWith('createNetwork')).length, 1);
    const ep = await plugin.handle('NetworkDriver.CreateEndpoint', ENDPOINT);
    const mac = (ep.body.Interface as { MacAddress: string }).MacAddress;
    assert.match(mac, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/, 'a random locally administered MAC');
    assert.ok(core.heldAddresses.has('172.18.0.0/16 172.18.0.2'), 'the endpoint address is held until Join claims it');
    const join = await plugin.handle('NetworkDriver.Join', JOIN);
    assert.deepEqual(join.body, { InterfaceName: { SrcName: 'netdc3969db0', DstPrefix: 'eth' }, Gateway: '172.18.0.1', DisableGatewayService: false });
    assert.ok(core.calls.some((c) => c === `attach ${EP2} netdc3969db0 172.18.0.2 ${mac} handOff=true claimHeld=true /var/run/docker/netns/17ebc161c1f3`), core.calls.join('\n'));
    assert.equal(core.eps.get(EP2)?.name, '17ebc161c1f3');
    assert.deepEqual(core.eps.get(EP2)?.labels, { 'io.netd.origin': 'docker', 'io.netd.docker.sandbox': '17ebc161c1f3' });
    assert.equal((await plugin.handle('NetworkDriver.ProgramExternalConnectivity', JOIN)).status, 200);
    const info = await plugin.handle('NetworkDriver.EndpointOperInfo', { NetworkID: NET1, EndpointID: EP2 });
    assert.deepEqual(info.body, {
      Value: {
        'com.docker.network.portmap': [{ Proto: 6, IP: '172.18.0.2', Port: 80, HostIP: '127.0.0.1', HostPort: 8080, HostPortEnd: 8080 }],
        'com.docker.network.endpoint.macaddress': mac,
        hostInterface: 'veth3969db0',
      },
    });
    assert.equal((await plugin.handle('NetworkDriver.RevokeExternalConnectivity', { NetworkID: NET1, EndpointID: EP2 })).status, 200);
    assert.equal(core.ports.has(EP2), false);
    assert.equal((await plugin.handle('NetworkDriver.Leave', { NetworkID: NET1, EndpointID: EP2 })).status, 200);
    assert.ok(core.eps.has(EP2), 'Leave keeps the endpoint (dockerd moves the interface back; DeleteEndpoint removes it)');
    assert.equal((await plugin.handle('NetworkDriver.DeleteEndpoint', { NetworkID: NET1, EndpointID: EP2 })).status, 200);
    assert.equal(core.eps.has(EP2), false);
    assert.equal(core.heldAddresses.has('172.18.0.0/16 172.18.0.2'), false, 'the hold made at CreateEndpoint is released');
    assert.ok(core.calls.includes(`removeEndpoint ${EP2} docker docker`));
    // Asked about an endpoint that is gone: nothing to report, not an error (dockerd would fail an inspect).
    assert.deepEqual((await plugin.handle('NetworkDriver.EndpointOperInfo', { NetworkID: NET1, EndpointID: EP2 })).body, { Value: {} });
    // Idempotent removals.
    assert.equal((await plugin.handle('NetworkDriver.DeleteEndpoint', { NetworkID: NET1, EndpointID: EP2 })).status, 200);
    assert.equal((await plugin.handle('NetworkDriver.RevokeExternalConnectivity', { NetworkID: NET1, EndpointID: EP2 })).status, 200);
    assert.deepEqual((await plugin.handle('NetworkDriver.DeleteNetwork', { NetworkID: NET1 })).body, {});
    assert.equal(core.nets.size, 0);
    assert.deepEqual((await plugin.handle('NetworkDriver.DeleteNetwork', { NetworkID: NET1 })).body, {});
    rmSync(dir, { recursive: true, force: true });
  });

  test('a MAC given is kept and not answered; no port map, nothing published; internal networks get no gateway', async () => {
    const { plugin, core, dir } = await fakePlugin();
    await plugin.handle('NetworkDriver.CreateNetwork', { ...NETWORK, Options: { 'com.docker.network.internal': true } });
    const ep = await plugin.handle('NetworkDriver.CreateEndpoint', { ...ENDPOINT, Interface: { ...ENDPOINT.Interface, MacAddress: '02:42:ac:12:00:02' }, Options: {} });
    assert.deepEqual(ep.body, { Interface: {} });
    const join = await plugin.handle('NetworkDriver.Join', { ...JOIN, Options: {} });
    assert.equal(join.body.Gateway, undefined);
    assert.equal((await plugin.handle('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET1, EndpointID: EP2, Options: {} })).status, 200);
    assert.equal(core.calls.filter((c) => c.startsWith('programExternalConnectivity')).length, 0);
    rmSync(dir, { recursive: true, force: true });
  });

  test('aux addresses are held by the driver unless netd IPAM holds them, and released with the network', async () => {
    const { plugin, core, dir } = await fakePlugin();
    const pool = await plugin.handle('IpamDriver.RequestPool', { AddressSpace: 'netd', Pool: '10.124.0.0/24', SubPool: '', Options: {}, V6: false });
    assert.equal(pool.body.PoolID, 'netd/10.124.0.0/24');
    await plugin.handle('IpamDriver.RequestAddress', { PoolID: 'netd/10.124.0.0/24', Address: '10.124.0.1', Options: { RequestAddressType: 'com.docker.network.gateway' } });
    await plugin.handle('IpamDriver.RequestAddress', { PoolID: 'netd/10.124.0.0/24', Address: '10.124.0.9', Options: null });
    const body = { NetworkID: NET2, Options: { 'com.docker.network.generic': { foo: 'bar' } }, IPv4Data: [{ AddressSpace: 'netd', AuxAddresses: { r: '10.124.0.9/24', s: '10.124.0.10/24' }, Gateway: '10.124.0.1/24', Pool: '10.124.0.0/24' }], IPv6Data: [] };
    assert.equal((await plugin.handle('NetworkDriver.CreateNetwork', body)).status, 200);
    assert.deepEqual(core.calls.filter((c) => c.startsWith('holdAddress')), ['holdAddress 10.124.0.0/24 10.124.0.1 gateway', 'holdAddress 10.124.0.0/24 10.124.0.9', 'holdAddress 10.124.0.0/24 10.124.0.10']);
    await plugin.handle('NetworkDriver.DeleteNetwork', { NetworkID: NET2 });
    assert.ok(core.calls.includes('releaseAddress 10.124.0.0/24 10.124.0.10'));
    assert.ok(!core.calls.includes('releaseAddress 10.124.0.0/24 10.124.0.9'), 'dockerd releases what it asked netd IPAM for');
    rmSync(dir, { recursive: true, force: true });
  });

  test('an endpoint the sweep released (its namespace died) drops its record and holds', async () => {
    const { plugin, core, dir } = await joinedPlugin();
    const network = { ...core.nets.get(NET1)!, capabilities: {} };
    const left = plugin.observer.endpointLeft!.bind(plugin.observer) as (n: unknown, e: unknown, reason: string) => void;
    // Removed by the plugin itself: nothing to do here (DeleteEndpoint does it).
    left(network, core.eps.get(EP2)!, 'docker');
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(core.heldAddresses.has('172.18.0.0/16 172.18.0.2'));
    left(network, core.eps.get(EP2)!, 'sweep');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(core.heldAddresses.has('172.18.0.0/16 172.18.0.2'), false);
    assert.deepEqual(Object.keys(snapshotDir(dir)).filter((f) => f.includes('endpoints/')), []);
    rmSync(dir, { recursive: true, force: true });
  });

  test('the sweep releases the netd-IPAM address of an endpoint dockerd gave up on (its ReleaseAddress failed), and start does not hold it again', async () => {
    const { plugin, core, dir } = await fakePlugin();
    const POOL = 'netd/10.124.0.0/24';
    await plugin.handle('IpamDriver.RequestPool', { AddressSpace: 'netd', Pool: '10.124.0.0/24', SubPool: '', Options: {}, V6: false });
    await plugin.handle('IpamDriver.RequestAddress', { PoolID: POOL, Address: '10.124.0.1', Options: { RequestAddressType: 'com.docker.network.gateway' } });
    await plugin.handle('IpamDriver.RequestAddress', { PoolID: POOL, Address: '', Options: null });
    const held = [...core.heldAddresses].find((h) => h !== '10.124.0.0/24 10.124.0.1')!;
    const address = held.split(' ')[1];
    const network = { NetworkID: NET2, Options: {}, IPv4Data: [{ AddressSpace: 'netd', Gateway: '10.124.0.1/24', Pool: '10.124.0.0/24' }], IPv6Data: [] };
    assert.equal((await plugin.handle('NetworkDriver.CreateNetwork', network)).status, 200);
    const endpoint = { ...ENDPOINT, NetworkID: NET2, Interface: { ...ENDPOINT.Interface, Address: `${address}/24` } };
    assert.equal((await plugin.handle('NetworkDriver.CreateEndpoint', endpoint)).status, 200);
    assert.equal((await plugin.handle('NetworkDriver.Join', { ...JOIN, NetworkID: NET2 })).status, 200);
    const left = plugin.observer.endpointLeft!.bind(plugin.observer) as (n: unknown, e: unknown, reason: string) => void;
    left({ ...core.nets.get(NET2)!, capabilities: {} }, core.eps.get(EP2)!, 'sweep');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(core.heldAddresses.has(held), false, 'the address dockerd asked netd IPAM for is free again');
    assert.ok(core.heldAddresses.has('10.124.0.0/24 10.124.0.1'), 'the gateway stays');
    const after = new FakePluginCore();
    await new DockerPlugin(dir, silentLogger()).ready(after);
    assert.deepEqual(after.restored?.flatMap((p) => p.addresses.map(String)), [], 'not held again at start');
    // dockerd's late ReleaseAddress for it (had it come) changes nothing.
    assert.equal((await plugin.handle('IpamDriver.ReleaseAddress', { PoolID: POOL, Address: address })).status, 200);
    rmSync(dir, { recursive: true, force: true });
  });

  test('at start, an endpoint released while netd was down (its sandbox died) is forgotten; one not joined yet is kept', async () => {
    const { plugin, core, dir } = await joinedPlugin();
    await plugin.handle('NetworkDriver.CreateEndpoint', { ...ENDPOINT, EndpointID: EP1, Interface: { ...ENDPOINT.Interface, Address: '172.18.0.3/16' } });
    // The restarted controller: the network is there, the joined endpoint was swept at its start.
    const after = new FakePluginCore();
    after.nets.set(NET1, core.nets.get(NET1)!);
    const again = new DockerPlugin(dir, silentLogger());
    await again.ready(after);
    assert.deepEqual(Object.keys(snapshotDir(dir)).filter((f) => f.includes('endpoints/')).map((f) => f.slice(-69, -5)), [EP1]);
    assert.ok(after.heldAddresses.has('172.18.0.0/16 172.18.0.3'), 'the pending endpoint\'s address is held again');
    assert.deepEqual(after.calls.filter((c) => c.startsWith('holdAddress')), ['holdAddress 172.18.0.0/16 172.18.0.3'], 'the forgotten one is not held again');
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('protocol defects found against moby\'s sources', () => {
  const REF = { NetworkID: NET1, EndpointID: EP1 };

  test('a known call\'s own error is never 404 (dockerd takes a 404 as "not implemented" and carries on)', async () => {
    const { plugin, dir } = await fakePlugin();
    // Nothing exists: every call naming a well-formed unknown id.
    for (const call of ['CreateEndpoint', 'Join', 'ProgramExternalConnectivity', 'EndpointOperInfo', 'Leave', 'DeleteEndpoint', 'RevokeExternalConnectivity', 'DeleteNetwork']) {
      const body = call === 'CreateEndpoint' ? { ...ENDPOINT, EndpointID: EP1 } : call === 'Join' ? { ...JOIN, EndpointID: EP1 } : REF;
      const r = await plugin.handle(`NetworkDriver.${call}`, body);
      assert.notEqual(r.status, 404, `${call}: ${JSON.stringify(r.body)}`);
    }
    const program = await plugin.handle('NetworkDriver.ProgramExternalConnectivity', { ...REF, Options: ENDPOINT.Options });
    assert.equal(program.status, 500);
    assert.match(String(program.body.Err), /has not joined/);
    const unknownPool = await plugin.handle('IpamDriver.RequestAddress', { PoolID: 'netd/10.124.0.0/24', Address: '' });
    assert.notEqual(unknownPool.status, 404, 'a pool netd does not hold: the call failed, it is not unimplemented');
    // Only an unknown path is 404.
    assert.equal((await plugin.handle('NetworkDriver.Nope', null)).status, 404);
    rmSync(dir, { recursive: true, force: true });
  });

  test('DeleteNetwork removes the endpoints whose DeleteEndpoint dockerd lost, with their records and holds', async () => {
    const { plugin, core, dir } = await joinedPlugin();
    // A second one, created but never joined (its CreateEndpoint's answer lost too).
    assert.equal((await plugin.handle('NetworkDriver.CreateEndpoint', { ...ENDPOINT, EndpointID: EP1, Interface: { ...ENDPOINT.Interface, Address: '172.18.0.3/16' } })).status, 200);
    const r = await plugin.handle('NetworkDriver.DeleteNetwork', { NetworkID: NET1 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(core.nets.has(NET1), false);
    assert.equal(core.eps.size, 0);
    assert.ok(core.calls.includes(`removeEndpoint ${EP2} docker docker`));
    assert.deepEqual([...core.heldAddresses], [], 'the holds made for both endpoints are released');
    assert.deepEqual(Object.keys(snapshotDir(dir)).filter((f) => f.includes('endpoints/')), []);
    rmSync(dir, { recursive: true, force: true });
  });

  test('--ipv4=false (dockerd 27+) is refused clearly; Join gives only the families CreateEndpoint sent', async () => {
    const { plugin, core, dir } = await fakePlugin();
    const noV4 = { ...NETWORK, Options: { ...NETWORK.Options, 'com.docker.network.enable_ipv4': false, 'com.docker.network.enable_ipv6': true }, IPv4Data: [], IPv6Data: [{ Pool: 'fd00:1::/64', Gateway: 'fd00:1::1/64' }] };
    const r = await plugin.handle('NetworkDriver.CreateNetwork', noV4);
    assert.equal(r.status, 400);
    assert.match(String(r.body.Err), /netd networks need IPv4/);
    assert.match(String((await plugin.handle('NetworkDriver.CreateNetwork', { ...noV4, Options: {} })).body.Err), /need IPv4/);
    assert.deepEqual(core.calls, []);
    // enable_ipv4 true (dockerd 27+ default) is fine.
    const dual = { ...noV4, Options: { ...noV4.Options, 'com.docker.network.enable_ipv4': true }, IPv4Data: NETWORK.IPv4Data };
    assert.equal((await plugin.handle('NetworkDriver.CreateNetwork', dual)).status, 200);
    assert.equal((await plugin.handle('NetworkDriver.CreateEndpoint', ENDPOINT)).status, 200);
    assert.equal((await plugin.handle('NetworkDriver.Join', JOIN)).status, 200);
    assert.deepEqual(core.attaches[0].families, [4], 'no IPv6 address: CreateEndpoint had no AddressIPv6');
    rmSync(dir, { recursive: true, force: true });
  });

  test('only docker-managed networks and endpoints are acted on; a Join naming another sandbox is refused', async () => {
    const { plugin, core, dir } = await joinedPlugin();
    // A network and an endpoint netd's CLI made.
    await core.createNetwork({ id: NET2, name: 'cli', adoptHeldPool: false, managedBy: undefined as unknown as string, subnet: Prefix.parse('10.9.0.0/24') });
    core.eps.set(EP1, { ...core.eps.get(EP2)!, id: EP1, networkId: NET2, managedBy: undefined, labels: {} });
    const before = core.calls.length;
    const cli = { NetworkID: NET2, EndpointID: EP1 };
    const created = await plugin.handle('NetworkDriver.CreateNetwork', { ...NETWORK, NetworkID: NET2, IPv4Data: [{ Pool: '10.9.0.0/24', Gateway: '10.9.0.1/24' }] });
    assert.equal(created.status, 403, 'not {} as "the same network"');
    assert.match(String(created.body.Err), /not a Docker network/);
    for (const call of ['DeleteNetwork', 'DeleteEndpoint', 'ProgramExternalConnectivity', 'RevokeExternalConnectivity', 'EndpointOperInfo', 'CreateEndpoint']) {
      const body = call === 'CreateEndpoint' ? { ...ENDPOINT, ...cli, EndpointID: 'e'.repeat(64), Interface: { Address: '10.9.0.5/24' } } : { ...cli, Options: ENDPOINT.Options };
      const r = await plugin.handle(`NetworkDriver.${call}`, body);
      assert.equal(r.status, 403, `${call}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    assert.equal((await plugin.handle('NetworkDriver.DeleteEndpoint', { NetworkID: NET1, EndpointID: EP1 })).status, 403);
    assert.deepEqual(core.calls.slice(before), [], 'the CLI\'s objects are not touched');
    assert.ok(core.nets.has(NET2) && core.eps.has(EP1));
    // The joined docker endpoint: the same Join again is fine, another sandbox is not.
    assert.equal((await plugin.handle('NetworkDriver.Join', JOIN)).status, 200);
    const other = await plugin.handle('NetworkDriver.Join', { ...JOIN, SandboxKey: '/var/run/docker/netns/0123456789ab' });
    assert.equal(other.status, 409);
    assert.match(String(other.body.Err), /has joined sandbox/);
    assert.equal(core.attaches.length, 1);
    rmSync(dir, { recursive: true, force: true });
  });

  test('a repeated CreateNetwork holds again the aux addresses whose holds were lost', async () => {
    const { plugin, core, dir } = await fakePlugin();
    const body = { ...NETWORK, IPv4Data: [{ ...NETWORK.IPv4Data[0], AuxAddresses: { r: '172.18.0.9/16', s: '172.18.0.10/16' } }] };
    assert.equal((await plugin.handle('NetworkDriver.CreateNetwork', body)).status, 200);
    await core.releaseAddress(Prefix.parse('172.18.0.0/16'), IPAddress.parse('172.18.0.10'));
    assert.equal((await plugin.handle('NetworkDriver.CreateNetwork', body)).status, 200);
    assert.ok(core.heldAddresses.has('172.18.0.0/16 172.18.0.10'), 'held again');
    assert.equal(core.calls.filter((c) => c === 'holdAddress 172.18.0.0/16 172.18.0.9').length, 1, 'a hold still there is not asked twice');
    await plugin.handle('NetworkDriver.DeleteNetwork', { NetworkID: NET1 });
    assert.deepEqual([...core.heldAddresses], [], 'both released with the network');
    rmSync(dir, { recursive: true, force: true });
  });
});

/** A logger that keeps its warnings. */
function warningsLogger(): { log: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(String(JSON.parse(line).msg)) });
  return { log, warnings };
}

const tick = () => new Promise((r) => setTimeout(r, 20));

describe('records that would leak', () => {
  test('DeleteNetwork forgets the endpoints that never joined, and their holds', async () => {
    const { plugin, core, dir } = await fakePlugin();
    await plugin.handle('NetworkDriver.CreateNetwork', NETWORK);
    assert.equal((await plugin.handle('NetworkDriver.CreateEndpoint', ENDPOINT)).status, 200);
    // dockerd's Join failed and its DeleteEndpoint never reached netd; then `docker network rm`.
    assert.equal((await plugin.handle('NetworkDriver.DeleteNetwork', { NetworkID: NET1 })).status, 200);
    assert.deepEqual(Object.keys(snapshotDir(dir)).filter((f) => f.includes('endpoints/')), []);
    assert.ok(core.calls.includes('releaseAddress 172.18.0.0/16 172.18.0.2'), core.calls.join('\n'));
    const after = new FakePluginCore();
    await new DockerPlugin(dir, silentLogger()).ready(after);
    assert.deepEqual(after.calls, [], 'nothing held again at the next start');
    rmSync(dir, { recursive: true, force: true });
  });

  test('at start, the records of endpoints and aux addresses whose network is gone are dropped, not held again', async () => {
    const { plugin, dir } = await fakePlugin();
    assert.equal((await plugin.handle('NetworkDriver.CreateNetwork', { ...NETWORK, IPv4Data: [{ ...NETWORK.IPv4Data[0], AuxAddresses: { r: '172.18.0.9/16' } }] })).status, 200);
    await plugin.handle('NetworkDriver.CreateEndpoint', ENDPOINT);
    const { log, warnings } = warningsLogger();
    const after = new FakePluginCore(); // the network went while netd was down
    await new DockerPlugin(dir, log).ready(after);
    assert.deepEqual(after.calls, []);
    assert.deepEqual(warnings, []);
    assert.deepEqual(Object.keys(snapshotDir(dir)).filter((f) => f.includes('endpoints/') || f.includes('networks/')), []);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('start-up', () => {
  test('a call that arrives while ready() recovers runs after it', async () => {
    const { plugin, core, dir } = await fakePlugin();
    await plugin.handle('NetworkDriver.CreateNetwork', NETWORK);
    await plugin.handle('NetworkDriver.CreateEndpoint', ENDPOINT);
    const after = new FakePluginCore();
    after.nets.set(NET1, core.nets.get(NET1)!);
    // Re-holding the pending endpoint's address takes a while.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const hold = after.holdAddress.bind(after);
    after.holdAddress = async (...args) => {
      await gate;
      return hold(...args);
    };
    const order: string[] = [];
    const again = new DockerPlugin(dir, silentLogger());
    const ready = again.ready(after).then(() => order.push('ready'));
    await tick();
    const call = again.handle('IpamDriver.RequestPool', { AddressSpace: 'netd', Pool: '10.124.0.0/24' }).then((r) => order.push(`RequestPool ${r.status}`));
    await tick();
    release();
    await Promise.all([ready, call]);
    assert.deepEqual(order, ['ready', 'RequestPool 200']);
    rmSync(dir, { recursive: true, force: true });
  });

  test("the sweep's release heard before ready waits for it: no warnings, the record goes once", async () => {
    const { plugin, core, dir } = await joinedPlugin();
    const network = { ...core.nets.get(NET1)!, capabilities: {} };
    const endpoint = core.eps.get(EP2)!;
    const after = new FakePluginCore();
    after.nets.set(NET1, core.nets.get(NET1)!);
    const { log, warnings } = warningsLogger();
    const again = new DockerPlugin(dir, log);
    // The controller's start swept the endpoint (its namespace died) before the plugin was ready.
    (again.observer.endpointLeft!.bind(again.observer) as (n: unknown, e: unknown, reason: string) => void)(network, endpoint, 'sweep');
    await tick();
    await again.ready(after);
    await tick();
    assert.deepEqual(warnings, []);
    assert.deepEqual(Object.keys(snapshotDir(dir)).filter((f) => f.includes('endpoints/')), []);
    void plugin;
    rmSync(dir, { recursive: true, force: true });
  });
});
