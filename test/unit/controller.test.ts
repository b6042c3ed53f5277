/**
 * The CNM core's logic with an in-memory driver: IPAM use, naming, rollback, persistence and restart.
 * The kernel side of the same paths is covered by the integration tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller } from '../../src/cnm/controller.js';
import type { Driver } from '../../src/drivers/driver.js';
import type { NamespaceResolver, SandboxRecord, SandboxTarget } from '../../src/cnm/sandbox.js';
import { Ipam } from '../../src/ipam/ipam.js';
import { DEFAULT_ADDRESS_POOLS, parseAddressPool } from '../../src/ipam/default-pools.js';
import { Store } from '../../src/store/store.js';
import { silentLogger } from '../../src/log.js';
import { ConflictError, ForbiddenError, NotFoundError } from '../../src/errors.js';

class RecordingDriver implements Driver {
  constructor(
    readonly type = 'bridge',
    readonly providesInterface = true,
  ) {}
  calls: string[] = [];
  failJoin = false;
  async createNetwork(n: { name: string }) {
    this.calls.push(`create ${n.name}`);
    return { bridge: `br-${n.name}` };
  }
  async deleteNetwork(n: { name: string }) {
    this.calls.push(`delete ${n.name}`);
  }
  async join(_n: unknown, e: { ifname: string; ipv4?: string }) {
    if (this.failJoin) throw new Error('veth creation failed');
    this.calls.push(`join ${e.ifname} ${e.ipv4}`);
    return { hostIfname: 'vethtest', mac: '02:00:00:00:00:01' };
  }
  async leave(_n: unknown, e: { ifname: string }) {
    this.calls.push(`leave ${e.ifname}`);
  }
  async restore(nets: unknown[], eps: unknown[]) {
    this.calls.push(`restore ${nets.length} ${eps.length}`);
  }
}

class FakeNamespaces implements NamespaceResolver {
  dead = new Set<string>();
  resolve(t: SandboxTarget) {
    if (t.pid === 1) throw new ForbiddenError('host namespace');
    const key = t.pid !== undefined ? `/proc/${t.pid}/ns/net` : t.path!;
    return { key, pid: t.pid, nsId: `ns:${t.pid ?? t.path}` };
  }
  alive(s: SandboxRecord) {
    return !this.dead.has(s.nsId);
  }
}

function setup(dir: string, driver = new RecordingDriver(), ns = new FakeNamespaces()) {
  const null_ = new RecordingDriver('null', false);
  const host = new RecordingDriver('host', false);
  const controller = new Controller({
    store: new Store(dir),
    ipam: new Ipam(DEFAULT_ADDRESS_POOLS.map(parseAddressPool)),
    drivers: [driver, null_, host],
    resolver: ns,
    log: silentLogger(),
    hostSubnets: async () => [],
    defaultBridgeOptions: { 'com.docker.network.bridge.name': 'netd0' },
  });
  return { controller, driver, ns };
}

function withDir(fn: (dir: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netd-ctl-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('start creates the predefined networks once', withDir(async (dir) => {
  const { controller } = setup(dir);
  await controller.start();
  assert.deepEqual(controller.networks().map((n) => [n.name, n.driver, n.predefined]).sort(), [['bridge', 'bridge', true], ['host', 'host', true], ['none', 'null', true]]);
  assert.equal(controller.network('bridge').ipv4[0].subnet, '172.17.0.0/16');
  const again = setup(dir).controller;
  await again.start();
  assert.equal(again.networks().length, 3);
  assert.equal(again.network('bridge').id, controller.network('bridge').id);
}));

test('network names are unique; predefined ones cannot be removed; single-instance drivers', withDir(async (dir) => {
  const { controller } = setup(dir);
  await controller.start();
  const n = await controller.createNetwork({ name: 'web', subnet: '10.50.0.0/24' });
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
  await controller.createNetwork({ name: 'a', subnet: '10.60.0.0/24' });
  const r1 = await controller.attach({ target: { pid: 100 }, network: 'a', name: 'one' });
  const r2 = await controller.attach({ target: { pid: 200 }, network: 'a' });
  assert.equal(r1.ipv4, '10.60.0.2/24');
  assert.equal(r2.ipv4, '10.60.0.3/24');
  assert.equal(r1.interface, 'eth0');
  assert.equal(r1.gateway, '10.60.0.1');
  const r3 = await controller.attach({ target: { pid: 100 }, network: 'bridge' });
  assert.equal(r3.interface, 'eth1');
  assert.equal(r3.gateway, undefined, 'only the first network gives the default route');
  assert.equal(r3.name, 'one');
  await assert.rejects(controller.attach({ target: { pid: 100 }, network: 'a' }), ConflictError);
  await assert.rejects(controller.attach({ target: { pid: 300 }, network: 'a', ip: '10.60.0.2' }), /already in use/);
  await assert.rejects(controller.attach({ target: { pid: 300 }, network: 'a', name: 'one' }), /already in use/);
  await assert.rejects(controller.attach({ target: { pid: 1 } }), ForbiddenError);
  await assert.rejects(controller.deleteNetwork('a'), /active endpoint/);
}));

test('a failed join rolls back: the address is free again and nothing is recorded', withDir(async (dir) => {
  const { controller, driver } = setup(dir);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: '10.61.0.0/24' });
  driver.failJoin = true;
  await assert.rejects(controller.attach({ target: { pid: 100 }, network: 'a', ip: '10.61.0.9' }), /driver join: veth creation failed/);
  assert.equal(controller.endpoints().length, 0);
  assert.equal(controller.sandboxes().length, 0);
  driver.failJoin = false;
  assert.equal((await controller.attach({ target: { pid: 100 }, network: 'a', ip: '10.61.0.9' })).ipv4, '10.61.0.9/24');
}));

test('detach by pid, name or id; from one network or all', withDir(async (dir) => {
  const { controller, driver } = setup(dir);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: '10.62.0.0/24' });
  const r = await controller.attach({ target: { pid: 100 }, network: 'a', name: 'c1' });
  await controller.attach({ target: { pid: 100 } });
  assert.deepEqual(await controller.detach('c1', 'a'), [r.endpointId]);
  await assert.rejects(controller.detach('c1', 'a'), /not attached/);
  assert.equal((await controller.detach('100')).length, 1);
  await assert.rejects(controller.detach('c1'), NotFoundError);
  assert.ok(driver.calls.includes('leave eth0'));
  await controller.deleteNetwork('a');
}));

test('restart: endpoints are remembered, addresses not handed out twice, dead containers released', withDir(async (dir) => {
  const first = setup(dir);
  await first.controller.start();
  await first.controller.createNetwork({ name: 'a', subnet: '10.63.0.0/24' });
  await first.controller.attach({ target: { pid: 100 }, network: 'a' });
  await first.controller.attach({ target: { pid: 200 }, network: 'a' });
  const ns = new FakeNamespaces();
  ns.dead.add('ns:200');
  const second = setup(dir, new RecordingDriver(), ns);
  await second.controller.start();
  assert.equal(second.controller.endpoints().length, 1, 'the dead container was released');
  assert.ok(second.driver.calls.includes('restore 2 2'));
  const r = await second.controller.attach({ target: { pid: 300 }, network: 'a' });
  assert.equal(r.ipv4, '10.63.0.4/24', 'continues after the highest address in use; 10.63.0.2 is never handed out twice');
}));

test('prune removes unused user networks only', withDir(async (dir) => {
  const { controller } = setup(dir);
  await controller.start();
  await controller.createNetwork({ name: 'unused' });
  await controller.createNetwork({ name: 'used' });
  await controller.attach({ target: { pid: 100 }, network: 'used' });
  assert.deepEqual(await controller.prune(), ['unused']);
  assert.equal(controller.network('used').ipv4[0].subnet, '172.19.0.0/16');
}));
