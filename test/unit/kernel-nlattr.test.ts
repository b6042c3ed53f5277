import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endianness } from 'node:os';
import {
  attrMap,
  decodeAttrs,
  decodeIfinfomsg,
  encodeAttr,
  encodeIfinfomsg,
  nla,
  nlaAlign,
  NLA_F_NESTED,
  read,
} from '../../src/kernel/nlattr.js';

/** Hex string (spaces ignored) to bytes, so expected encodings read like a packet dump. */
function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

test('expected byte strings are written for a little-endian host', () => {
  // Netlink integers are in host byte order; the literals below are little-endian.
  assert.equal(endianness(), 'LE');
});

test('nlaAlign rounds up to 4', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 8, 9].map(nlaAlign), [0, 4, 4, 4, 4, 8, 8, 12]);
});

test('u8 attribute: length 5, padded to 8 with zeros', () => {
  assert.deepEqual(nla.u8(4, 1), hex('0500 0400 01 000000'));
});

test('u16 attribute: length 6, padded to 8', () => {
  assert.deepEqual(nla.u16(2, 0x1234), hex('0600 0200 3412 0000'));
});

test('u32 attribute: length 8, no padding', () => {
  assert.deepEqual(nla.u32(4, 1500), hex('0800 0400 dc050000'));
  assert.deepEqual(nla.u32(10, 0xffffffff), hex('0800 0a00 ffffffff'));
});

test('string attribute is NUL-terminated; nla_len counts the NUL but not the padding', () => {
  // "eth0\0" = 5 bytes -> nla_len 9, padded to 12
  assert.deepEqual(nla.string(3, 'eth0'), hex('0900 0300 65746830 00 000000'));
  // empty string still carries its NUL
  assert.deepEqual(nla.string(3, ''), hex('0500 0300 00 000000'));
  // a 3-byte string + NUL fills the word exactly
  assert.deepEqual(nla.string(1, 'br0'), hex('0800 0100 62723000'));
});

test('binary attribute: a MAC address is 6 bytes, length 10, padded to 12', () => {
  assert.deepEqual(nla.binary(1, hex('020000000001')), hex('0a00 0100 020000000001 0000'));
});

test('flag attribute has no payload', () => {
  assert.deepEqual(nla.flag(7), hex('0400 0700'));
});

test('nested attribute sets NLA_F_NESTED and wraps padded children', () => {
  const inner = nla.string(1, 'veth'); // 0900 0100 'veth' 00 + 3 pad = 12 bytes
  assert.deepEqual(nla.nested(18, [inner]), hex('1000 1280 0900 0100 76657468 00 000000'));
  assert.deepEqual(nla.nested(2, []), hex('0400 0280'));
});

test('encodeAttr accepts explicit flags', () => {
  assert.deepEqual(encodeAttr(1, hex('0a000001'), 0x4000), hex('0800 0140 0a000001'));
});

test('builders reject values and types out of range', () => {
  assert.throws(() => nla.u8(1, 256), RangeError);
  assert.throws(() => nla.u8(1, -1), RangeError);
  assert.throws(() => nla.u16(1, 65536), RangeError);
  assert.throws(() => nla.u32(1, 2 ** 32), RangeError);
  assert.throws(() => nla.u32(1, 1.5), RangeError);
  assert.throws(() => nla.u32(0x4000, 1), RangeError); // would collide with the flag bits
  assert.throws(() => nla.string(3, 'a\0b'), RangeError);
  assert.throws(() => nla.binary(1, Buffer.alloc(65532)), RangeError); // nla_len is a u16
});

test('ifinfomsg: 16 bytes, family/pad/type/index/flags/change', () => {
  assert.deepEqual(encodeIfinfomsg(), Buffer.alloc(16));
  assert.deepEqual(
    encodeIfinfomsg({ family: 0, type: 1, index: 7, flags: 1, change: 1 }),
    hex('00 00 0100 07000000 01000000 01000000'),
  );
  assert.deepEqual(decodeIfinfomsg(hex('00 00 0100 07000000 01000000 ffffffff')), {
    family: 0,
    type: 1,
    index: 7,
    flags: 1,
    change: 0xffffffff,
  });
  assert.throws(() => encodeIfinfomsg({ index: -1 }), RangeError);
  assert.throws(() => decodeIfinfomsg(Buffer.alloc(15)), RangeError);
});

test('nested lengths add up through three levels (a veth RTM_NEWLINK payload)', () => {
  // veth0 (mtu 1400, master 5, up) with peer eth0 in netns fd 21, MAC 02:00:00:00:00:02.
  const payload = Buffer.concat([
    encodeIfinfomsg({ flags: 1, change: 1 }),
    nla.string(3, 'veth0'),
    nla.u32(4, 1400),
    nla.u32(10, 5),
    nla.nested(18, [
      nla.string(1, 'veth'),
      nla.nested(2, [
        nla.binary(
          1,
          Buffer.concat([encodeIfinfomsg(), nla.string(3, 'eth0'), nla.u32(28, 21), nla.binary(1, hex('020000000002')), nla.u32(4, 1400)]),
        ),
      ]),
    ]),
  ]);
  const expected = hex(`
    00 00 0000 00000000 01000000 01000000
    0a00 0300 7665746830 00 0000
    0800 0400 78050000
    0800 0a00 05000000
    5000 1280
      0900 0100 76657468 00 000000
      4000 0280
        3c00 0100
          00 00 0000 00000000 00000000 00000000
          0900 0300 65746830 00 000000
          0800 1c00 15000000
          0a00 0100 020000000002 0000
          0800 0400 78050000
  `);
  assert.deepEqual(payload, expected);
});

test('decodeAttrs walks padded attributes and reports flags', () => {
  const buf = Buffer.concat([nla.string(3, 'eth0'), nla.u8(4, 9), nla.nested(18, [nla.u32(1, 42)]), encodeAttr(5, hex('01020304'), 0x4000)]);
  const attrs = decodeAttrs(buf);
  assert.deepEqual(
    attrs.map((a) => [a.type, a.nested, a.netByteOrder, a.value.length]),
    [
      [3, false, false, 5],
      [4, false, false, 1],
      [18, true, false, 8],
      [5, false, true, 4],
    ],
  );
  assert.equal(read.string(attrs[0].value), 'eth0');
  assert.equal(read.u8(attrs[1].value), 9);
  assert.equal(read.u32(decodeAttrs(attrs[2].value)[0].value), 42);
});

test('decodeAttrs round-trips a nested veth peer', () => {
  const peer = Buffer.concat([encodeIfinfomsg(), nla.string(3, 'eth0'), nla.u32(4, 9000)]);
  const linkinfo = nla.nested(18, [nla.string(1, 'veth'), nla.nested(2, [nla.binary(1, peer)])]);
  const [li] = decodeAttrs(linkinfo);
  const info = attrMap(li.value);
  assert.equal(read.string(info.get(1) as Buffer), 'veth');
  const peerMsg = attrMap(info.get(2) as Buffer).get(1) as Buffer;
  assert.deepEqual(decodeIfinfomsg(peerMsg).index, 0);
  const peerAttrs = attrMap(peerMsg.subarray(16));
  assert.equal(read.string(peerAttrs.get(3) as Buffer), 'eth0');
  assert.equal(read.u32(peerAttrs.get(4) as Buffer), 9000);
});

test('decodeAttrs rejects malformed input and ignores a short tail', () => {
  assert.throws(() => decodeAttrs(hex('0300 0100')), RangeError); // nla_len < header
  assert.throws(() => decodeAttrs(hex('0900 0100 6162')), RangeError); // runs past the end
  assert.deepEqual(decodeAttrs(Buffer.concat([nla.u8(1, 1), hex('0000')])).length, 1);
  assert.deepEqual(decodeAttrs(Buffer.alloc(0)), []);
  // The last attribute may omit its padding (the kernel does not require it at the very end).
  assert.equal(read.u8(decodeAttrs(hex('0500 0100 07'))[0].value), 7);
});

test('attrMap: the last of repeated types wins', () => {
  const m = attrMap(Buffer.concat([nla.u32(4, 1), nla.u32(4, 2)]));
  assert.equal(read.u32(m.get(4) as Buffer), 2);
});

test('readers check lengths; strings stop at NUL or end', () => {
  assert.throws(() => read.u32(hex('010203')), RangeError);
  assert.throws(() => read.u16(hex('01')), RangeError);
  assert.equal(read.u16(hex('3412')), 0x1234);
  assert.equal(read.string(hex('6263')), 'bc');
  assert.equal(read.string(hex('62006300')), 'b');
});

test('NLA_F_NESTED is bit 15', () => {
  assert.equal(NLA_F_NESTED, 0x8000);
});
