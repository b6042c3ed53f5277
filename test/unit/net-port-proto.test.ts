import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/errors.js';
import { PROTO_NUMBER, PortRange, checkPort, checkProto, parsePort, parseProto, protoProblem } from '../../src/net/index.js';

test('ports: numbers and decimal text from 1 to 65535', () => {
  for (const p of [1, 80, 65535]) assert.equal(checkPort(p), p);
  for (const p of [0, 65536, -1, 1.5, NaN, '80', null]) assert.throws(() => checkPort(p, 'host port'), /^InvalidArgumentError: invalid host port /);
  assert.equal(parsePort('8080'), 8080);
  for (const t of ['0', '65536', '', '8o', '+80', '0x50', ' 80', '100000', 80]) assert.throws(() => parsePort(t), InvalidArgumentError, String(t));
});

test('port ranges', () => {
  assert.deepEqual({ ...PortRange.parse('8000-8010') }, { start: 8000, end: 8010 });
  assert.equal(PortRange.parse('80').toString(), '80');
  assert.equal(PortRange.parse('80-80').size, 1);
  assert.equal(PortRange.of(1, 65535).size, 65535);
  assert.ok(PortRange.parse('10-20').contains(15) && !PortRange.parse('10-20').contains(21));
  const r = PortRange.of(10, 20);
  assert.ok(r.overlaps(PortRange.of(20, 30)) && r.overlaps(PortRange.of(1, 10)) && r.overlaps(PortRange.of(12)) && r.overlaps(PortRange.of(1, 65535)));
  assert.ok(!r.overlaps(PortRange.of(21, 30)) && !r.overlaps(PortRange.of(9)));
  for (const t of ['20-10', '0-10', '10-', '-10', '1-2-3', '10-65536']) assert.throws(() => PortRange.parse(t), InvalidArgumentError, t);
  assert.throws(() => PortRange.of(20, 10), InvalidArgumentError);
});

test('protocols by name and number', () => {
  assert.deepEqual(PROTO_NUMBER, { tcp: 6, udp: 17, sctp: 132 });
  for (const [input, want] of [['tcp', 'tcp'], ['UDP', 'udp'], ['sctp', 'sctp'], [6, 'tcp'], [17, 'udp'], [132, 'sctp']] as const) {
    assert.equal(parseProto(input), want);
  }
  for (const bad of ['icmp', '', 1, 0, null, 'tcp ']) assert.throws(() => parseProto(bad), InvalidArgumentError, String(bad));
  assert.match(protoProblem(1)!, /protocol number 1 is not one of 6 \(tcp\), 17 \(udp\), 132 \(sctp\)/);
  assert.equal(protoProblem('TCP'), undefined);
  assert.equal(checkProto('udp'), 'udp');
  assert.throws(() => checkProto('UDP'), InvalidArgumentError, 'checkProto is exact');
});
