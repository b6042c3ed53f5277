import { test } from 'node:test';
import { Prefix } from '../../src/net/index.js';
import assert from 'node:assert/strict';
import { NameTable, namesOf, reverseName } from '../../src/dns/records.js';
import { NameDirectory, addressOfReverseName } from '../../src/dns/directory.js';
import { EP } from './dns-endpoints.js';

test('an endpoint answers to its name, aliases and short ids, case-insensitively', () => {
  const names = namesOf({ id: 'a'.repeat(64), name: 'Web', sandboxId: 'b'.repeat(64), aliases: ['www', 'front.end'] });
  assert.deepEqual(names, ['web', 'www', 'front.end', 'a'.repeat(12), 'b'.repeat(12)]);
});

test('reverse names, both families, and back', () => {
  assert.equal(reverseName('192.0.2.7'), '7.2.0.192.in-addr.arpa');
  assert.equal(reverseName('fd00:dd::3'), '3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.d.0.0.0.0.d.f.ip6.arpa');
  assert.equal(reverseName('::ffff:192.0.2.1'), reverseName('0:0:0:0:0:ffff:c000:201'));
  assert.equal(addressOfReverseName('7.2.0.192.in-addr.arpa'), '192.0.2.7');
  assert.equal(addressOfReverseName(reverseName('fd00:dd::3')), 'fd00:00dd:0000:0000:0000:0000:0000:0003');
  assert.equal(addressOfReverseName('2.0.192.in-addr.arpa'), undefined);
  assert.equal(addressOfReverseName('300.2.0.192.in-addr.arpa'), undefined);
});

test('a table adds and removes an endpoint in one step; shared names keep their other holders', () => {
  const t = new NameTable();
  t.add(EP('e1', 's1', 'db', '192.0.2.2', undefined, ['shared']));
  t.add(EP('e2', 's2', 'db2', '192.0.2.3', 'fd00::3', ['shared']));
  assert.deepEqual(t.lookup('shared').map((e) => e.endpointId), ['e1', 'e2']);
  assert.equal(t.reverse(reverseName('fd00::3'))?.name, 'db2');
  assert.equal(t.byAddress('fd00:0::3')?.endpointId, 'e2', 'any spelling of the address');
  t.remove('e1');
  assert.deepEqual(t.lookup('shared').map((e) => e.endpointId), ['e2']);
  assert.deepEqual(t.lookup('db'), []);
  assert.equal(t.reverse(reverseName('192.0.2.2')), undefined);
  assert.equal(t.size, 1);
});

function directory(): NameDirectory {
  const d = new NameDirectory();
  d.addNetwork({ id: 'A', name: 'neta', resolvesNames: true, internal: false, subnets: [Prefix.parse('192.0.2.0/24'), Prefix.parse('fd00:a::/64')] });
  d.addNetwork({ id: 'B', name: 'netb', resolvesNames: true, internal: true, subnets: [Prefix.parse('198.51.100.0/24')] });
  d.addNetwork({ id: 'D', name: 'bridge', resolvesNames: false, internal: false, subnets: [Prefix.parse('172.17.0.0/16')] });
  d.join('A', EP('a1', 'sa1', 'web', '192.0.2.2', 'fd00:a::2'));
  d.join('A', EP('a2', 'sa2', 'db', '192.0.2.3'));
  d.join('B', EP('b1', 'sb1', 'cache', '198.51.100.2'));
  // "both" is on A and B.
  d.join('A', EP('a3', 'sboth', 'both', '192.0.2.4'));
  d.join('B', EP('b3', 'sboth', 'both', '198.51.100.4'));
  d.join('D', EP('d1', 'sd1', 'plain', '172.17.0.2'));
  return d;
}

const addrs = (r: ReturnType<NameDirectory['resolve']>) => (r.kind === 'found' ? r.entries.map((e) => e.ipv4) : r.kind);

test('scoping: a client sees the names of its own networks only', () => {
  const d = directory();
  assert.deepEqual(addrs(d.resolve('A', '192.0.2.2', 'db', false)), ['192.0.2.3']);
  assert.deepEqual(addrs(d.resolve('A', '192.0.2.2', 'cache', false)), 'nxdomain', 'cache is on B only');
  assert.deepEqual(addrs(d.resolve('B', '198.51.100.2', 'db', false)), 'nxdomain');
  assert.deepEqual(addrs(d.resolve('B', '198.51.100.4', 'db', false)), ['192.0.2.3'], 'a container on both sees both');
  assert.deepEqual(addrs(d.resolve('A', '192.0.2.4', 'cache.netb', false)), ['198.51.100.2']);
  assert.deepEqual(addrs(d.resolve('A', '192.0.2.2', 'both', false)), ['192.0.2.4'], 'the address on the asker’s network');
  assert.deepEqual(addrs(d.resolve('A', '192.0.2.99', 'db', false)), ['192.0.2.3'], 'an unknown client on A sees A');
  assert.deepEqual(addrs(d.resolve('A', '192.0.2.2', 'DB.NetA.', false)), ['192.0.2.3']);
  assert.deepEqual(addrs(d.resolve('A', '192.0.2.2', 'nothing.neta', false)), 'nxdomain');
  assert.deepEqual(addrs(d.resolve('A', '192.0.2.2', 'www.example.com', false)), 'miss');
  assert.deepEqual(addrs(d.resolve('D', '172.17.0.3', 'plain', false)), 'miss', 'the default bridge resolves no names');
  assert.deepEqual(addrs(d.resolve('D', '172.17.0.3', 'web', false)), 'miss');
});

test('reverse lookups: local addresses, unknown addresses of local subnets, others', () => {
  const d = directory();
  assert.deepEqual(d.resolve('A', '192.0.2.2', reverseName('192.0.2.3'), true), { kind: 'ptr', target: 'db.neta' });
  assert.deepEqual(d.resolve('A', '192.0.2.2', reverseName('fd00:a::2'), true), { kind: 'ptr', target: 'web.neta' });
  assert.deepEqual(d.resolve('A', '192.0.2.2', reverseName('192.0.2.200'), true), { kind: 'nxdomain' });
  assert.deepEqual(d.resolve('A', '192.0.2.2', reverseName('198.51.100.2'), true), { kind: 'miss' }, 'not the asker’s network');
  assert.deepEqual(d.resolve('A', '192.0.2.2', reverseName('203.0.113.9'), true), { kind: 'miss' });
});

test('clients, forwarding policy, links, and leaving', () => {
  const d = directory();
  assert.ok(d.isClient('A', '192.0.2.77'));
  assert.ok(d.isClient('A', 'fd00:a::77'));
  assert.ok(d.isClient('A', '::ffff:192.0.2.77'));
  assert.ok(!d.isClient('A', '198.51.100.2'));
  assert.ok(!d.isClient('nope', '192.0.2.2'));
  assert.ok(d.mayForward('A', '192.0.2.2'));
  assert.ok(!d.mayForward('B', '198.51.100.2'), 'internal network only: no way out');
  assert.ok(d.mayForward('B', '198.51.100.4'), 'also on a non-internal network');
  assert.equal(d.endpointNamed('A', 'DB')?.ipv4, '192.0.2.3');
  d.leave('A', 'a3');
  assert.deepEqual(addrs(d.resolve('B', '198.51.100.4', 'db', false)), 'nxdomain', 'left A: A’s names are gone for it');
  assert.deepEqual(addrs(d.resolve('A', '192.0.2.2', 'both', false)), 'nxdomain');
  d.removeNetwork('B');
  assert.ok(!d.isClient('B', '198.51.100.2'));
});
