/**
 * Fault injection at every declared fault point (test/helpers/fault-points.ts: collected from the code,
 * so a step added later is crash-tested without editing this file). First a traced run of every scenario
 * (NETD_FAULT_TRACE) tells which scenario reaches which point; a declared point that no scenario reaches
 * fails. Then, for each point, the daemon is killed there (SIGKILL, via NETD_FAULT_AT), restarted, and the
 * invariants are checked against the kernel: no link or rule without a record, no record without its
 * kernel objects, no address allocated twice, nothing left journaled, and every namespace file under the
 * exec root is a mounted namespace of a recorded sandbox. Then the operation is retried and must succeed
 * (or be found already done, for deletes that the restart completed).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { TestDaemon, Topology } from '../helpers/daemon.js';
import { checkInvariants } from '../helpers/invariants.js';
import { converged } from '../helpers/settle.js';
import { FAULT_POINTS } from '../helpers/fault-points.js';

interface Scenario {
  name: string;
  /** Brings the state to where the operation starts (on the daemon about to crash: it must not reach the armed point). */
  setup?: () => Promise<void>;
  /** The operation under test; the daemon may die in it. */
  act: () => Promise<unknown>;
  /** The operation happens while the daemon starts: `act` runs with the daemon stopped, before the launch. */
  atLaunch?: boolean;
  /** After the restart: retry, checks, and back to the base state (network base, both containers detached). */
  finish: () => Promise<void>;
}

const ok = (res: { code: number | null; stderr: string }, allowed: RegExp, what: string) =>
  assert.ok(res.code === 0 || allowed.test(res.stderr), `${what}: ${res.stderr}`);

describe('crash at every fault point, restart, invariants hold', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  let container: TestContainer;
  let sharing: TestContainer;
  /** `op:point` -> the first scenario whose operation reached it in the traced run. */
  const reachedBy = new Map<string, Scenario>();
  const netnsDir = () => join(daemon.dir, 'run', 'netns');
  const cli = (args: string[]) => daemon.cli(args, true);

  /** Every file under the exec root's netns/ is a mounted namespace of a recorded sandbox, and nothing else is. */
  async function checkSandboxes(): Promise<void> {
    const sandboxes = await daemon.client.call<{ key: string; persistent?: boolean }[]>('GET', '/netd/v1/sandboxes');
    const keys = sandboxes.filter((s) => s.persistent).map((s) => s.key).sort();
    let files: string[] = [];
    try {
      files = readdirSync(netnsDir()).map((f) => join(netnsDir(), f));
    } catch {
      /* not made yet */
    }
    assert.deepEqual(files.sort(), keys, 'files under <exec-root>/netns = recorded sandboxes');
    const mounts = readFileSync(`/proc/${daemon.pid}/mountinfo`, 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m) => m?.startsWith(`${netnsDir()}/`));
    assert.deepEqual([...new Set(mounts)].sort(), keys, 'namespace mounts = recorded sandboxes');
  }

  async function sandboxMembers(name: string): Promise<string[] | undefined> {
    const sandboxes = await daemon.client.call<{ name: string; members?: { name: string }[] }[]>('GET', '/netd/v1/sandboxes');
    return sandboxes.find((s) => s.name === name)?.members?.map((m) => m.name);
  }

  async function containerLinks(): Promise<string[]> {
    return (await container.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname);
  }

  /** ctr attached to base, m sharing its namespace (names that are no id prefix: `detach c` could match an id). */
  async function attachPair(): Promise<void> {
    await daemon.cli(['attach', String(container.pid), '--network', 'base', '--name', 'ctr']);
    await daemon.cli(['attach', String(sharing.pid), '--mode', 'container:ctr', '--name', 'm']);
  }

  /**
   * One of the pair detaches: the member only leaves; the named container hands the namespace, endpoint and
   * all, to its member (promotion). Either way the other stays, with the interface, and no member.
   */
  function pairDetach(name: string, leaver: string, stays: string): Scenario {
    return {
      name,
      setup: attachPair,
      act: () => cli(['detach', leaver]),
      finish: async () => {
        ok(await cli(['detach', leaver]), new RegExp(`no attached container ${leaver}`), 'retry');
        assert.deepEqual((await sandboxMembers(stays)) ?? [], []);
        assert.ok((await containerLinks()).includes('eth0'), 'the shared namespace keeps its interface');
        await checkInvariants(daemon, topo.host);
        await daemon.cli(['detach', stays]);
        await converged(daemon); // the veth goes in the deferred teardown, right after the answer
        assert.deepEqual(await containerLinks(), ['lo']);
      },
    };
  }

  const scenarios: Scenario[] = [
    {
      name: 'create-network',
      act: () => cli(['create-network', 'fresh', '--subnet', '198.51.100.128/25']),
      finish: async () => {
        ok(await cli(['create-network', 'fresh', '--subnet', '198.51.100.128/25']), /already exists/, 'retry');
        await checkInvariants(daemon, topo.host);
        await daemon.cli(['rm-network', 'fresh']);
      },
    },
    {
      name: 'create-network, dual stack',
      act: () => cli(['create-network', 'fresh6', '--subnet', '198.51.100.128/25', '--subnet', '2001:db8:6::/64']),
      finish: async () => {
        ok(await cli(['create-network', 'fresh6', '--subnet', '198.51.100.128/25', '--subnet', '2001:db8:6::/64']), /already exists/, 'retry');
        await checkInvariants(daemon, topo.host);
        await daemon.cli(['rm-network', 'fresh6']);
      },
    },
    {
      name: 'attach',
      act: () => cli(['attach', String(container.pid), '--network', 'base', '--name', 'ctr']),
      finish: async () => {
        ok(await cli(['attach', String(container.pid), '--network', 'base', '--name', 'ctr']), /already attached/, 'retry');
        await checkInvariants(daemon, topo.host);
        assert.equal((await container.exec(['ping', '-c', '1', '-W', '1', '192.0.2.1'], { allowFail: true })).code, 0, 'the container works after the retry');
        await daemon.cli(['detach', 'ctr']);
      },
    },
    {
      name: 'attach, dual stack',
      setup: async () => void (await daemon.cli(['create-network', 'dual', '--subnet', '203.0.113.0/24', '--subnet', '2001:db8:7::/64'])),
      act: () => cli(['attach', String(container.pid), '--network', 'dual', '--name', 'ctr']),
      finish: async () => {
        ok(await cli(['attach', String(container.pid), '--network', 'dual', '--name', 'ctr']), /already attached/, 'retry');
        await checkInvariants(daemon, topo.host);
        await daemon.cli(['detach', 'ctr']);
        await daemon.cli(['rm-network', 'dual']);
      },
    },
    {
      name: 'detach',
      // With a published port: a crash in the deferred teardown must leave neither the veth nor its forward.
      setup: async () => void (await daemon.cli(['attach', String(container.pid), '--network', 'base', '--name', 'ctr', '-p', '8089:80'])),
      // The answer comes once the container is cut off; its teardown follows (and may be where the daemon dies).
      act: async () => {
        const res = await cli(['detach', 'ctr']);
        if (res.code === 0) await converged(daemon, 5000).catch(() => undefined);
        return res;
      },
      finish: async () => {
        ok(await cli(['detach', 'ctr']), /no attached container ctr/, 'retry');
        await checkInvariants(daemon, topo.host);
        assert.deepEqual(await containerLinks(), ['lo']);
      },
    },
    {
      name: 'rm-network',
      setup: async () => void (await daemon.cli(['create-network', 'doomed', '--subnet', '203.0.113.0/24'])),
      act: () => cli(['rm-network', 'doomed']),
      finish: async () => {
        ok(await cli(['rm-network', 'doomed']), /not found/, 'retry');
        await checkInvariants(daemon, topo.host);
        const names = (JSON.parse((await daemon.cli(['networks', '--format', 'json'])).stdout) as { Name: string }[]).map((n) => n.Name);
        assert.ok(!names.includes('doomed'));
      },
    },
    {
      name: 'restore a deleted bridge at start',
      setup: async () => void (await daemon.cli(['create-network', 'lost', '--subnet', '203.0.113.0/24', '--subnet', '2001:db8:8::/64', '-o', 'com.docker.network.bridge.name=br-lost'])),
      atLaunch: true,
      act: () => topo.host.exec(['ip', 'link', 'del', 'br-lost']),
      finish: async () => {
        await checkInvariants(daemon, topo.host);
        await daemon.cli(['rm-network', 'lost']);
      },
    },
    {
      name: 'sandbox create',
      act: () => cli(['sandbox', 'create', 'sb1']),
      finish: async () => {
        // A crash inside the creation used to leave a mount point that made this fail with EEXIST for ever.
        ok(await cli(['sandbox', 'create', 'sb1']), /already in use/, 'retry');
        await checkSandboxes();
        await daemon.cli(['sandbox', 'rm', 'sb1']);
        await checkSandboxes();
      },
    },
    {
      name: 'sandbox rm',
      setup: async () => {
        await daemon.cli(['sandbox', 'create', 'sb2']);
        await daemon.cli(['attach', 'sb2', '--network', 'base']);
      },
      act: () => cli(['sandbox', 'rm', 'sb2']),
      finish: async () => {
        ok(await cli(['sandbox', 'rm', 'sb2']), /no sandbox sb2/, 'retry');
        await checkInvariants(daemon, topo.host);
        await checkSandboxes();
      },
    },
    {
      name: 'container: membership',
      setup: async () => void (await daemon.cli(['attach', String(container.pid), '--network', 'base', '--name', 'ctr'])),
      act: () => cli(['attach', String(sharing.pid), '--mode', 'container:ctr', '--name', 'm']),
      finish: async () => {
        // A retry after the crash is the same join: done once, whether or not the crash came before the write.
        const retry = await cli(['attach', String(sharing.pid), '--mode', 'container:ctr', '--name', 'm']);
        assert.equal(retry.code, 0, `retry: ${retry.stderr}`);
        assert.deepEqual(await sandboxMembers('ctr'), ['m']);
        await checkInvariants(daemon, topo.host);
        await daemon.cli(['detach', 'm']);
        await daemon.cli(['detach', 'ctr']);
      },
    },
    pairDetach('container: member leaves', 'm', 'ctr'),
    pairDetach('container: promotion', 'ctr', 'm'),
  ];

  before(async () => {
    requireRoot();
    topo = await Topology.create('cr');
    container = await TestContainer.start();
    sharing = await TestContainer.startSharing(container);
    const trace = join(tmpdir(), `netd-trace-${process.pid}`);
    writeFileSync(trace, '');
    daemon = await TestDaemon.start(topo.host);
    await daemon.cli(['create-network', 'base', '--subnet', '192.0.2.0/24']);
    // The traced run: which scenario reaches which point.
    await daemon.stop();
    daemon.env = { NETD_FAULT_TRACE: trace };
    await daemon.launch();
    try {
      for (const s of scenarios) {
        await s.setup?.();
        if (s.atLaunch) await daemon.stop();
        writeFileSync(trace, '');
        await s.act();
        if (s.atLaunch) await daemon.launch();
        for (const point of readFileSync(trace, 'utf8').split('\n').filter(Boolean)) if (!reachedBy.has(point)) reachedBy.set(point, s);
        await s.finish();
        await converged(daemon); // no deferred teardown of this scenario lands in the next one's trace
      }
    } finally {
      await daemon.stop();
      daemon.env = {};
      rmSync(trace, { force: true });
    }
    await daemon.launch();
  });

  after(async () => {
    await sharing?.stop();
    await container?.stop();
    await daemon?.destroy();
    await topo?.destroy();
  });

  /** Restarts the daemon with a fault armed, runs the scenario, checks that it died exactly there, restarts clean. */
  async function crashDuring(s: Scenario, op: string, point: string): Promise<void> {
    if (s.atLaunch) await s.setup?.();
    await daemon.stop();
    daemon.env = { NETD_FAULT_AT: `${op}:${point}` };
    daemon.logs = '';
    if (s.atLaunch) {
      await s.act();
      await daemon.launch().catch(() => undefined); // it dies while starting
    } else {
      // Set up on the armed daemon itself: a namespace netd created lives in the daemon's mount namespace,
      // which (under `ip netns exec`) is new at every launch.
      await daemon.launch();
      await s.setup?.();
      const alive = await daemon.client.call('GET', '/_ping').then(() => true, () => false);
      assert.ok(alive, `the setup of "${s.name}" must not reach ${op}:${point}`);
      await s.act().catch(() => undefined); // the connection dies with the daemon
    }
    const how = await daemon.exited();
    assert.equal(how.signal, 'SIGKILL', `the daemon died at ${op}:${point} (logs: ${daemon.logs.slice(-500)})`);
    assert.match(daemon.logs, new RegExp(`fault injected at ${op}:${point}`));
    daemon.env = {};
    await daemon.launch();
    await checkInvariants(daemon, topo.host);
    await checkSandboxes();
    assert.deepEqual(readdirSync(join(daemon.dataRoot, 'intents')), [], 'nothing left journaled');
    await s.finish();
    await checkInvariants(daemon, topo.host);
    await checkSandboxes();
  }

  test('the fault points are collected from the code, and every one is reached by a scenario', () => {
    const declared = Object.entries(FAULT_POINTS).flatMap(([op, points]) => points.map((p) => `${op}:${p}`));
    assert.ok(declared.includes('sandbox-create:after:create mount point') && declared.includes('attach:after:create veth'), 'the registry holds the points inside steps');
    const missed = declared.filter((p) => !reachedBy.has(p));
    assert.deepEqual(missed, [], 'declared fault points that no scenario reaches (add a scenario)');
  });

  for (const [op, points] of Object.entries(FAULT_POINTS)) {
    for (const point of points) {
      test(`${op}, crash ${point}`, async () => {
        const s = reachedBy.get(`${op}:${point}`);
        assert.ok(s, `no scenario reaches ${op}:${point}`);
        await crashDuring(s, op, point);
      });
    }
  }
});

describe('sandboxes across a daemon crash', () => {
  test('a sandbox whose mount did not survive leaves no file behind: the same name can be created again', async () => {
    requireRoot();
    const topo = await Topology.create('cs');
    const daemon = await TestDaemon.start(topo.host);
    try {
      await daemon.cli(['sandbox', 'create', 'keep']);
      // Under `ip netns exec` every launch has a mount namespace of its own: the bind mount dies with the
      // daemon, as after a reboot with an exec root on disk. Its file must not outlive the record.
      await daemon.restart('SIGKILL');
      const again = await daemon.cli(['sandbox', 'create', 'keep'], true);
      assert.equal(again.code, 0, `create again: ${again.stderr}`);
      assert.deepEqual(readdirSync(join(daemon.dir, 'run', 'netns')), ['keep']);
      await daemon.cli(['sandbox', 'rm', 'keep']);
      assert.deepEqual(readdirSync(join(daemon.dir, 'run', 'netns')), []);
    } finally {
      await daemon.destroy();
      await topo.destroy();
    }
  });

  test('start cleans only namespaces netd made: a foreign file and the namespace of a set-aside sandbox record stay', async () => {
    requireRoot();
    const topo = await Topology.create('cf');
    const daemon = await TestDaemon.start(topo.host);
    const netns = join(daemon.dir, 'run', 'netns');
    try {
      await daemon.cli(['sandbox', 'create', 'pod']);
      await daemon.cli(['sandbox', 'create', 'other']);
      // What `ip netns add` leaves in the same directory when the exec root is /run.
      writeFileSync(join(netns, 'made-by-ip-netns'), '');
      const refused = await daemon.cli(['sandbox', 'create', 'made-by-ip-netns'], true);
      assert.equal(refused.code, 1, 'a create over a file that is not netd\'s is refused');
      assert.match(refused.stderr, /not a sandbox of netd/);
      const sandboxes = await daemon.client.call<{ id: string; name: string }[]>('GET', '/netd/v1/sandboxes');
      const pod = sandboxes.find((s) => s.name === 'pod')!;
      // pod's record becomes unreadable: it is set aside at the next start, and its namespace must stay.
      writeFileSync(join(daemon.dataRoot, 'sandboxes', `${pod.id}.json`), '{"id": "trunc');
      await daemon.restart('SIGKILL');
      assert.ok(readdirSync(join(daemon.dataRoot, 'sandboxes')).includes(`${pod.id}.json.corrupt`), 'the record was set aside');
      // other's bind mount died with the daemon (see above): netd's own orphan, removed; the rest stays.
      assert.deepEqual(readdirSync(netns).sort(), ['made-by-ip-netns', 'pod']);
    } finally {
      await daemon.destroy();
      await topo.destroy();
    }
  });
});
