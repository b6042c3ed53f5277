/**
 * Fault injection: for every named point of attach, detach, create-network and rm-network, the daemon
 * is killed there (SIGKILL, via NETD_FAULT_AT), restarted, and the invariants are checked against the
 * kernel: no link or rule without a record, no record without its kernel objects, no address allocated
 * twice, nothing left journaled. Then the operation is retried and must succeed (or be found already done,
 * for deletes that the restart completed).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { TestDaemon, Topology } from '../helpers/daemon.js';
import { checkInvariants } from '../helpers/invariants.js';
import { FAULT_POINTS } from '../helpers/fault-points.js';


describe('crash at every step, restart, invariants hold', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  let container: TestContainer;

  before(async () => {
    requireRoot();
    topo = await Topology.create('cr');
    daemon = await TestDaemon.start(topo.host);
    await daemon.cli(['create-network', 'base', '--subnet', '192.0.2.0/24']);
    container = await TestContainer.start();
  });

  after(async () => {
    await container?.stop();
    await daemon?.destroy();
    await topo?.destroy();
  });

  /** Restarts the daemon with a fault armed, runs `op`, checks that it died exactly there, restarts clean. */
  async function crashDuring(op: string, point: string, run: () => Promise<unknown>): Promise<void> {
    await daemon.stop();
    daemon.env = { NETD_FAULT_AT: `${op}:${point}` };
    daemon.logs = '';
    await daemon.launch();
    await run().catch(() => undefined); // the connection dies with the daemon
    const how = await daemon.exited();
    assert.equal(how.signal, 'SIGKILL', `the daemon died at ${op}:${point} (logs: ${daemon.logs.slice(-500)})`);
    assert.match(daemon.logs, new RegExp(`fault injected at ${op}:${point}`));
    daemon.env = {};
    await daemon.launch();
    await checkInvariants(daemon, topo.host);
    assert.deepEqual(readdirSync(join(daemon.dataRoot, 'intents')), [], 'nothing left journaled');
  }

  for (const point of FAULT_POINTS['create-network']) {
    test(`create-network, crash ${point}`, async () => {
      await crashDuring('create-network', point, () => daemon.cli(['create-network', 'fresh', '--subnet', '198.51.100.128/25']));
      const retry = await daemon.cli(['create-network', 'fresh', '--subnet', '198.51.100.128/25'], true);
      assert.ok(retry.code === 0 || /already exists/.test(retry.stderr), `retry: ${retry.stderr}`);
      await checkInvariants(daemon, topo.host);
      await daemon.cli(['rm-network', 'fresh']);
      await checkInvariants(daemon, topo.host);
    });
  }

  for (const point of FAULT_POINTS.attach) {
    test(`attach, crash ${point}`, async () => {
      await crashDuring('attach', point, () => daemon.cli(['attach', String(container.pid), '--network', 'base', '--name', 'c']));
      const retry = await daemon.cli(['attach', String(container.pid), '--network', 'base', '--name', 'c'], true);
      assert.ok(retry.code === 0 || /already attached/.test(retry.stderr), `retry: ${retry.stderr}`);
      await checkInvariants(daemon, topo.host);
      assert.equal((await container.exec(['ping', '-c', '1', '-W', '1', '192.0.2.1'], { allowFail: true })).code, 0, 'the container works after the retry');
      await daemon.cli(['detach', 'c']);
      await checkInvariants(daemon, topo.host);
    });
  }

  for (const point of FAULT_POINTS.detach) {
    test(`detach, crash ${point}`, async () => {
      await daemon.cli(['attach', String(container.pid), '--network', 'base', '--name', 'c']);
      await crashDuring('detach', point, () => daemon.cli(['detach', 'c']));
      const retry = await daemon.cli(['detach', 'c'], true);
      assert.ok(retry.code === 0 || /no attached container c/.test(retry.stderr), `retry: ${retry.stderr}`);
      await checkInvariants(daemon, topo.host);
      assert.deepEqual((await container.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname), ['lo']);
    });
  }

  for (const point of FAULT_POINTS['rm-network']) {
    test(`rm-network, crash ${point}`, async () => {
      await daemon.cli(['create-network', 'doomed', '--subnet', '203.0.113.0/24']);
      await crashDuring('rm-network', point, () => daemon.cli(['rm-network', 'doomed']));
      const retry = await daemon.cli(['rm-network', 'doomed'], true);
      assert.ok(retry.code === 0 || /not found/.test(retry.stderr), `retry: ${retry.stderr}`);
      await checkInvariants(daemon, topo.host);
      const names = (JSON.parse((await daemon.cli(['networks', '--format', 'json'])).stdout) as { Name: string }[]).map((n) => n.Name);
      assert.ok(!names.includes('doomed'));
    });
  }
});
