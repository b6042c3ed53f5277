// The requests netd's overlay sends to the kernel, pinned against what iproute2 6.1 sends for the same
// thing (captured once with `strace -e trace=sendmsg -xx` in a throwaway namespace):
//   ip link add vx42 mtu 1450 master br0 up type vxlan id 42 local 192.0.2.1 dstport 4789 nolearning proxy dev u0
//   bridge fdb replace 02:42:0a:f0:00:03 dev vx42 dst 192.0.2.2 self permanent
//   ip neigh replace 10.240.0.3 lladdr 02:42:0a:f0:00:03 dev vx42 nud permanent
//   bridge fdb del 02:42:0a:f0:00:03 dev vx42 dst 192.0.2.2 self;  ip neigh del 10.240.0.3 dev vx42
// (ifindexes: br0 4, u0 3, vx42 5). The kernel side is test/integration/vxlan.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rt } from 'netlink';
import { InvalidArgumentError } from '../../src/errors.js';
import { IPAddress, MAC } from '../../src/net/index.js';
import { IFF_UP, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_LINKINFO, IFLA_MASTER, IFLA_MTU, toLink } from '../../src/kernel/link-messages.js';
import { fdbDumpPayload, fdbPayload, neighbourDumpPayload, neighbourPayload, toFdbInfo, toNeighbourInfo } from '../../src/kernel/neigh-messages.js';
import { attrMap, decodeAttrs, decodeIfinfomsg, encodeAttr, IFINFOMSG_LEN, nla, read } from '../../src/kernel/nlattr.js';
import { decodeVxlanInfo } from '../../src/kernel/vxlan-info.js';
import { vxlanCreatePayload } from '../../src/kernel/vxlan-messages.js';

/** Hex dump to bytes; whitespace and '# comments' are ignored. */
function hex(s: string): Buffer {
  return Buffer.from(s.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
}

const MAC3 = MAC.parse('02:42:0a:f0:00:03');

/** IFLA_INFO_DATA as iproute2 sent it (its attribute order: PROXY, LINK, ID, LOCAL, LEARNING, PORT). */
const IPROUTE2_VXLAN_DATA = hex(`
  0500 0b00 01 000000        # IFLA_VXLAN_PROXY 1
  0800 0300 03000000         # IFLA_VXLAN_LINK 3 (u0)
  0800 0100 2a000000         # IFLA_VXLAN_ID 42
  0800 0400 c0000201         # IFLA_VXLAN_LOCAL 192.0.2.1
  0500 0700 00 000000        # IFLA_VXLAN_LEARNING 0
  0600 0f00 12b5 0000        # IFLA_VXLAN_PORT 4789, big-endian
`);

/** Attributes as a type → hex map, so two encodings that differ only in attribute order compare equal. */
function attrSet(b: Buffer): Record<number, string> {
  return Object.fromEntries(decodeAttrs(b).map((a) => [a.type, a.value.toString('hex')]));
}

test('vxlan creation payload: what `ip link add … type vxlan … nolearning proxy` sends, attribute for attribute', () => {
  const payload = vxlanCreatePayload({
    name: 'vx42',
    vni: 42,
    port: 4789,
    local: IPAddress.parse('192.0.2.1'),
    learning: false,
    proxy: true,
    underlay: 3,
    mtu: 1450,
    master: 4,
    up: true,
  });
  const ifi = decodeIfinfomsg(payload);
  assert.deepEqual(ifi, { family: 0, type: 0, index: 0, flags: IFF_UP, change: IFF_UP });
  const attrs = decodeAttrs(payload.subarray(IFINFOMSG_LEN));
  assert.deepEqual(
    attrs.map((a) => a.type),
    [IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO],
  );
  const a = attrMap(payload.subarray(IFINFOMSG_LEN));
  assert.equal(read.string(a.get(IFLA_IFNAME)!), 'vx42');
  assert.equal(read.u32(a.get(IFLA_MTU)!), 1450);
  assert.equal(read.u32(a.get(IFLA_MASTER)!), 4);
  const linkinfo = attrMap(a.get(IFLA_LINKINFO)!);
  assert.equal(read.string(linkinfo.get(IFLA_INFO_KIND)!), 'vxlan');
  assert.deepEqual(attrSet(linkinfo.get(IFLA_INFO_DATA)!), attrSet(IPROUTE2_VXLAN_DATA));
  // And byte for byte, in netd's order (ID, LINK, LOCAL, PORT, LEARNING, PROXY).
  assert.deepEqual(
    linkinfo.get(IFLA_INFO_DATA),
    hex(`
      0800 0100 2a000000
      0800 0300 03000000
      0800 0400 c0000201
      0600 0f00 12b5 0000
      0500 0700 00 000000
      0500 0b00 01 000000
    `),
  );
});

test('vxlan payload: learning and proxy default off, IPv6 local goes in IFLA_VXLAN_LOCAL6, MAC pinned', () => {
  const payload = vxlanCreatePayload({ name: 'nv-7', vni: 0xffffff, port: 8472, local: IPAddress.parse('2001:db8::1'), mac: MAC.parse('02:00:00:00:00:07') });
  const a = attrMap(payload.subarray(IFINFOMSG_LEN));
  assert.equal(decodeIfinfomsg(payload).flags, 0);
  assert.equal(a.get(1)?.toString('hex'), '020000000007'); // IFLA_ADDRESS
  assert.equal(a.has(IFLA_MASTER), false);
  const data = attrSet(attrMap(a.get(IFLA_LINKINFO)!).get(IFLA_INFO_DATA)!);
  assert.deepEqual(data, {
    1: 'ffffff00',
    17: '20010db8000000000000000000000001',
    15: '2118', // 8472 big-endian
    7: '00',
    11: '00',
  });
});

test('vxlan payload validation', () => {
  const ok = { name: 'vx0', vni: 42, port: 4789, local: IPAddress.parse('192.0.2.1') };
  assert.doesNotThrow(() => vxlanCreatePayload(ok));
  assert.throws(() => vxlanCreatePayload({ ...ok, vni: 1 << 24 }), InvalidArgumentError);
  assert.throws(() => vxlanCreatePayload({ ...ok, vni: -1 }), InvalidArgumentError);
  assert.throws(() => vxlanCreatePayload({ ...ok, port: 0 }), InvalidArgumentError);
  assert.throws(() => vxlanCreatePayload({ ...ok, port: 65536 }), InvalidArgumentError);
  assert.throws(() => vxlanCreatePayload({ ...ok, local: IPAddress.parse('0.0.0.0') }), InvalidArgumentError);
  assert.throws(() => vxlanCreatePayload({ ...ok, local: '192.0.2.1' as unknown as IPAddress }), InvalidArgumentError);
  assert.throws(() => vxlanCreatePayload({ ...ok, underlay: 0 }), InvalidArgumentError);
  assert.throws(() => vxlanCreatePayload({ ...ok, mtu: 67 }), InvalidArgumentError);
  assert.throws(() => vxlanCreatePayload({ ...ok, name: 'a-name-far-too-long' }), InvalidArgumentError);
});

test('vxlan info decoded from IFLA_INFO_DATA (iproute2 order); a link of kind vxlan carries it', () => {
  assert.deepEqual(decodeVxlanInfo(IPROUTE2_VXLAN_DATA), {
    vni: 42,
    port: 4789,
    local: IPAddress.parse('192.0.2.1'),
    learning: false,
    proxy: true,
    l2miss: false,
    l3miss: false,
    underlay: 3,
  });
  // No PORT attribute: the kernel's default, 8472; no LOCAL: none.
  assert.deepEqual(decodeVxlanInfo(nla.u32(1, 7)), { vni: 7, port: 8472, learning: false, proxy: false, l2miss: false, l3miss: false });
  assert.equal(decodeVxlanInfo(Buffer.from('ffff', 'hex')), undefined);

  const linkinfo = Buffer.concat([nla.string(IFLA_INFO_KIND, 'vxlan'), encodeAttr(IFLA_INFO_DATA, IPROUTE2_VXLAN_DATA)]);
  const link = toLink({ kind: 'link', data: { index: 5, flags: { up: true } }, attrs: { ifname: 'vx42', mtu: 1450, linkinfo } } as rt.LinkMessage);
  assert.equal(link.kind, 'vxlan');
  assert.equal(link.vxlan?.vni, 42);
  assert.equal(link.vxlan?.local?.toString(), '192.0.2.1');
});

test('FDB replace/delete payload: what `bridge fdb replace|del MAC dev vx42 dst 192.0.2.2 self permanent` sends', () => {
  const expected = hex(`
    07 00 0000 05000000 c000 02 00     # ndmsg: AF_BRIDGE, ifindex 5, NUD_NOARP|NUD_PERMANENT, NTF_SELF
    0a00 0200 02420af00003 0000        # NDA_LLADDR
    0800 0100 c0000202                 # NDA_DST 192.0.2.2
  `);
  assert.deepEqual(fdbPayload({ ifindex: 5, mac: MAC3, dst: IPAddress.parse('192.0.2.2') }), expected);
  // Without dst (delete the whole entry, whatever its remotes): the same without NDA_DST.
  assert.deepEqual(fdbPayload({ ifindex: 5, mac: MAC3 }), expected.subarray(0, 24));
  assert.throws(() => fdbPayload({ ifindex: 0, mac: MAC3 }), InvalidArgumentError);
  assert.throws(() => fdbPayload({ ifindex: 5, mac: '02:42:0a:f0:00:03' as unknown as MAC }), InvalidArgumentError);
});

test('neighbour replace/delete payload: what `ip neigh replace|del 10.240.0.3 … nud permanent` sends', () => {
  assert.deepEqual(
    neighbourPayload({ ifindex: 5, address: IPAddress.parse('10.240.0.3'), mac: MAC3 }),
    hex(`
      02 00 0000 05000000 8000 00 00     # ndmsg: AF_INET, ifindex 5, NUD_PERMANENT
      0800 0100 0af00003                 # NDA_DST
      0a00 0200 02420af00003 0000        # NDA_LLADDR
    `),
  );
  assert.deepEqual(neighbourPayload({ ifindex: 5, address: IPAddress.parse('10.240.0.3') }), hex('02 00 0000 05000000 8000 00 00  0800 0100 0af00003'));
  const v6 = neighbourPayload({ ifindex: 9, address: IPAddress.parse('fd00::3'), mac: MAC3 });
  assert.equal(v6[0], 10); // AF_INET6
  assert.equal(v6.subarray(16, 32).toString('hex'), 'fd000000000000000000000000000003');
});

test('dump requests: FDB of one port (ifinfomsg{AF_BRIDGE, ifindex}), neighbours of one link (NDA_IFINDEX)', () => {
  assert.deepEqual(fdbDumpPayload(5), hex('07 00 0000 05000000 00000000 00000000'));
  assert.deepEqual(neighbourDumpPayload(4, 5), hex('02 00 0000 00000000 0000 00 00  0800 0800 05000000'));
});

test('kernel answers decode into FdbInfo and NeighbourInfo (round trip through the package parser)', () => {
  const fdb = rt.parseNeighborMessage(fdbPayload({ ifindex: 5, mac: MAC3, dst: IPAddress.parse('192.0.2.2') }));
  assert.deepEqual(toFdbInfo(fdb), { ifindex: 5, mac: '02:42:0a:f0:00:03', dst: IPAddress.parse('192.0.2.2'), state: 0xc0, permanent: true, self: true });
  const neigh = rt.parseNeighborMessage(neighbourPayload({ ifindex: 5, address: IPAddress.parse('10.240.0.3'), mac: MAC3 }));
  assert.equal(toFdbInfo(neigh), undefined); // not AF_BRIDGE
  assert.deepEqual(toNeighbourInfo(neigh), { ifindex: 5, address: IPAddress.parse('10.240.0.3'), mac: '02:42:0a:f0:00:03', state: 0x80, permanent: true });
  assert.equal(toNeighbourInfo(fdb), undefined);
});
