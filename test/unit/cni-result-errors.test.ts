/** CNI results in each version's format, and netd's typed errors in CNI's codes. No kernel. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { buildResult, mergeResult, type Attachment } from '../../src/cni/result.js';
import { CNI_CODE, CniError, ERROR_CODE_TABLE, NETD_CODE, toCniError } from '../../src/cni/errors.js';
import { CommandError, ConflictError, ForbiddenError, InvalidArgumentError, KernelError, MissingToolError, NetdError, NotFoundError } from '../../src/errors.js';

const dual: Attachment = {
  hostInterface: { name: 'veth1234567', mac: '02:00:00:00:00:01' },
  ifname: 'eth0',
  mac: '02:00:00:00:00:02',
  sandbox: '/run/netns/x',
  addresses: [
    { address: '192.0.2.2/24', gateway: '192.0.2.1' },
    { address: 'fd00::2/64', gateway: 'fd00::1' },
  ],
  defaultGateways: ['192.0.2.1', 'fd00::1'],
  nameservers: ['192.0.2.1'],
};

describe('CNI results', () => {
  const interfaces = [
    { name: 'veth1234567', mac: '02:00:00:00:00:01' },
    { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/x' },
  ];
  const routes = [
    { dst: '0.0.0.0/0', gw: '192.0.2.1' },
    { dst: '::/0', gw: 'fd00::1' },
  ];

  test('1.0.0 and 1.1.0: no ips[].version', () => {
    for (const v of ['1.0.0', '1.1.0']) {
      assert.deepEqual(buildResult(v, dual), {
        cniVersion: v,
        interfaces,
        ips: [
          { address: '192.0.2.2/24', gateway: '192.0.2.1', interface: 1 },
          { address: 'fd00::2/64', gateway: 'fd00::1', interface: 1 },
        ],
        routes,
        dns: { nameservers: ['192.0.2.1'] },
      });
    }
  });

  test('0.3.0, 0.3.1 and 0.4.0: ips[].version "4"/"6"', () => {
    for (const v of ['0.3.0', '0.3.1', '0.4.0']) {
      assert.deepEqual(buildResult(v, dual), {
        cniVersion: v,
        interfaces,
        ips: [
          { version: '4', address: '192.0.2.2/24', gateway: '192.0.2.1', interface: 1 },
          { version: '6', address: 'fd00::2/64', gateway: 'fd00::1', interface: 1 },
        ],
        routes,
        dns: { nameservers: ['192.0.2.1'] },
      });
    }
  });

  test('a second interface: no default routes; no host interface known: the container interface is index 0; no DNS: empty', () => {
    const r = buildResult('1.0.0', { ...dual, hostInterface: undefined, defaultGateways: [], nameservers: [], addresses: [dual.addresses[0]] });
    assert.deepEqual(r.interfaces, [interfaces[1]]);
    assert.deepEqual(r.ips, [{ address: '192.0.2.2/24', gateway: '192.0.2.1', interface: 0 }]);
    assert.deepEqual(r.routes, []);
    assert.deepEqual(r.dns, {});
  });

  test('the container interface always carries its MAC when known (podman rejects one without)', () => {
    assert.equal(buildResult('0.4.0', dual).interfaces[1].mac, '02:00:00:00:00:02');
  });
});

describe('CNI error codes', () => {
  test('netd\'s typed errors map through one table, keeping their HTTP status', () => {
    const cases: [NetdError, number, number][] = [
      [new InvalidArgumentError('bad'), CNI_CODE.INVALID_NETWORK_CONFIG, 400],
      [new NotFoundError('none'), NETD_CODE.NOT_FOUND, 404],
      [new ConflictError('taken'), NETD_CODE.CONFLICT, 409],
      [new ForbiddenError('no'), NETD_CODE.FORBIDDEN, 403],
      [new KernelError('create veth', 'EEXIST'), CNI_CODE.IO_FAILURE, 500],
      [new CommandError('iptables-restore', 1, 'boom'), NETD_CODE.COMMAND_FAILED, 500],
      [new MissingToolError('iptables-restore', 'iptables'), NETD_CODE.MISSING_TOOL, 500],
      [new NetdError('odd', 500, 'internal'), NETD_CODE.INTERNAL, 500],
    ];
    for (const [err, code, status] of cases) {
      const e = toCniError(err);
      assert.equal(e.cniCode, code, err.constructor.name);
      assert.equal(e.status, status, err.constructor.name);
      assert.equal(e.message, err.message);
    }
    assert.equal(toCniError(new Error('plain')).cniCode, NETD_CODE.INTERNAL);
    assert.equal(toCniError('a string').cniCode, NETD_CODE.INTERNAL);
    assert.equal(Object.keys(ERROR_CODE_TABLE).length, 8);
  });

  test('CniError: status by code; the body is the spec\'s object', () => {
    const cases: [number, number][] = [
      [CNI_CODE.INCOMPATIBLE_VERSION, 400],
      [CNI_CODE.UNKNOWN_CONTAINER, 404],
      [CNI_CODE.INVALID_ENVIRONMENT, 400],
      [CNI_CODE.DECODE_FAILURE, 400],
      [CNI_CODE.INVALID_NETWORK_CONFIG, 400],
      [CNI_CODE.TRY_AGAIN_LATER, 503],
      [CNI_CODE.NOT_AVAILABLE, 409],
      [NETD_CODE.CHECK_FAILED, 409],
      [NETD_CODE.INTERNAL, 500],
    ];
    for (const [code, status] of cases) assert.equal(new CniError(code, 'm').status, status, String(code));
    assert.deepEqual(new CniError(4, 'CNI_NETNS is required', 'why').toBody('1.0.0'), { cniVersion: '1.0.0', code: 4, msg: 'CNI_NETNS is required', details: 'why' });
    assert.deepEqual(new CniError(7, 'x').toBody('0.4.0'), { cniVersion: '0.4.0', code: 7, msg: 'x' });
    assert.equal(toCniError(new CniError(3, 'gone')).cniCode, 3, 'a CniError passes as it is');
  });
});

describe('CNI results after a prevResult (netd chained after another plugin)', () => {
  const prev = {
    cniVersion: '0.4.0',
    interfaces: [{ name: 'macvlan0', mac: '02:00:00:00:00:aa', sandbox: '/run/netns/x' }],
    ips: [{ version: '4', address: '198.51.100.5/24', gateway: '198.51.100.1', interface: 0 }],
    routes: [{ dst: '198.51.100.0/24' }, { dst: '0.0.0.0/0', gw: '192.0.2.1' }],
    dns: { nameservers: ['198.51.100.53'], domain: 'example.test', search: ['example.test'] },
  };

  test('prevResult\'s interfaces first, netd\'s appended with their ips indices shifted; routes and dns merged', () => {
    const r = buildResult('1.0.0', { ...dual, search: ['corp.test'], options: ['ndots:0'] }, prev);
    assert.deepEqual(r.interfaces.map((i) => i.name), ['macvlan0', 'veth1234567', 'eth0']);
    assert.deepEqual(r.ips, [
      { address: '198.51.100.5/24', gateway: '198.51.100.1', interface: 0 },
      { address: '192.0.2.2/24', gateway: '192.0.2.1', interface: 2 },
      { address: 'fd00::2/64', gateway: 'fd00::1', interface: 2 },
    ]);
    assert.deepEqual(r.routes, [{ dst: '198.51.100.0/24' }, { dst: '0.0.0.0/0', gw: '192.0.2.1' }, { dst: '::/0', gw: 'fd00::1' }]);
    assert.deepEqual(r.dns, { nameservers: ['198.51.100.53', '192.0.2.1'], domain: 'example.test', search: ['example.test', 'corp.test'], options: ['ndots:0'] });
    assert.equal(r.cniVersion, '1.0.0');
  });

  test('converted to the config\'s version: 0.4.0 keeps ips[].version on every entry', () => {
    const r = mergeResult('0.4.0', prev, buildResult('1.0.0', dual));
    assert.deepEqual(r.ips.map((ip) => [ip.version, ip.interface]), [['4', 0], ['4', 2], ['6', 2]]);
    assert.equal(r.cniVersion, '0.4.0');
  });

  test('a result without prevResult carries netd\'s DNS search and options', () => {
    const r = buildResult('1.0.0', { ...dual, search: ['corp.test'], options: ['ndots:0'] });
    assert.deepEqual(r.dns, { nameservers: ['192.0.2.1'], search: ['corp.test'], options: ['ndots:0'] });
  });
});
