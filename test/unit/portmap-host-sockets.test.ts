/** Reading the host's bound ports from /proc/net text (given here, not read from the machine). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostSockets, decodeProcAddress, parseProcNet, parseSctpEps } from '../../src/portmap/host-sockets.js';
import { PortRange, type Proto } from '../../src/net/index.js';

const HEADER = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';

/** The first host socket a binding of one port would shadow. */
const conflict = (host: HostSockets, proto: Proto, ip: string, port: number) => host.conflicts(proto, ip, PortRange.of(port))[0];

test('addresses are 32-bit words in host byte order', () => {
  assert.equal(decodeProcAddress('0100007F', true), '127.0.0.1');
  assert.equal(decodeProcAddress('7F000001', false), '127.0.0.1');
  assert.equal(decodeProcAddress('00000000', true), '0.0.0.0');
  assert.equal(decodeProcAddress('00000000000000000000000001000000', true), '::1');
  assert.equal(decodeProcAddress('B80D0120000000000000000001000000', true), '2001:db8::1');
  assert.equal(decodeProcAddress('0000000000000000FFFF00000100007F', true), '127.0.0.1', 'IPv4-mapped is IPv4');
  assert.throws(() => decodeProcAddress('xyz', true));
});

test('TCP: listening sockets only; UDP: every bound socket', () => {
  const tcp = [
    HEADER,
    '   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0',
    '   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1',
  ].join('\n');
  assert.deepEqual(parseProcNet(tcp, 'tcp', true), [{ proto: 'tcp', family: 4, address: '127.0.0.1', port: 8080 }]);
  const udp6 = [HEADER, '  10: 00000000000000000000000000000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0 0'].join('\n');
  assert.deepEqual(parseProcNet(udp6, 'udp', true), [{ proto: 'udp', family: 6, address: '::', port: 53 }]);
  const eps = ' ENDPT     SOCK   STY SST HBKT LPORT   UID INODE LADDRS\n ffff8881 ffff8882 2   10  5    3868   0 12345 10.0.0.1 127.0.0.1\n';
  assert.deepEqual(parseSctpEps(eps), [
    { proto: 'sctp', family: 4, address: '10.0.0.1', port: 3868 },
    { proto: 'sctp', family: 4, address: '127.0.0.1', port: 3868 },
  ]);
});

test('conflicts: equal or wildcard addresses of a family; a socket on :: may be dual-stack', () => {
  const host = new HostSockets([
    { proto: 'udp', family: 4, address: '127.0.0.1', port: 53 },
    { proto: 'udp', family: 6, address: '::', port: 5353 },
    { proto: 'tcp', family: 6, address: '2001:db8::1', port: 443 },
  ]);
  assert.ok(conflict(host, 'udp', '0.0.0.0', 53), 'a wildcard mapping shadows a specific socket');
  assert.ok(conflict(host, 'udp', '127.0.0.1', 53));
  assert.equal(conflict(host, 'udp', '198.51.100.1', 53), undefined, 'another address');
  assert.equal(conflict(host, 'tcp', '127.0.0.1', 53), undefined, 'another protocol');
  assert.ok(conflict(host, 'udp', '198.51.100.1', 5353), 'a [::] socket may take IPv4 too');
  assert.ok(conflict(host, 'udp', '::', 5353));
  assert.ok(conflict(host, 'tcp', '::', 443));
  assert.equal(conflict(host, 'tcp', '0.0.0.0', 443), undefined, 'an IPv6 address does not take IPv4');
});
