/**
 * 6. A daemon restarted (cleanly or after a crash) with containers attached knows them all, hands out
 * no duplicate address, leaves their traffic untouched, adds no duplicate rule, and releases containers
 * that died while it was down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { TestDaemon, Topology, kernelSnapshot } from '../helpers/daemon.js';

test('6. restart keeps endpoints, allocates no duplicate address, releases dead containers', async () => {
  requireRoot();
  const topo = await Topology.create('rs');
  const daemon = await TestDaemon.start(topo.host);
  const containers: TestContainer[] = [];
  try {
    await daemon.cli(['create-network', 'keep', '--subnet', '192.0.2.0/24']);
    const attach = async (args: string[]) => {
      const c = await TestContainer.start();
      containers.push(c);
      return { c, r: JSON.parse((await daemon.cli(['attach', String(c.pid), ...args])).stdout) as { ipv4: string } };
    };
    const a = await attach(['--network', 'keep', '--name', 'a']);
    const b = await attach(['--network', 'keep', '--name', 'b']);
    const doomed = await attach(['--network', 'keep', '--name', 'doomed']);
    assert.deepEqual([a.r.ipv4, b.r.ipv4, doomed.r.ipv4], ['192.0.2.2/24', '192.0.2.3/24', '192.0.2.4/24']);
    const stateBefore = await kernelSnapshot(topo.host);

    // A clean restart changes nothing in the kernel.
    await daemon.restart('SIGTERM');
    assert.deepEqual(await kernelSnapshot(topo.host), stateBefore, 'no duplicate rule, link or address after a restart');

    // A crash, and a container that dies while netd is down.
    await daemon.stop('SIGKILL');
    await doomed.c.stop();
    await daemon.launch();

    const endpoints = JSON.parse((await daemon.cli(['endpoints', '--format', 'json'])).stdout) as { name: string; ipv4: string }[];
    assert.deepEqual(endpoints.map((e) => [e.name, e.ipv4]).sort(), [['a', '192.0.2.2/24'], ['b', '192.0.2.3/24']]);
    const inspect = JSON.parse((await daemon.cli(['inspect', 'keep'])).stdout)[0] as { Containers: Record<string, { Name: string }> };
    assert.deepEqual(Object.values(inspect.Containers).map((c) => c.Name).sort(), ['a', 'b']);

    // Traffic between the survivors never depended on the daemon.
    assert.equal((await a.c.exec(['ping', '-c', '1', '-W', '1', '192.0.2.3'], { allowFail: true })).code, 0);

    // The next attach continues the sequence and never reuses a live address.
    const c = await attach(['--network', 'keep']);
    assert.equal(c.r.ipv4, '192.0.2.5/24');
    const links = JSON.parse((await topo.host.exec(['ip', '-j', 'link', 'show', 'type', 'veth'])).stdout) as unknown[];
    assert.equal(links.length, 3 + 1, 'one veth per live container, plus the outside link');
  } finally {
    for (const c of containers) await c.stop();
    await daemon.destroy();
    await topo.destroy();
  }
});

test('a second daemon on the same data root is refused', async () => {
  requireRoot();
  const topo = await Topology.create('lk');
  const daemon = await TestDaemon.start(topo.host);
  try {
    const second = await topo.host.exec(['node', (await import('../helpers/daemon.js')).CLI, '--host', `unix://${daemon.dir}/other.sock`, 'daemon', '--data-root', daemon.dataRoot], { allowFail: true, timeoutMs: 15_000 });
    assert.equal(second.code, 1);
    assert.match(second.stderr, /another netd \(pid \d+\) is already running/);
  } finally {
    await daemon.destroy();
    await topo.destroy();
  }
});

test('restart repairs a live endpoint whose veth vanished, and never removes links that are not netd’s', async () => {
  requireRoot();
  const topo = await Topology.create('rp');
  const daemon = await TestDaemon.start(topo.host);
  const c = await TestContainer.start();
  try {
    const r = JSON.parse((await daemon.cli(['attach', String(c.pid), '--name', 'fixme'])).stdout) as { ipv4: string; gateway: string; mac: string; endpointId: string };
    await daemon.stop();
    // Someone deletes the container's veth while netd is down; someone else makes look-alike links.
    await topo.host.exec(['ip', 'link', 'del', `veth${r.endpointId.slice(0, 7)}`]);
    await topo.host.exec(['ip', 'link', 'add', 'veth7654321', 'type', 'veth', 'peer', 'name', 'vethforeign']);
    await topo.host.exec(['ip', 'link', 'add', 'br-0123456789ab', 'type', 'bridge']);
    await topo.host.exec(['ip', 'link', 'add', 'veth1111111', 'type', 'veth', 'peer', 'name', 'vethforeig2']);
    await topo.host.exec(['ip', 'link', 'set', 'veth1111111', 'alias', 'not-netd']);
    await daemon.launch();

    const eth0 = (await c.ipJson<{ address: string; addr_info: { local: string }[] }[]>(['addr', 'show', 'eth0']))[0];
    assert.equal(eth0.address, r.mac, 'same MAC');
    assert.ok(eth0.addr_info.some((a) => a.local === r.ipv4.split('/')[0]), 'same address');
    assert.equal((await c.exec(['ping', '-c', '1', '-W', '1', r.gateway], { allowFail: true })).code, 0, 'working again');
    const names = (JSON.parse((await topo.host.exec(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => l.ifname);
    for (const foreign of ['veth7654321', 'vethforeign', 'br-0123456789ab', 'veth1111111']) assert.ok(names.includes(foreign), `${foreign} untouched`);
  } finally {
    await c.stop();
    await daemon.destroy();
    await topo.destroy();
  }
});
