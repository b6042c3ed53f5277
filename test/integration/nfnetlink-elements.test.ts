/**
 * NfnetlinkElementWriter against the kernel, in throwaway namespaces: the same elements written by the
 * writer (in one namespace) and by `nft -f` (in another) give the same `nft -j list set`; a failing change
 * rolls the whole apply back; 10000 elements go in one apply; hostile values never reach the kernel.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { InvalidArgumentError, KernelError } from '../../src/errors.js';
import { IPAddress } from '../../src/net/index.js';
import { Netns } from '../../src/kernel/netns.js';
import { NfnetlinkElementWriter } from '../../src/firewall/nft-netlink-elements.js';
import type { NftElement, NftField, NftSetChange } from '../../src/firewall/nft-elements.js';
import { requireRoot, TestNetns } from '../helpers/netns.js';

requireRoot();

const RULESET = `table inet t {
  map dnat4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
  set ranges { type inet_proto . inet_service; flags interval; }
  map ranges4 { type inet_proto . inet_service : ipv4_addr . inet_service; flags interval; }
  map dnat6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
  set ports { type inet_service; }
}
`;

const v4 = (a: string): NftField => ({ type: 'ipv4_addr', value: IPAddress.parse(a) });
const v6 = (a: string): NftField => ({ type: 'ipv6_addr', value: IPAddress.parse(a) });
const proto = (p: number): NftField => ({ type: 'inet_proto', value: p });
const port = (p: number): NftField => ({ type: 'inet_service', value: p });

/** The element as `nft` syntax: what a script writer renders. */
function render(e: NftElement): string {
  const key = e.key.map((x, i) => (e.keyEnd && e.keyEnd[i].value !== x.value ? `${x.value}-${e.keyEnd[i].value}` : String(x.value))).join(' . ');
  return e.data ? `${key} : ${e.data.map((x) => String(x.value)).join(' . ')}` : key;
}

function script(changes: NftSetChange[]): string {
  const lines: string[] = [];
  for (const c of changes) if (c.delete?.length) lines.push(`delete element inet t ${c.set} { ${c.delete.map(render).join(', ')} }`);
  for (const c of changes) if (c.add?.length) lines.push(`add element inet t ${c.set} { ${c.add.map(render).join(', ')} }`);
  return lines.join('\n') + '\n';
}

let wNs: TestNetns;
let refNs: TestNetns;
let writer: NfnetlinkElementWriter;

async function listSet(ns: TestNetns, set: string): Promise<unknown> {
  const out = JSON.parse((await ns.exec(['nft', '-j', 'list', 'table', 'inet', 't'])).stdout) as { nftables: Record<string, { name?: string; elem?: unknown[] }>[] };
  const body = out.nftables.map((o) => o.set ?? o.map).find((s) => s?.name === set);
  assert.ok(body, `set ${set} listed`);
  return body.elem ?? [];
}

async function sameAsNft(changes: NftSetChange[], sets: string[]): Promise<void> {
  await writer.apply('t', changes);
  await refNs.exec(['nft', '-f', '-'], { input: script(changes) });
  for (const set of sets) assert.deepEqual(await listSet(wNs, set), await listSet(refNs, set), `set ${set}`);
}

before(async () => {
  wNs = await TestNetns.create('nfnl-w');
  refNs = await TestNetns.create('nfnl-ref');
  for (const ns of [wNs, refNs]) await ns.exec(['nft', '-f', '-'], { input: RULESET });
  const handle = Netns.open(wNs.path);
  try {
    writer = handle.run(() => new NfnetlinkElementWriter());
  } finally {
    handle.close();
  }
});

after(async () => {
  writer?.close();
  await wNs?.destroy();
  await refNs?.destroy();
});

test('elements added and deleted by the writer list exactly as the same elements written by nft -f', async () => {
  const d4: NftElement[] = [
    { key: [v4('192.0.2.1'), proto(6), port(8080)], data: [v4('10.0.0.2'), port(80)] },
    { key: [v4('198.51.100.7'), proto(17), port(53)], data: [v4('10.0.0.3'), port(5353)] },
  ];
  const ranges: NftElement[] = [{ key: [proto(17), port(1000)], keyEnd: [proto(17), port(2000)] }, { key: [proto(132), port(7)], keyEnd: [proto(132), port(7)] }];
  const ranges4: NftElement[] = [{ key: [proto(6), port(3000)], keyEnd: [proto(6), port(3010)], data: [v4('10.0.0.9'), port(80)] }];
  const d6: NftElement[] = [{ key: [v6('2001:db8::1'), proto(6), port(443)], data: [v6('fd00::2'), port(8443)] }];
  const ports: NftElement[] = [{ key: [port(22)] }, { key: [port(65535)] }];
  const sets = ['dnat4', 'ranges', 'ranges4', 'dnat6', 'ports'];
  await sameAsNft(
    [
      { set: 'dnat4', add: d4 },
      { set: 'ranges', add: ranges },
      { set: 'ranges4', add: ranges4 },
      { set: 'dnat6', add: d6 },
      { set: 'ports', add: ports },
    ],
    sets,
  );
  assert.equal((await listSet(wNs, 'dnat4') as unknown[]).length, 2);
  // Deletes before adds, in one transaction: a key replaced in one apply.
  const moved = { key: d4[0].key, data: [v4('10.0.0.4'), port(81)] };
  await sameAsNft([{ set: 'dnat4', delete: [d4[0]], add: [moved] }, { set: 'ranges', delete: [ranges[0]] }, { set: 'dnat6', delete: d6 }, { set: 'ports', delete: [ports[1]] }], sets);
  assert.match(JSON.stringify(await listSet(wNs, 'dnat4')), /10\.0\.0\.4/);
  assert.deepEqual(await listSet(wNs, 'dnat6'), []);
});

test('deleting a missing element fails with ENOENT and nothing of the apply is left', async () => {
  const before = await listSet(wNs, 'dnat4');
  const add: NftElement = { key: [v4('203.0.113.5'), proto(6), port(9000)], data: [v4('10.0.0.5'), port(80)] };
  const missing: NftElement = { key: [v4('203.0.113.6'), proto(6), port(9001)], data: [v4('10.0.0.5'), port(80)] };
  await assert.rejects(
    writer.apply('t', [{ set: 'dnat4', add: [add] }, { set: 'ports', add: [{ key: [port(1234)] }] }, { set: 'ranges', delete: [{ key: [proto(6), port(1)], keyEnd: [proto(6), port(2)] }] }, { set: 'dnat4', delete: [missing] }]),
    (err: unknown) => err instanceof KernelError && err.errno === 'ENOENT',
  );
  assert.deepEqual(await listSet(wNs, 'dnat4'), before);
  assert.doesNotMatch(JSON.stringify(await listSet(wNs, 'ports')), /1234/);
  // A set that does not exist: ENOENT too, and the socket keeps working afterwards.
  await assert.rejects(writer.apply('t', [{ set: 'nosuch', add: [{ key: [port(1)] }] }]), (err: unknown) => err instanceof KernelError && err.errno === 'ENOENT');
  await writer.apply('t', [{ set: 'ports', add: [{ key: [port(4321)] }] }]);
  assert.match(JSON.stringify(await listSet(wNs, 'ports')), /4321/);
});

test('10000 elements go in one apply (several messages, one batch) and out again', async () => {
  const many = Array.from({ length: 10_000 }, (_, i): NftElement => ({ key: [v4(`192.0.2.${(i % 250) + 1}`), proto(6), port(10_000 + Math.floor(i / 250))], data: [v4('10.0.0.2'), port(80)] }));
  const t0 = performance.now();
  await writer.apply('t', [{ set: 'dnat4', add: many }]);
  const addMs = performance.now() - t0;
  const listed = (await listSet(wNs, 'dnat4')) as unknown[];
  assert.ok(listed.length >= 10_000, `listed ${listed.length}`);
  const t1 = performance.now();
  await writer.apply('t', [{ set: 'dnat4', delete: many }]);
  console.log(`# 10000 elements: add ${addMs.toFixed(1)} ms, delete ${(performance.now() - t1).toFixed(1)} ms (one apply each)`);
  assert.equal(((await listSet(wNs, 'dnat4')) as unknown[]).length, listed.length - 10_000);
});

test('hostile values are refused before anything is sent: nothing of the apply reaches the kernel', async () => {
  const good: NftSetChange = { set: 'ports', add: [{ key: [port(5555)] }] };
  const hostile: unknown[] = [
    { set: 'ports', add: [{ key: [port(70000)] }] },
    { set: 'ports; flush ruleset', add: [{ key: [port(1)] }] },
    { set: 'ports', add: [{ key: [{ type: 'inet_service', value: '1; flush ruleset' }] }] },
    { set: 'dnat4', add: [{ key: [{ type: 'ipv4_addr', value: IPAddress.parse('::1') }, proto(6), port(1)], data: [v4('10.0.0.2'), port(80)] }] },
    { set: 'ports', add: [{ key: [{ type: 'inet_service', value: NaN }] }] },
  ];
  for (const h of hostile) await assert.rejects(writer.apply('t', [good, h as NftSetChange]), InvalidArgumentError);
  await assert.rejects(writer.apply('t\0', [good]), InvalidArgumentError);
  await assert.rejects(writer.apply('../t', [good]), InvalidArgumentError);
  assert.doesNotMatch(JSON.stringify(await listSet(wNs, 'ports')), /5555/);
});

test('timing: one apply of 1 element in-process vs an nft -f process (printed, not asserted)', async () => {
  const el = (p: number): NftSetChange[] => [{ set: 'ports', add: [{ key: [port(p)] }] }];
  const runs = 20;
  const inproc: number[] = [];
  const spawned: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < runs; i++) {
    let t = performance.now();
    await writer.apply('t', el(30_000 + i));
    inproc.push(performance.now() - t);
    t = performance.now();
    await wNs.exec(['nft', '-f', '-'], { input: `add element inet t ports { ${31_000 + i} }\n` });
    spawned.push(performance.now() - t);
    t = performance.now();
    await wNs.exec(['true']);
    baseline.push(performance.now() - t);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(2);
  console.log(`# 1 element, median of ${runs}: nfnetlink apply ${med(inproc)} ms; ip netns exec nft -f ${med(spawned)} ms (ip netns exec true alone ${med(baseline)} ms)`);
  assert.match(JSON.stringify(await listSet(wNs, 'ports')), /30019/);
});
