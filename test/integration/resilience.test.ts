/**
 * What goes wrong around a running daemon: the firewall flushed under it, containers that die without a
 * detach, many requests at once, and hostile input — each answered cleanly, with the kernel unchanged
 * where the request was refused.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { statSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { FIXTURES, TestDaemon, Topology, kernelSnapshot, startWhoami, testFirewallBackend } from '../helpers/daemon.js';
import { iptablesNetdState, nftNetdState, nftRuleset, nftTables } from '../helpers/firewall-state.js';
import { checkInvariants } from '../helpers/invariants.js';

/** A raw HTTP exchange on the daemon's socket, to send what no well-behaved client would. */
function raw(daemon: TestDaemon, method: string, path: string, body?: string): Promise<{ status: number; json: { message?: string } & Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: join(daemon.dir, 'netd.sock'), method, path, headers: { 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : {} }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function until(what: string, deadlineMs: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < deadlineMs) {
    if (await check()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not happen within ${deadlineMs} ms`);
}

describe('resilience', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  const containers: TestContainer[] = [];
  let outsideServer: Awaited<ReturnType<typeof startWhoami>>;

  async function container(): Promise<TestContainer> {
    const c = await TestContainer.start();
    containers.push(c);
    return c;
  }
  const outsideOk = async (c: TestContainer) => (await c.exec(['node', join(FIXTURES, 'tcp-get.cjs'), Topology.OUTSIDE, '8080', '1500'], { allowFail: true })).code === 0;

  before(async () => {
    requireRoot();
    topo = await Topology.create('rz');
    daemon = await TestDaemon.start(topo.host);
    outsideServer = await startWhoami(topo.outside, Topology.OUTSIDE, 8080);
  });

  after(async () => {
    outsideServer?.kill('SIGKILL');
    for (const c of containers) await c.stop();
    await daemon?.destroy();
    await topo?.destroy();
  });

  test(`rules flushed by someone else come back within 5 s (${testFirewallBackend() === 'nftables' ? 'nft delete table' : 'iptables -F'}, nft flush ruleset), and on request`, async () => {
    const c = await container();
    await daemon.cli(['attach', String(c.pid)]);
    assert.ok(await outsideOk(c));
    const healthy = (await kernelSnapshot(topo.host)).rules;
    if (testFirewallBackend() === 'nftables') {
      // The same on netd's own table: deleted, the whole ruleset flushed, flushed and reloaded on request;
      // each time it comes back exactly as it was (rules, sets and their elements).
      const healthyNft = [...(await nftNetdState(topo.host))].sort();
      assert.ok(healthyNft.some((l) => l.startsWith('table ')), 'netd’s table is there');
      const [table] = nftTables(await nftRuleset(topo.host));
      const restored = async () => JSON.stringify([...(await nftNetdState(topo.host))].sort()) === JSON.stringify(healthyNft);
      for (const flush of [[['nft', 'delete', 'table', table.family, table.name]], [['nft', 'flush', 'ruleset']]]) {
        for (const argv of flush) await topo.host.exec(argv);
        const took = await until(`netd's table restored after ${flush.map((a) => a.join(' ')).join('; ')}`, 5000, restored);
        assert.ok(took < 5000);
        assert.ok(await outsideOk(c), 'traffic flows again');
      }
      await topo.host.exec(['nft', 'flush', 'table', table.family, table.name]);
      await daemon.cli(['firewall-reload']);
      assert.deepEqual([...(await nftNetdState(topo.host))].sort(), healthyNft, 'a reload puts back the same state');
      assert.deepEqual(await iptablesNetdState(topo.host), [], 'nothing of netd’s in iptables');
      await daemon.cli(['detach', String(c.pid)]);
      return;
    }

    for (const flush of [
      [['iptables', '-F'], ['iptables', '-t', 'nat', '-F']],
      [['nft', 'flush', 'ruleset']],
    ]) {
      for (const argv of flush) await topo.host.exec(argv);
      const took = await until(`rules restored after ${flush.map((a) => a.join(' ')).join('; ')}`, 5000, async () => (await topo.host.exec(['iptables-save'])).stdout.includes('-j NETD-FORWARD') && (await topo.host.exec(['iptables-save', '-t', 'nat'])).stdout.includes('MASQUERADE'));
      assert.ok(took < 5000);
      assert.ok(await outsideOk(c), 'traffic flows again');
    }
    // On request: flush, reload at once, same rules as before.
    await topo.host.exec(['iptables', '-t', 'nat', '-F']);
    await daemon.cli(['firewall-reload']);
    assert.deepEqual((await kernelSnapshot(topo.host)).rules.filter((l) => !l.startsWith(':')), healthy.filter((l) => !l.startsWith(':')));
    await daemon.cli(['detach', String(c.pid)]);
  });

  test('a container that dies without a detach is released within 2 s', async () => {
    const c = await container();
    const r = JSON.parse((await daemon.cli(['attach', String(c.pid), '--name', 'mortal'])).stdout) as { ipv4: string };
    await c.stop();
    const took = await until('endpoint released', 2000, async () => {
      const eps = await daemon.client.call<{ name: string }[]>('GET', '/netd/v1/endpoints');
      return !eps.some((e) => e.name === 'mortal');
    });
    assert.ok(took < 2000);
    await checkInvariants(daemon, topo.host);
    const again = await container();
    const r2 = JSON.parse((await daemon.cli(['attach', String(again.pid), '--ip', r.ipv4.split('/')[0]])).stdout) as { ipv4: string };
    assert.equal(r2.ipv4, r.ipv4, 'its address is free again');
    await daemon.cli(['detach', String(again.pid)]);
  });

  test('100 simultaneous attaches across 4 networks: 100 distinct addresses, all working', async () => {
    for (let n = 0; n < 4; n++) await daemon.cli(['create-network', `par${n}`, '--subnet', `10.${200 + n}.0.0/24`]);
    const cs: TestContainer[] = [];
    for (let i = 0; i < 100; i++) cs.push(await container());
    const results = await Promise.all(
      cs.map((c, i) => daemon.client.call<{ ipv4: string; gateway: string }>('POST', '/netd/v1/attach', { target: { pid: c.pid }, network: `par${i % 4}` })),
    );
    assert.equal(new Set(results.map((r) => r.ipv4)).size, 100);
    await checkInvariants(daemon, topo.host);
    const pings = await Promise.all(cs.map((c, i) => c.exec(['ping', '-c', '1', '-W', '2', results[i].gateway], { allowFail: true })));
    assert.equal(pings.filter((p) => p.code === 0).length, 100, 'every container reaches its gateway');
    await Promise.all(cs.map((c) => daemon.client.call('POST', '/netd/v1/detach', { container: String(c.pid) })));
    for (let n = 0; n < 4; n++) await daemon.cli(['rm-network', `par${n}`]);
    await checkInvariants(daemon, topo.host);
  });

  test('parallel create-network with one name yields one network; attach racing rm-network is all or nothing', async () => {
    const attempts = await Promise.allSettled(Array.from({ length: 10 }, () => daemon.client.call('POST', '/networks/create', { Name: 'once' })));
    assert.equal(attempts.filter((a) => a.status === 'fulfilled').length, 1);
    assert.ok(attempts.every((a) => a.status === 'fulfilled' || /already exists/.test(String((a as PromiseRejectedResult).reason))));
    const c = await container();
    const [att, rm] = await Promise.allSettled([
      daemon.client.call('POST', '/netd/v1/attach', { target: { pid: c.pid }, network: 'once' }),
      daemon.client.call('DELETE', '/networks/once'),
    ]);
    assert.ok((att.status === 'fulfilled') !== (rm.status === 'fulfilled'), 'exactly one of them wins');
    await checkInvariants(daemon, topo.host);
    if (att.status === 'fulfilled') {
      await daemon.cli(['detach', String(c.pid)]);
      await daemon.cli(['rm-network', 'once']);
    }
  });

  test('hostile and bad input: clear message, fitting status, kernel unchanged', async () => {
    const hostProc = topo.host.spawn(['sleep', 'infinity']);
    await new Promise((r) => setTimeout(r, 200));
    const c = await container();
    await daemon.cli(['create-network', 'taken', '--subnet', '198.51.100.192/26']);
    await daemon.cli(['attach', String(c.pid), '--network', 'taken', '--ip', '198.51.100.200']);
    const before = await kernelSnapshot(topo.host);
    const other = await container();
    const cases: [string, string, string | undefined, number, RegExp][] = [
      ['POST', '/networks/create', '{"Name": "x", ', 400, /malformed JSON/],
      ['POST', '/networks/create', '{"Name": 42}', 400, /Name must be a string/],
      ['POST', '/networks/create', '{"Name": "x", "Internal": "yes"}', 400, /Internal must be true or false/],
      ['POST', '/networks/create', '{"Name": "x", "Options": {"com.docker.network.bridge.name": 7}}', 400, /must be a string/],
      ['POST', '/networks/create', '{"Name": "x", "IPAM": {"Config": [{"Subnet": "198.51.100.192/27"}]}}', 409, /overlaps/],
      ['POST', '/networks/create', '{"Name": "x", "IPAM": {"Config": [{"Subnet": "10.9.0.0/30"}]}}', 201, /./],
      ['POST', '/networks/create', '{"Name": "y", "IPAM": {"Config": [{"Subnet": "10.8.0.0/31"}]}}', 400, /too small/],
      ['POST', '/networks/create', '{"Name": "y", "IPAM": {"Config": [{"Subnet": "10.8.0.0/24", "Gateway": "10.7.0.1"}]}}', 400, /not inside/],
      ['POST', '/networks/create', '{"Name": "y", "IPAM": {"Config": [{"Subnet": "10.8.0.0/24"; "x"}]}}', 400, /malformed JSON/],
      ['POST', '/networks/create', '{"Name": "y", "Options": {"com.docker.network.bridge.name": "averyveryverylongname"}}', 400, /invalid bridge name/],
      ['POST', '/networks/create', '{"Name": "y", "Options": {"com.docker.network.bridge.name": "br0 -j ACCEPT"}}', 400, /invalid bridge name/],
      ['POST', '/networks/create', '{"Name": "y", "Options": {"com.docker.network.bridge.name": "br0\\n-A FORWARD"}}', 400, /invalid bridge name/],
      ['POST', '/networks/create', '{"Name": "y", "Options": {"com.docker.network.driver.mtu": "1500 --foo"}}', 400, /mtu/],
      ['POST', '/networks/create', '{"Name": "../../etc"}', 400, /invalid network name/],
      ['POST', '/networks/create', '{"Name": "y", "Driver": "macvlan"}', 404, /unknown network driver/],
      ['DELETE', '/networks/bridge', undefined, 403, /pre-defined/],
      ['DELETE', '/networks/taken', undefined, 403, /active endpoint/],
      ['POST', '/netd/v1/attach', JSON.stringify({ target: { pid: 999999999 } }), 404, /no process with PID/],
      ['POST', '/netd/v1/attach', JSON.stringify({ target: { pid: -1 } }), 400, /invalid PID/],
      ['POST', '/netd/v1/attach', JSON.stringify({ target: { pid: hostProc.pid } }), 403, /host's\) network namespace/],
      ['POST', '/netd/v1/attach', JSON.stringify({ target: { path: '/etc/passwd' } }), 400, /not a network namespace/],
      ['POST', '/netd/v1/attach', JSON.stringify({ target: { pid: other.pid }, network: 'taken', ip: '198.51.100.200' }), 409, /already in use/],
      ['POST', '/netd/v1/attach', JSON.stringify({ target: { pid: other.pid }, network: 'taken', ip: '198.51.100.1' }), 400, /not inside subnet/],
      ['POST', '/netd/v1/attach', JSON.stringify({ target: { pid: other.pid }, network: 'taken', mac: '01:00:5e:00:00:01' }), 400, /multicast/],
      ['POST', '/netd/v1/attach', JSON.stringify({ target: { pid: other.pid }, network: 'taken', name: 'a b' }), 400, /invalid container name/],
      ['POST', '/netd/v1/attach', JSON.stringify({ target: { pid: other.pid }, network: 'nope' }), 404, /network nope not found/],
      ['POST', '/netd/v1/detach', JSON.stringify({ container: 'ghost' }), 404, /no attached container/],
      ['POST', '/netd/v1/detach', JSON.stringify({ container: String(c.pid), network: 'bridge' }), 404, /not attached to network bridge/],
      ['GET', '/networks/doesnotexist', undefined, 404, /not found/],
      ['PUT', '/networks/create', '{}', 405, /not allowed/],
    ];
    for (const [method, path, body, status, message] of cases) {
      const res = await raw(daemon, method, path, body);
      assert.equal(res.status, status, `${method} ${path} ${body}: ${JSON.stringify(res.json)}`);
      if (status >= 400) assert.match(String(res.json.message), message, `${method} ${path} ${body}`);
    }
    await raw(daemon, 'DELETE', '/networks/x');
    hostProc.kill('SIGKILL');
    assert.deepEqual(await kernelSnapshot(topo.host), before, 'refused requests changed nothing');
    await daemon.cli(['detach', String(c.pid)]);
    await daemon.cli(['rm-network', 'taken']);
  });

  test('the API socket is root-only (0660) and there is no TCP listener', async () => {
    const st = statSync(join(daemon.dir, 'netd.sock'));
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.uid, 0);
    // The embedded DNS listens on port 53 of network gateways; nothing else may listen on TCP.
    const listeners = (await topo.host.exec(['ss', '-Htln'])).stdout
      .trim()
      .split('\n')
      .filter((l) => l && !/:53\s/.test(l));
    assert.deepEqual(listeners, [], 'no TCP listener for the API in the daemon’s namespace');
  });

  test('a corrupted state file: the daemon starts, reports it, and reconciles from the kernel', async () => {
    const c = await container();
    const r = JSON.parse((await daemon.cli(['attach', String(c.pid), '--name', 'victim'])).stdout) as { endpointId: string };
    await daemon.stop();
    writeFileSync(join(daemon.dataRoot, 'endpoints', `${r.endpointId}.json`), '{"id": "trunc');
    await daemon.launch();
    assert.match(daemon.logs, /state file unreadable; set aside/);
    assert.ok(readdirSync(join(daemon.dataRoot, 'endpoints')).includes(`${r.endpointId}.json.corrupt`));
    // The endpoint's record is gone, so its veth is netd's but unrecorded: removed at start.
    await checkInvariants(daemon, topo.host);
    const again = JSON.parse((await daemon.cli(['attach', String(c.pid), '--name', 'victim'])).stdout) as { interface: string };
    assert.equal(again.interface, 'eth0');
    await daemon.cli(['detach', 'victim']);
  });
});
