// PeerTable's logic against a fake kernel that keeps a vxlan device's two tables the way the kernel does
// (an FDB entry per MAC with a list of remotes, replace rewriting the first; neighbour entries per IP): which
// requests set/remove/resync send, and what the tables hold afterwards. The real kernel:
// test/integration/overlay-peers.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError, KernelError } from '../../src/errors.js';
import { IPAddress, MAC } from '../../src/net/index.js';
import type { FdbInfo, NeighbourInfo } from '../../src/kernel/rtnetlink.js';
import { PeerTable, type Peer, type PeerKernel } from '../../src/drivers/overlay/peer-table.js';
import { desiredEntries, planResync } from '../../src/drivers/overlay/peer.js';
import { vxlanName } from '../../src/drivers/overlay/vxlan-segment.js';

const IFINDEX = 7;
const ip = (s: string) => IPAddress.parse(s);
const mac = (s: string) => MAC.parse(s);

class FakeKernel implements PeerKernel {
  readonly fdbTable = new Map<string, { dsts: string[]; permanent: boolean; self: boolean }>();
  readonly neighTable = new Map<string, { mac: string; permanent: boolean }>();
  readonly calls: string[] = [];
  /** Fails the next call whose description starts with this, once. */
  failNext: string | undefined;

  private async step(what: string): Promise<void> {
    // Writes take longer than deletes and dumps, so requests of overlapping calls would land out of order.
    for (let i = what.includes('+') ? 3 : 1; i > 0; i--) await new Promise((r) => setImmediate(r));
    if (this.failNext && what.startsWith(this.failNext)) {
      this.failNext = undefined;
      throw new KernelError(what, 'EIO', 'injected');
    }
    this.calls.push(what);
  }

  async replaceFdb(e: { ifindex: number; mac: MAC; dst: IPAddress }): Promise<void> {
    assert.equal(e.ifindex, IFINDEX);
    await this.step(`fdb+ ${e.mac} ${e.dst}`);
    const cur = this.fdbTable.get(String(e.mac));
    if (cur?.self) cur.dsts[0] = String(e.dst);
    else this.fdbTable.set(String(e.mac), { dsts: [String(e.dst)], permanent: true, self: true });
  }

  async deleteFdb(e: { ifindex: number; mac: MAC; dst?: IPAddress }): Promise<boolean> {
    await this.step(`fdb- ${e.mac}${e.dst ? ` ${e.dst}` : ''}`);
    const cur = this.fdbTable.get(String(e.mac));
    if (!cur) return false;
    if (e.dst) cur.dsts = cur.dsts.filter((d) => d !== String(e.dst));
    if (!e.dst || cur.dsts.length === 0) this.fdbTable.delete(String(e.mac));
    return true;
  }

  async fdb(ifindex: number): Promise<FdbInfo[]> {
    await this.step('dump fdb');
    return [...this.fdbTable].flatMap(([m, e]): FdbInfo[] =>
      e.self ? e.dsts.map((d) => ({ ifindex, mac: m, dst: ip(d), state: e.permanent ? 0xc0 : 0x02, permanent: e.permanent, self: true })) : [{ ifindex, mac: m, state: 0x80, permanent: true, self: false, master: 3 }],
    );
  }

  async replaceNeighbour(e: { ifindex: number; address: IPAddress; mac: MAC }): Promise<void> {
    await this.step(`ip+ ${e.address} ${e.mac}`);
    this.neighTable.set(String(e.address), { mac: String(e.mac), permanent: true });
  }

  async deleteNeighbour(e: { ifindex: number; address: IPAddress }): Promise<boolean> {
    await this.step(`ip- ${e.address}`);
    return this.neighTable.delete(String(e.address));
  }

  async neighbours(family: 4 | 6, ifindex: number): Promise<NeighbourInfo[]> {
    await this.step(`dump ip${family}`);
    return [...this.neighTable]
      .filter(([a]) => ip(a).family === family)
      .map(([a, n]) => ({ ifindex, address: ip(a), mac: n.mac, state: n.permanent ? 0x80 : 0x40, permanent: n.permanent }));
  }

  /** The tables as `mac>dst` and `ip>mac` lines, sorted. */
  state(): string[] {
    const fdb = [...this.fdbTable].filter(([, e]) => e.self).flatMap(([m, e]) => e.dsts.map((d) => `${m}>${d}`));
    const neigh = [...this.neighTable].filter(([, n]) => n.permanent).map(([a, n]) => `${a}>${n.mac}`);
    return [...fdb, ...neigh].sort();
  }

  take(): string[] {
    return this.calls.splice(0).sort();
  }
}

const A: Peer = { endpointId: 'ep-a', ip4: ip('10.240.0.3'), mac: mac('02:42:0a:f0:00:03'), vtep: ip('192.0.2.2') };
const B: Peer = { endpointId: 'ep-b', ip4: ip('10.240.0.4'), ip6: ip('fd00:240::4'), mac: mac('02:42:0a:f0:00:04'), vtep: ip('192.0.2.3') };

function setup(): { k: FakeKernel; t: PeerTable } {
  const k = new FakeKernel();
  return { k, t: new PeerTable(k, IFINDEX) };
}

test('set: 2 requests (3 with an IPv6 address), no dump; again: the same replaces, nothing deleted', async () => {
  const { k, t } = setup();
  await t.set(A);
  assert.deepEqual(k.take(), ['fdb+ 02:42:0a:f0:00:03 192.0.2.2', 'ip+ 10.240.0.3 02:42:0a:f0:00:03']);
  await t.set(B);
  assert.deepEqual(k.take(), ['fdb+ 02:42:0a:f0:00:04 192.0.2.3', 'ip+ 10.240.0.4 02:42:0a:f0:00:04', 'ip+ fd00:240::4 02:42:0a:f0:00:04']);
  await t.set({ ...A });
  assert.deepEqual(k.take(), ['fdb+ 02:42:0a:f0:00:03 192.0.2.2', 'ip+ 10.240.0.3 02:42:0a:f0:00:03']);
  assert.equal(t.size, 2);
  assert.deepEqual(k.state(), ['02:42:0a:f0:00:03>192.0.2.2', '02:42:0a:f0:00:04>192.0.2.3', '10.240.0.3>02:42:0a:f0:00:03', '10.240.0.4>02:42:0a:f0:00:04', 'fd00:240::4>02:42:0a:f0:00:04']);
});

test("set: a host's new VTEP rewrites the FDB entry in place (one replace, never a second remote, no delete)", async () => {
  const { k, t } = setup();
  await t.set(A);
  k.take();
  await t.set({ ...A, vtep: ip('192.0.2.9') });
  assert.deepEqual(k.take(), ['fdb+ 02:42:0a:f0:00:03 192.0.2.9', 'ip+ 10.240.0.3 02:42:0a:f0:00:03']);
  assert.deepEqual(k.state(), ['02:42:0a:f0:00:03>192.0.2.9', '10.240.0.3>02:42:0a:f0:00:03']);
});

test('set: an endpoint with a new MAC and address loses its old entries (FDB deleted by MAC, without a remote)', async () => {
  const { k, t } = setup();
  await t.set(A);
  k.take();
  await t.set({ ...A, mac: mac('02:42:0a:f0:00:33'), ip4: ip('10.240.0.33'), ip6: ip('fd00:240::33') });
  assert.deepEqual(k.take(), [
    'fdb+ 02:42:0a:f0:00:33 192.0.2.2',
    'fdb- 02:42:0a:f0:00:03',
    'ip+ 10.240.0.33 02:42:0a:f0:00:33',
    'ip+ fd00:240::33 02:42:0a:f0:00:33',
    'ip- 10.240.0.3',
  ]);
  assert.deepEqual(k.state(), ['02:42:0a:f0:00:33>192.0.2.2', '10.240.0.33>02:42:0a:f0:00:33', 'fd00:240::33>02:42:0a:f0:00:33']);
});

test('remove: deletes its entries; a MAC or IP another peer claims goes back to that peer instead', async () => {
  const { k, t } = setup();
  await t.set(A);
  // B' takes over A's address (A's removal not seen yet) and, oddly, its MAC, from another host.
  const B2: Peer = { endpointId: 'ep-b2', ip4: A.ip4, mac: A.mac, vtep: ip('192.0.2.5') };
  await t.set(B2);
  assert.deepEqual(k.state(), ['02:42:0a:f0:00:03>192.0.2.5', '10.240.0.3>02:42:0a:f0:00:03']);
  k.take();
  assert.equal(await t.remove('ep-b2'), true);
  assert.deepEqual(k.take(), ['fdb+ 02:42:0a:f0:00:03 192.0.2.2', 'ip+ 10.240.0.3 02:42:0a:f0:00:03'], 'given back to A, not deleted');
  assert.equal(await t.remove('ep-a'), true);
  assert.deepEqual(k.take(), ['fdb- 02:42:0a:f0:00:03', 'ip- 10.240.0.3']);
  assert.deepEqual(k.state(), []);
  assert.equal(await t.remove('ep-a'), false);
  assert.deepEqual(k.take(), [], 'an unknown endpoint costs nothing');
});

test('a failed request is typed and its entry is re-applied by the next call', async () => {
  const { k, t } = setup();
  await t.set(A);
  k.failNext = 'fdb-';
  await assert.rejects(t.remove('ep-a'), (e) => e instanceof KernelError && e.errno === 'EIO');
  assert.deepEqual(k.state(), ['02:42:0a:f0:00:03>192.0.2.2']);
  k.take();
  await t.set(B);
  assert.ok(k.take().includes('fdb- 02:42:0a:f0:00:03'), 'the pending delete is retried');
  assert.deepEqual(k.state().filter((s) => s.includes(':03')), []);
});

test('calls are serialised: a set and a remove issued together never interleave', async () => {
  const { k, t } = setup();
  const moved = { ...A, mac: mac('02:42:0a:f0:00:13') };
  await Promise.all([t.set(A), t.set(moved), t.remove('ep-a'), t.set(B)]);
  assert.deepEqual(k.calls.slice(0, 2).sort(), ['fdb+ 02:42:0a:f0:00:03 192.0.2.2', 'ip+ 10.240.0.3 02:42:0a:f0:00:03']);
  assert.deepEqual(k.calls.slice(2, 5).sort(), ['fdb+ 02:42:0a:f0:00:13 192.0.2.2', 'fdb- 02:42:0a:f0:00:03', 'ip+ 10.240.0.3 02:42:0a:f0:00:13']);
  assert.deepEqual(k.calls.slice(5, 7).sort(), ['fdb- 02:42:0a:f0:00:13', 'ip- 10.240.0.3']);
  assert.deepEqual(k.state(), ['02:42:0a:f0:00:04>192.0.2.3', '10.240.0.4>02:42:0a:f0:00:04', 'fd00:240::4>02:42:0a:f0:00:04']);
});

test('bad peers are refused before anything is sent', async () => {
  const { k, t } = setup();
  const bad: unknown[] = [
    { ...A, endpointId: '' },
    { ...A, mac: '02:42:0a:f0:00:03' },
    { ...A, vtep: '192.0.2.2' },
    { ...A, vtep: IPAddress.unspecified(4) },
    { ...A, ip4: ip('fd00::1') },
    { ...A, ip6: ip('10.0.0.1') },
    null,
  ];
  for (const p of bad) {
    await assert.rejects(t.set(p as Peer), InvalidArgumentError, JSON.stringify(p));
    await assert.rejects(t.resync([A, p as Peer]), InvalidArgumentError);
  }
  assert.deepEqual(k.calls, []);
  assert.equal(t.size, 0);
});

test('planResync: deletes what no peer explains, writes what is missing or different, leaves the rest alone', () => {
  const desired = desiredEntries([A, B]);
  const fdb: FdbInfo[] = [
    { ifindex: IFINDEX, mac: '02:42:0a:f0:00:03', dst: ip('192.0.2.2'), state: 0xc0, permanent: true, self: true }, // right: kept, not rewritten
    { ifindex: IFINDEX, mac: '02:42:0a:f0:00:03', dst: ip('192.0.2.8'), state: 0xc0, permanent: true, self: true }, // an extra remote of A's MAC (the kernel keeps one per unicast MAC; handled anyway)
    { ifindex: IFINDEX, mac: '02:42:0a:f0:00:04', dst: ip('192.0.2.2'), state: 0xc0, permanent: true, self: true }, // B's MAC at an old VTEP
    { ifindex: IFINDEX, mac: '02:42:0a:f0:00:99', dst: ip('192.0.2.2'), state: 0xc0, permanent: true, self: true }, // nobody's
    { ifindex: IFINDEX, mac: '00:00:00:00:00:00', dst: ip('192.0.2.2'), state: 0xc0, permanent: true, self: true }, // default destination: not an endpoint's
    { ifindex: IFINDEX, mac: '01:00:5e:00:00:01', dst: ip('192.0.2.2'), state: 0xc0, permanent: true, self: true }, // multicast
    { ifindex: IFINDEX, mac: '02:42:0a:f0:00:98', state: 0x80, permanent: true, self: false, master: 3 }, // the bridge's entry for the port
    { ifindex: IFINDEX, mac: '02:42:0a:f0:00:97', dst: ip('192.0.2.2'), state: 0x80, permanent: true, self: false, master: 3 }, // not the device's own table
  ];
  const neighbours: NeighbourInfo[] = [
    { ifindex: IFINDEX, address: ip('10.240.0.3'), mac: '02:42:0a:f0:00:03', state: 0x80, permanent: true }, // right
    { ifindex: IFINDEX, address: ip('10.240.0.4'), mac: '02:42:0a:f0:00:99', state: 0x80, permanent: true }, // wrong MAC
    { ifindex: IFINDEX, address: ip('10.240.0.99'), mac: '02:42:0a:f0:00:99', state: 0x80, permanent: true }, // stale
    { ifindex: IFINDEX, address: ip('ff02::1'), mac: '33:33:00:00:00:01', state: 0x40, permanent: false }, // the kernel's own
  ];
  const plan = planResync(desired, fdb, neighbours);
  const text = (xs: object[]) => xs.map((x) => Object.values(x).map(String).join(' ')).sort();
  assert.deepEqual(text(plan.deleteFdb), ['02:42:0a:f0:00:03 192.0.2.8', '02:42:0a:f0:00:04 192.0.2.2', '02:42:0a:f0:00:99 192.0.2.2']);
  assert.deepEqual(plan.deleteNeighbours.map(String), ['10.240.0.99']);
  assert.deepEqual(text(plan.writeFdb), ['02:42:0a:f0:00:04 192.0.2.3']);
  assert.deepEqual(text(plan.writeNeighbours), ['10.240.0.4 02:42:0a:f0:00:04', 'fd00:240::4 02:42:0a:f0:00:04']);
});

test('resync: the kernel ends up holding exactly the peers, whatever it held; the table is replaced', async () => {
  const { k, t } = setup();
  await t.set({ ...A, endpointId: 'gone', mac: mac('02:42:0a:f0:00:77'), ip4: ip('10.240.0.77') });
  k.fdbTable.set('02:42:0a:f0:00:03', { dsts: ['192.0.2.8', '192.0.2.2'], permanent: true, self: true });
  k.fdbTable.set('02:42:0a:f0:00:98', { dsts: [], permanent: true, self: false });
  k.neighTable.set('10.240.0.4', { mac: '02:42:0a:f0:00:99', permanent: true });
  k.neighTable.set('ff02::1', { mac: '33:33:00:00:00:01', permanent: false });
  k.take();
  const report = await t.resync([A, B]);
  assert.deepEqual(report, { deletedFdb: 2, deletedNeighbours: 1, written: 4 });
  assert.deepEqual(k.state(), ['02:42:0a:f0:00:03>192.0.2.2', '02:42:0a:f0:00:04>192.0.2.3', '10.240.0.3>02:42:0a:f0:00:03', '10.240.0.4>02:42:0a:f0:00:04', 'fd00:240::4>02:42:0a:f0:00:04']);
  assert.ok(k.fdbTable.has('02:42:0a:f0:00:98') && k.neighTable.has('ff02::1'), "the bridge's and the kernel's own entries stay");
  assert.deepEqual(t.list().map((p) => p.endpointId), ['ep-a', 'ep-b']);
  k.take();
  assert.deepEqual(await t.resync([A, B]), { deletedFdb: 0, deletedNeighbours: 0, written: 0 }, 'a second resync finds nothing to do');
  assert.deepEqual(k.take(), ['dump fdb', 'dump ip4', 'dump ip6']);
});

test('vxlanName: vx- and 12 characters of the network id; anything else is refused', () => {
  assert.equal(vxlanName('0123456789abcdef0123'), 'vx-0123456789ab');
  for (const bad of ['', 'short', 'ZZZZZZZZZZZZZZ', '../../etc/pas', undefined]) assert.throws(() => vxlanName(bad as string), InvalidArgumentError);
});
