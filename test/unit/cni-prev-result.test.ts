/** CHECK's prevResult against netd's record of the attachment (src/cni/prev-result.ts). No kernel. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { comparePrevResult, type RecordedAttachment } from '../../src/cni/prev-result.js';
import { buildResult } from '../../src/cni/result.js';

const NETNS = '/run/netns/c1';
const REC: RecordedAttachment = { ifname: 'eth0', mac: '02:00:00:00:00:51', sandbox: NETNS, addresses: ['192.0.2.51/24', '2001:db8::51/64'] };

/** What netd's ADD answered for REC, in a version's format (the cached result a runtime hands back). */
function resultFor(cniVersion: string): Record<string, unknown> {
  return buildResult(cniVersion, {
    hostInterface: { name: 'vethabc', mac: '02:00:00:00:00:01' },
    ifname: 'eth0',
    mac: '02:00:00:00:00:51',
    sandbox: NETNS,
    addresses: [{ address: '192.0.2.51/24', gateway: '192.0.2.1' }, { address: '2001:db8::51/64', gateway: '2001:db8::1' }],
    defaultGateways: ['192.0.2.1'],
    nameservers: ['192.0.2.1'],
  }) as unknown as Record<string, unknown>;
}

type Edit = (r: { interfaces: Record<string, unknown>[]; ips: Record<string, unknown>[] }) => void;
const edited = (edit: Edit, version = '1.0.0') => {
  const r = structuredClone(resultFor(version)) as Parameters<Edit>[0];
  edit(r);
  return r;
};

test('netd\'s own result agrees with its record, in every version\'s format', () => {
  for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']) assert.deepEqual(comparePrevResult(resultFor(v), REC), [], v);
});

test('what agrees: other spellings, chained plugins\' entries', () => {
  const cases: [string, Edit][] = [
    ['MAC in upper case', (r) => (r.interfaces[1].mac = '02:00:00:00:00:51'.toUpperCase())],
    ['no MAC given', (r) => delete r.interfaces[1].mac],
    ['v6 address spelled long', (r) => (r.ips[1].address = '2001:0db8:0:0:0:0:0:51/64')],
    ['the host interface renamed (not the container\'s)', (r) => (r.interfaces[0].name = 'other')],
    ['another plugin\'s interface and address in a chain', (r) => { r.interfaces.push({ name: 'net1', sandbox: NETNS }); r.ips.push({ address: '198.51.100.9/24', interface: 2 }); }],
    ['addresses without an interface index', (r) => r.ips.forEach((ip) => delete ip.interface)],
  ];
  for (const [name, edit] of cases) assert.deepEqual(comparePrevResult(edited(edit), REC), [], name);
});

test('each difference is reported', () => {
  const cases: [string, Edit, RegExp][] = [
    ['another MAC', (r) => (r.interfaces[1].mac = '02:00:00:00:00:52'), /MAC 02:00:00:00:00:52; netd's record has 02:00:00:00:00:51/],
    ['an unparsable MAC', (r) => (r.interfaces[1].mac = 'nonsense'), /MAC nonsense/],
    ['another sandbox', (r) => (r.interfaces[1].sandbox = '/run/netns/other'), /sandbox \/run\/netns\/other, not CNI_NETNS/],
    ['the interface named otherwise', (r) => (r.interfaces[1].name = 'eth1'), /no interface eth0 in the sandbox/],
    ['the interface without a sandbox', (r) => delete r.interfaces[1].sandbox, /no interface eth0 in the sandbox/],
    ['listed twice', (r) => r.interfaces.push({ ...r.interfaces[1] }), /twice/],
    ['another v4 address', (r) => (r.ips[0].address = '192.0.2.52/24'), /has address 192\.0\.2\.52\/24/],
    ['another prefix length', (r) => (r.ips[0].address = '192.0.2.51/25'), /has address 192\.0\.2\.51\/25/],
    ['an address missing', (r) => r.ips.splice(1, 1), /lacks address 2001:db8::51\/64/],
    ['an extra address on the interface', (r) => r.ips.push({ address: '192.0.2.99/24', interface: 1 }), /has address 192\.0\.2\.99\/24/],
    ['an invalid address', (r) => (r.ips[0].address = '192.0.2.999/24'), /invalid address/],
    ['interfaces not a list', (r) => ((r as Record<string, unknown>).interfaces = 'eth0'), /interfaces is not a list/],
    ['ips not a list', (r) => ((r as Record<string, unknown>).ips = { address: '192.0.2.51/24' }), /ips is not a list/],
  ];
  for (const [name, edit, want] of cases) {
    const problems = comparePrevResult(edited(edit), REC);
    assert.ok(problems.some((p) => want.test(p)), `${name}: ${JSON.stringify(problems)}`);
  }
  for (const v of ['0.4.0', '1.1.0']) assert.match(comparePrevResult(edited((r) => (r.interfaces[1].mac = '02:00:00:00:00:52'), v), REC).join(), /MAC/, v);
  for (const bad of [null, 'x', 7, []]) assert.deepEqual(comparePrevResult(bad, REC), ['prevResult is not a result object'], JSON.stringify(bad));
});
