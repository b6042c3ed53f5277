/**
 * Overlay networks when hosts come and go (test/helpers/cluster.ts: hosts, underlay and etcd in throwaway
 * namespaces), against what the anchors' users got burned by:
 * - a host whose VTEP address changed is reached at the new one, and no peer keeps an entry to the old
 *   (flannel#1036, #1795; moby#52661); a restarted host keeps its endpoints and their addresses;
 * - a dead host's address block goes back to the pool after the grace period, and the host, back, never
 *   hands out an address in the block another host holds by then (flannel#1289).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot } from '../helpers/netns.js';
import { TestCluster, pings, within } from '../helpers/cluster.js';

requireRoot();

const TTL_S = 2;
const GRACE_S = 2;

interface EndpointJson {
  name: string;
  ipv4?: string;
  mac?: string;
}

describe('overlay: hosts restarting, moving and dying', () => {
  let cl: TestCluster | undefined;
  after(async () => {
    if (process.env.OVERLAY_TEST_LOG) for (const [i, h] of cl?.hosts.entries() ?? []) require('node:fs').writeFileSync(`${process.env.OVERLAY_TEST_LOG}.f${i + 1}`, h.daemon.logs);
    await cl?.destroy();
  });

  test('a restarted host keeps its endpoints and addresses; moved to a new address, peers reach it there and keep nothing to the old one', async () => {
    cl = await TestCluster.create('ovf', { hosts: 3, leaseTtl: TTL_S, daemonArgs: ['--cluster-block-grace', String(GRACE_S)] });
    const [h1, h2] = cl.hosts;
    await h1.daemon.cli(['create-network', '--driver', 'overlay', '--subnet', '10.243.0.0/25', 'ovf']);
    await within(5000, 'ovf on host 2', async () => (await h2.daemon.cli(['networks'])).stdout.includes('ovf'));
    const a = await cl.attach(0, 'ovf', 'a');
    const b = await cl.attach(1, 'ovf', 'b');
    await within(3000, 'a → b', () => pings(a.c, b.ip));
    const netId = JSON.parse((await h1.daemon.cli(['networks', '--format', 'json'])).stdout).find((n: { Name: string }) => n.Name === 'ovf').Id as string;
    const vx = `vx-${netId.slice(0, 12)}`;

    // Host 2 moves to a new underlay address: its daemon is killed and comes back advertising it.
    const NEW = '192.0.2.22';
    await h2.daemon.stop('SIGKILL');
    const at = h2.daemon.extraArgs.indexOf('--advertise-address');
    h2.daemon.extraArgs[at + 1] = NEW;
    // (Deleting a primary address deletes its secondaries: the old one goes first.)
    await h2.ns.exec(['ip', 'addr', 'del', `${h2.ip}/24`, 'dev', 'u0']);
    await h2.ns.exec(['ip', 'addr', 'add', `${NEW}/24`, 'dev', 'u0']);
    await h2.daemon.launch();

    const eps = JSON.parse((await h2.daemon.cli(['endpoints', '--format', 'json'])).stdout) as EndpointJson[];
    assert.equal(eps.find((e) => e.name === 'b')?.ipv4?.split('/')[0], b.ip, 'the endpoint kept its address across the restart');
    await within(TTL_S * 1000 + 5000, 'a → b at the new address', () => pings(a.c, b.ip));
    const fdb = JSON.parse((await h1.ns.exec(['bridge', '-j', 'fdb', 'show', 'dev', vx])).stdout) as { mac: string; dst?: string }[];
    assert.ok(fdb.some((e) => e.dst === NEW), `an entry to the new address: ${JSON.stringify(fdb)}`);
    assert.ok(!fdb.some((e) => e.dst === h2.ip), `no entry left to the old address: ${JSON.stringify(fdb)}`);
    const link = JSON.parse((await h2.ns.exec(['ip', '-d', '-j', 'link', 'show', vx])).stdout)[0];
    assert.equal(link.linkinfo.info_data.local, NEW, 'host 2\'s VXLAN device was made again with its new address');
  });

  test('a dead host\'s block returns to the pool after the grace period; back, the host does not use it once another holds it', async () => {
    assert.ok(cl, 'the cluster of the first test');
    const [h1, h2, h3] = cl.hosts;
    // ovf is a /25: two /26 blocks. Host 1 holds the first, host 2 the second.
    const before = JSON.parse((await h2.daemon.cli(['endpoints', '--format', 'json'])).stdout) as EndpointJson[];
    const bIp = before.find((e) => e.name === 'b')!.ipv4!.split('/')[0];
    assert.equal(Number(bIp.split('.')[3]) >> 6, 1, `host 2 allocates in the second block: ${bIp}`);
    // Host 2 dies with its container.
    await h2.daemon.stop('SIGKILL');
    for (const c of cl.containers.slice(1, 2)) await c.stop();
    // After the lease's TTL and the grace period, the block is free: host 3 gets it.
    const spare3 = await cl.spare();
    await within((TTL_S + GRACE_S) * 1000 + 8000, 'host 3 gets an address (the freed block)', async () => {
      const res = await h3.daemon.cli(['attach', String(spare3.pid), '--network', 'ovf', '--name', 'c3'], true);
      return res.code === 0;
    });
    const eps3 = JSON.parse((await h3.daemon.cli(['endpoints', '--format', 'json'])).stdout) as EndpointJson[];
    const ip3 = eps3.find((e) => e.name === 'c3')!.ipv4!.split('/')[0];
    assert.equal(Number(ip3.split('.')[3]) >> 6, 1, `host 3 holds the second block now: ${ip3}`);
    // Host 2 comes back: its file still lists the block, etcd says it is host 3's. No address for it there.
    await h2.daemon.launch();
    const res = await h2.daemon.cli(['attach', String((await cl.spare()).pid), '--network', 'ovf', '--name', 'again'], true);
    assert.notEqual(res.code, 0, `host 2 must not allocate in host 3's block: ${res.stdout}`);
    assert.match(res.stderr, /no free address left/);
    assert.match(h2.daemon.logs, /another host's now/);
    const a = cl.containers[0];
    await within(3000, 'host 1 still reaches host 3\'s container', () => pings(a, ip3));
  });
});
