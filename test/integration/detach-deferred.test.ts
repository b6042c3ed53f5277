/**
 * Detach answered at once (issue 12 §2): the API answers once the container is cut off (its host end down
 * and out of the bridge); the port forwards, the veth, the conntrack sweep and the release of its address
 * and host ports follow right after, on the daemon's teardown queue. Checked on real kernel state and real
 * traffic: cut off at the answer, converged shortly after (polled, never timed), re-attachable at once with
 * the same address and port, and 50 rapid cycles leave exactly what they should.
 *
 * With the iptables backend, `iptables-restore` is a wrapper that waits while a file exists, so the test
 * can hold the deferred rule removal and see that the detach does not wait for it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { FIXTURES, TestDaemon, Topology, testFirewallBackend } from '../helpers/daemon.js';
import { serve, stopAll } from '../helpers/traffic.js';
import { checkInvariants } from '../helpers/invariants.js';
import { converged } from '../helpers/settle.js';
import { findTool } from '../../src/firewall/tools.js';

interface AttachJson {
  endpointId: string;
  ipv4: string;
  ports?: { hostPort: number }[];
}

interface LinkJson {
  ifname: string;
  operstate: string;
  flags: string[];
  master?: string;
}

const GATEWAY = '172.17.0.1';
const ip = (cidr: string) => cidr.split('/')[0];

describe('detach answers once the container is cut off; the kernel work follows', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  const containers: TestContainer[] = [];
  const processes: ChildProcess[] = [];
  const wrappers = mkdtempSync(join(tmpdir(), 'netd-dd-'));
  const hold = join(wrappers, 'hold');
  const iptables = testFirewallBackend() === 'iptables';

  /** A container serving tcp-whoami on port 80. */
  async function container(): Promise<TestContainer> {
    const c = await TestContainer.start();
    containers.push(c);
    processes.push(await serve(['nsenter', '-t', String(c.pid), '-n', '--', 'node', join(FIXTURES, 'tcp-whoami.cjs'), '::', '80']));
    return c;
  }

  const attach = (c: TestContainer, name: string, extra: Record<string, unknown> = {}) =>
    daemon.client.call<AttachJson>('POST', '/netd/v1/attach', { target: c.pid, network: 'bridge', name, ...extra });
  const detach = (name: string) => daemon.client.call<string[]>('POST', '/netd/v1/detach', { container: name });

  async function hostLink(name: string): Promise<LinkJson | undefined> {
    const res = await topo.host.exec(['ip', '-j', 'link', 'show', 'dev', name], { allowFail: true });
    return res.code === 0 ? (JSON.parse(res.stdout) as LinkJson[])[0] : undefined;
  }

  /** netd's port-forward rules of one endpoint (iptables backend: its tag; nftables keeps forwards as set elements, not checked here). */
  async function forwardRules(endpointId: string): Promise<string[]> {
    if (!iptables) return [];
    const text = (await topo.host.exec(['iptables-save'])).stdout + (await topo.host.exec(['ip6tables-save'])).stdout;
    return text.split('\n').filter((l) => l.includes(`pf:${endpointId.slice(0, 12)}`));
  }

  async function ping(c: TestContainer, to: string): Promise<boolean> {
    return (await c.exec(['ping', '-c', '1', '-W', '1', to], { allowFail: true })).code === 0;
  }

  async function tcpFromOutside(port: number): Promise<string | undefined> {
    const res = await topo.outside.exec(['node', join(FIXTURES, 'tcp-get.cjs'), Topology.HOST_EXT, String(port), '1500'], { allowFail: true });
    return res.code === 0 ? res.stdout.trim().replace(/^::ffff:/, '') : undefined;
  }

  /** Polls until `done` holds (the kernel converging after an answer); fails after 15 s with `what`. */
  async function eventually(what: string, done: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (!(await done())) {
      if (Date.now() > deadline) assert.fail(`never converged: ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  before(async () => {
    requireRoot();
    topo = await Topology.create('dd');
    for (const tool of ['iptables-restore', 'ip6tables-restore']) {
      const real = findTool(tool);
      if (!real) continue;
      const wrapper = join(wrappers, tool);
      writeFileSync(wrapper, `#!/bin/sh\nwhile [ -e '${hold}' ]; do sleep 0.01; done\nexec '${real}' "$@"\n`);
      chmodSync(wrapper, 0o755);
    }
    daemon = await TestDaemon.start(topo.host, ['--firewall-check-interval', '0'], { PATH: `${wrappers}:${process.env.PATH}`, NETD_TEST_SWEEP_MS: '0' });
  });

  after(async () => {
    rmSync(hold, { force: true });
    await stopAll(processes, containers, daemon, topo);
    rmSync(wrappers, { recursive: true, force: true });
  });

  test('the answer comes with the container cut off, before its rules and veth are removed; both go shortly after', async (t) => {
    const c = await container();
    const r = await attach(c, 'cut', { ports: ['8090:80'] });
    const veth = `veth${r.endpointId.slice(0, 7)}`;
    assert.ok(await ping(c, GATEWAY), 'attached: the gateway answers');
    assert.equal(await tcpFromOutside(8090), Topology.OUTSIDE, 'attached: the published port works');
    if (iptables) writeFileSync(hold, '');
    else t.diagnostic('nftables backend: port forwards are set elements, removed over nfnetlink; nothing to hold up, the deferral is checked on the veth only');
    try {
      const answered = await Promise.race([
        detach('cut'),
        new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), 10_000).unref()),
      ]);
      assert.deepEqual(answered, { removed: [r.endpointId] }, 'detach answered while the rule removal was held up');
      // At the answer: cut off. Nothing leaves the container, nothing reaches it through the port.
      assert.equal(await ping(c, GATEWAY), false, 'the container is cut off at once');
      const link = await hostLink(veth);
      if (link) {
        assert.ok(!link.flags.includes('UP'), `${veth} is down at the answer`);
        assert.equal(link.master, undefined, `${veth} is out of the bridge at the answer`);
      }
      assert.equal(await tcpFromOutside(8090), undefined, 'the published port no longer reaches the container');
      const endpoints = await daemon.client.call<{ id: string }[]>('GET', '/netd/v1/endpoints');
      assert.ok(!endpoints.some((e) => e.id === r.endpointId), 'the record is gone at the answer');
      if (iptables) assert.ok((await forwardRules(r.endpointId)).length > 0, 'its forward is still there while the removal is held up');
    } finally {
      rmSync(hold, { force: true });
    }
    await eventually(`${veth} deleted`, async () => (await hostLink(veth)) === undefined);
    await eventually('its port forward removed', async () => (await forwardRules(r.endpointId)).length === 0);
    await converged(daemon);
    assert.deepEqual((await c.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname), ['lo'], 'the container is left with lo');
    await checkInvariants(daemon, topo.host);
  });

  test('attach, detach, attach again at once with the same --ip and -p: works, and carries traffic', async () => {
    const c = await container();
    const first = await attach(c, 'again', { ip: '172.17.0.50', ports: ['8091:80'] });
    assert.equal(ip(first.ipv4), '172.17.0.50');
    await detach('again');
    const second = await attach(c, 'again', { ip: '172.17.0.50', ports: ['8091:80'] });
    assert.equal(ip(second.ipv4), '172.17.0.50');
    assert.equal(second.ports?.[0]?.hostPort, 8091);
    assert.ok(await ping(c, GATEWAY), 're-attached: the gateway answers');
    assert.equal(await tcpFromOutside(8091), Topology.OUTSIDE, 're-attached: the published port works');
    await converged(daemon);
    await checkInvariants(daemon, topo.host);
    assert.deepEqual(await forwardRules(first.endpointId), [], 'the first endpoint\'s forward is gone');

    // Held up (iptables): the re-attach of the same container waits for the pending teardown, then works.
    if (iptables) {
      writeFileSync(hold, '');
      let reattached = false;
      try {
        await detach('again');
        const pending = attach(c, 'again', { ip: '172.17.0.50', ports: ['8091:80'] }).then((x) => ((reattached = true), x));
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(reattached, false, 'the re-attach waits while the old endpoint is still being torn down');
        rmSync(hold, { force: true });
        const third = await pending;
        assert.equal(ip(third.ipv4), '172.17.0.50');
      } finally {
        rmSync(hold, { force: true });
      }
      assert.equal(await tcpFromOutside(8091), Topology.OUTSIDE, 'the third attach carries traffic');
    }
    await detach('again');
    await checkInvariants(daemon, topo.host);
  });

  test('50 rapid attach/detach cycles leave exactly the expected state', async () => {
    const c = await container();
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) {
      const extra = i % 2 === 0 ? { ports: ['8092:80'] } : { ip: '172.17.0.60' };
      ids.push((await attach(c, 'cycle', extra)).endpointId);
      await detach('cycle');
    }
    await converged(daemon);
    await checkInvariants(daemon, topo.host);
    for (const id of ids) assert.equal(await hostLink(`veth${id.slice(0, 7)}`), undefined);
    for (const id of ids) assert.deepEqual(await forwardRules(id), []);
    assert.deepEqual((await c.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname), ['lo']);
    // Everything was released: the same address and host port are free again.
    const last = await attach(c, 'cycle', { ip: '172.17.0.60', ports: ['8092:80'] });
    assert.equal(ip(last.ipv4), '172.17.0.60');
    assert.equal(await tcpFromOutside(8092), Topology.OUTSIDE);
    await detach('cycle');
    assert.ok(!existsSync(hold));
  });

  test('20 detaches at once: all answered, their teardowns share deletions without a failure, state converges', async () => {
    const cs: TestContainer[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await TestContainer.start();
      containers.push(c);
      cs.push(c);
    }
    const attached = await Promise.all(cs.map((c, i) => attach(c, `burst${i}`, i % 4 === 0 ? { ports: [`${8100 + i}:80`] } : {})));
    const answers = await Promise.all(cs.map((_c, i) => detach(`burst${i}`)));
    assert.deepEqual(answers.map((a) => (a as unknown as { removed: string[] }).removed[0]), attached.map((r) => r.endpointId));
    await converged(daemon);
    const failed = daemon.logs.split('\n').filter((l) => l.includes('"op":"teardown"') && l.includes('"outcome":"error"'));
    assert.deepEqual(failed, [], 'no teardown failed');
    for (const r of attached) assert.equal(await hostLink(`veth${r.endpointId.slice(0, 7)}`), undefined);
    await checkInvariants(daemon, topo.host);
  });

  test('stop waits for pending teardowns: nothing of a detached container is left after the daemon stops', async () => {
    const c = await container();
    const r = await attach(c, 'stopper', { ports: ['8093:80'] });
    await detach('stopper');
    await daemon.stop();
    assert.equal(await hostLink(`veth${r.endpointId.slice(0, 7)}`), undefined, 'veth removed before the daemon exited');
    if (iptables) assert.deepEqual(await forwardRules(r.endpointId), [], 'its rules removed before the daemon exited');
    await daemon.launch();
    await checkInvariants(daemon, topo.host);
  });
});
