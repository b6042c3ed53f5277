import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/errors.js';
import { IPAddress } from '../../src/net/index.js';

test('IPAddress.parse: canonical text is what inet_ntop prints', () => {
  const cases: [string, 4 | 6, string][] = [
    ['0.0.0.0', 4, '0.0.0.0'],
    ['192.0.2.10', 4, '192.0.2.10'],
    ['255.255.255.255', 4, '255.255.255.255'],
    ['::', 6, '::'],
    ['::1', 6, '::1'],
    ['2001:DB8:0:0::0:1', 6, '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', 6, '2001:db8::1'],
    ['fe80::0002', 6, 'fe80::2'],
    ['1:0:0:1:0:0:0:1', 6, '1:0:0:1::1'], // the longest run
    ['1:0:0:1:0:0:1:1', 6, '1::1:0:0:1:1'], // the first on a tie
    ['1:0:1:1:1:1:1:1', 6, '1:0:1:1:1:1:1:1'], // a single zero word is not compressed
    ['1:2:3:4:5:6:7::', 6, '1:2:3:4:5:6:7:0'],
    ['::ffff:1.2.3.4', 6, '::ffff:1.2.3.4'], // v4-mapped
    ['::ffff:102:304', 6, '::ffff:1.2.3.4'],
    ['0:0:0:0:0:ffff:c000:0201', 6, '::ffff:192.0.2.1'],
    ['::1.2.3.4', 6, '::1.2.3.4'], // v4-compatible, as inet_ntop prints it
    ['64:ff9b::192.0.2.1', 6, '64:ff9b::c000:201'],
    ['1:2:3:4:5:6:1.2.3.4', 6, '1:2:3:4:5:6:102:304'],
  ];
  for (const [input, family, text] of cases) {
    const a = IPAddress.parse(input);
    assert.equal(a.family, family, input);
    assert.equal(a.toString(), text, input);
    assert.equal(JSON.stringify({ a }), JSON.stringify({ a: text }), 'toJSON is the text');
    assert.ok(IPAddress.parse(text).equals(a), `${text} parses back`);
  }
});

test('IPAddress.parse refuses malformed text, leading zeros, zone ids and non-strings', () => {
  const bad: unknown[] = [
    '', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.02.3.4', '1.2.3.00', '1.2.3.4/24', ' 1.2.3.4', '1.2.3.4 ',
    'fe80::1%eth0', 'fe80::1%1', '::g', ':::', '1::2::3', ':1::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '12345::',
    '::1.2.3', '::01.2.3.4', '1.2.3.4::', '::1.2.3.4:1', 'localhost', '0x7f.0.0.1',
  ];
  for (const input of bad) assert.throws(() => IPAddress.parse(input), InvalidArgumentError, `should refuse ${JSON.stringify(input)}`);
  for (const input of [7, null, undefined, {}, ['1.2.3.4']]) {
    assert.throws(
      () => IPAddress.parse(input, 'gateway'),
      (err: unknown) => err instanceof InvalidArgumentError && err.message.startsWith('invalid gateway ') && err.message.includes(typeof input === 'number' ? '7' : ''),
    );
  }
});

test('IPAddress bytes, bigints and predicates', () => {
  const v4 = IPAddress.parse('10.0.0.1');
  assert.deepEqual(v4.bytes, Buffer.from([10, 0, 0, 1]));
  assert.deepEqual(v4.toNetlink(), Buffer.from([10, 0, 0, 1]));
  assert.equal(v4.toBigInt(), 0x0a000001n);
  assert.equal(IPAddress.fromBigInt(4, 0x0a000001n).toString(), '10.0.0.1');
  assert.equal(IPAddress.fromBytes(Buffer.from('fe800000000000000000000000000001', 'hex')).toString(), 'fe80::1');
  assert.equal(IPAddress.fromBigInt(6, 1n).toString(), '::1');
  assert.throws(() => IPAddress.fromBytes(Buffer.alloc(5)), InvalidArgumentError);
  assert.throws(() => IPAddress.fromBigInt(4, 1n << 32n), InvalidArgumentError);
  v4.bytes[0] = 99;
  assert.equal(v4.toString(), '10.0.0.1', 'bytes is a copy');
  assert.ok(IPAddress.parse('0.0.0.0').isUnspecified && IPAddress.parse('::').isUnspecified && IPAddress.unspecified(6).isUnspecified);
  assert.ok(!IPAddress.parse('::1').isUnspecified);
  assert.ok(IPAddress.parse('127.1.2.3').isLoopback && IPAddress.parse('::1').isLoopback);
  assert.ok(!IPAddress.parse('::2').isLoopback && !IPAddress.parse('128.0.0.1').isLoopback);
  assert.ok(IPAddress.parse('::ffff:1.2.3.4').isV4Mapped && !IPAddress.parse('::1.2.3.4').isV4Mapped);
  assert.ok(!IPAddress.parse('1.2.3.4').equals(IPAddress.parse('::ffff:1.2.3.4')), 'families differ');
  assert.equal(IPAddress.parse('2001:db8::1').toUrlHost(), '[2001:db8::1]');
  assert.equal(IPAddress.tryParse('nope'), undefined);
});
