/**
 * nf_tables element messages without a kernel: the bytes of an element are those nft itself sends for the
 * same element (transcribed from `nft --debug=mnl add element …`, nftables 1.0.6), the batch framing is
 * begin · messages · end with sequence numbers and ACKs, and hostile values are refused before anything
 * is built.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endianness } from 'node:os';
import { InvalidArgumentError } from '../../src/errors.js';
import { IPAddress } from '../../src/net/index.js';
import { encodeElement, encodeValue, setElemBatch } from '../../src/firewall/nft-netlink-elements.js';
import { batchBytes, encodeBatch, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFT_MSG, NLM_F_ACK, NLM_F_CREATE } from '../../src/kernel/nfnetlink.js';
import { decodeAttrs } from '../../src/kernel/nlattr.js';
import type { NftElement, NftField } from '../../src/firewall/nft-elements.js';

const LE = endianness() === 'LE';
const v4 = (a: string): NftField => ({ type: 'ipv4_addr', value: IPAddress.parse(a) });
const v6 = (a: string): NftField => ({ type: 'ipv6_addr', value: IPAddress.parse(a) });
const proto = (p: number): NftField => ({ type: 'inet_proto', value: p });
const port = (p: number): NftField => ({ type: 'inet_service', value: p });
/** Attribute header as nft prints it: |len|flags|type| (N: NLA_F_NESTED), host byte order. */
const hdr = (len: number, type: number, nested = false) => {
  const b = Buffer.alloc(4);
  const t = type | (nested ? 0x8000 : 0);
  if (LE) (b.writeUInt16LE(len, 0), b.writeUInt16LE(t, 2));
  else (b.writeUInt16BE(len, 0), b.writeUInt16BE(t, 2));
  return b;
};
const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

test('a concatenated map element encodes to the bytes nft sends for it', () => {
  // nft --debug=mnl add element inet t dnat4 '{ 192.0.2.1 . tcp . 8080 : 10.0.0.2 . 80 }'
  const expected = Buffer.concat([
    hdr(40, 1, true), // NFTA_LIST_ELEM
    hdr(20, 1, true), hdr(16, 1), hex('c0000201 06000000 1f900000'), // KEY { DATA_VALUE }
    hdr(16, 2, true), hdr(12, 1), hex('0a000002 00500000'), // DATA { DATA_VALUE }
  ]);
  const e: NftElement = { key: [v4('192.0.2.1'), proto(6), port(8080)], data: [v4('10.0.0.2'), port(80)] };
  assert.deepEqual(encodeElement(e), expected);
});

test('a concatenated interval element carries KEY_END (type 10), as nft sends it', () => {
  // nft --debug=mnl add element inet t ranges '{ udp . 1000-2000 }'
  const expected = Buffer.concat([
    hdr(36, 1, true),
    hdr(16, 1, true), hdr(12, 1), hex('11000000 03e80000'),
    hdr(16, 10, true), hdr(12, 1), hex('11000000 07d00000'),
  ]);
  assert.deepEqual(encodeElement({ key: [proto(17), port(1000)], keyEnd: [proto(17), port(2000)] }), expected);
});

test('fields are padded to 4 bytes only in a concatenation; IPv6 keeps 16 bytes', () => {
  assert.deepEqual(encodeValue([port(443)]), hex('01bb'));
  assert.deepEqual(encodeValue([proto(132)]), hex('84'));
  assert.deepEqual(encodeValue([v6('2001:db8::1'), proto(17), port(53)]), hex('20010db8000000000000000000000001 11000000 00350000'));
});

test('a batch is begin · deletes · adds · end, numbered in order, every message asking for an ACK', () => {
  const el: NftElement = { key: [v4('192.0.2.1'), proto(6), port(8080)], data: [v4('10.0.0.2'), port(80)] };
  const msgs = setElemBatch('t', [{ set: 'dnat4', add: [el] }, { set: 'other', delete: [el] }]);
  assert.deepEqual(msgs.map((m) => m.type), [NFT_MSG.DELSETELEM, NFT_MSG.NEWSETELEM]);
  assert.equal(msgs[1].flags, NLM_F_CREATE);
  const buf = encodeBatch(msgs, 100);
  assert.equal(buf.length, batchBytes(msgs));
  const seen: { type: number; flags: number; seq: number; nfgen: string }[] = [];
  for (let off = 0; off < buf.length; ) {
    const len = LE ? buf.readUInt32LE(off) : buf.readUInt32BE(off);
    const r16 = (o: number) => (LE ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
    seen.push({ type: r16(off + 4), flags: r16(off + 6), seq: LE ? buf.readUInt32LE(off + 8) : buf.readUInt32BE(off + 8), nfgen: buf.subarray(off + 16, off + 20).toString('hex') });
    off += (len + 3) & ~3;
  }
  assert.deepEqual(seen, [
    { type: NFNL_MSG_BATCH_BEGIN, flags: 1, seq: 100, nfgen: '0000000a' }, // res_id NFNL_SUBSYS_NFTABLES, big-endian
    { type: (10 << 8) | NFT_MSG.DELSETELEM, flags: 1 | NLM_F_ACK, seq: 101, nfgen: '01000000' }, // NFPROTO_INET
    { type: (10 << 8) | NFT_MSG.NEWSETELEM, flags: 1 | NLM_F_ACK | NLM_F_CREATE, seq: 102, nfgen: '01000000' },
    { type: NFNL_MSG_BATCH_END, flags: 1, seq: 103, nfgen: '0000000a' },
  ]);
  // Table and set names, then the element list.
  const attrs = decodeAttrs(msgs[1].attrs);
  assert.deepEqual(attrs.map((a) => [a.type, a.nested]), [[1, false], [2, false], [3, true]]);
  assert.equal(attrs[1].value.toString(), 'dnat4\0');
});

test('many elements are split over messages whose element list fits a u16 attribute length', () => {
  const els = Array.from({ length: 10_000 }, (_, i): NftElement => ({ key: [proto(6), port(i + 1)], data: [v4('10.0.0.2'), port(80)] }));
  const msgs = setElemBatch('t', [{ set: 's', add: els }]);
  assert.ok(msgs.length > 1);
  let total = 0;
  for (const m of msgs) {
    const list = decodeAttrs(m.attrs).find((a) => a.type === 3)!;
    assert.ok(list.value.length + 4 <= 0xffff);
    total += decodeAttrs(list.value).length;
  }
  assert.equal(total, 10_000);
});

test('hostile names and values are refused before a message is built', () => {
  const ok: NftElement = { key: [proto(6), port(80)] };
  const bad: [string, unknown, unknown][] = [
    ['table with a space', 'a b', [{ set: 's', add: [ok] }]],
    ['table with NUL', 't\0x', [{ set: 's', add: [ok] }]],
    ['empty table', '', [{ set: 's', add: [ok] }]],
    ['table of 256 chars', 'a'.repeat(256), [{ set: 's', add: [ok] }]],
    ['table not a string', 7, [{ set: 's', add: [ok] }]],
    ['set with a semicolon', 't', [{ set: 's;flush ruleset', add: [ok] }]],
    ['set missing', 't', [{ add: [ok] }]],
    ['changes not a list', 't', { set: 's' }],
    ['add not a list', 't', [{ set: 's', add: ok }]],
    ['port 65536', 't', [{ set: 's', add: [{ key: [proto(6), port(65536)] }] }]],
    ['negative port', 't', [{ set: 's', add: [{ key: [proto(6), port(-1)] }] }]],
    ['fractional port', 't', [{ set: 's', add: [{ key: [proto(6), port(1.5)] }] }]],
    ['port as a string', 't', [{ set: 's', add: [{ key: [proto(6), { type: 'inet_service', value: '80' }] }] }]],
    ['protocol 256', 't', [{ set: 's', add: [{ key: [proto(256), port(1)] }] }]],
    ['IPv6 address in an ipv4_addr field', 't', [{ set: 's', add: [{ key: [{ type: 'ipv4_addr', value: IPAddress.parse('::1') }] }] }]],
    ['address as a string', 't', [{ set: 's', add: [{ key: [{ type: 'ipv4_addr', value: '10.0.0.1' }] }] }]],
    ['unknown field type', 't', [{ set: 's', add: [{ key: [{ type: 'mark', value: 1 }] }] }]],
    ['empty key', 't', [{ set: 's', add: [{ key: [] }] }]],
    ['17 fields', 't', [{ set: 's', add: [{ key: Array.from({ length: 17 }, () => port(1)) }] }]],
    ['key end of another type', 't', [{ set: 's', add: [{ key: [proto(6), port(1)], keyEnd: [port(1), proto(6)] }] }]],
    ['elements of two shapes in one set', 't', [{ set: 's', add: [ok, { key: [proto(6), port(80)], data: [port(1)] }] }]],
    ['null element', 't', [{ set: 's', delete: [null] }]],
  ];
  for (const [what, table, changes] of bad) {
    assert.throws(() => setElemBatch(table as string, changes as never), InvalidArgumentError, what);
  }
});
