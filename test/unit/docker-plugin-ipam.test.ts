/**
 * The plugin's IPAM driver on a stand-in core: PoolIDs, reference-counted pools, held addresses, and the
 * persisted state re-applied at start. No kernel.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../src/log.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { Prefix } from '../../src/net/index.js';
import { DockerPlugin } from '../../src/docker-plugin/plugin.js';
import { formatPoolId, parsePoolId } from '../../src/docker-plugin/pool-id.js';
import { PluginState } from '../../src/docker-plugin/state.js';
import { ENDPOINT_FOR_RESTORE, FakePluginCore, NET2, fakePlugin } from '../helpers/fake-plugin-core.js';

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
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'ipam.json'), 'utf8')).pools.map((p: { id: string }) => p.id), ['netd/10.124.0.0/24']);
    assert.equal(core.pools.size, 1);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('RequestAddress / ReleaseAddress', () => {
  test('the gateway, a given address, the next free one; conflicts; release; unknown pools', async () => {
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
    assert.ok(unknown.status >= 400);
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
      core.restored?.map((p) => ({ subnet: String(p.subnet), ipRange: p.ipRange && String(p.ipRange), gateway: p.gateway && String(p.gateway), addresses: p.addresses.map(String).sort() })),
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
    writeFileSync(join(dir, 'endpoints', `${'b'.repeat(64)}.json`), '{"id": "x"}');
    const state = PluginState.open(dir);
    assert.equal(state.problems.length, 2);
    assert.equal(state.pools.size, 0);
    assert.ok(existsSync(join(dir, 'ipam.json.corrupt')));
    rmSync(dir, { recursive: true, force: true });
  });
});
