import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/errors.js';
import { MAC, isFirewallSafeIfName, parseFirewallIfName, parseIfName } from '../../src/net/index.js';

test('MAC: parse, canonical form, bytes, random', () => {
  assert.equal(MAC.parse('02:AB:cd:00:00:01').toString(), '02:ab:cd:00:00:01');
  assert.deepEqual(MAC.parse('02:00:0a:ff:10:01').bytes, Buffer.from([2, 0, 0x0a, 0xff, 0x10, 1]));
  assert.equal(MAC.fromBytes(Buffer.from([2, 0, 0x0a, 0xff, 0x10, 1])).toString(), '02:00:0a:ff:10:01');
  assert.equal(JSON.stringify(MAC.parse('00:16:3e:00:00:01')), '"00:16:3e:00:00:01"');
  assert.ok(MAC.random().isLocallyAdministered);
  assert.ok(!MAC.parse('00:16:3e:00:00:01').isLocallyAdministered);
  assert.equal(MAC.formatBytes(Buffer.from([1, 0, 0x5e, 0, 0, 1])), '01:00:5e:00:00:01');
  const bad: unknown[] = ['01:00:5e:00:00:01', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00', '02:00:00:00:00', '02:00:00:00:00:00:00', '02-00-00-00-00-01', '0200.0000.0001', '2:0:0:0:0:1', '02:00:00:00:00:01 ', 42, null];
  for (const mac of bad) assert.throws(() => MAC.parse(mac), InvalidArgumentError, String(mac));
  assert.throws(() => MAC.fromBytes(Buffer.alloc(6)), /all zeros/);
  assert.throws(() => MAC.fromBytes(Buffer.alloc(5)), InvalidArgumentError);
});

test('interface names: the kernel rule and the firewall-safe rule', () => {
  const cases: [string, boolean, boolean][] = [
    // name, kernel accepts, firewall accepts
    ['eth0', true, true],
    ['br-0123456789ab', true, true],
    ['veth.10', true, true],
    ['a_b', true, true],
    ['123456789012345', true, true],
    ['1234567890123456', false, false],
    ['ab\u00e9cd', true, false],
    ['-eth0', true, false],
    ['a+b', true, false],
    ['.', false, false],
    ['..', false, false],
    ['', false, false],
    ['a b', false, false],
    ['a/b', false, false],
    ['a:b', false, false],
    ['a\0b', false, false],
  ];
  for (const [name, kernel, firewall] of cases) {
    if (kernel) assert.equal(parseIfName(name), name);
    else assert.throws(() => parseIfName(name), (e: unknown) => e instanceof InvalidArgumentError && e.message.includes(JSON.stringify(name)), name);
    assert.equal(isFirewallSafeIfName(name), firewall, name);
    if (firewall) assert.equal(parseFirewallIfName(name), name);
    else assert.throws(() => parseFirewallIfName(name, 'bridge name'), /^InvalidArgumentError: invalid bridge name /, name);
  }
  for (const v of [undefined, null, 5]) {
    assert.throws(() => parseIfName(v), InvalidArgumentError);
    assert.throws(() => parseFirewallIfName(v), InvalidArgumentError);
  }
});
