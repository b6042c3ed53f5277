/**
 * CNI ADD into a namespace netd already knows under another name (`netd sandbox create`): it would be
 * joined under the sandbox's name, where DEL (by CNI_CONTAINERID) never finds it, so it is refused;
 * under the sandbox's own name it works and DEL releases it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { requireRoot } from '../helpers/netns.js';
import { TestDaemon, Topology } from '../helpers/daemon.js';

describe('CNI ADD into a netd sandbox', () => {
  let topo: Topology;
  let daemon: TestDaemon;

  function cni(env: Record<string, string>, config: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: join(daemon.dir, 'netd.sock'), path: '/netd/v1/cni', method: 'POST', headers: { 'Content-Type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text.trim() === '' ? undefined : JSON.parse(text) }));
      });
      req.on('error', reject);
      req.end(JSON.stringify({ env, stdin: JSON.stringify(config) }));
    });
  }

  before(async () => {
    requireRoot();
    topo = await Topology.create('cnisb');
    daemon = await TestDaemon.start(topo.host);
  });

  after(async () => {
    await daemon?.destroy();
    await topo?.destroy();
  });

  test('refused (code 100, nothing attached) unless CNI_CONTAINERID is the sandbox name; then DEL releases it', async () => {
    const created = { key: (await daemon.cli(['sandbox', 'create', 'sb1'])).stdout.trim() };
    const net = { cniVersion: '1.0.0', name: 'sbnet', type: 'netd-cni', subnet: '192.0.2.0/28' };
    const env = (command: string, id: string) => ({ CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: created.key, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' });
    const endpoints = async () => (await daemon.client.call<{ name: string; ifname: string }[]>('GET', '/netd/v1/endpoints')).filter((e) => e.name === 'sb1');

    const refused = await cni(env('ADD', 'pod-a'), net);
    assert.ok(refused.status >= 400, JSON.stringify(refused));
    assert.equal(refused.body.code, 100);
    assert.match(refused.body.msg, /belongs to netd's sandbox sb1/);
    assert.deepEqual(await endpoints(), [], 'nothing joined under the sandbox\'s name');

    const added = await cni(env('ADD', 'sb1'), net);
    assert.equal(added.status, 200, JSON.stringify(added.body));
    assert.equal((await endpoints()).length, 1);
    assert.equal((await cni(env('DEL', 'sb1'), net)).status, 204);
    assert.deepEqual(await endpoints(), [], 'DEL found and released it');
    await daemon.cli(['sandbox', 'rm', 'sb1']);
  });
});
