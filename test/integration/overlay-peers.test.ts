/**
 * The overlay's per-host data plane against the real kernel: ensureSegment (the network's vxlan device)
 * and PeerTable (a remote endpoint's FDB and neighbour entries) on two "hosts" over an underlay, with
 * traffic between a "container" on each, and iproute2 (`ip -j`, `bridge -j`) as the oracle.
 *
 *   cA (10.240.0.2) ─veth─ A: br-ov 10.240.0.1 + vx-… (local 192.0.2.1) ═u0═ B: br-ov 10.240.0.1 + vx-… (local 192.0.2.2) ─veth─ cB (10.240.0.3)
 *
 * Both bridges hold the same gateway address (a distributed gateway) with a MAC of their own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ConflictError, InvalidArgumentError, KernelError } from '../../src/errors.js';
import { IPAddress, InterfaceAddress, MAC } from '../../src/net/index.js';
import type { Link, Rtnl } from '../../src/kernel/rtnetlink.js';
import { PeerTable, type Peer } from '../../src/drivers/overlay/peer-table.js';
import { VXLAN_PORT, ensureSegment, removeSegment, underlayMtu, vxlanName, type SegmentSpec } from '../../src/drivers/overlay/vxlan-segment.js';
import { requireRoot, type TestNetns } from '../helpers/netns.js';
import { serve } from '../helpers/traffic.js';
import { FIXTURES, Lab, addContainer, json, oneHost, ping, tcpGet, underlayHosts } from '../helpers/underlay.js';

requireRoot();

const NET_ID = '0123456789abcdef0123456789abcdef';
const VX = vxlanName(NET_ID);
const ALIAS = 'netd:test:0123456789ab';
const VNI = 4242;
const GATEWAY = InterfaceAddress.parse('10.240.0.1/24');
const IP_A = IPAddress.parse('10.240.0.2');
const IP_B = IPAddress.parse('10.240.0.3');
const MAC_A = MAC.parse('02:42:0a:f0:00:02');
const MAC_B = MAC.parse('02:42:0a:f0:00:03');
const vtep = (n: number) => IPAddress.parse(`192.0.2.${n}`);

interface Host {
  ns: TestNetns;
  rtnl: Rtnl;
  bridge: Link;
  container: TestNetns;
  vx: number;
  peers: PeerTable;
}
interface FdbJson {
  mac: string;
  dst?: string;
  flags: string[];
  state?: string;
}
interface NeighJson {
  dst: string;
  lladdr?: string;
  state: string[];
}
interface IpLinkJson {
  ifindex: number;
  mtu: number;
  master?: string;
  flags: string[];
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number; local?: string; learning?: boolean; proxy?: boolean; link?: string } };
}

function spec(host: { bridge: Link }, local: IPAddress, extra: Partial<SegmentSpec> = {}): SegmentSpec {
  return { networkId: NET_ID, vni: VNI, local, bridgeIndex: host.bridge.index, alias: ALIAS, ...extra };
}

/** Two hosts, each with the network's bridge (gateway address, own MAC), its vxlan device and one container. */
async function twoHosts(lab: Lab): Promise<[Host, Host]> {
  const hosts: Host[] = [];
  for (const [i, h] of (await underlayHosts(lab, 'op')).entries()) {
    const bridge = await h.rtnl.createBridge({ name: 'br-ov', mac: MAC.parse(`02:00:00:00:aa:0${i + 1}`), up: true });
    await h.rtnl.addAddress(bridge.index, GATEWAY);
    const seg = await ensureSegment(h.rtnl, spec({ bridge }, vtep(i + 1)));
    assert.deepEqual([seg.mtu, seg.created, seg.underlay], [1450, true, h.underlay.index]);
    await h.rtnl.setLink(bridge.index, { mtu: seg.mtu });
    const container = await addContainer(lab, h, { tag: `opc${i + 1}`, veth: `vc${i + 1}`, bridge: bridge.index, mtu: seg.mtu, mac: i === 0 ? MAC_A : MAC_B, cidr: `${i === 0 ? IP_A : IP_B}/24` });
    hosts.push({ ...h, bridge, container, vx: seg.index, peers: new PeerTable(h.rtnl, seg.index) });
  }
  return hosts as [Host, Host];
}

const peerA: Peer = { endpointId: 'ep-a', ip4: IP_A, mac: MAC_A, vtep: vtep(1) };
const peerB: Peer = { endpointId: 'ep-b', ip4: IP_B, mac: MAC_B, vtep: vtep(2) };

async function fdbJson(h: Host): Promise<FdbJson[]> {
  return (await json<FdbJson[]>(h.ns, ['bridge', '-j', 'fdb', 'show', 'dev', VX])).filter((e) => e.flags.includes('self'));
}

/** The device's remote FDB entries and permanent neighbour entries, as Rtnl reads them: `mac>dst`, `ip>mac`. */
async function entries(h: Host): Promise<string[]> {
  const fdb = (await h.rtnl.fdb(h.vx)).filter((e) => e.self && e.dst).map((e) => `${e.mac}>${e.dst}`);
  const neigh = [...(await h.rtnl.neighbours(4, h.vx)), ...(await h.rtnl.neighbours(6, h.vx))].filter((n) => n.permanent).map((n) => `${n.address}>${n.mac}`);
  return [...fdb, ...neigh].sort();
}

test('overlay data plane: vxlan segment per network and a peer table per device; cross-host ping and TCP at the overlay MTU; remove, VTEP change, resync, idempotent segment', async () => {
  const lab = new Lab();
  try {
    const [a, b] = await twoHosts(lab);

    // The device as iproute2 sees it.
    const [dev] = await json<IpLinkJson[]>(a.ns, ['ip', '-d', '-j', 'link', 'show', VX]);
    assert.equal(dev.linkinfo?.info_kind, 'vxlan');
    assert.deepEqual(
      [dev.linkinfo?.info_data?.id, dev.linkinfo?.info_data?.port, dev.linkinfo?.info_data?.local, dev.linkinfo?.info_data?.learning, dev.linkinfo?.info_data?.proxy, dev.linkinfo?.info_data?.link],
      [VNI, VXLAN_PORT, '192.0.2.1', false, true, 'u0'],
    );
    assert.deepEqual([dev.mtu, dev.master, dev.ifalias, dev.flags.includes('UP')], [1450, 'br-ov', ALIAS, true]);
    assert.equal(await underlayMtu(a.rtnl, vtep(1)), 1500);

    await a.peers.set(peerB);
    await b.peers.set(peerA);
    assert.deepEqual(await entries(a), ['02:42:0a:f0:00:03>192.0.2.2', '10.240.0.3>02:42:0a:f0:00:03']);
    assert.deepEqual(await entries(b), ['02:42:0a:f0:00:02>192.0.2.1', '10.240.0.2>02:42:0a:f0:00:02']);
    for (const h of [a, b]) {
      const fdb = await json<FdbJson[]>(h.ns, ['bridge', '-j', 'fdb', 'show', 'dev', VX]);
      assert.equal(fdb.filter((e) => e.mac === '00:00:00:00:00:00').length, 0, 'no all-zeros (flooding) entry');
      assert.deepEqual((await fdbJson(h)).map((e) => e.state), ['permanent']);
    }

    // Traffic: each container's own gateway (same address on both hosts), the other container, TCP, MTU.
    assert.ok(await ping(a.container, GATEWAY.address), 'cA → its gateway');
    assert.ok(await ping(b.container, GATEWAY.address), 'cB → its gateway');
    assert.ok(await ping(a.container, IP_B), 'cA → cB over the overlay');
    assert.ok(await ping(b.container, IP_A), 'cB → cA over the overlay');
    const gw = await json<NeighJson[]>(a.container, ['ip', '-j', 'neigh', 'show', String(GATEWAY.address)]);
    assert.equal(gw[0]?.lladdr, '02:00:00:00:aa:01', "cA's gateway is its own host's bridge");
    assert.ok(await ping(a.container, IP_B, ['-M', 'do', '-s', '1422']), '1450 − 28 bytes of payload pass unfragmented');
    assert.equal(await ping(a.container, IP_B, ['-M', 'do', '-s', '1423']), false, 'one byte more does not');
    lab.processes.push(await serve(['ip', 'netns', 'exec', b.container.name, 'node', join(FIXTURES, 'tcp-whoami.cjs'), String(IP_B), '8080']));
    assert.equal(await tcpGet(a.container, IP_B, 8080), String(IP_A));

    // remove: entries gone (Rtnl and iproute2 agree), traffic stops; set again: back.
    assert.equal(await a.peers.remove('ep-b'), true);
    assert.deepEqual(await entries(a), []);
    assert.deepEqual(await fdbJson(a), []);
    assert.deepEqual((await json<NeighJson[]>(a.ns, ['ip', '-j', 'neigh', 'show', 'dev', VX])).filter((n) => n.state.includes('PERMANENT')), []);
    assert.equal(await ping(a.container, IP_B), false, 'cA → cB after remove');
    await a.peers.set(peerB);
    assert.ok(await ping(a.container, IP_B), 'cA → cB after set again');

    // Host B's address changes: its segment is remade with the new local address (a device made for the old
    // one is stale), its table resynced; A still sends to the old VTEP until it is told.
    const oldVx = b.vx;
    await b.ns.exec(['ip', 'addr', 'del', '192.0.2.2/24', 'dev', 'u0']);
    await b.ns.exec(['ip', 'addr', 'add', '192.0.2.3/24', 'dev', 'u0']);
    await assert.rejects(ensureSegment(b.rtnl, spec(b, vtep(2))), (e) => e instanceof KernelError && e.errno === 'EADDRNOTAVAIL' && /192\.0\.2\.2/.test(e.message));
    const moved = await ensureSegment(b.rtnl, spec(b, vtep(3)));
    assert.equal(moved.created, true);
    assert.equal((await b.rtnl.linkByIndex(oldVx)), undefined, 'the stale device is gone');
    assert.equal((await b.rtnl.linkByIndex(moved.index))?.vxlan?.local?.toString(), '192.0.2.3');
    b.vx = moved.index;
    b.peers = new PeerTable(b.rtnl, moved.index);
    assert.deepEqual(await b.peers.resync([peerA]), { deletedFdb: 0, deletedNeighbours: 0, written: 2 });
    assert.equal(await ping(a.container, IP_B), false, 'A still sends to the old VTEP');
    await a.peers.set({ ...peerB, vtep: vtep(3) });
    assert.ok(await ping(a.container, IP_B), 'cA → cB at the new VTEP');
    assert.equal(await tcpGet(a.container, IP_B, 8080), String(IP_A));
    assert.deepEqual((await fdbJson(a)).map((e) => [e.mac, e.dst]), [['02:42:0a:f0:00:03', '192.0.2.3']], 'one entry, nothing left to the old VTEP');
    assert.ok((await a.rtnl.fdb(a.vx)).every((e) => e.dst?.toString() !== '192.0.2.2'));

    // resync deletes what nobody explains (planted: an unknown MAC's FDB entry, a stale permanent neighbour),
    // rewrites cB's entry pointed back at the old VTEP, and keeps the right neighbour entry without rewriting
    // it. (`bridge fdb append` cannot give a unicast MAC a second remote: the kernel appends only to
    // multicast and all-zeros entries.)
    await a.ns.exec(['bridge', 'fdb', 'add', '02:42:0a:f0:00:99', 'dev', VX, 'self', 'permanent', 'dst', '192.0.2.7']);
    await a.ns.exec(['bridge', 'fdb', 'replace', '02:42:0a:f0:00:03', 'dev', VX, 'self', 'permanent', 'dst', '192.0.2.2']);
    await a.ns.exec(['ip', 'neigh', 'add', '10.240.0.99', 'lladdr', '02:42:0a:f0:00:99', 'dev', VX, 'nud', 'permanent']);
    assert.deepEqual(await entries(a), ['02:42:0a:f0:00:03>192.0.2.2', '02:42:0a:f0:00:99>192.0.2.7', '10.240.0.3>02:42:0a:f0:00:03', '10.240.0.99>02:42:0a:f0:00:99']);
    assert.equal(await ping(a.container, IP_B), false, 'the planted stale VTEP breaks it');
    assert.deepEqual(await a.peers.resync([{ ...peerB, vtep: vtep(3) }]), { deletedFdb: 2, deletedNeighbours: 1, written: 1 });
    assert.deepEqual(await entries(a), ['02:42:0a:f0:00:03>192.0.2.3', '10.240.0.3>02:42:0a:f0:00:03']);
    assert.ok(await ping(a.container, IP_B), 'cA → cB after resync');

    // ensureSegment is idempotent; a device of another VNI is remade; one with a foreign alias is refused.
    const again = await ensureSegment(a.rtnl, spec(a, vtep(1)));
    assert.deepEqual([again.index, again.created, again.mtu], [a.vx, false, 1450]);
    assert.deepEqual(await entries(a), ['02:42:0a:f0:00:03>192.0.2.3', '10.240.0.3>02:42:0a:f0:00:03'], 'an adopted device keeps its entries');
    const other = await ensureSegment(a.rtnl, spec(a, vtep(1), { vni: VNI + 1 }));
    assert.equal(other.created, true);
    assert.notEqual(other.index, a.vx);
    const remade = await a.rtnl.linkByIndex(other.index);
    assert.deepEqual([remade?.vxlan?.vni, remade?.master, remade?.up, remade?.alias], [VNI + 1, a.bridge.index, true, ALIAS]);
    await a.rtnl.setLink(other.index, { alias: 'someone-else' });
    await assert.rejects(ensureSegment(a.rtnl, spec(a, vtep(1))), ConflictError);
    assert.equal(await removeSegment(a.rtnl, NET_ID, ALIAS), false, "another's device is left alone");
    assert.ok(await a.rtnl.linkByName(VX));
    await a.rtnl.setLink(other.index, { alias: ALIAS });
    assert.equal(await removeSegment(a.rtnl, NET_ID, ALIAS), true);
    assert.equal(await a.rtnl.linkByName(VX), undefined);
    assert.equal(await removeSegment(a.rtnl, NET_ID, ALIAS), false);
  } finally {
    await lab.destroy();
  }
});

test('ensureSegment refuses what cannot work, with a clear message, and creates nothing', async () => {
  const lab = new Lab();
  try {
    const { rtnl } = await oneHost(lab, 'opseg', 9000);
    const bridge = await rtnl.createBridge({ name: 'br-ov', up: true });
    const links = async () => (await rtnl.links()).map((l) => l.name).sort();
    const before = await links();

    await assert.rejects(ensureSegment(rtnl, spec({ bridge }, vtep(9))), (e) => e instanceof KernelError && e.errno === 'EADDRNOTAVAIL');
    await assert.rejects(ensureSegment(rtnl, spec({ bridge }, vtep(1), { mtu: 8951 })), (e) => e instanceof InvalidArgumentError && /8951 must be 68-8950/.test(e.message));
    await assert.rejects(ensureSegment(rtnl, spec({ bridge }, vtep(1), { vni: 1 << 24 })), InvalidArgumentError);
    await assert.rejects(ensureSegment(rtnl, spec({ bridge }, vtep(1), { networkId: 'xyz' })), InvalidArgumentError);
    // Another device already carries the VNI on this port and address: the kernel refuses a twin.
    await rtnl.createVxlan({ name: 'theirs', vni: VNI, port: VXLAN_PORT, local: vtep(1) });
    await assert.rejects(ensureSegment(rtnl, spec({ bridge }, vtep(1))), (e) => e instanceof ConflictError && /already used on this host by theirs/.test(e.message));
    assert.deepEqual(await links(), [...before, 'theirs'].sort());

    // A jumbo underlay: the MTU follows it, or what is asked for below it.
    const seg = await ensureSegment(rtnl, spec({ bridge }, vtep(1), { vni: VNI + 1 }));
    assert.equal(seg.mtu, 8950);
    const smaller = await ensureSegment(rtnl, spec({ bridge }, vtep(1), { vni: VNI + 1, mtu: 1400 }));
    assert.deepEqual([smaller.index, smaller.created, smaller.mtu, (await rtnl.linkByIndex(seg.index))?.mtu], [seg.index, false, 1400, 1400]);
  } finally {
    await lab.destroy();
  }
});
