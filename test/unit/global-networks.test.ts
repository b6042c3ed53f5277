/**
 * The controller's side of global (overlay) networks, with a fake cluster (cnm/global-scope.ts): claims
 * before anything is made and given back on failure; addresses only from leased blocks; removal asks the
 * cluster first; adoption of another host's network; the block arithmetic of cluster/blocks.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Controller } from '../../src/cnm/controller.js';
import type { GlobalScope, NetworkClaim } from '../../src/cnm/global-scope.js';
import type { NetworkRecord } from '../../src/cnm/network.js';
import { Ipam } from '../../src/ipam/ipam.js';
import { DEFAULT_ADDRESS_POOLS, parseAddressPool } from '../../src/ipam/default-pools.js';
import { Store } from '../../src/store/store.js';
import { silentLogger } from '../../src/log.js';
import { ForbiddenError, InvalidArgumentError } from '../../src/errors.js';
import { IPAddress, Prefix } from '../../src/net/index.js';
import { blocksOf } from '../../src/cluster/blocks.js';
import { keys, parseKey } from '../../src/cluster/records.js';
import { macOf } from '../../src/drivers/overlay/overlay-driver.js';
import { FakeNamespaces, RecordingDriver, att, withDir } from '../helpers/fake-core.js';

class FakeCluster implements GlobalScope {
  calls: string[] = [];
  refuseRelease = false;
  constructor(private readonly ipam: Ipam) {}
  async claimNetwork(req: { name: string; subnet: Prefix }): Promise<NetworkClaim> {
    this.calls.push(`claim ${req.name} ${req.subnet}`);
    return { id: 'c'.repeat(64), options: { 'netd.overlay.vni': '4242' }, gateway: req.subnet.at(1n) };
  }
  async unclaimNetwork(claim: NetworkClaim, name: string): Promise<void> {
    this.calls.push(`unclaim ${name}`);
  }
  async releaseNetwork(n: NetworkRecord) {
    this.calls.push(`release ${n.name}`);
    if (this.refuseRelease) throw new ForbiddenError(`network ${n.name} has active endpoints on other hosts: h2 (1)`);
    return { commit: async () => void this.calls.push(`commit ${n.name}`), abort: async () => void this.calls.push(`abort ${n.name}`) };
  }
  async ensureAddress(n: NetworkRecord, subnet: Prefix): Promise<void> {
    this.calls.push(`ensure ${n.name}`);
    if (!this.ipam.hasFreeAddress(subnet)) this.ipam.setBlocks(subnet, [...(this.ipam.blocksOf(subnet) ?? []), blocksOf(subnet)[(this.ipam.blocksOf(subnet) ?? []).length + 1]]);
  }
}

function setUp(dir: string, opts: { cluster?: boolean } = {}) {
  const ipam = new Ipam(DEFAULT_ADDRESS_POOLS.map(parseAddressPool));
  const overlay = new RecordingDriver('overlay', { interface: true, dnsNames: true, globalScope: true });
  const c = new Controller({
    store: new Store(dir),
    ipam,
    drivers: [overlay, new RecordingDriver(), new RecordingDriver('null', { interface: false, exclusive: true, singleInstance: true })],
    resolver: new FakeNamespaces(),
    log: silentLogger(),
    hostSubnets: async () => [],
    predefined: [{ name: 'bridge', driver: 'bridge' }],
  });
  const cluster = new FakeCluster(ipam);
  if (opts.cluster !== false) c.joinCluster(cluster);
  return { c, cluster, overlay, ipam };
}

test('a global network is claimed in the cluster first, with the claim\'s id, options and gateway', withDir(async (dir) => {
  const { c, cluster } = setUp(dir);
  await c.start();
  const n = await c.createNetwork({ name: 'ov', driver: 'overlay', subnet: Prefix.parse('10.240.0.0/16') });
  assert.equal(n.id, 'c'.repeat(64));
  assert.equal(n.scope, 'global');
  assert.equal(n.options['netd.overlay.vni'], '4242');
  assert.equal(n.ipv4[0].gateway.toString(), '10.240.0.1');
  assert.deepEqual(cluster.calls, ['claim ov 10.240.0.0/16']);
}));

test('a global network needs a cluster, a subnet, and no IPv6: refused before anything is claimed or made', withDir(async (dir) => {
  const alone = setUp(dir, { cluster: false });
  await alone.c.start();
  await assert.rejects(alone.c.createNetwork({ name: 'ov', driver: 'overlay', subnet: Prefix.parse('10.240.0.0/16') }), /needs a cluster: start the daemon with --cluster-store/);
  const { c, cluster, overlay } = setUp(`${dir}/2`);
  await c.start();
  await assert.rejects(c.createNetwork({ name: 'ov', driver: 'overlay' }), InvalidArgumentError);
  await assert.rejects(c.createNetwork({ name: 'ov', driver: 'overlay', subnet: Prefix.parse('10.240.0.0/16'), enableIPv6: true }), /IPv4 only/);
  assert.deepEqual(cluster.calls, []);
  assert.ok(!overlay.calls.some((x) => x.startsWith('create ov')));
}));

test('a claim is given back when the network cannot be made here', withDir(async (dir) => {
  const { c, cluster, overlay } = setUp(dir);
  await c.start();
  overlay.createNetwork = async () => {
    throw new Error('no vxlan');
  };
  await assert.rejects(c.createNetwork({ name: 'ov', driver: 'overlay', subnet: Prefix.parse('10.240.0.0/16') }), /no vxlan/);
  assert.deepEqual(cluster.calls, ['claim ov 10.240.0.0/16', 'unclaim ov']);
  assert.equal(c.networks().some((n) => n.name === 'ov'), false);
}));

test('addresses come only from the blocks the cluster leased; a new block only when they are full', withDir(async (dir) => {
  const { c, cluster, ipam } = setUp(dir);
  await c.start();
  const n = await c.createNetwork({ name: 'ov', driver: 'overlay', subnet: Prefix.parse('10.240.0.0/24') });
  // This host leased the second block (.64/26): the first address is .64... never one of the first block.
  ipam.setBlocks(n.ipv4[0].subnet, [Prefix.parse('10.240.0.64/26')]);
  const r = await att(c, { target: { pid: 100 }, network: 'ov' });
  assert.equal(r.ipv4?.toString(), '10.240.0.64/24');
  await assert.rejects(att(c, { target: { pid: 101 }, network: 'ov', ip: IPAddress.parse('10.240.0.5') }), /outside the address blocks this host leased/);
  assert.ok(cluster.calls.filter((x) => x === 'ensure ov').length >= 1, 'the cluster is asked before each allocation');
}));

test('removing a global network asks the cluster; refused there, nothing changes here', withDir(async (dir) => {
  const { c, cluster } = setUp(dir);
  await c.start();
  await c.createNetwork({ name: 'ov', driver: 'overlay', subnet: Prefix.parse('10.240.0.0/16') });
  cluster.refuseRelease = true;
  await assert.rejects(c.deleteNetwork('ov'), /other hosts: h2/);
  assert.ok(c.networks().some((n) => n.name === 'ov'));
  cluster.refuseRelease = false;
  await c.deleteNetwork('ov');
  assert.deepEqual(cluster.calls.slice(-2), ['release ov', 'commit ov']);
  assert.equal(await c.prune().then((names) => names.includes('ov')), false);
}));

test('another host\'s network is adopted with its id, once; forgetNetwork keeps it while it has endpoints here', withDir(async (dir) => {
  const { c, cluster } = setUp(dir);
  await c.start();
  const req = { id: 'd'.repeat(64), name: 'far', driver: 'overlay', subnet: Prefix.parse('10.241.0.0/16'), gateway: IPAddress.parse('10.241.0.1'), options: { 'netd.overlay.vni': '5000' } };
  await c.adoptNetwork(req);
  await c.adoptNetwork(req);
  assert.equal(c.networks().filter((n) => n.name === 'far').length, 1);
  assert.deepEqual(cluster.calls, [], 'nothing claimed for an adopted network');
  await att(c, { target: { pid: 200 }, network: 'far' });
  assert.equal(await c.forgetNetwork(req.id), false);
  await c.detach('200');
  assert.equal(await c.forgetNetwork(req.id), true);
  assert.equal(c.networks().some((n) => n.name === 'far'), false);
}));

test('blocks: a subnet is cut into /26s (a smaller one is one block); keys parse back', () => {
  assert.deepEqual(blocksOf(Prefix.parse('10.240.0.0/24')).map(String), ['10.240.0.0/26', '10.240.0.64/26', '10.240.0.128/26', '10.240.0.192/26']);
  assert.deepEqual(blocksOf(Prefix.parse('10.9.0.0/28')).map(String), ['10.9.0.0/28']);
  assert.equal(blocksOf(Prefix.parse('10.0.0.0/8')).length, 65536, 'bounded');
  const net = 'a'.repeat(64);
  assert.deepEqual(parseKey(keys.block(net, Prefix.parse('10.240.0.64/26'))), { kind: 'block', network: net, block: '10.240.0.64-26' });
  assert.deepEqual(parseKey(keys.endpoint(net, 'b'.repeat(64))), { kind: 'endpoint', network: net, endpoint: 'b'.repeat(64) });
  assert.deepEqual(parseKey('/netd/v1/endpoints/../x'), { kind: 'other' });
  assert.deepEqual(parseKey('/other/hosts/x'), { kind: 'other' });
});

test('an overlay endpoint\'s MAC is derived from its address (a reused address keeps its MAC)', () => {
  assert.equal(macOf(IPAddress.parse('10.243.0.64')).toString(), '02:42:0a:f3:00:40');
  assert.equal(macOf(IPAddress.parse('255.1.2.3')).toString(), '02:42:ff:01:02:03');
});
