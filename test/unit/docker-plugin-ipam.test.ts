/**
 * The plugin's IPAM driver on a stand-in core: PoolIDs, reference-counted pools, held addresses, and the
 * persisted state re-applied at start. No kernel.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../src/log.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { Prefix } from '../../src/net/index.js';
import { DockerPlugin } from '../../src/docker-plugin/plugin.js';
import { formatPoolId, parsePoolId } from '../../src/docker-plugin/pool-id.js';
import { PluginState } from '../../src/docker-plugin/state.js';
import { ENDPOINT_FOR_RESTORE, FakePluginCore, NET2, fakePlugin, snapshotDir } from '../helpers/fake-plugin-core.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';

const POOL = { AddressSpace: 'netd', Pool: '10.124.0.0/24', SubPool: '', Options: {}, V6: false };

describe('PoolID', () => {
  test('netd/<subnet>[/<sub-pool>], round trip, v4 and v6', () => {
    for (const text of ['netd/10.124.0.0/24', 'netd/10.124.0.0/24/10.124.0.128/25', 'netd/fd00:1::/64', 'netd/fd00:1::/64/fd00:1::/80']) {
      assert.equal(formatPoolId(parsePoolId(text)), text);
    }
    assert.deepEqual(parsePoolId('netd/10.124.0.0/24').subnet, Prefix.parse('10.124.0.0/24'));
  });

  test('anything else is refused', () => {
    for (const bad of [undefined, null, '', 5, {}, 'netd', 'netd/', 'netdlocal/10.124.0.0/24', 'netd/10.124.0.0', 'netd/10.124.0.1/24', 'netd/10.124.0.0/33', 'netd/10.124.0.0/24/', 'netd/10.124.0.0/24/10.125.0.0/25', 'netd/10.124.0.0/24/x/y', 'netd/a/b', `netd/${'1'.repeat(500)}`]) {
      assert.throws(() => parsePoolId(bad), InvalidArgumentError, String(bad));
    }
  });
});

describe('RequestPool / ReleasePool', () => {
  test('identical requests share one PoolID and count references; the last release frees the pool', async () => {
    const { plugin, core, dir } = await fakePlugin();
    const a = await plugin.handle('IpamDriver.RequestPool', POOL);
    const b = await plugin.handle('IpamDriver.RequestPool', POOL);
    assert.deepEqual(a.body, { PoolID: 'netd/10.124.0.0/24', Pool: '10.124.0.0/24', Data: {} });
    assert.deepEqual(b.body, a.body);
    assert.deepEqual(core.calls, ['holdPool 4 10.124.0.0/24 '], 'held once');
    assert.equal((await plugin.handle('IpamDriver.ReleasePool', { PoolID: 'netd/10.124.0.0/24' })).status, 200);
    assert.ok(!core.calls.some((c) => c.startsWith('releasePool')), 'one reference left');
    assert.equal((await plugin.handle('IpamDriver.ReleasePool', { PoolID: 'netd/10.124.0.0/24' })).status, 200);
    assert.deepEqual(core.calls.filter((c) => c.startsWith('releasePool')), ['releasePool 10.124.0.0/24']);
    // Unknown now: {} and nothing asked of the core.
    assert.deepEqual((await plugin.handle('IpamDriver.ReleasePool', { PoolID: 'netd/10.124.0.0/24' })).body, {});
    assert.equal(core.calls.filter((c) => c.startsWith('releasePool')).length, 1);
    rmSync(dir, { recursive: true, force: true });
  });

  test('requests without a pool get a new one each; v6; sub-pools; address spaces', async () => {
    const { plugin, core, dir } = await fakePlugin();
    const a = await plugin.handle('IpamDriver.RequestPool', { AddressSpace: 'netd', Pool: '', V6: false });
    const b = await plugin.handle('IpamDriver.RequestPool', { AddressSpace: 'netd' });
    assert.notEqual(a.body.PoolID, b.body.PoolID);
    const v6 = await plugin.handle('IpamDriver.RequestPool', { AddressSpace: 'netd', V6: true });
    assert.match(String(v6.body.PoolID), /^netd\/fd00:/);
    const sub = await plugin.handle('IpamDriver.RequestPool', { AddressSpace: 'netd', Pool: '10.1.0.0/16', SubPool: '10.1.2.0/24' });
    assert.deepEqual(sub.body, { PoolID: 'netd/10.1.0.0/16/10.1.2.0/24', Pool: '10.1.0.0/16', Data: {} });
    assert.ok(core.calls.includes('holdPool 4 10.1.0.0/16 10.1.2.0/24'));
    const calls = core.calls.length;
    // The same subnet with another sub-pool, another address space, the global one: refused, nothing asked.
    for (const body of [{ AddressSpace: 'netd', Pool: '10.1.0.0/16' }, { AddressSpace: 'netd', Pool: '10.1.0.0/16', SubPool: '10.1.3.0/24' }, { ...POOL, AddressSpace: 'netd-global' }, { ...POOL, AddressSpace: 'LocalDefault' }, { ...POOL, AddressSpace: '' }]) {
      const r = await plugin.handle('IpamDriver.RequestPool', body);
      assert.ok(r.status >= 400, JSON.stringify(body));
      assert.equal(typeof r.body.Error, 'string');
    }
    assert.equal(core.calls.length, calls);
    rmSync(dir, { recursive: true, force: true });
  });

  test('a pool the core refuses (overlap) is an Error, and nothing is recorded', async () => {
    const { plugin, core, dir } = await fakePlugin();
    await plugin.handle('IpamDriver.RequestPool', POOL);
    const r = await plugin.handle('IpamDriver.RequestPool', { ...POOL, Pool: '10.124.0.0/16' });
    assert.equal(r.status, 409);
    assert.match(String(r.body.Error), /overlaps/);
    assert.deepEqual(readdirSync(join(dir, 'pools')), ['10.124.0.0_24.json']);
    assert.equal(core.pools.size, 1);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('RequestAddress / ReleaseAddress', () => {
  test('the gateway, a given address, the next free one; conflicts; release; unknown pools (404)', async () => {
    const { plugin, core, dir } = await fakePlugin();
    await plugin.handle('IpamDriver.RequestPool', POOL);
    const gw = await plugin.handle('IpamDriver.RequestAddress', { PoolID: 'netd/10.124.0.0/24', Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } });
    assert.deepEqual(gw.body, { Address: '10.124.0.1/24', Data: {} });
    assert.deepEqual((await plugin.handle('IpamDriver.RequestAddress', { PoolID: 'netd/10.124.0.0/24', Address: '10.124.0.50', Options: null })).body, { Address: '10.124.0.50/24', Data: {} });
    assert.deepEqual((await plugin.handle('IpamDriver.RequestAddress', { PoolID: 'netd/10.124.0.0/24' })).body, { Address: '10.124.0.2/24', Data: {} });
    const again = await plugin.handle('IpamDriver.RequestAddress', { PoolID: 'netd/10.124.0.0/24', Address: '10.124.0.50' });
    assert.equal(again.status, 409);
    assert.match(String(again.body.Error), /held already/);
    const unknown = await plugin.handle('IpamDriver.RequestAddress', { PoolID: 'netd/10.9.0.0/24', Address: '10.9.0.5' });
    assert.equal(unknown.status, 500, 'a pool netd does not hold: a failed call (never 404, which dockerd reads as "not implemented"), not a malformed request');
    assert.match(String(unknown.body.Error), /no pool netd\/10\.9\.0\.0\/24/);
    assert.deepEqual((await plugin.handle('IpamDriver.ReleaseAddress', { PoolID: 'netd/10.124.0.0/24', Address: '10.124.0.50' })).body, {});
    assert.equal(core.heldAddresses.has('10.124.0.0/24 10.124.0.50'), false);
    // Released already, or never held through this pool: {} without asking the core.
    const calls = core.calls.length;
    assert.deepEqual((await plugin.handle('IpamDriver.ReleaseAddress', { PoolID: 'netd/10.124.0.0/24', Address: '10.124.0.50' })).body, {});
    assert.deepEqual((await plugin.handle('IpamDriver.ReleaseAddress', { PoolID: 'netd/10.9.0.0/24', Address: '10.9.0.5' })).body, {});
    assert.equal(core.calls.length, calls);
    // The last ReleasePool releases what dockerd left held, then the pool.
    await plugin.handle('IpamDriver.ReleasePool', { PoolID: 'netd/10.124.0.0/24' });
    assert.deepEqual(core.calls.slice(calls), ['releaseAddress 10.124.0.0/24 10.124.0.2', 'releaseAddress 10.124.0.0/24 10.124.0.1', 'releasePool 10.124.0.0/24']);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('persisted state', () => {
  test('pools, references, holds and endpoints survive a restart and are re-applied through restoreHolds', async () => {
    const { plugin, dir } = await fakePlugin();
    await plugin.handle('IpamDriver.RequestPool', POOL);
    await plugin.handle('IpamDriver.RequestPool', POOL);
    await plugin.handle('IpamDriver.RequestPool', { AddressSpace: 'netd', Pool: '10.1.0.0/16', SubPool: '10.1.2.0/24' });
    await plugin.handle('IpamDriver.RequestAddress', { PoolID: 'netd/10.124.0.0/24', Address: '10.124.0.1', Options: { RequestAddressType: 'com.docker.network.gateway' } });
    await plugin.handle('IpamDriver.RequestAddress', { PoolID: 'netd/10.124.0.0/24', Address: '10.124.0.9' });
    await plugin.handle('NetworkDriver.CreateNetwork', { NetworkID: NET2, IPv4Data: [{ Pool: '10.124.0.0/24', Gateway: '10.124.0.1/24', AuxAddresses: { s: '10.124.0.10/24' } }] });
    await plugin.handle('NetworkDriver.CreateEndpoint', ENDPOINT_FOR_RESTORE);
    const state = PluginState.open(dir);
    assert.deepEqual(state.problems, []);
    assert.equal(state.pools.get('netd/10.124.0.0/24')?.refs, 2);
    const core = new FakePluginCore();
    // The network (netd's own state, restored by the controller) has the subnet the driver's holds are in.
    core.nets.set(NET2, { id: NET2, ipv4: [{ subnet: Prefix.parse('10.124.0.0/24') }], ipv6: [] } as never);
    const again = new DockerPlugin(dir, silentLogger());
    await again.ready(core);
    assert.deepEqual(
      [...(core.restored ?? [])].sort((x, y) => String(y.subnet).localeCompare(String(x.subnet))).map((p) => ({ subnet: String(p.subnet), ipRange: p.ipRange && String(p.ipRange), gateway: p.gateway && String(p.gateway), addresses: p.addresses.map(String).sort() })),
      [
        { subnet: '10.124.0.0/24', ipRange: undefined, gateway: '10.124.0.1', addresses: ['10.124.0.9'] },
        { subnet: '10.1.0.0/16', ipRange: '10.1.2.0/24', gateway: undefined, addresses: [] },
      ],
    );
    // The driver's own holds (an aux address, an endpoint's address) are held again in the network's subnet.
    assert.deepEqual(core.calls.filter((c) => c.startsWith('holdAddress')), ['holdAddress 10.124.0.0/24 10.124.0.10', 'holdAddress 10.124.0.0/24 10.124.0.2']);
    // The restarted plugin counts on: two releases free the pool.
    core.pools.set('10.124.0.0/24', { subnet: Prefix.parse('10.124.0.0/24'), family: 4, gateway: Prefix.parse('10.124.0.0/24').at(1n), prefix: 24 });
    await again.handle('IpamDriver.ReleasePool', { PoolID: 'netd/10.124.0.0/24' });
    assert.ok(!core.calls.some((c) => c.startsWith('releasePool')));
    await again.handle('IpamDriver.ReleasePool', { PoolID: 'netd/10.124.0.0/24' });
    assert.ok(core.calls.includes('releasePool 10.124.0.0/24'));
    rmSync(dir, { recursive: true, force: true });
  });

  test('an unreadable state file is set aside and reported, never fatal', async () => {
    const { plugin, dir } = await fakePlugin();
    await plugin.handle('IpamDriver.RequestPool', POOL);
    writeFileSync(join(dir, 'ipam.json'), '{"pools": [{"id": 5}]');
    writeFileSync(join(dir, 'pools', '10.124.0.0_24.json'), '{"id": 5}');
    writeFileSync(join(dir, 'endpoints', `${'b'.repeat(64)}.json`), '{"id": "x"}');
    const state = PluginState.open(dir);
    assert.equal(state.problems.length, 3);
    assert.equal(state.pools.size, 0);
    assert.ok(existsSync(join(dir, 'ipam.json.corrupt')));
    assert.ok(existsSync(join(dir, 'pools', '10.124.0.0_24.json.corrupt')));
    rmSync(dir, { recursive: true, force: true });
  });
});

/** The files under `dir`, relative, sorted. */
function filesUnder(dir: string): string[] {
  return Object.keys(snapshotDir(dir))
    .map((f) => f.slice(dir.length + 1))
    .sort();
}

/** `PluginState.open` as seen from a given kernel boot. */
const openInBoot = PluginState.open as (dir: string, bootId?: string) => PluginState;

const USED_POOL = 'netd/10.124.0.0/24';
/** dockerd's `docker network create --ipam-driver netd --subnet 10.124.0.0/24 --aux-address s=10.124.0.10`. */
async function networkOnPool(plugin: DockerPlugin): Promise<void> {
  const calls: [string, unknown][] = [
    ['IpamDriver.RequestPool', POOL],
    ['IpamDriver.RequestAddress', { PoolID: USED_POOL, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } }],
    ['IpamDriver.RequestAddress', { PoolID: USED_POOL, Address: '10.124.0.10', Options: null }],
    ['NetworkDriver.CreateNetwork', { NetworkID: NET2, Options: {}, IPv4Data: [{ AddressSpace: 'netd', Pool: '10.124.0.0/24', Gateway: '10.124.0.1/24', AuxAddresses: { s: '10.124.0.10/24' } }], IPv6Data: [] }],
  ];
  for (const [call, body] of calls) assert.equal((await plugin.handle(call, body)).status, 200, call);
}

describe('per-call cost', () => {
  test("an endpoint's RequestAddress/ReleaseAddress write one empty file each and leave the pool's record as it was", async () => {
    const { plugin, dir } = await fakePlugin();
    await networkOnPool(plugin);
    const record = join(dir, 'pools', '10.124.0.0_24.json');
    const before = readFileSync(record, 'utf8');
    assert.deepEqual(JSON.parse(before).addresses, ['10.124.0.10'], 'the aux address (asked before the network existed) is in the durable record');
    for (let i = 0; i < 3; i++) assert.equal((await plugin.handle('IpamDriver.RequestAddress', { PoolID: USED_POOL, Address: '' })).status, 200);
    assert.equal(readFileSync(record, 'utf8'), before);
    assert.deepEqual(readdirSync(join(dir, 'addresses', '10.124.0.0_24')).sort(), ['10.124.0.2', '10.124.0.3', '10.124.0.4']);
    assert.equal(readFileSync(join(dir, 'addresses', '10.124.0.0_24', '10.124.0.3'), 'utf8'), '');
    assert.equal((await plugin.handle('IpamDriver.ReleaseAddress', { PoolID: USED_POOL, Address: '10.124.0.3' })).status, 200);
    assert.deepEqual(readdirSync(join(dir, 'addresses', '10.124.0.0_24')).sort(), ['10.124.0.2', '10.124.0.4']);
    assert.equal(readFileSync(record, 'utf8'), before);
    rmSync(dir, { recursive: true, force: true });
  });

  test('timing of RequestAddress/ReleaseAddress among 2000 held (printed, not asserted: the machine is shared)', async (t) => {
    const { plugin, dir } = await fakePlugin();
    const big = { PoolID: 'netd/10.96.0.0/16' };
    await plugin.handle('IpamDriver.RequestPool', { ...POOL, Pool: '10.96.0.0/16' });
    await plugin.handle('NetworkDriver.CreateNetwork', { NetworkID: NET2, Options: {}, IPv4Data: [{ AddressSpace: 'netd', Pool: '10.96.0.0/16' }], IPv6Data: [] });
    for (let i = 0; i < 2000; i++) await plugin.handle('IpamDriver.RequestAddress', big);
    const at = (i: number) => `10.96.${100 + (i >> 8)}.${i & 255}`;
    const started = performance.now();
    for (let i = 0; i < 200; i++) assert.equal((await plugin.handle('IpamDriver.RequestAddress', { ...big, Address: at(i) })).status, 200);
    const mid = performance.now();
    for (let i = 0; i < 200; i++) await plugin.handle('IpamDriver.ReleaseAddress', { ...big, Address: at(i) });
    t.diagnostic(`RequestAddress ${((mid - started) / 200).toFixed(3)} ms, ReleaseAddress ${((performance.now() - mid) / 200).toFixed(3)} ms per call`);
    rmSync(dir, { recursive: true, force: true });
  });

  test('the ipam.json of earlier versions is read and converted in place', () => {
    const { dir } = { dir: mkdtempSync(join(tmpdir(), 'netd-plugin-')) };
    const old = {
      pools: [
        { id: USED_POOL, subnet: '10.124.0.0/24', refs: 2, gateway: '10.124.0.1', addresses: ['10.124.0.9', '10.124.0.20'] },
        { id: 'netd/10.1.0.0/16/10.1.2.0/24', subnet: '10.1.0.0/16', subPool: '10.1.2.0/24', refs: 1, addresses: [] },
      ],
      networks: { [NET2]: [{ subnet: '10.124.0.0/24', address: '10.124.0.10' }] },
    };
    writeFileSync(join(dir, 'ipam.json'), JSON.stringify(old));
    const state = PluginState.open(dir);
    assert.deepEqual(state.problems, []);
    assert.equal(existsSync(join(dir, 'ipam.json')), false, 'converted, then removed');
    for (const s of [state, PluginState.open(dir)]) {
      assert.deepEqual(
        [...s.heldPools()].sort((x, y) => String(x.subnet).localeCompare(String(y.subnet))).map((p) => [String(p.subnet), p.ipRange && String(p.ipRange), p.gateway && String(p.gateway), p.addresses.map(String)]),
        [
          ['10.1.0.0/16', '10.1.2.0/24', undefined, []],
          ['10.124.0.0/24', undefined, '10.124.0.1', ['10.124.0.9', '10.124.0.20']],
        ],
      );
      assert.equal(s.pools.get(USED_POOL)?.refs, 2);
      assert.deepEqual(s.driverHolds().map((h) => String(h.address)), ['10.124.0.10']);
    }
    assert.deepEqual(filesUnder(dir), ['boot-id', `networks/${NET2}.json`, 'pools/10.1.0.0_16.json', 'pools/10.124.0.0_24.json']);
    rmSync(dir, { recursive: true, force: true });
  });

  test("endpoints' addresses of another boot are not held again; the gateway and aux addresses are", async () => {
    const { plugin, dir } = await fakePlugin();
    await networkOnPool(plugin);
    await plugin.handle('IpamDriver.RequestAddress', { PoolID: USED_POOL, Address: '10.124.0.7' });
    const same = openInBoot(dir);
    assert.deepEqual(same.heldPools()[0].addresses.map(String).sort(), ['10.124.0.10', '10.124.0.7']);
    const next = openInBoot(dir, 'another-boot');
    assert.deepEqual(next.heldPools()[0].addresses.map(String), ['10.124.0.10']);
    assert.equal(next.heldPools()[0].gateway?.toString(), '10.124.0.1');
    assert.deepEqual(readdirSync(join(dir, 'addresses')), []);
    rmSync(dir, { recursive: true, force: true });
  });

  test('stray files among the addresses are dropped and reported, never fatal', async () => {
    const { plugin, dir } = await fakePlugin();
    await networkOnPool(plugin);
    await plugin.handle('IpamDriver.RequestAddress', { PoolID: USED_POOL, Address: '10.124.0.7' });
    for (const name of ['10.125.0.9', 'x', '..']) writeFileSync(join(dir, 'addresses', '10.124.0.0_24', name === '..' ? 'a b' : name), '');
    writeFileSync(join(dir, 'addresses', '10.99.0.0_24'), 'not a directory');
    const state = PluginState.open(dir);
    assert.equal(state.problems.length, 3, JSON.stringify(state.problems));
    assert.deepEqual(state.heldPools()[0].addresses.map(String).sort(), ['10.124.0.10', '10.124.0.7']);
    assert.deepEqual(readdirSync(join(dir, 'addresses')), ['10.124.0.0_24']);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('orphans of calls dockerd never saw answered', () => {
  test('the last ReleasePool removes a Docker network on the pool that has no endpoint', async () => {
    const { plugin, core, dir } = await fakePlugin();
    await networkOnPool(plugin);
    // netd made the network but died before answering: dockerd's CreateNetwork failed, it releases the pool.
    assert.equal((await plugin.handle('IpamDriver.ReleasePool', { PoolID: USED_POOL })).status, 200);
    assert.ok(core.calls.includes(`deleteNetwork ${NET2} docker`), core.calls.join('\n'));
    assert.equal(core.nets.size, 0);
    assert.equal(core.heldAddresses.size, 0, 'aux address and gateway released');
    assert.deepEqual(filesUnder(dir), ['boot-id']);
    rmSync(dir, { recursive: true, force: true });
  });

  test('a Docker network with an endpoint, or one not on the pool, stays', async () => {
    const { plugin, core, dir } = await fakePlugin();
    await networkOnPool(plugin);
    await plugin.handle('NetworkDriver.CreateEndpoint', ENDPOINT_FOR_RESTORE);
    await plugin.handle('NetworkDriver.Join', { NetworkID: NET2, EndpointID: ENDPOINT_FOR_RESTORE.EndpointID, SandboxKey: '/var/run/docker/netns/abc', Options: {} });
    await plugin.handle('IpamDriver.RequestPool', { ...POOL, Pool: '10.125.0.0/24' });
    await plugin.handle('IpamDriver.ReleasePool', { PoolID: USED_POOL });
    await plugin.handle('IpamDriver.ReleasePool', { PoolID: 'netd/10.125.0.0/24' });
    assert.ok(!core.calls.some((c) => c.startsWith('deleteNetwork')), core.calls.join('\n'));
    assert.ok(core.nets.has(NET2));
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('releases and crashes', () => {
  test('a release is recorded before the controller lets go: a crash between (here, the controller failing) holds nothing after a restart', async () => {
    const { plugin, core, dir } = await fakePlugin();
    await plugin.handle('IpamDriver.RequestPool', POOL);
    await plugin.handle('IpamDriver.RequestAddress', { PoolID: 'netd/10.124.0.0/24', Address: '10.124.0.9' });
    const killed = async (): Promise<void> => {
      throw new Error('netd killed here');
    };
    core.held.releaseAddress = killed;
    core.held.releasePool = killed;
    assert.notEqual((await plugin.handle('IpamDriver.ReleaseAddress', { PoolID: 'netd/10.124.0.0/24', Address: '10.124.0.9' })).status, 200);
    assert.notEqual((await plugin.handle('IpamDriver.ReleasePool', { PoolID: 'netd/10.124.0.0/24' })).status, 200);
    const after = new FakePluginCore();
    await new DockerPlugin(dir, silentLogger()).ready(after);
    assert.deepEqual(after.restored, [], 'no pool held again: dockerd, whose retry fails, would never release it');
    assert.deepEqual(after.calls, []);
    rmSync(dir, { recursive: true, force: true });
  });
});
