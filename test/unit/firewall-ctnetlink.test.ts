/**
 * ctnetlink messages without a kernel: a dump entry decodes to its tuples and zone, and a delete names
 * the entry by exactly the attributes the kernel's ctnetlink_del_conntrack reads (checked against the
 * same message built with the generic attribute encoder).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nla } from '../../src/kernel/nlattr.js';
import { decodeEntry, deletePayload } from '../../src/firewall/ctnetlink.js';
import { IPAddress } from '../../src/net/index.js';

const be16 = (v: number) => Buffer.from([v >> 8, v & 0xff]);
const addr = (a: string) => IPAddress.parse(a).bytes;

function tuple(type: number, family: 4 | 6, src: string, dst: string, proto: number, sport: number, dport: number): Buffer {
  const [s, d] = family === 6 ? [3, 4] : [1, 2];
  return nla.nested(type, [
    nla.nested(1, [nla.binary(s, addr(src)), nla.binary(d, addr(dst))]),
    nla.nested(2, [nla.u8(1, proto), nla.binary(2, be16(sport)), nla.binary(3, be16(dport))]),
  ]);
}

test('a dump entry decodes to its original tuple, the reply source and the zone', () => {
  const payload = Buffer.concat([
    Buffer.from([2, 0, 0, 0]),
    tuple(1, 4, '198.51.100.2', '198.51.100.1', 17, 40000, 5000),
    tuple(2, 4, '172.17.0.9', '198.51.100.2', 17, 6000, 40000),
    nla.u32(7, 30), // CTA_TIMEOUT: ignored
    nla.binary(18, be16(7)),
  ]);
  const e = decodeEntry(payload)!;
  assert.deepEqual(
    { proto: e.proto, src: IPAddress.fromBytes(e.src).toString(), dst: IPAddress.fromBytes(e.dst).toString(), sport: e.sport, dport: e.dport },
    { proto: 17, src: '198.51.100.2', dst: '198.51.100.1', sport: 40000, dport: 5000 },
  );
  assert.equal(IPAddress.fromBytes(e.replySrc).toString(), '172.17.0.9');
  assert.equal(e.replySport, 6000);
  assert.equal(e.zone, 7);
  // Without ports (ICMP) or with a truncated tuple: not an entry a sweep can name.
  assert.equal(decodeEntry(Buffer.concat([Buffer.from([2, 0, 0, 0]), nla.nested(1, [nla.nested(1, [nla.binary(1, addr('192.0.2.1'))])])])), undefined);
});

test('a delete carries the original tuple (and the zone when there is one), IPv4 and IPv6', () => {
  for (const [family, src, dst, zone] of [[4, '198.51.100.2', '198.51.100.1', 0], [6, '2001:db8::2', '2001:db8::1', 3]] as const) {
    const e = { proto: 132, src: addr(src), dst: addr(dst), sport: 40000, dport: 9400, replySrc: addr(dst), replySport: 9400, zone };
    const expected = Buffer.concat([
      Buffer.from([family === 6 ? 10 : 2, 0, 0, 0]),
      tuple(1, family, src, dst, 132, 40000, 9400),
      ...(zone ? [nla.binary(18, be16(zone))] : []),
    ]);
    assert.deepEqual(deletePayload(family, e), expected);
  }
});
