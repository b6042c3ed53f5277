/** ctnetlink messages: decoding dumped entries, matching them, naming them for deletion. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEntry, deletePayload, describeFlowMatch, entryMatches, type ConntrackEntry } from '../../src/kernel/ctnetlink.js';
import { attrMap, nla } from '../../src/kernel/nlattr.js';

const be16 = (v: number) => Buffer.from([v >> 8, v & 0xff]);
const v4 = (s: string) => Buffer.from(s.split('.').map(Number));

function tuple(src: string, dst: string, proto: number, sport: number, dport: number): Buffer {
  return Buffer.concat([
    nla.nested(1, [nla.binary(1, v4(src)), nla.binary(2, v4(dst))]),
    nla.nested(2, [nla.u8(1, proto), nla.binary(2, be16(sport)), nla.binary(3, be16(dport))]),
  ]);
}

/** A DNATed TCP flow as the kernel dumps it: 198.51.100.2:40000 → host:8080, answered by 172.17.0.2:80. */
function dumped(zone?: number): Buffer {
  const attrs = [nla.nested(1, [tuple('198.51.100.2', '203.0.113.1', 6, 40000, 8080)]), nla.nested(2, [tuple('172.17.0.2', '198.51.100.2', 6, 80, 40000)]), nla.u32(3, 0x188)];
  if (zone !== undefined) attrs.push(nla.binary(18, be16(zone)));
  return Buffer.concat([Buffer.from([2, 0, 0, 0]), ...attrs]);
}

const compiled = (over: Partial<Parameters<typeof entryMatches>[1]>) => ({ family: 4 as const, proto: 6, ...over });

test('a dumped entry decodes into its two tuples', () => {
  const e = decodeEntry(dumped()) as ConntrackEntry;
  assert.equal(e.family, 4);
  assert.deepEqual([...e.orig.src], [198, 51, 100, 2]);
  assert.equal(e.orig.dstPort, 8080);
  assert.deepEqual([...e.reply.src], [172, 17, 0, 2]);
  assert.equal(e.reply.srcPort, 80);
  assert.equal(e.orig.proto, 6);
  assert.equal(e.zone, undefined);
});

test('truncated or foreign messages are not entries', () => {
  assert.equal(decodeEntry(Buffer.from([2, 0])), undefined);
  assert.equal(decodeEntry(Buffer.from([7, 0, 0, 0])), undefined, 'not IPv4/IPv6');
  assert.equal(decodeEntry(Buffer.concat([Buffer.from([2, 0, 0, 0]), nla.u32(3, 1)])), undefined, 'no tuples');
  assert.equal(decodeEntry(Buffer.from([2, 0, 0, 0, 64, 0, 1, 0])), undefined, 'an attribute running past the end');
});

test('matching: every given field must agree', () => {
  const e = decodeEntry(dumped()) as ConntrackEntry;
  assert.ok(entryMatches(e, compiled({ replySrc: v4('172.17.0.2'), replySrcPort: 80 })));
  assert.ok(entryMatches(e, compiled({ replySrc: v4('172.17.0.2') })));
  assert.ok(entryMatches(e, compiled({ origDstPort: 8080 })));
  assert.ok(!entryMatches(e, compiled({ replySrc: v4('172.17.0.3') })));
  assert.ok(!entryMatches(e, compiled({ replySrc: v4('172.17.0.2'), replySrcPort: 81 })));
  assert.ok(!entryMatches(e, compiled({ proto: 17, origDstPort: 8080 })), 'another protocol');
  assert.ok(!entryMatches(e, { family: 6, proto: 6 }), 'another family');
});

test('a deletion names the entry by its original tuple, and its zone', () => {
  const e = decodeEntry(dumped(7)) as ConntrackEntry;
  const payload = Buffer.concat(deletePayload(e));
  assert.deepEqual([...payload.subarray(0, 4)], [2, 0, 0, 0], 'nfgenmsg: AF_INET, version 0');
  const attrs = attrMap(payload.subarray(4));
  assert.deepEqual(attrs.get(1), e.origAttr);
  assert.equal(attrs.get(2), undefined, 'no reply tuple');
  assert.deepEqual([...(attrs.get(18) as Buffer)], [0, 7]);
});

test('matches are logged as the equivalent conntrack(8) command', () => {
  assert.equal(describeFlowMatch({ family: 4, proto: 'tcp', replySrc: '172.17.0.2', replySrcPort: 80 }), 'conntrack -D -p tcp --reply-src 172.17.0.2 --reply-port-src 80');
  assert.equal(describeFlowMatch({ family: 6, proto: 'udp', origDstPort: 53 }), 'conntrack -D -f ipv6 -p udp --orig-port-dst 53');
});
