import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/errors.js';
import { IPAddress, InterfaceAddress, Prefix } from '../../src/net/index.js';

test('Prefix.parse accepts networks of every length, canonical text', () => {
  const cases: [string, string][] = [
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['192.0.2.1/32', '192.0.2.1/32'],
    ['::/0', '::/0'],
    ['2001:DB8::/32', '2001:db8::/32'],
    ['fd00:0:0:0::/64', 'fd00::/64'],
    ['2001:db8::1/128', '2001:db8::1/128'],
    ['::ffff:10.0.0.0/104', '::ffff:10.0.0.0/104'],
  ];
  for (const [input, text] of cases) {
    assert.equal(Prefix.parse(input).toString(), text, input);
    assert.equal(JSON.stringify([Prefix.parse(input)]), JSON.stringify([text]));
  }
});

test('Prefix.parse refuses bad lengths, host bits, zone ids and non-prefixes', () => {
  const bad: unknown[] = [
    '10.0.0.0', '10.0.0.0/', '10.0.0.0/33', '::/129', '10.0.0.0/-1', '10.0.0.0/08', '10.0.0.0/016', '10.0.0.0/1.5',
    '10.0.0.0/ 8', '/24', 'x/24', '01.0.0.0/8', 'fe80::%eth0/64', '10.0.0.0/8/8', 7, null,
  ];
  for (const input of bad) assert.throws(() => Prefix.parse(input), InvalidArgumentError, `should refuse ${String(input)}`);
  assert.throws(() => Prefix.parse('10.1.0.1/16'), /host bits are set \(did you mean 10\.1\.0\.0\/16\?\)/);
  assert.throws(() => Prefix.parse('2001:db8::1/64', 'subnet'), /^InvalidArgumentError: invalid subnet "2001:db8::1\/64": host bits are set \(did you mean 2001:db8::\/64\?\)/);
  assert.equal(Prefix.parse('10.1.2.3/16', { lenient: true }).toString(), '10.1.0.0/16');
  assert.equal(Prefix.parse('fd00::1:2/112', { lenient: true }).toString(), 'fd00::1:0/112');
});

test('Prefix: contains, overlaps, containsPrefix, size, first, last, at', () => {
  const p = Prefix.parse('192.0.2.0/24');
  assert.ok(p.contains(IPAddress.parse('192.0.2.255')));
  assert.ok(!p.contains(IPAddress.parse('192.0.3.0')));
  assert.ok(!p.contains(IPAddress.parse('::ffff:192.0.2.1')), 'other family');
  assert.ok(p.containsPrefix(Prefix.parse('192.0.2.128/25')));
  assert.ok(!p.containsPrefix(Prefix.parse('192.0.0.0/16')));
  assert.ok(p.overlaps(Prefix.parse('192.0.0.0/16')) && Prefix.parse('192.0.0.0/16').overlaps(p));
  assert.ok(!p.overlaps(Prefix.parse('192.0.3.0/24')));
  assert.ok(!p.overlaps(Prefix.parse('::/0')));
  assert.equal(p.size, 256n);
  assert.equal(p.first.toString(), '192.0.2.0');
  assert.equal(p.last.toString(), '192.0.2.255');
  assert.equal(p.at(5n).toString(), '192.0.2.5');
  assert.throws(() => p.at(256n), InvalidArgumentError);
  assert.equal(Prefix.parse('::/0').size, 1n << 128n);
  assert.equal(Prefix.parse('2001:db8::/64').last.toString(), '2001:db8::ffff:ffff:ffff:ffff');
  assert.equal(Prefix.host(IPAddress.parse('10.0.0.1')).toString(), '10.0.0.1/32');
  assert.equal(Prefix.of(IPAddress.parse('10.1.255.255'), 17).toString(), '10.1.128.0/17');
  assert.equal(Prefix.of(IPAddress.parse('255.255.255.255'), 0).toString(), '0.0.0.0/0');
  assert.ok(Prefix.parse('10.0.0.0/8').equals(Prefix.parse('10.0.0.0/8')) && !Prefix.parse('10.0.0.0/8').equals(Prefix.parse('10.0.0.0/9')));
});

test('InterfaceAddress keeps host bits and knows its prefix', () => {
  const a = InterfaceAddress.parse('172.18.0.2/16');
  assert.equal(a.toString(), '172.18.0.2/16');
  assert.equal(a.address.toString(), '172.18.0.2');
  assert.equal(a.length, 16);
  assert.equal(a.prefix.toString(), '172.18.0.0/16');
  assert.equal(InterfaceAddress.parse('fd00::0002/64').toString(), 'fd00::2/64');
  assert.equal(InterfaceAddress.parse('0.0.0.0/0').length, 0);
  assert.equal(JSON.stringify(a), '"172.18.0.2/16"');
  assert.equal(InterfaceAddress.of(IPAddress.parse('10.0.0.5'), Prefix.parse('10.0.0.0/24')).toString(), '10.0.0.5/24');
  assert.throws(() => InterfaceAddress.of(IPAddress.parse('10.0.1.5'), Prefix.parse('10.0.0.0/24')), InvalidArgumentError);
  for (const bad of ['10.0.0.1', '10.0.0.1/33', '10.0.0.1/016', 'fe80::1%eth0/64', '10.0.0.256/8']) {
    assert.throws(() => InterfaceAddress.parse(bad), InvalidArgumentError, bad);
  }
});
