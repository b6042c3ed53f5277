// How failures of the netlink package become typed errors. (Everything that talks to the kernel is in
// test/integration/kernel.test.ts, inside throwaway namespaces.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError, KernelError } from '../../src/errors.js';
import { MAC } from '../../src/net/index.js';
import { bridgeCreatePayload, hairpinPayload, toKernelError, vethCreatePayload } from '../../src/kernel/rtnetlink.js';

function asKernel(err: unknown): KernelError {
  assert.ok(err instanceof KernelError, `expected a KernelError, got ${String(err)}`);
  return err;
}

test('"Request rejected: EEXIST" becomes KernelError(op, EEXIST)', () => {
  const e = asKernel(toKernelError('create bridge br0', new Error('Request rejected: EEXIST')));
  assert.equal(e.errno, 'EEXIST');
  assert.equal(e.op, 'create bridge br0');
  assert.equal(e.message, 'create bridge br0: EEXIST');
  assert.equal(e.code, 'kernel');
});

test('a numeric errno the package could not name is translated', () => {
  assert.equal(asKernel(toKernelError('x', new Error('Request rejected: 19'))).errno, 'ENODEV');
});

test('an errno libuv cannot name ("Unknown system error -54") keeps its Linux name', () => {
  assert.equal(asKernel(toKernelError('x', new Error('Request rejected: Unknown system error -54'))).errno, 'EXFULL');
  assert.equal(asKernel(toKernelError('x', new Error('Request rejected: Unknown system error -4000'))).errno, 'errno 4000');
});

test('the package timeout becomes ETIMEDOUT', () => {
  assert.equal(asKernel(toKernelError('x', new Error('Timeout has been reached'))).errno, 'ETIMEDOUT');
});

test('a poll error (libuv reports POLLERR as EBADF) is a receive-buffer overrun: ENOBUFS', () => {
  const err = Object.assign(new Error('error when polling socket: bad file descriptor'), { code: 'EBADF', syscall: 'poll', errno: -9 });
  const e = asKernel(toKernelError('get link #1', err));
  assert.equal(e.errno, 'ENOBUFS');
  assert.match(e.message, /reopened/);
});

test('system errors keep their code; anything else is EIO; typed errors pass through', () => {
  const sys = Object.assign(new Error('sendmsg failed'), { code: 'EPERM', syscall: 'sendmsg' });
  assert.equal(asKernel(toKernelError('x', sys)).errno, 'EPERM');
  assert.equal(asKernel(toKernelError('x', new Error('Unexpected route message received'))).errno, 'EIO');
  const invalid = new InvalidArgumentError('bad');
  assert.equal(toKernelError('x', invalid), invalid);
  const kernel = new KernelError('y', 'EBUSY');
  assert.equal(toKernelError('x', kernel), kernel);
});

// ---- the raw requests Rtnl sends, byte for byte ----

/** Hex dump to bytes; whitespace and '# comments' are ignored. */
function hex(s: string): Buffer {
  return Buffer.from(s.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
}

test('veth creation payload: peer named, moved, addressed; host end enslaved and up', () => {
  const payload = vethCreatePayload({
    name: 'veth0',
    mtu: 1400,
    master: 5,
    up: true,
    peer: { name: 'eth0', netnsFd: 21, mac: MAC.parse('02:00:00:00:00:02') }, // peer MTU defaults to the host end's
  });
  assert.deepEqual(
    payload,
    hex(`
      00 00 0000 00000000 01000000 01000000        # ifinfomsg: flags IFF_UP, change IFF_UP
      0a00 0300 7665746830 00 0000                 # IFLA_IFNAME "veth0"
      0800 0400 78050000                           # IFLA_MTU 1400
      0800 0a00 05000000                           # IFLA_MASTER 5
      5000 1280                                    # IFLA_LINKINFO | NLA_F_NESTED
        0900 0100 76657468 00 000000                 # IFLA_INFO_KIND "veth"
        4000 0280                                    # IFLA_INFO_DATA | NLA_F_NESTED
          3c00 0100                                    # VETH_INFO_PEER
            00 00 0000 00000000 00000000 00000000        # ifinfomsg
            0900 0300 65746830 00 000000                 # IFLA_IFNAME "eth0"
            0800 1c00 15000000                           # IFLA_NET_NS_FD 21
            0a00 0100 020000000002 0000                  # IFLA_ADDRESS
            0800 0400 78050000                           # IFLA_MTU 1400
    `),
  );
});

test('veth payload without options is minimal', () => {
  assert.deepEqual(
    vethCreatePayload({ name: 'v', peer: { name: 'p', netnsFd: 3 } }),
    hex(`
      00 00 0000 00000000 00000000 00000000
      0600 0300 7600 0000
      3800 1280
        0900 0100 76657468 00 000000
        2800 0280
          2400 0100
            00 00 0000 00000000 00000000 00000000
            0600 0300 7000 0000
            0800 1c00 03000000
    `),
  );
});

test('bridge creation payload', () => {
  assert.deepEqual(
    bridgeCreatePayload({ name: 'br0', mtu: 9000, mac: MAC.parse('02:00:00:00:00:01'), up: true }),
    hex(`
      00 00 0000 00000000 01000000 01000000
      0800 0300 62723000
      0800 0400 28230000
      0a00 0100 020000000001 0000
      1000 1280 0b00 0100 627269646765 00 00
    `),
  );
});

test('hairpin payload: IFLA_LINKINFO{INFO_SLAVE_KIND "bridge", INFO_SLAVE_DATA{IFLA_BRPORT_MODE}}', () => {
  assert.deepEqual(
    hairpinPayload(7, true),
    hex(`
      00 00 0000 07000000 00000000 00000000
      1c00 1280
        0b00 0400 627269646765 00 00
        0c00 0580
          0500 0400 01 000000
    `),
  );
  assert.equal(hairpinPayload(7, false).at(-4), 0);
});

test('payload builders validate before anything is sent', () => {
  assert.throws(() => vethCreatePayload({ name: 'bad/name', peer: { name: 'eth0', netnsFd: 3 } }), InvalidArgumentError);
  assert.throws(() => vethCreatePayload({ name: 'v', peer: { name: '', netnsFd: 3 } }), InvalidArgumentError);
  assert.throws(() => vethCreatePayload({ name: 'v', peer: { name: 'eth0', netnsFd: 3, mac: MAC.parse('01:00:5e:00:00:01') } }), InvalidArgumentError);
  assert.throws(() => vethCreatePayload({ name: 'v', mtu: 67, peer: { name: 'eth0', netnsFd: 3 } }), InvalidArgumentError);
  assert.throws(() => vethCreatePayload({ name: 'v', master: 0, peer: { name: 'eth0', netnsFd: 3 } }), InvalidArgumentError);
  assert.throws(() => bridgeCreatePayload({ name: 'br0', mtu: 70000 }), InvalidArgumentError);
  assert.throws(() => bridgeCreatePayload({ name: 'this-name-is-too-long' }), InvalidArgumentError);
  assert.throws(() => hairpinPayload(-1, true), InvalidArgumentError);
});
