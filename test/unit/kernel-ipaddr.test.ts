import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/errors.js';
import { IPAddress, InterfaceAddress, Prefix } from '../../src/net/index.js';

// The kernel layer's parsers moved to src/net: these assertions now pin their replacements.
const parseIp = (s: unknown) => {
  const a = IPAddress.parse(s);
  return { family: a.family, bytes: a.bytes, text: a.toString() };
};
const parseCidr = (s: unknown, opts: { network?: boolean } = {}) => {
  const a = opts.network ? Prefix.parse(s) : InterfaceAddress.parse(s);
  return { family: a.family, prefixLen: a.length, cidr: a.toString() };
};
const formatIp = (bytes: Uint8Array) => IPAddress.fromBytes(bytes).toString();
const maskBytes = (bytes: Uint8Array, len: number) => Prefix.of(IPAddress.fromBytes(bytes), len).address.bytes;

test('parseIp: IPv4 and IPv6 to family, bytes and canonical text', () => {
  assert.deepEqual(parseIp('192.0.2.10'), { family: 4, bytes: Buffer.from([192, 0, 2, 10]), text: '192.0.2.10' });
  const v6 = parseIp('2001:DB8:0:0::0:1');
  assert.equal(v6.family, 6);
  assert.equal(v6.text, '2001:db8::1');
  assert.deepEqual(v6.bytes, Buffer.from('20010db8000000000000000000000001', 'hex'));
});

test('parseIp rejects malformed addresses, leading zeros and zone ids', () => {
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.4/24', 'fe80::1%eth0', '::g', 'localhost', ' 1.2.3.4', 7, null]) {
    assert.throws(() => parseIp(bad), InvalidArgumentError, `should reject ${JSON.stringify(bad)}`);
  }
});

test('parseCidr: interface addresses keep host bits', () => {
  const p = parseCidr('172.18.0.2/16');
  assert.equal(p.cidr, '172.18.0.2/16');
  assert.equal(p.prefixLen, 16);
  assert.equal(parseCidr('fd00::0002/64').cidr, 'fd00::2/64');
  assert.equal(parseCidr('0.0.0.0/0').prefixLen, 0);
  assert.equal(parseCidr('::/0').family, 6);
});

test('parseCidr: route destinations must have host bits clear', () => {
  assert.equal(parseCidr('10.1.0.0/16', { network: true }).cidr, '10.1.0.0/16');
  assert.equal(parseCidr('2001:db8::/32', { network: true }).cidr, '2001:db8::/32');
  assert.throws(() => parseCidr('10.1.0.1/16', { network: true }), /host bits are set \(did you mean 10\.1\.0\.0\/16\?\)/);
  assert.throws(() => parseCidr('2001:db8::1/64', { network: true }), InvalidArgumentError);
});

test('parseCidr rejects missing or bad prefix lengths', () => {
  for (const bad of ['10.0.0.1', '10.0.0.1/', '10.0.0.1/33', '10.0.0.1/-1', '10.0.0.1/08', '10.0.0.1/1.5', 'fd00::1/129', '/24', 'x/24']) {
    assert.throws(() => parseCidr(bad), InvalidArgumentError, `should reject ${bad}`);
  }
});

test('formatIp and maskBytes', () => {
  assert.equal(formatIp(Buffer.from([10, 0, 0, 1])), '10.0.0.1');
  assert.equal(formatIp(Buffer.from('fe800000000000000000000000000001', 'hex')), 'fe80::1');
  assert.throws(() => formatIp(Buffer.alloc(5)), InvalidArgumentError);
  assert.deepEqual(maskBytes(Buffer.from([10, 1, 255, 255]), 17), Buffer.from([10, 1, 128, 0]));
  assert.deepEqual(maskBytes(Buffer.from([255, 255, 255, 255]), 0), Buffer.from([0, 0, 0, 0]));
  assert.deepEqual(maskBytes(Buffer.from([255, 255, 255, 255]), 32), Buffer.from([255, 255, 255, 255]));
});
