/**
 * A container that already has an interface of its own (here a veth pair of its own) named like the one netd would create (`eth0`):
 * attach answers 409 naming the interface (not a raw EEXIST 500), through the netd API, the Docker API
 * and the CLI, and leaves nothing behind: no veth, no rule, no address used up, no endpoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestContainer } from '../helpers/netns.js';
import { TestDaemon, Topology, kernelSnapshot } from '../helpers/daemon.js';
import { ApiError } from '../../src/cli/client.js';

test('attaching a container that has its own eth0: 409 naming eth0, kernel and records unchanged', async () => {
  const topo = await Topology.create('clash');
  const daemon = await TestDaemon.start(topo.host);
  const c = await TestContainer.start();
  try {
    const netId = (await daemon.cli(['create-network', 'clash', '--subnet', '203.0.113.0/24'])).stdout.trim();
    await c.exec(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'own1']);
    const hostBefore = await kernelSnapshot(topo.host);
    const containerLinks = async () => (await c.ipJson<{ ifname: string; link_type: string }[]>(['link', 'show'])).map((l) => `${l.ifname} ${l.link_type}`);
    const inside = await containerLinks();

    await assert.rejects(daemon.client.call('POST', '/netd/v1/attach', { target: { pid: c.pid }, network: 'clash' }), (err: unknown) => {
      assert.ok(err instanceof ApiError, String(err));
      assert.equal(err.status, 409);
      assert.equal(err.message, 'container already has an interface named eth0');
      return true;
    });
    await assert.rejects(daemon.client.call('POST', `/networks/${netId}/connect`, { Container: String(c.pid) }), (err: unknown) => err instanceof ApiError && err.status === 409 && /interface named eth0/.test(err.message));
    const cli = await daemon.cli(['attach', String(c.pid), '--network', 'clash'], true);
    assert.equal(cli.code, 1);
    assert.equal(cli.stderr, 'netd: container already has an interface named eth0\n');

    assert.deepEqual(await kernelSnapshot(topo.host), hostBefore, 'no veth, address, route or rule left on the host');
    assert.deepEqual(await containerLinks(), inside, 'the container keeps its own eth0 and gets nothing');
    assert.deepEqual(await daemon.client.call('GET', '/netd/v1/endpoints'), []);

    // Once the name is free the attach succeeds; the addresses the refusals had allocated are free again
    // (the allocator moves on, as Docker's does, so ask for the first one by name).
    await c.exec(['ip', 'link', 'del', 'eth0']);
    const ok = JSON.parse((await daemon.cli(['attach', String(c.pid), '--network', 'clash', '--ip', '203.0.113.2'])).stdout) as { ipv4: string };
    assert.equal(ok.ipv4, '203.0.113.2/24');
    await daemon.cli(['detach', String(c.pid)]);
    await daemon.cli(['rm-network', 'clash']);
  } finally {
    await c.stop();
    await daemon.destroy();
    await topo.destroy();
  }
});
