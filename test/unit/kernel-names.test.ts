import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/errors.js';
import { MAC, parseIfName as validateIfName } from '../../src/net/index.js';

// The kernel layer's name and MAC checks moved to src/net: these assertions now pin their replacements.
const randomMac = () => MAC.random().toString();
const validateMac = (s: unknown) => MAC.parse(s).toString();
const macToBytes = (s: string) => MAC.parse(s).bytes;
const formatMac = (b: Uint8Array) => MAC.formatBytes(b);

test('validateIfName accepts what the kernel accepts', () => {
  for (const name of ['eth0', 'a', 'br-0123456789ab', 'veth1234567', 'eth0.100', 'x-y_z', 'ab\u00e9cd', '123456789012345']) {
    assert.equal(validateIfName(name), name);
  }
});

test('validateIfName rejects bad names with InvalidArgumentError naming the value', () => {
  const bad: unknown[] = [
    '',
    '1234567890123456', // 16 bytes
    '\u00e9'.repeat(8), // 8 characters but 16 bytes
    '.',
    '..',
    'a/b',
    'a:b',
    'a b',
    'a\tb',
    'a\nb',
    'a\0b',
    'a\u00a0b', // Unicode whitespace
  ];
  for (const name of bad) {
    assert.throws(
      () => validateIfName(name),
      (err: unknown) => err instanceof InvalidArgumentError && err.message.includes(JSON.stringify(name)),
      `should reject ${JSON.stringify(name)}`,
    );
  }
  for (const notString of [undefined, null, 5, {}]) {
    assert.throws(() => validateIfName(notString), InvalidArgumentError);
  }
});

test('randomMac is a locally administered unicast address and varies', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const mac = randomMac();
    assert.match(mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    const first = parseInt(mac.slice(0, 2), 16);
    assert.equal(first & 0x01, 0, 'unicast');
    assert.equal(first & 0x02, 0x02, 'locally administered');
    assert.equal(validateMac(mac), mac);
    seen.add(mac);
  }
  assert.ok(seen.size > 990, 'random MACs should practically never repeat');
});

test('validateMac normalizes case and rejects what cannot be assigned', () => {
  assert.equal(validateMac('02:AB:cd:00:00:01'), '02:ab:cd:00:00:01');
  assert.equal(validateMac('00:16:3e:00:00:01'), '00:16:3e:00:00:01'); // globally administered unicast is fine
  const bad: unknown[] = [
    '01:00:5e:00:00:01', // multicast
    'ff:ff:ff:ff:ff:ff', // broadcast
    '00:00:00:00:00:00',
    '02:00:00:00:00',
    '02:00:00:00:00:00:00',
    '02-00-00-00-00-01',
    '0g:00:00:00:00:01',
    '2:0:0:0:0:1',
    ' 02:00:00:00:00:01',
    42,
    undefined,
  ];
  for (const mac of bad) assert.throws(() => validateMac(mac), InvalidArgumentError, `should reject ${JSON.stringify(mac)}`);
});

test('macToBytes and formatMac are inverses', () => {
  assert.deepEqual(macToBytes('02:00:0a:ff:10:01'), Buffer.from([2, 0, 0x0a, 0xff, 0x10, 1]));
  assert.equal(formatMac(Buffer.from([2, 0, 0x0a, 0xff, 0x10, 1])), '02:00:0a:ff:10:01');
});
