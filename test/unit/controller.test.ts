/**
 * The CNM core's logic with an in-memory driver: IPAM use, naming, rollback, persistence and restart.
 * The kernel side of the same paths is covered by the integration tests.
 */
import { IPAddress, Prefix } from '../../src/net/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Controller } from '../../src/cnm/controller.js';
import type { SandboxTarget } from '../../src/cnm/sandbox.js';
import { Ipam } from '../../src/ipam/ipam.js';
import { DEFAULT_ADDRESS_POOLS, parseAddressPool } from '../../src/ipam/default-pools.js';
import { Store } from '../../src/store/store.js';
import { silentLogger } from '../../src/log.js';
import { ConflictError, ForbiddenError, NotFoundError } from '../../src/errors.js';
import type { AttachResult } from '../../src/cnm/endpoint.js';
import { FakeNamespaces, RecordingDriver, att, withDir } from '../helpers/fake-core.js';

function setup(dir: string, driver = new RecordingDriver(), ns = new FakeNamespaces()) {
  const null_ = new RecordingDriver('null', { interface: false, exclusive: true, singleInstance: true });
  const host = new RecordingDriver('host', { interface: false, hostNamespace: true, singleInstance: true });
  const controller = new Controller({
    store: new Store(dir),
    ipam: new Ipam(DEFAULT_ADDRESS_POOLS.map(parseAddressPool)),
    drivers: [driver, null_, host],
    resolver: ns,
    log: silentLogger(),
    hostSubnets: async () => [],
    predefined: [
      { name: 'bridge', driver: 'bridge', options: { 'com.docker.network.bridge.name': 'netd0' } },
      { name: 'host', driver: 'host' },
      { name: 'none', driver: 'null' },
    ],
  });
  return { controller, driver, ns };
}

test('start creates the predefined networks once', withDir(async (dir) => {
  const { controller } = setup(dir);
  await controller.start();
  assert.deepEqual(controller.networks().map((n) => [n.name, n.driver, n.predefined]).sort(), [['bridge', 'bridge', true], ['host', 'host', true], ['none', 'null', true]]);
  assert.equal(String(controller.network('bridge').ipv4[0].subnet), '172.17.0.0/16');
  const again = setup(dir).controller;
  await again.start();
  assert.equal(again.networks().length, 3);
  assert.equal(again.network('bridge').id, controller.network('bridge').id);
}));

test('network names are unique; predefined ones cannot be removed; single-instance drivers', withDir(async (dir) => {
  const { controller } = setup(dir);
  await controller.start();
  const n = await controller.createNetwork({ name: 'web', subnet: Prefix.parse('10.50.0.0/24') });
  assert.equal(n.driverState.bridge, 'br-web');
  await assert.rejects(controller.createNetwork({ name: 'web' }), ConflictError);
  await assert.rejects(controller.createNetwork({ name: 'bad name' }), /invalid network name/);
  await assert.rejects(controller.createNetwork({ name: 'x', driver: 'overlay' }), NotFoundError);
  await assert.rejects(controller.createNetwork({ name: 'h2', driver: 'host' }), ForbiddenError);
  await assert.rejects(controller.deleteNetwork('bridge'), ForbiddenError);
  assert.equal(controller.network(n.id.slice(0, 6)).name, 'web');
}));

test('attach: sequential addresses, eth0 then eth1, one gateway endpoint, duplicate refused', withDir(async (dir) => {
  const { controller } = setup(dir);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.60.0.0/24') });
  const r1 = await att(controller, { target: { pid: 100 }, network: 'a', name: 'one' });
  const r2 = await att(controller, { target: { pid: 200 }, network: 'a' });
  assert.equal(r1.ipv4, '10.60.0.2/24');
  assert.equal(r2.ipv4, '10.60.0.3/24');
  assert.equal(r1.interface, 'eth0');
  assert.equal(r1.gateway, '10.60.0.1');
  const r3 = await att(controller, { target: { pid: 100 }, network: 'bridge' });
  assert.equal(r3.interface, 'eth1');
  assert.equal(r3.gateway, undefined, 'only the first network gives the default route');
  assert.equal(r3.name, 'one');
  await assert.rejects(controller.attach({ target: { pid: 100 }, network: 'a' }), ConflictError);
  await assert.rejects(controller.attach({ target: { pid: 300 }, network: 'a', ip: IPAddress.parse('10.60.0.2') }), /already in use/);
  await assert.rejects(controller.attach({ target: { pid: 300 }, network: 'a', name: 'one' }), /already in use/);
  await assert.rejects(controller.attach({ target: { pid: 1 } }), ForbiddenError);
  await assert.rejects(controller.deleteNetwork('a'), /active endpoint/);
}));

test('a container name that is a prefix of another sandbox id is free; a full id is not', withDir(async (dir) => {
  const { controller } = setup(dir);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.61.0.0/24') });
  const first = await att(controller, { target: { pid: 100 }, network: 'a', name: 'one' });
  const prefix = first.sandboxId.slice(0, 3);
  const r = await att(controller, { target: { pid: 200 }, network: 'a', name: prefix });
  assert.equal(r.name, prefix);
  assert.equal(controller.findSandbox(prefix)?.id, r.sandboxId, 'an exact name wins over an id prefix');
  const digits = await att(controller, { target: { pid: 400 }, network: 'a', name: '0190' });
  assert.equal(controller.findSandbox('0190')?.id, digits.sandboxId, 'digits that are no attached PID are a name');
  assert.equal(controller.findSandbox('400')?.id, digits.sandboxId, 'a PID');
  await assert.rejects(controller.attach({ target: { pid: 300 }, network: 'a', name: first.sandboxId }), /already in use/);
}));

test('a failed join rolls back: the address is free again and nothing is recorded', withDir(async (dir) => {
  const { controller, driver } = setup(dir);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.61.0.0/24') });
  driver.failJoin = true;
  await assert.rejects(controller.attach({ target: { pid: 100 }, network: 'a', ip: IPAddress.parse('10.61.0.9') }), /driver join: veth creation failed/);
  assert.equal(controller.endpoints().length, 0);
  assert.equal(controller.sandboxes().length, 0);
  driver.failJoin = false;
  assert.equal((await att(controller, { target: { pid: 100 }, network: 'a', ip: IPAddress.parse('10.61.0.9') })).ipv4, '10.61.0.9/24');
}));

test('detach by pid, name or id; from one network or all', withDir(async (dir) => {
  const { controller, driver } = setup(dir);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.62.0.0/24') });
  const r = await att(controller, { target: { pid: 100 }, network: 'a', name: 'c1' });
  await att(controller, { target: { pid: 100 } });
  assert.deepEqual(await controller.detach('c1', 'a'), [r.endpointId]);
  await assert.rejects(controller.detach('c1', 'a'), /not attached/);
  assert.equal((await controller.detach('100')).length, 1);
  await assert.rejects(controller.detach('c1'), NotFoundError);
  await controller.stop(); // the driver's leave runs after the detach answered (teardown-queue.ts)
  assert.ok(driver.calls.includes('leave eth0'));
  await controller.deleteNetwork('a');
}));

test('restart: endpoints are remembered, addresses not handed out twice, dead containers released', withDir(async (dir) => {
  const first = setup(dir);
  await first.controller.start();
  await first.controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.63.0.0/24') });
  await first.controller.attach({ target: { pid: 100 }, network: 'a' });
  await first.controller.attach({ target: { pid: 200 }, network: 'a' });
  const ns = new FakeNamespaces();
  ns.dead.add('ns:200');
  const second = setup(dir, new RecordingDriver(), ns);
  await second.controller.start();
  assert.equal(second.controller.endpoints().length, 1, 'the dead container was released');
  assert.ok(second.driver.calls.includes('restore 2 2'));
  const r = (await second.controller.attach({ target: { pid: 300 }, network: 'a' })) as AttachResult;
  assert.equal(r.ipv4, '10.63.0.4/24', 'continues after the highest address in use; 10.63.0.2 is never handed out twice');
}));

test('prune removes unused user networks only', withDir(async (dir) => {
  const { controller } = setup(dir);
  await controller.start();
  await controller.createNetwork({ name: 'unused' });
  await controller.createNetwork({ name: 'used' });
  await att(controller, { target: { pid: 100 }, network: 'used' });
  assert.deepEqual(await controller.prune(), ['unused']);
  assert.equal(String(controller.network('used').ipv4[0].subnet), '172.19.0.0/16');
}));

test('modes: none gives lo only, host takes host-namespace processes, none excludes other networks', withDir(async (dir) => {
  const ns = new FakeNamespaces();
  ns.resolve = (t: SandboxTarget, opts?: { allowHost?: boolean }) => {
    const host = t.pid === 1;
    if (host && !opts?.allowHost) throw new ForbiddenError('host namespace');
    return { key: `/proc/${t.pid}/ns/net`, pid: t.pid, nsId: host ? 'ns:host' : `ns:${t.pid}`, host };
  };
  const { controller } = setup(dir, new RecordingDriver(), ns);
  await controller.start();
  const none = await att(controller, { target: { pid: 100 }, mode: 'none', name: 'quiet' });
  assert.equal(none.network, 'none');
  assert.equal(none.ipv4, undefined);
  await assert.rejects(att(controller, { target: { pid: 100 } }), /none network and another/);
  const h1 = await att(controller, { target: { pid: 1 }, mode: 'host', name: 'h1' });
  const h2 = await att(controller, { target: { pid: 1 }, mode: 'host', name: 'h2' });
  assert.notEqual(h1.sandboxId, h2.sandboxId, 'each host-mode container is its own sandbox');
  await assert.rejects(att(controller, { target: { pid: 200 }, mode: 'host' }), /namespace of its own/);
  await assert.rejects(att(controller, { target: { pid: 1 } }), ForbiddenError);
  await assert.rejects(att(controller, { target: { pid: 300 }, mode: 'bogus' }), /invalid mode/);
  await assert.rejects(att(controller, { target: { pid: 300 }, mode: 'host', network: 'bridge' }), /contradict/);
  assert.deepEqual(await controller.detach('h1'), [h1.endpointId]);
}));

test('container:<other> shares the sandbox; detaching the first keeps it for the second', withDir(async (dir) => {
  const { controller, driver } = setup(dir);
  await controller.start();
  const first = await att(controller, { target: { pid: 100 }, name: 'web' });
  const shared = (await controller.attach({ target: { pid: 100 }, mode: 'container:web', name: 'sidecar' })) as unknown as { sharedWith: string; endpoints: AttachResult[] };
  assert.equal(shared.sharedWith, 'web');
  assert.equal(shared.endpoints[0].ipv4, first.ipv4, 'same address');
  await assert.rejects(controller.attach({ target: { pid: 200 }, mode: 'container:web' }), /not in the network namespace/);
  await assert.rejects(controller.attach({ target: {}, mode: 'container:nobody' }), NotFoundError);
  await assert.rejects(controller.attach({ target: {}, mode: 'container:web', name: 'web' }), /already in use/);
  assert.deepEqual(await controller.detach('web'), [], 'the namespace lives on with sidecar');
  assert.equal(controller.endpoints().length, 1);
  assert.equal(controller.findSandbox('sidecar')?.name, 'sidecar');
  assert.equal(driver.calls.filter((c) => c.startsWith('leave')).length, 0);
  assert.equal((await controller.detach('sidecar')).length, 1, 'the last one out releases the endpoint');
}));

test('sandboxes netd creates persist without endpoints and are removed on request', withDir(async (dir) => {
  const { controller } = setup(dir);
  await controller.start();
  const sb = await controller.createSandbox('pod1');
  assert.equal(sb.key, '/run/test/pod1');
  await assert.rejects(controller.createSandbox('pod1'), /already in use/);
  const r = await att(controller, { target: { sandbox: 'pod1' } });
  assert.equal(r.name, 'pod1');
  await controller.detach('pod1');
  assert.ok(controller.findSandbox('pod1'), 'kept without endpoints');
  await att(controller, { target: { sandbox: 'pod1' } });
  assert.equal((await controller.removeSandbox('pod1')).length, 1);
  assert.equal(controller.findSandbox('pod1'), undefined);
  await att(controller, { target: { pid: 100 }, name: 'plain' });
  await assert.rejects(controller.removeSandbox('plain'), /not one netd created/);
}));

test('ifname and labels: the interface named as asked (a kernel name, once per sandbox), labels kept across a restart; lookup and removal by interface', withDir(async (dir) => {
  const { controller, driver } = setup(dir);
  await controller.start();
  const a = await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.61.0.0/24') });
  const b = await controller.createNetwork({ name: 'b', subnet: Prefix.parse('10.62.0.0/24') });
  const r = await att(controller, { target: { pid: 500 }, network: 'a', name: 'pod1', ifname: 'net1', labels: { 'io.netd.origin': 'cni' } });
  assert.equal(r.interface, 'net1');
  assert.ok(driver.calls.includes('join net1 10.61.0.2/24'));
  await assert.rejects(att(controller, { target: { pid: 500 }, network: 'b', ifname: 'net1' }), /already has an interface named net1/);
  await assert.rejects(att(controller, { target: { pid: 501 }, network: 'b', ifname: 'a/b' }), /invalid interface name/);
  await assert.rejects(att(controller, { target: { pid: 501 }, network: 'b', ifname: 'x'.repeat(16) }), /invalid interface name/);
  await assert.rejects(att(controller, { target: { pid: 501 }, network: 'none', mode: 'none', ifname: 'eth0' }), /makes no interface/);
  await assert.rejects(att(controller, { target: { pid: 501 }, network: 'b', labels: { k: 5 } as unknown as Record<string, string> }), /label k must be a string/);
  const second = await att(controller, { target: { pid: 500 }, network: 'b' });
  assert.equal(second.interface, 'eth0', 'the first free ethN when none is asked for');

  const again = setup(dir).controller;
  await again.start();
  const ep = again.endpointByInterface('a', 'pod1', 'net1');
  assert.deepEqual(ep?.labels, { 'io.netd.origin': 'cni' });
  assert.equal(again.endpointByInterface(a.id, 'pod1', 'eth0'), undefined);
  assert.equal(again.endpointByInterface('b', 'pod1', 'eth0')?.networkId, b.id);
  assert.equal(again.endpointByInterface('nope', 'pod1', 'net1'), undefined);
  assert.deepEqual(await again.checkEndpoint(ep!.id), [], 'a driver without check finds nothing to report');
  assert.equal(await again.removeEndpoint(ep!.id), true);
  assert.equal(await again.removeEndpoint(ep!.id), false, 'gone already');
  assert.equal(again.findSandbox('pod1')?.endpoints.length, 1, 'the sandbox keeps its other endpoint');
  await assert.rejects(again.checkEndpoint(ep!.id), NotFoundError);
}));

test('CNI lookups (endpointByInterface, hasFreeAddress) match a network name exactly, never an id or id prefix', withDir(async (dir) => {
  const { controller } = setup(dir);
  await controller.start();
  const full = await controller.createNetwork({ name: 'full', subnet: Prefix.parse('10.63.0.0/30') });
  await att(controller, { target: { pid: 600 }, network: 'full', name: 'pod9', ifname: 'eth0' });
  assert.equal(await controller.hasFreeAddress('full'), false, 'a /30 holds the gateway and one container');
  for (const ref of [full.id, full.id.slice(0, 1), full.id.slice(0, 12)]) {
    assert.equal(controller.endpointByInterface(ref, 'pod9', 'eth0'), undefined, `${ref} is not a network name`);
    assert.equal(await controller.hasFreeAddress(ref), true, `${ref} names no network: a new one would have room`);
  }
  assert.equal(controller.endpointByInterface('full', 'pod9', 'eth0')?.networkId, full.id);
}));

test('an outside client (dockerd): given ids, held pools adopted, held addresses claimed, handed-over endpoints, ports programmed after join, managed objects refused to others', withDir(async (dir) => {
  const { controller, driver } = setup(dir);
  await controller.start();
  const netId = 'a'.repeat(64);
  const epId = 'b'.repeat(64);
  const pool = await controller.held.holdPool({ family: 4, subnet: Prefix.parse('10.77.0.0/24') });
  const gw = await controller.held.holdAddress(pool.subnet, undefined, { gateway: true });
  assert.equal(gw.toString(), '10.77.0.1/24');
  await assert.rejects(controller.createNetwork({ name: 'other', subnet: Prefix.parse('10.77.0.0/16') }), (e: Error) => { assert.match(e.message, /overlaps with the subnet 10\.77\.0\.0\/24/); return true; }, 'a held pool is taken');
  await assert.rejects(controller.createNetwork({ name: 'bad', id: 'xyz' }), /invalid network id/);
  const n = await controller.createNetwork({ name: 'docker-aaaa', id: netId, subnet: pool.subnet, gateway: gw.address, adoptHeldPool: true, managedBy: 'docker' });
  assert.equal(n.id, netId);
  assert.equal(n.managedBy, 'docker');
  await assert.rejects(controller.createNetwork({ name: 'again', id: netId }), /already exists/);

  const addr = await controller.held.holdAddress(pool.subnet);
  assert.equal(addr.toString(), '10.77.0.2/24');
  assert.ok(controller.held.addressHeld(pool.subnet, addr.address));
  await assert.rejects(att(controller, { target: { pid: 700 }, network: netId, ip: addr.address, managedBy: 'docker' }), /already in use/, 'not without claiming');
  await assert.rejects(att(controller, { target: { pid: 700 }, network: netId, handOff: true, managedBy: 'docker' }), /needs an interface name/);
  await assert.rejects(att(controller, { target: { pid: 702 }, network: netId }), /managed by docker/, 'a managed network takes its manager\'s endpoints only');
  await assert.rejects(att(controller, { target: { pid: 702 }, network: 'bridge', managedBy: 'docker' }), /not managed by docker/, 'and its manager only its own networks');
  const r = await att(controller, { target: { pid: 700 }, network: netId, endpointId: epId, ifname: 'netdcbbbbbbb', handOff: true, claimHeld: true, ip: addr.address, managedBy: 'docker' });
  assert.equal(r.endpointId, epId);
  assert.equal(controller.endpoint(epId)?.handOff, true);
  assert.equal(controller.endpoint(epId)?.managedBy, 'docker');
  assert.equal((await att(controller, { target: { pid: 701 }, network: netId, managedBy: 'docker' })).ipv4, '10.77.0.3/24', 'an attach without an address skips held ones');

  await assert.rejects(controller.detach('700'), ForbiddenError, 'managed endpoints are the manager\'s to remove');
  await assert.rejects(controller.removeEndpoint(epId), ForbiddenError);
  await assert.rejects(controller.deleteNetwork(netId), ForbiddenError);
  await assert.rejects(controller.detach('701'), /managed by docker/);
  await controller.removeEndpoint(controller.findSandbox('701')!.endpoints[0], 'docker', 'docker');
  assert.deepEqual(await controller.prune(), [], 'prune skips managed networks');

  // The recording driver has no external connectivity: refused plainly, nothing changed.
  await assert.rejects(controller.programExternalConnectivity(epId, {}, 'docker'), /no external connectivity/);
  await assert.rejects(controller.programExternalConnectivity(epId, {}), /managed by docker/, 'nor by anyone but its manager');
  await assert.rejects(controller.revokeExternalConnectivity(epId), /managed by docker/);
  await controller.revokeExternalConnectivity(epId, 'docker');
  await controller.revokeExternalConnectivity('c'.repeat(64));

  assert.equal(await controller.removeEndpoint(epId, 'docker', 'docker'), true);
  assert.ok(controller.held.addressHeld(pool.subnet, addr.address), 'the hold outlives the endpoint');
  await controller.held.releaseAddress(pool.subnet, addr.address);
  await controller.deleteNetwork(netId, 'docker');
  await assert.rejects(controller.createNetwork({ name: 'other', subnet: Prefix.parse('10.77.0.0/16') }), /overlaps/, 'still held after the network goes');
  await controller.held.releasePool(pool.subnet);
  await controller.createNetwork({ name: 'other', subnet: Prefix.parse('10.77.0.0/16') });
  assert.ok(driver.calls.includes('join netdcbbbbbbb 10.77.0.2/24'));
}));
