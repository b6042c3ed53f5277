/**
 * CniService's choices with a scripted controller (no kernel): which endpoints GC, DEL and CHECK consider
 * (this conflist's CNI attachments only), that GC goes on after a failed removal and reports every failure,
 * and that DEL reads only what identifies the attachment.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { CniService, CNI_NAME_LABEL, ORIGIN_LABEL } from '../../src/cni/service.js';
import type { Controller } from '../../src/cnm/controller.js';
import type { EndpointRecord } from '../../src/cnm/endpoint.js';
import { KernelError, NotFoundError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';

function ep(id: string, name: string, labels?: Record<string, string>, ifname = 'eth0'): EndpointRecord {
  return { id, name, ifname, networkId: 'n1', sandboxId: `sb-${name}`, aliases: [], created: '', gatewayEndpoint: true, driverState: {}, ...(labels ? { labels } : {}) } as EndpointRecord;
}

/** A controller with one network `shared` holding `eps`; removeEndpoint records calls and fails for ids in `failing`. */
function scripted(eps: EndpointRecord[], failing = new Set<string>()) {
  const removed: string[] = [];
  const controller = {
    networks: () => [{ id: 'n1', name: 'shared', ipv4: [], ipv6: [] }],
    endpointsOf: () => eps,
    endpointByInterface: (_n: string, container: string, ifname: string) => eps.find((e) => e.name === container && e.ifname === ifname),
    removeEndpoint: async (id: string) => {
      if (failing.has(id)) throw new KernelError(`cannot delete the veth of ${id}`, 'EBUSY');
      removed.push(id);
      return true;
    },
    endpointGone: async () => undefined,
  } as unknown as Controller;
  return { service: new CniService(controller, silentLogger()), removed };
}

const cni = (name: string) => ({ [ORIGIN_LABEL]: 'cni', [CNI_NAME_LABEL]: name });
const gcEnv = { CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' };
const conf = (name: string, extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.1.0', name, network: 'shared', type: 'netd-cni', ...extra });

describe('CniService with a scripted controller', () => {
  test('GC releases only this conflist\'s CNI attachments; another conflist\'s on the same netd network, and CLI ones, stay', async () => {
    const { service, removed } = scripted([ep('a1', 'ca', cni('alpha')), ep('b1', 'cb', cni('beta')), ep('c1', 'cli'), ep('x1', 'api', { [ORIGIN_LABEL]: 'api' })]);
    const r = await service.handle({ env: gcEnv, stdin: conf('alpha', { 'cni.dev/valid-attachments': [] }) });
    assert.equal(r.status, 204, JSON.stringify(r.body));
    assert.deepEqual(removed, ['a1']);
  });

  test('GC with valid-attachments null, or absent, releases all of this conflist\'s', async () => {
    for (const extra of [{ 'cni.dev/valid-attachments': null }, {}]) {
      const { service, removed } = scripted([ep('a1', 'ca', cni('alpha')), ep('a2', 'cb', cni('alpha'), 'net1'), ep('b1', 'cc', cni('beta'))]);
      const r = await service.handle({ env: gcEnv, stdin: conf('alpha', extra) });
      assert.equal(r.status, 204, JSON.stringify(r.body));
      assert.deepEqual(removed, ['a1', 'a2'], JSON.stringify(extra));
    }
  });

  test('GC goes on after a failed removal and reports every failure in one error', async () => {
    const eps = ['1', '2', '3', '4'].map((i) => ep(`e${i}`, `c${i}`, cni('alpha')));
    const { service, removed } = scripted(eps, new Set(['e1', 'e3']));
    const r = await service.handle({ env: gcEnv, stdin: conf('alpha') });
    assert.deepEqual(removed, ['e2', 'e4'], 'the others were still released');
    assert.equal(r.status, 500);
    const body = r.body as { code: number; msg: string; details: string; cniVersion: string };
    assert.equal(body.code, 5, 'the kernel error\'s code');
    assert.equal(body.cniVersion, '1.1.0');
    assert.match(body.msg, /2 attachment/);
    assert.equal(body.details, 'c1 (eth0): cannot delete the veth of e1: EBUSY; c3 (eth0): cannot delete the veth of e3: EBUSY');
  });

  test('DEL and CHECK find only this conflist\'s CNI attachment, never a CLI endpoint of the same name', async () => {
    const { service, removed } = scripted([ep('c1', 'web'), ep('b1', 'db', cni('beta'))]);
    const del = (name: string, id: string) => service.handle({ env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: id, CNI_IFNAME: 'eth0' }, stdin: conf(name) });
    assert.equal((await del('alpha', 'web')).status, 204);
    assert.equal((await del('alpha', 'db')).status, 204);
    assert.deepEqual(removed, [], 'neither the CLI endpoint nor beta\'s');
    const check = await service.handle({ env: { CNI_COMMAND: 'CHECK', CNI_CONTAINERID: 'web', CNI_IFNAME: 'eth0', CNI_NETNS: '/proc/1/ns/net' }, stdin: conf('alpha') });
    assert.equal((check.body as { code: number }).code, 3);
    assert.equal((await del('beta', 'db')).status, 204);
    assert.deepEqual(removed, ['b1']);
  });

  test('DEL of a config ADD refused still succeeds and releases: bad runtimeConfig, CNI_ARGS, long id, unsupported version', async () => {
    const long = 'k'.repeat(300);
    const { service, removed } = scripted([ep('a1', 'ca', cni('alpha')), ep('a2', long, cni('alpha')), ep('a3', 'old', cni('alpha'))]);
    const env = (id: string, extra: Record<string, string> = {}) => ({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: id, CNI_IFNAME: 'eth0', CNI_NETNS: '', ...extra });
    const cases: [Record<string, string>, string][] = [
      [env('ca', { CNI_ARGS: 'IgnoreUnknown=1;junk' }), conf('alpha', { runtimeConfig: { ips: ['not an address'], portMappings: 'x' }, subnet: 42 })],
      [env(long), conf('alpha')],
      [env('old'), conf('alpha', { cniVersion: '0.2.0' })],
      [env('gone'), conf('alpha', { cniVersion: 7 })],
    ];
    for (const [e, stdin] of cases) {
      const r = await service.handle({ env: e, stdin });
      assert.equal(r.status, 204, `${JSON.stringify(e)} ${stdin}: ${JSON.stringify(r.body)}`);
    }
    assert.deepEqual(removed, ['a1', 'a2', 'a3']);
  });

  test('errors while parsing the config answer in the config\'s own cniVersion', async () => {
    const { service } = scripted([]);
    const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x', CNI_IFNAME: 'eth0', CNI_NETNS: '/proc/1/ns/net' };
    for (const [stdin, code] of [[conf('alpha', { cniVersion: '0.4.0', subnet: 'nope' }), 7], [conf('alpha', { cniVersion: '0.3.1', runtimeConfig: 5 }), 7], [conf('alpha', { cniVersion: '0.2.0' }), 1]] as const) {
      const r = await service.handle({ env, stdin });
      const body = r.body as { code: number; cniVersion: string };
      assert.deepEqual([body.code, body.cniVersion], [code, JSON.parse(stdin).cniVersion], stdin);
    }
  });

  test('CHECK racing a DEL (the endpoint gone between lookup and check) answers 3, not netd\'s 105', async () => {
    const { service } = scripted([ep('a1', 'web', cni('alpha'))]);
    (service as unknown as { controller: { checkEndpoint: () => Promise<string[]> } }).controller.checkEndpoint = async () => {
      throw new NotFoundError('endpoint a1 not found');
    };
    const r = await service.handle({ env: { CNI_COMMAND: 'CHECK', CNI_CONTAINERID: 'web', CNI_IFNAME: 'eth0', CNI_NETNS: '/proc/1/ns/net' }, stdin: conf('alpha') });
    assert.equal(r.status, 404);
    assert.equal((r.body as { code: number }).code, 3);
  });

  test('ADD whose prevResult cannot be merged undoes its attach (a retry starts afresh) and answers 7', async () => {
    const removed: string[] = [];
    const network = { id: 'n1', name: 'shared', ipv4: [], ipv6: [] };
    const controller = {
      networks: () => [network],
      namespaceOf: () => ({}),
      findSandbox: () => undefined,
      sweepIfGone: async () => undefined,
      attach: async () => ({ network: 'shared', networkId: 'n1', endpointId: 'e9', sandboxId: 's9', name: 'web', interface: 'eth0', mac: '02:00:00:00:00:09', ipv4: '192.0.2.9/24' }),
      removeEndpoint: async (id: string) => {
        removed.push(id);
        return true;
      },
      endpointGone: async () => undefined,
    } as unknown as Controller;
    const service = new CniService(controller, silentLogger());
    for (const ips of [[null], [{ address: 5 }]]) {
      removed.length = 0;
      const prevResult = { cniVersion: '0.4.0', interfaces: [], ips };
      const r = await service.handle({
        env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'web', CNI_IFNAME: 'eth0', CNI_NETNS: '/run/netns/web', CNI_PATH: '/opt/cni/bin' },
        stdin: JSON.stringify({ cniVersion: '0.4.0', name: 'alpha', network: 'shared', type: 'netd-cni', prevResult }),
      });
      assert.equal((r.body as { code: number }).code, 7, JSON.stringify(r.body));
      assert.deepEqual(removed, ['e9'], `the attach was undone for ips ${JSON.stringify(ips)}`);
    }
  });
});
