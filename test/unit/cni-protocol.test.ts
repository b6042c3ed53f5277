/** CNI's protocol as the daemon reads it: the environment, CNI_ARGS, the network configuration, versions. No kernel. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseCniArgs, parseEnv } from '../../src/cni/env.js';
import { decodeStdin, parseConfig, staticRequests } from '../../src/cni/config.js';
import { CniError } from '../../src/cni/errors.js';
import { checkVersion, compareVersions, versionInfo } from '../../src/cni/version.js';

/** Runs fn and returns the CNI code it threw (undefined: it did not throw). */
function codeOf(fn: () => unknown): number | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(err instanceof CniError, `a CniError, not ${String(err)}`);
    return err.cniCode;
  }
}

const ADD = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_NETNS: '/proc/1/ns/net', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

describe('CNI environment', () => {
  test('the variables each command needs; CNI_NETNS optional for DEL; GC/STATUS/VERSION need none', () => {
    const cases: [unknown, number | undefined][] = [
      [ADD, undefined],
      [{ ...ADD, CNI_COMMAND: 'CHECK' }, undefined],
      [{ ...ADD, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, undefined],
      [{ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'x', CNI_IFNAME: 'eth0' }, undefined],
      [{ CNI_COMMAND: 'GC' }, undefined],
      [{ CNI_COMMAND: 'STATUS' }, undefined],
      [{ CNI_COMMAND: 'VERSION' }, undefined],
      [{ ...ADD, CNI_NETNS: undefined }, 4],
      [{ ...ADD, CNI_NETNS: '' }, 4],
      [{ ...ADD, CNI_COMMAND: 'CHECK', CNI_NETNS: '' }, 4],
      [{ ...ADD, CNI_CONTAINERID: '' }, 4],
      [{ ...ADD, CNI_IFNAME: undefined }, 4],
      [{ ...ADD, CNI_COMMAND: undefined }, 4],
      [{ ...ADD, CNI_COMMAND: 'add' }, 4],
      [{ ...ADD, CNI_COMMAND: 'UPDATE' }, 4],
      [{ ...ADD, CNI_IFNAME: 'a/b' }, 4],
      [{ ...ADD, CNI_IFNAME: 'sixteen-chars-xx' }, 4],
      [{ ...ADD, CNI_CONTAINERID: '-leading-dash' }, 4],
      [{ ...ADD, CNI_CONTAINERID: 'has space' }, 4],
      // The spec sets no length (64 was netd's own, now 1024: a bound on what is stored).
      [{ ...ADD, CNI_CONTAINERID: 'a'.repeat(1025) }, 4],
      [{ ...ADD, CNI_CONTAINERID: 'a'.repeat(1024) }, undefined],
      [{ ...ADD, CNI_CONTAINERID: 'k8s_pod.x-1_' + 'f'.repeat(200) }, undefined],
      // DEL reads leniently: what ADD refused must still be deletable (else kubelet retries forever).
      [{ ...ADD, CNI_COMMAND: 'DEL', CNI_ARGS: 'novalue' }, undefined],
      [{ ...ADD, CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'a'.repeat(2000) }, undefined],
      [{ ...ADD, CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'has space' }, undefined],
      [{ ...ADD, CNI_COMMAND: 'DEL', CNI_CONTAINERID: '' }, 4],
      [{ ...ADD, CNI_NETNS: 'relative/path' }, 4],
      [{ ...ADD, CNI_NETNS: 7 }, 4],
      [{ ...ADD, CNI_ARGS: 'novalue' }, 4],
      ['not an object', 4],
      [null, 4],
    ];
    for (const [env, code] of cases) assert.equal(codeOf(() => parseEnv(env)), code, JSON.stringify(env));
  });

  test('parsed values', () => {
    const env = parseEnv({ ...ADD, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web-0;K8S_POD_NAMESPACE=default' });
    assert.equal(env.command, 'ADD');
    assert.equal(env.containerId, 'abc123');
    assert.equal(env.netns, '/proc/1/ns/net');
    assert.equal(env.ifname, 'eth0');
    assert.equal(env.args.get('K8S_POD_NAME'), 'web-0');
    assert.equal(env.args.get('IgnoreUnknown'), '1');
  });

  test('CNI_ARGS', () => {
    const cases: [string, [string, string][]][] = [
      ['', []],
      ['A=1', [['A', '1']]],
      ['A=1;B=2', [['A', '1'], ['B', '2']]],
      ['A=1;;B=', [['A', '1'], ['B', '']]],
      ['A=x=y', [['A', 'x=y']]],
    ];
    for (const [text, want] of cases) assert.deepEqual([...parseCniArgs(text)], want, text);
    for (const text of ['A', '=1', 'A=1;B']) assert.equal(codeOf(() => parseCniArgs(text)), 4, text);
  });
});

describe('static address and MAC requests: CNI_ARGS IP/MAC (podman 4.3\'s --ip/--mac-address), runtimeConfig winning', () => {
  const rcOf = (runtimeConfig: unknown) => parseConfig(decodeStdin(JSON.stringify({ cniVersion: '0.4.0', name: 'n', runtimeConfig }))).runtimeConfig;
  const show = (r: ReturnType<typeof staticRequests>) => ({ ips: r.ips.map(String), mac: r.mac?.toString() });
  const cases: [string, unknown, string, { ips: string[]; mac?: string }][] = [
    ['nothing', {}, '', { ips: [], mac: undefined }],
    ['podman 4.3 as captured', {}, 'IgnoreUnknown=1;K8S_POD_NAME=s2;MAC=02:00:00:00:00:51;IP=192.0.2.51', { ips: ['192.0.2.51'], mac: '02:00:00:00:00:51' }],
    ['IP only', {}, 'IP=192.0.2.7', { ips: ['192.0.2.7'], mac: undefined }],
    ['MAC only, upper case', {}, 'MAC=02:AA:00:00:00:01', { ips: [], mac: '02:aa:00:00:00:01' }],
    ['v4 and v6, comma-separated', {}, 'IP=192.0.2.7,2001:db8::7', { ips: ['192.0.2.7', '2001:db8::7'], mac: undefined }],
    ['v6 only, with a prefix length', {}, 'IP=2001:db8::7/64', { ips: ['2001:db8::7'], mac: undefined }],
    ['empty IP and MAC values', {}, 'IP=;MAC=', { ips: [], mac: undefined }],
    ['a trailing comma', {}, 'IP=192.0.2.7,', { ips: ['192.0.2.7'], mac: undefined }],
    ['runtimeConfig ips win over IP', { ips: ['192.0.2.9/24'] }, 'IP=192.0.2.7', { ips: ['192.0.2.9'], mac: undefined }],
    ['runtimeConfig ips win whole (no v6 from IP)', { ips: ['192.0.2.9'] }, 'IP=192.0.2.7,2001:db8::7', { ips: ['192.0.2.9'], mac: undefined }],
    ['runtimeConfig mac wins over MAC', { mac: '02:00:00:00:00:99' }, 'MAC=02:00:00:00:00:51', { ips: [], mac: '02:00:00:00:00:99' }],
    ['runtimeConfig mac, CNI_ARGS IP', { mac: '02:00:00:00:00:99' }, 'IP=192.0.2.7', { ips: ['192.0.2.7'], mac: '02:00:00:00:00:99' }],
    ['runtimeConfig ips, CNI_ARGS MAC', { ips: ['192.0.2.9'] }, 'MAC=02:00:00:00:00:51', { ips: ['192.0.2.9'], mac: '02:00:00:00:00:51' }],
  ];
  for (const [name, rc, args, want] of cases) {
    test(name, () => assert.deepEqual(show(staticRequests(rcOf(rc), parseCniArgs(args))), want));
  }
  test('malformed IP or MAC in CNI_ARGS is code 4, even when runtimeConfig would win', () => {
    for (const args of ['IP=192.0.2.300', 'IP=banana', 'IP=192.0.2.1,192.0.2.2', 'IP=2001:db8::1,2001:db8::2', 'MAC=02:00:00:00:00', 'MAC=zz:00:00:00:00:01', 'IP=192.0.2.1;MAC=x']) {
      assert.equal(codeOf(() => staticRequests(rcOf({ ips: ['192.0.2.9'], mac: '02:00:00:00:00:99' }), parseCniArgs(args))), 4, args);
    }
  });
});

describe('CNI network configuration', () => {
  const base = { cniVersion: '1.0.0', name: 'net', type: 'netd-cni' };
  const parse = (o: Record<string, unknown>) => parseConfig(decodeStdin(JSON.stringify(o)));

  test('network defaults to name; network, subnet, gateway; unknown fields ignored', () => {
    const c = parse({ ...base, host: 'unix:///x.sock', ipMasq: true, somethingElse: { deep: [1] }, prevResult: { ips: [] } });
    assert.equal(c.network, 'net');
    assert.equal(c.subnet, undefined);
    const d = parse({ ...base, network: 'other', subnet: '192.0.2.0/24', gateway: '192.0.2.254' });
    assert.equal(d.network, 'other');
    assert.equal(String(d.subnet), '192.0.2.0/24');
    assert.equal(String(d.gateway), '192.0.2.254');
  });

  test('runtimeConfig portMappings in the spec\'s and containerd\'s spelling', () => {
    const c = parse({
      ...base,
      runtimeConfig: {
        portMappings: [
          { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
          { HostPort: 5353, ContainerPort: 53, Protocol: 'UDP', HostIP: '' },
          { HostPort: 9000, ContainerPort: 90, Protocol: 'tcp', HostIP: '127.0.0.1' },
          { hostPort: 9001, containerPort: 91, hostIP: '::1' },
        ],
      },
    });
    assert.deepEqual(
      c.runtimeConfig.portMappings.map((p) => [p.proto, p.hostIp, p.hostPort, p.containerPort]),
      [
        ['tcp', undefined, 8080, 80],
        ['udp', undefined, 5353, 53],
        ['tcp', '127.0.0.1', 9000, 90],
        ['tcp', '::1', 9001, 91],
      ],
    );
  });

  test('runtimeConfig ips, mac, dns (both spellings), aliases (podman\'s map or a list)', () => {
    const c = parse({ ...base, runtimeConfig: { ips: ['192.0.2.9/24', 'fd00::9'], mac: '02:00:00:00:00:01', dns: { servers: ['1.1.1.1'] }, aliases: { net: ['a', 'b'], elsewhere: ['z'] } } });
    assert.deepEqual(c.runtimeConfig.ips.map(String), ['192.0.2.9', 'fd00::9']);
    assert.equal(String(c.runtimeConfig.mac), '02:00:00:00:00:01');
    assert.deepEqual(c.runtimeConfig.aliases, ['a', 'b']);
    const d = parse({ ...base, runtimeConfig: { Mac: '02:00:00:00:00:02', Dns: { Servers: ['1.1.1.1'] }, Aliases: ['x'] } });
    assert.equal(String(d.runtimeConfig.mac), '02:00:00:00:00:02');
    assert.deepEqual(d.runtimeConfig.aliases, ['x']);
    assert.deepEqual(parse({ ...base, runtimeConfig: { aliases: { other: ['q'] } } }).runtimeConfig.aliases, [], 'another network\'s aliases are not ours');
    for (const inherited of ['constructor', 'toString', '__proto__']) {
      const c = parse({ ...base, name: inherited, network: inherited, runtimeConfig: { aliases: { other: ["q"] } } });
      assert.deepEqual(c.runtimeConfig.aliases, [], `a network named ${inherited} reads no inherited property`);
    }
    assert.deepEqual(c.runtimeConfig.ipLengths.map((x) => [String(x.address), x.length]), [['192.0.2.9', 24]], 'a given prefix length is kept for the check against the subnet');
    assert.throws(() => parse({ ...base, runtimeConfig: { ips: ['192.0.2.9/33'] } }), (e: CniError) => e.cniCode === 7);
  });

  test('GC attachments under either key', () => {
    const list = [{ containerID: 'c1', ifname: 'eth0' }];
    assert.deepEqual(parse({ ...base, 'cni.dev/valid-attachments': list }).validAttachments, [{ containerId: 'c1', ifname: 'eth0' }]);
    assert.deepEqual(parse({ ...base, 'cni.dev/attachments': list }).validAttachments, [{ containerId: 'c1', ifname: 'eth0' }]);
    // Absent, or null (libcni's Go nil slice when nothing is valid): the empty list, every attachment released.
    assert.deepEqual(parse(base).validAttachments, []);
    assert.deepEqual(parse({ ...base, 'cni.dev/valid-attachments': null }).validAttachments, []);
  });

  test('refusals: not JSON is 6, wrong types and values are 7', () => {
    assert.equal(codeOf(() => decodeStdin('{')), 6);
    assert.equal(codeOf(() => decodeStdin(42)), 6);
    assert.equal(codeOf(() => decodeStdin('[1]')), 7);
    const bad: Record<string, unknown>[] = [
      { cniVersion: '1.0.0' },
      { ...base, name: 5 },
      { ...base, network: ['x'] },
      { ...base, subnet: '192.0.2.1/24' },
      { ...base, subnet: 'nonsense' },
      { ...base, gateway: '192.0.2.1' },
      { ...base, subnet: '192.0.2.0/24', gateway: 'x' },
      { ...base, runtimeConfig: [] },
      { ...base, runtimeConfig: { portMappings: {} } },
      { ...base, runtimeConfig: { portMappings: [{ hostPort: 70000, containerPort: 80 }] } },
      { ...base, runtimeConfig: { portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'icmp' }] } },
      { ...base, runtimeConfig: { portMappings: [{ hostPort: 80 }] } },
      { ...base, runtimeConfig: { ips: ['192.0.2.1', '192.0.2.2'] } },
      { ...base, runtimeConfig: { ips: ['banana'] } },
      { ...base, runtimeConfig: { ips: '192.0.2.1' } },
      { ...base, runtimeConfig: { mac: 'zz' } },
      { ...base, runtimeConfig: { dns: 'x' } },
      { ...base, runtimeConfig: { aliases: { net: 'a' } } },
      { ...base, 'cni.dev/valid-attachments': [{ containerID: 1 }] },
    ];
    for (const o of bad) assert.equal(codeOf(() => parse(o)), 7, JSON.stringify(o));
  });
});

describe('CNI versions', () => {
  test('supported versions pass; others are code 1; CHECK from 0.4.0, GC and STATUS from 1.1.0', () => {
    const cases: [string, string, number | undefined][] = [
      ['0.3.0', 'ADD', undefined],
      ['0.3.1', 'ADD', undefined],
      ['0.4.0', 'ADD', undefined],
      ['1.0.0', 'ADD', undefined],
      ['1.1.0', 'ADD', undefined],
      ['0.3.1', 'DEL', undefined],
      ['0.3.1', 'CHECK', 1],
      ['0.4.0', 'CHECK', undefined],
      ['1.0.0', 'GC', 1],
      ['1.1.0', 'GC', undefined],
      ['1.0.0', 'STATUS', 1],
      ['1.1.0', 'STATUS', undefined],
      ['0.2.0', 'ADD', 1],
      ['0.1.0', 'ADD', 1],
      ['1.2.0', 'ADD', 1],
      ['', 'ADD', 1],
      ['1.0', 'ADD', 1],
      ['v1.0.0', 'ADD', 1],
    ];
    for (const [v, cmd, code] of cases) assert.equal(codeOf(() => checkVersion(v, cmd)), code, `${cmd} ${v}`);
  });

  test('ordering and VERSION\'s answer', () => {
    assert.ok(compareVersions('0.4.0', '1.0.0') < 0);
    assert.ok(compareVersions('1.10.0', '1.9.0') > 0);
    assert.equal(compareVersions('1.1.0', '1.1.0'), 0);
    assert.deepEqual(versionInfo(undefined), { cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    assert.equal(versionInfo('0.4.0').cniVersion, '0.4.0');
  });
});
