/**
 * `--ipv6` without a subnet: the network gets a /64 of this host's own ULA /48 (fd00::/8 + 40 random
 * bits, kept in the data root), a container on it an address there; after a restart the next network's
 * /64 comes from the same /48.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestContainer } from '../helpers/netns.js';
import { TestDaemon, Topology } from '../helpers/daemon.js';
import { IPAddress, Prefix } from '../../src/net/index.js';

interface NetworkJson {
  IPAM: { Config: { Subnet: string; Gateway: string }[] };
}

test('--ipv6 without a subnet: a /64 of the host ULA /48, the same /48 after a restart', async () => {
  const topo = await Topology.create('ula');
  const daemon = await TestDaemon.start(topo.host);
  const c = await TestContainer.start();
  try {
    const v6Config = async (name: string) => {
      const n = await daemon.client.call<NetworkJson>('GET', `/networks/${name}`);
      const six = n.IPAM.Config.filter((x) => Prefix.parse(x.Subnet).family === 6);
      assert.equal(six.length, 1, JSON.stringify(n.IPAM));
      return { subnet: Prefix.parse(six[0].Subnet), gateway: IPAddress.parse(six[0].Gateway) };
    };
    const created = await daemon.cli(['create-network', 'ula1', '--ipv6'], true);
    assert.equal(created.code, 0, created.stderr);
    const first = await v6Config('ula1');
    assert.equal(first.subnet.length, 64);
    assert.ok(Prefix.parse('fd00::/8').containsPrefix(first.subnet), `${first.subnet} is a ULA`);
    const ula48 = Prefix.of(first.subnet.first, 48);
    assert.equal(readFileSync(join(daemon.dataRoot, 'ipv6-ula-prefix'), 'utf8').trim(), ula48.toString());

    const r = JSON.parse((await daemon.cli(['attach', String(c.pid), '--network', 'ula1'])).stdout) as { ipv6?: string };
    assert.ok(r.ipv6 && first.subnet.contains(IPAddress.parse(r.ipv6.split('/')[0])), `container address ${r.ipv6}`);
    const addrs = await c.ipJson<{ addr_info: { local: string; family: string }[] }[]>(['addr', 'show', 'eth0']);
    assert.ok(addrs[0].addr_info.some((a) => a.family === 'inet6' && first.subnet.contains(IPAddress.parse(a.local))), 'eth0 has its ULA address');
    const routes = await c.ipJson<{ dst: string; gateway?: string }[]>(['-6', 'route', 'show', 'default']);
    assert.deepEqual(routes.map((x) => x.gateway), [first.gateway.toString()]);

    await daemon.restart();
    await daemon.cli(['create-network', 'ula2', '--ipv6']);
    const second = await v6Config('ula2');
    assert.ok(ula48.containsPrefix(second.subnet), `${second.subnet} is in ${ula48} after the restart`);
    assert.ok(!second.subnet.equals(first.subnet));
    assert.ok((await v6Config('ula1')).subnet.equals(first.subnet), 'the first network keeps its /64');

    await daemon.cli(['detach', String(c.pid)]);
    await daemon.cli(['rm-network', 'ula1', 'ula2']);
  } finally {
    await c.stop();
    await daemon.destroy();
    await topo.destroy();
  }
});
