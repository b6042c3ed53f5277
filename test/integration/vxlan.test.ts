/**
 * The overlay's kernel layer against the real kernel: vxlan links, vxlan FDB entries and permanent
 * neighbour entries written by Rtnl, checked with iproute2 (`ip -j`, `bridge -j`) as the oracle and with
 * traffic between two "containers" on two "hosts".
 *
 * Topology (every namespace made here, deleted at the end, also on failure):
 *
 *   c1 (10.240.0.2) ─veth─ h1: br-ov + nv-42 (local 192.0.2.1) ═u0═ h2: br-ov + nv-42 (local 192.0.2.2) ─veth─ c2 (10.240.0.3)
 *
 * The bridges have no address. Each host gets, for the remote container, an FDB entry (its MAC → the
 * remote VTEP) and a permanent neighbour entry (its IP → its MAC) on the vxlan device, which has learning
 * off and proxy (ARP suppression) on: the container's ARP request is answered by the local vxlan device
 * from that entry, and no all-zeros FDB entry exists, so nothing is ever flooded to the other host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { KernelError } from '../../src/errors.js';
import { IPAddress, MAC } from '../../src/net/index.js';
import { VXLAN_OVERHEAD_V4, type Link, type Rtnl } from '../../src/kernel/rtnetlink.js';
import { requireRoot, type TestNetns } from '../helpers/netns.js';
import { serve } from '../helpers/traffic.js';
import { FIXTURES, Lab, addContainer, json, oneHost, ping, tcpGet, underlayHosts } from '../helpers/underlay.js';

requireRoot();

const VNI = 42;
const PORT = 4789;
const BR = 'br-ov';
const VX = 'nv-42';
const UNDERLAY_MTU = 1500;
const OVERLAY_MTU = UNDERLAY_MTU - VXLAN_OVERHEAD_V4;
const MAC_C1 = MAC.parse('02:42:0a:f0:00:02');
const MAC_C2 = MAC.parse('02:42:0a:f0:00:03');
const IP_C1 = IPAddress.parse('10.240.0.2');
const IP_C2 = IPAddress.parse('10.240.0.3');

interface IpLinkJson {
  ifname: string;
  mtu: number;
  master?: string;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number; local?: string; learning?: boolean; proxy?: boolean; link?: string } };
  stats64?: { tx: { packets: number; dropped: number } };
}
interface FdbJson {
  mac: string;
  dst?: string;
  flags: string[];
  master?: string;
  state?: string;
}
interface NeighJson {
  dst: string;
  lladdr?: string;
  state: string[];
}

interface Host {
  ns: TestNetns;
  rtnl: Rtnl;
  container: TestNetns;
  bridge: Link;
  underlay: Link;
  vxlan?: Link;
}

/** Two hosts joined by the underlay (u0, 192.0.2.1/24 and 192.0.2.2/24), each with a bridge and one container on it. */
async function twoHosts(lab: Lab): Promise<[Host, Host]> {
  const hosts: Host[] = [];
  for (const [i, h] of (await underlayHosts(lab, 'vx', UNDERLAY_MTU)).entries()) {
    const bridge = await h.rtnl.createBridge({ name: BR, mtu: OVERLAY_MTU, up: true });
    const container = await addContainer(lab, h, {
      tag: `vxc${i + 1}`,
      veth: `vc${i + 1}`,
      bridge: bridge.index,
      mtu: OVERLAY_MTU,
      mac: i === 0 ? MAC_C1 : MAC_C2,
      cidr: `${i === 0 ? IP_C1 : IP_C2}/24`,
    });
    hosts.push({ ...h, container, bridge });
  }
  return hosts as [Host, Host];
}

/** The host's vxlan device for VNI 42, as the overlay driver will make it. */
async function makeVxlan(host: Host, local: string): Promise<Link> {
  host.vxlan = await host.rtnl.createVxlan({
    name: VX,
    vni: VNI,
    port: PORT,
    local: IPAddress.parse(local),
    learning: false,
    proxy: true,
    underlay: host.underlay.index,
    mtu: host.underlay.mtu - VXLAN_OVERHEAD_V4,
    master: host.bridge.index,
    up: true,
    alias: 'netd:overlay',
  });
  return host.vxlan;
}

/** The remote container's two entries on this host: FDB (MAC → VTEP) and permanent neighbour (IP → MAC). */
async function program(host: Host, remote: { mac: MAC; ip: IPAddress; vtep: string }): Promise<void> {
  const ifindex = host.vxlan!.index;
  await host.rtnl.replaceFdb({ ifindex, mac: remote.mac, dst: IPAddress.parse(remote.vtep) });
  await host.rtnl.replaceNeighbour({ ifindex, address: remote.ip, mac: remote.mac });
}

async function vxlanJson(host: Host): Promise<IpLinkJson> {
  const [l] = await json<IpLinkJson[]>(host.ns, ['ip', '-d', '-s', '-j', 'link', 'show', VX]);
  return l;
}

async function fdbJson(host: Host): Promise<FdbJson[]> {
  return json<FdbJson[]>(host.ns, ['bridge', '-j', 'fdb', 'show', 'dev', VX]);
}

test('overlay over vxlan: two hosts, static FDB + permanent neighbour entries, learning off; ping and TCP; a moved VTEP is replaced, never added', async () => {
  const lab = new Lab();
  try {
    const [h1, h2] = await twoHosts(lab);
    const vx1 = await makeVxlan(h1, '192.0.2.1');
    const vx2 = await makeVxlan(h2, '192.0.2.2');

    // Read back as a restart would check it.
    assert.deepEqual(vx1, {
      index: vx1.index,
      name: VX,
      kind: 'vxlan',
      master: h1.bridge.index,
      up: true,
      mtu: OVERLAY_MTU,
      mac: vx1.mac,
      alias: 'netd:overlay',
      vxlan: { vni: VNI, port: PORT, local: IPAddress.parse('192.0.2.1'), learning: false, proxy: true, l2miss: false, l3miss: false, underlay: h1.underlay.index },
    });
    assert.deepEqual(await h1.rtnl.linkByIndex(vx1.index), vx1);
    assert.equal(vx2.vxlan?.local?.toString(), '192.0.2.2');

    // iproute2 agrees.
    const seen = await vxlanJson(h1);
    assert.equal(seen.linkinfo?.info_kind, 'vxlan');
    assert.equal(seen.linkinfo?.info_data?.id, VNI);
    assert.equal(seen.linkinfo?.info_data?.port, PORT);
    assert.equal(seen.linkinfo?.info_data?.local, '192.0.2.1');
    assert.equal(seen.linkinfo?.info_data?.learning, false);
    assert.equal(seen.linkinfo?.info_data?.proxy, true);
    assert.equal(seen.linkinfo?.info_data?.link, 'u0');
    assert.equal(seen.master, BR);
    assert.equal(seen.mtu, OVERLAY_MTU);
    assert.ok(seen.flags.includes('UP'));

    await program(h1, { mac: MAC_C2, ip: IP_C2, vtep: '192.0.2.2' });
    await program(h2, { mac: MAC_C1, ip: IP_C1, vtep: '192.0.2.1' });

    for (const h of [h1, h2]) {
      const fdb = await fdbJson(h);
      assert.equal(fdb.filter((e) => e.mac === '00:00:00:00:00:00').length, 0, 'no all-zeros (flood) entry');
      const self = fdb.filter((e) => e.flags.includes('self'));
      assert.equal(self.length, 1, JSON.stringify(fdb));
      assert.equal(self[0].state, 'permanent');
      const neigh = await json<NeighJson[]>(h.ns, ['ip', '-j', 'neigh', 'show', 'dev', VX]);
      assert.equal(neigh.length, 1);
      assert.deepEqual(neigh[0].state, ['PERMANENT']);
    }
    assert.deepEqual(
      (await fdbJson(h1)).filter((e) => e.flags.includes('self')).map((e) => [e.mac, e.dst]),
      [['02:42:0a:f0:00:03', '192.0.2.2']],
    );
    assert.deepEqual(await h1.rtnl.neighbours(4, vx1.index), [{ ifindex: vx1.index, address: IP_C2, mac: '02:42:0a:f0:00:03', state: 0x80, permanent: true }]);

    // Traffic across the overlay: ARP answered locally by the vxlan device (proxy), ping, full-size ping, TCP.
    assert.ok(await ping(h1.container, IP_C2), 'c1 → c2 ping over vxlan');
    assert.ok(await ping(h2.container, IP_C1), 'c2 → c1 ping over vxlan');
    const arp = await json<NeighJson[]>(h1.container, ['ip', '-j', 'neigh', 'show', String(IP_C2)]);
    assert.equal(arp[0]?.lladdr, '02:42:0a:f0:00:03', 'c1 resolved c2 to its real MAC');
    assert.ok(await ping(h1.container, IP_C2, ['-M', 'do', '-s', String(OVERLAY_MTU - 28)]), 'a full overlay-MTU packet passes unfragmented');
    assert.equal(await ping(h1.container, IP_C2, ['-M', 'do', '-s', String(OVERLAY_MTU - 27)]), false, 'one byte more does not');
    lab.processes.push(await serve(['ip', 'netns', 'exec', h2.container.name, 'node', join(FIXTURES, 'tcp-whoami.cjs'), String(IP_C2), '8080']));
    assert.equal(await tcpGet(h1.container, IP_C2, 8080), String(IP_C1));

    // No flooding: an ARP request for an address nobody programmed leaves nothing on the wire.
    const before = (await vxlanJson(h1)).stats64!.tx;
    assert.equal(await ping(h1.container, IPAddress.parse('10.240.0.99')), false);
    const after = (await vxlanJson(h1)).stats64!.tx;
    assert.equal(after.packets, before.packets, 'nothing encapsulated for an unknown address');
    assert.ok(after.dropped > before.dropped, 'the broadcast was dropped by the vxlan device');

    // Host 2 moves: new underlay address, vxlan recreated with it (a restart's "incompatible: recreate").
    await h2.rtnl.deleteLink(vx2.index);
    await h2.ns.exec(['ip', 'addr', 'del', '192.0.2.2/24', 'dev', 'u0']);
    await h2.ns.exec(['ip', 'addr', 'add', '192.0.2.3/24', 'dev', 'u0']);
    const vx2b = await makeVxlan(h2, '192.0.2.3');
    assert.equal(vx2b.vxlan?.local?.toString(), '192.0.2.3');
    await program(h2, { mac: MAC_C1, ip: IP_C1, vtep: '192.0.2.1' });
    assert.equal(await ping(h1.container, IP_C2), false, 'h1 still sends to the old VTEP');

    // Replace, never only add: one message rewrites the remote of the existing entry.
    await h1.rtnl.replaceFdb({ ifindex: vx1.index, mac: MAC_C2, dst: IPAddress.parse('192.0.2.3') });
    const forC2 = (await fdbJson(h1)).filter((e) => e.mac === '02:42:0a:f0:00:03' && e.flags.includes('self'));
    assert.deepEqual(
      forC2.map((e) => [e.dst, e.state]),
      [['192.0.2.3', 'permanent']],
      'exactly one entry for the MAC, with the new VTEP',
    );
    const listed = (await h1.rtnl.fdb(vx1.index)).filter((e) => e.self);
    assert.deepEqual(
      listed.map((e) => [e.mac, String(e.dst), e.permanent]),
      [['02:42:0a:f0:00:03', '192.0.2.3', true]],
    );
    assert.ok(await ping(h1.container, IP_C2), 'c1 → c2 after the VTEP moved');
    assert.equal(await tcpGet(h1.container, IP_C2, 8080), String(IP_C1));
    assert.equal((await vxlanJson(h2)).linkinfo?.info_data?.learning, false);
  } finally {
    await lab.destroy();
  }
});

test('FDB and neighbour entries: replace is idempotent and overwrites, delete reports absence, lists are per device', async () => {
  const lab = new Lab();
  try {
    const { ns, rtnl, underlay: u0 } = await oneHost(lab, 'vxapi', 9000);
    const br = await rtnl.createBridge({ name: BR, up: true });

    // Without an MTU, with an underlay device: the kernel gives underlay MTU − 50. Without one it leaves
    // Ethernet's 1500, too big for a 1500 underlay: netd must set the MTU itself then.
    const a = await rtnl.createVxlan({ name: 'nv-a', vni: 100, port: PORT, local: IPAddress.parse('192.0.2.1'), underlay: u0.index, master: br.index, up: true });
    assert.equal(a.mtu, 9000 - 50);
    assert.equal(a.vxlan?.learning, false);
    assert.equal(a.vxlan?.proxy, false);
    const b = await rtnl.createVxlan({ name: 'nv-b', vni: 101, port: PORT, local: IPAddress.parse('192.0.2.1') });
    assert.equal(b.mtu, 1500);
    assert.equal(b.up, false);
    assert.equal(b.master, undefined);
    assert.equal(b.vxlan?.underlay, undefined);

    // Typed refusals.
    await assert.rejects(rtnl.createVxlan({ name: 'nv-a', vni: 102, port: PORT, local: IPAddress.parse('192.0.2.1') }), (e) => e instanceof KernelError && e.errno === 'EEXIST' && e.op === 'create vxlan nv-a');
    await assert.rejects(rtnl.createVxlan({ name: 'nv-c', vni: 100, port: PORT, local: IPAddress.parse('192.0.2.1') }), (e) => e instanceof KernelError && e.errno === 'EEXIST', 'same VNI, port and local as nv-a');
    // An MTU above underlay − 50 is clamped silently at creation, and refused (EINVAL) when set later.
    const d = await rtnl.createVxlan({ name: 'nv-d', vni: 103, port: PORT, local: IPAddress.parse('192.0.2.1'), underlay: u0.index, mtu: 9000 });
    assert.equal(d.mtu, 9000 - 50);
    await assert.rejects(rtnl.setLink(d.index, { mtu: 9000 }), (e) => e instanceof KernelError && e.errno === 'EINVAL');
    await rtnl.deleteLink(d.index);
    await assert.rejects(rtnl.replaceFdb({ ifindex: 999, mac: MAC_C2, dst: IPAddress.parse('192.0.2.2') }), (e) => e instanceof KernelError && e.errno === 'ENODEV');

    const vtep = (n: number) => IPAddress.parse(`192.0.2.${n}`);
    await rtnl.replaceFdb({ ifindex: a.index, mac: MAC_C2, dst: vtep(2) });
    await rtnl.replaceFdb({ ifindex: a.index, mac: MAC_C2, dst: vtep(2) }); // again: no error, still one
    await rtnl.replaceFdb({ ifindex: a.index, mac: MAC_C1, dst: vtep(4) });
    await rtnl.replaceFdb({ ifindex: b.index, mac: MAC_C1, dst: vtep(5) });
    const selfOf = async (idx: number) => (await rtnl.fdb(idx)).filter((e) => e.self).map((e) => `${e.mac}>${e.dst}`).sort();
    assert.deepEqual(await selfOf(a.index), ['02:42:0a:f0:00:02>192.0.2.4', '02:42:0a:f0:00:03>192.0.2.2']);
    assert.deepEqual(await selfOf(b.index), ['02:42:0a:f0:00:02>192.0.2.5']);
    // The bridge's own entry for its port nv-a (its MAC, master) comes with the port's list, flagged self: false.
    assert.ok((await rtnl.fdb(a.index)).every((e) => e.ifindex === a.index));

    await rtnl.replaceFdb({ ifindex: a.index, mac: MAC_C2, dst: vtep(3) });
    assert.deepEqual(await selfOf(a.index), ['02:42:0a:f0:00:02>192.0.2.4', '02:42:0a:f0:00:03>192.0.2.3']);

    // Delete naming a stale remote: the kernel answers success and deletes nothing (__vxlan_fdb_delete
    // returns 0 when the MAC exists but not that remote). With the right remote, or none: gone.
    assert.equal(await rtnl.deleteFdb({ ifindex: a.index, mac: MAC_C2, dst: vtep(2) }), true);
    assert.deepEqual(await selfOf(a.index), ['02:42:0a:f0:00:02>192.0.2.4', '02:42:0a:f0:00:03>192.0.2.3']);
    assert.equal(await rtnl.deleteFdb({ ifindex: a.index, mac: MAC_C2, dst: vtep(3) }), true);
    assert.equal(await rtnl.deleteFdb({ ifindex: a.index, mac: MAC_C1 }), true);
    assert.equal(await rtnl.deleteFdb({ ifindex: a.index, mac: MAC_C1 }), false);
    assert.deepEqual(await selfOf(a.index), []);
    assert.deepEqual(await selfOf(b.index), ['02:42:0a:f0:00:02>192.0.2.5']);

    // Neighbours, IPv4 and IPv6: replace overwrites the MAC; delete; per-link lists.
    const v6 = IPAddress.parse('fd00:240::3');
    await rtnl.replaceNeighbour({ ifindex: a.index, address: IP_C2, mac: MAC_C1 });
    await rtnl.replaceNeighbour({ ifindex: a.index, address: IP_C2, mac: MAC_C2 });
    await rtnl.replaceNeighbour({ ifindex: a.index, address: v6, mac: MAC_C2 });
    await rtnl.replaceNeighbour({ ifindex: b.index, address: IP_C1, mac: MAC_C1 });
    assert.deepEqual(await rtnl.neighbours(4, a.index), [{ ifindex: a.index, address: IP_C2, mac: '02:42:0a:f0:00:03', state: 0x80, permanent: true }]);
    // (The kernel keeps NOARP entries of its own for the multicast groups an up device joins, ff02::….)
    const v6Entries = await rtnl.neighbours(6, a.index);
    assert.ok(v6Entries.filter((n) => !n.permanent).every((n) => String(n.address).startsWith('ff02:')), JSON.stringify(v6Entries));
    assert.deepEqual(
      v6Entries.filter((n) => n.permanent),
      [{ ifindex: a.index, address: v6, mac: '02:42:0a:f0:00:03', state: 0x80, permanent: true }],
    );
    const oracle = await json<NeighJson[]>(ns, ['ip', '-j', 'neigh', 'show', 'dev', 'nv-a']);
    assert.deepEqual(
      oracle.map((n) => [n.dst, n.lladdr, n.state]).sort(),
      [
        ['10.240.0.3', '02:42:0a:f0:00:03', ['PERMANENT']],
        ['fd00:240::3', '02:42:0a:f0:00:03', ['PERMANENT']],
      ],
    );
    assert.equal(await rtnl.deleteNeighbour({ ifindex: a.index, address: IP_C2 }), true);
    assert.equal(await rtnl.deleteNeighbour({ ifindex: a.index, address: IP_C2 }), false);
    assert.equal(await rtnl.deleteNeighbour({ ifindex: a.index, address: v6 }), true);
    assert.deepEqual(await rtnl.neighbours(4, a.index), []);
    assert.equal((await rtnl.neighbours(4, b.index)).length, 1);
  } finally {
    await lab.destroy();
  }
});
