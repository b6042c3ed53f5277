// Only the key-to-path mapping is tested here (pure). Reading and writing are tested inside a throwaway
// namespace by test/integration/kernel.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/errors.js';
import { sysctlPath } from '../../src/kernel/sysctl.js';

test('dotted keys map to /proc/sys paths', () => {
  assert.equal(sysctlPath('net.ipv4.ip_forward'), '/proc/sys/net/ipv4/ip_forward');
  assert.equal(sysctlPath('net.ipv6.conf.all.forwarding'), '/proc/sys/net/ipv6/conf/all/forwarding');
  assert.equal(sysctlPath('net.ipv4.conf.br-0123456789ab.route_localnet'), '/proc/sys/net/ipv4/conf/br-0123456789ab/route_localnet');
  assert.equal(sysctlPath('net.bridge.bridge-nf-call-iptables'), '/proc/sys/net/bridge/bridge-nf-call-iptables');
  assert.equal(sysctlPath('net.ipv4.neigh.eth0.gc_stale_time'), '/proc/sys/net/ipv4/neigh/eth0/gc_stale_time');
});

test('an interface name may contain dots (VLAN devices)', () => {
  assert.equal(sysctlPath('net.ipv4.conf.eth0.100.forwarding'), '/proc/sys/net/ipv4/conf/eth0.100/forwarding');
});

test('keys that could escape /proc/sys or are malformed are rejected', () => {
  const bad: unknown[] = [
    '',
    '..',
    '.net.ipv4.ip_forward',
    'net..ipv4',
    'net.ipv4.ip_forward.',
    'net/ipv4/ip_forward',
    '../../etc/passwd',
    'net.ipv4.conf.a/b.forwarding', // '/' in the interface name
    'net.ipv4.conf...forwarding', // interface '.'
    'net.ipv4.conf....forwarding', // interface '..'
    'net.ipv4.conf.forwarding', // no interface
    'net.ipv4.conf.eth0', // no leaf
    'net.ipv4.conf.0123456789abcdef.forwarding', // interface name too long
    'net.ipv4.conf.eth0.for warding',
    'net.ipv4.ip forward',
    'net.ipv4.ip_forward\0',
    5,
  ];
  for (const key of bad) assert.throws(() => sysctlPath(key), InvalidArgumentError, `should reject ${JSON.stringify(key)}`);
});
