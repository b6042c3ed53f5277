/**
 * A randomized soak: seeded rounds of attach, connect, detach, container deaths, daemon kills and crashes
 * at random fault points, with the invariants checked after every round. The seed is printed; rerun one
 * with NETD_SOAK_SEED=<seed> (and NETD_SOAK_ROUNDS=<n>). Bounded: 200 rounds by default.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestContainer, requireRoot } from '../helpers/netns.js';
import { TestDaemon, Topology } from '../helpers/daemon.js';
import { checkInvariants } from '../helpers/invariants.js';
import { FAULT_POINTS } from '../helpers/fault-points.js';
import type { EndpointJson } from '../helpers/endpoints.js';

/** mulberry32: a small, well-known seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NETWORKS = ['bridge', 'soak1', 'soak2'];

test('soak: random operations, crashes and deaths; invariants after every round', { timeout: 20 * 60_000 }, async (t) => {
  requireRoot();
  const seed = Number(process.env.NETD_SOAK_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const rounds = Number(process.env.NETD_SOAK_ROUNDS ?? 200);
  t.diagnostic(`soak seed ${seed}, ${rounds} rounds (rerun: NETD_SOAK_SEED=${seed})`);
  console.log(`# soak seed ${seed}, ${rounds} rounds`);
  const rnd = prng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];

  const topo = await Topology.create('sk');
  const daemon = await TestDaemon.start(topo.host);
  const pool: (TestContainer | undefined)[] = [];
  const counts: Record<string, number> = {};
  try {
    await daemon.cli(['create-network', 'soak1', '--subnet', '192.0.2.0/24']);
    await daemon.cli(['create-network', 'soak2', '--subnet', '198.51.100.0/25']);
    for (let i = 0; i < 8; i++) pool.push(await TestContainer.start());

    const endpoints = () => daemon.client.call<EndpointJson[]>('GET', '/netd/v1/endpoints');
    const slot = () => {
      const i = Math.floor(rnd() * pool.length);
      return { i, c: pool[i] };
    };

    for (let round = 0; round < rounds; round++) {
      const roll = rnd();
      let op: string;
      const { i, c } = slot();
      if (!c) {
        op = 'replace-container';
        pool[i] = await TestContainer.start();
      } else if (roll < 0.35) {
        // Half the attaches publish a port: a random host port in a small range, so conflicts happen too.
        const publish = rnd() < 0.5 ? ['-p', `${31000 + Math.floor(rnd() * 8)}:80${rnd() < 0.5 ? '' : '/udp'}`] : [];
        op = publish.length ? 'attach+publish' : 'attach';
        const res = await daemon.cli(['attach', String(c.pid), '--network', pick(NETWORKS), '--name', `c${i}`, ...publish], true);
        assert.ok(res.code === 0 || /already attached|already in use|the container name|already (published|allocated|bound)|is in use/i.test(res.stderr), `round ${round} attach: ${res.stderr}`);
      } else if (roll < 0.6) {
        op = 'detach';
        const res = await daemon.cli(['detach', String(c.pid), ...(rnd() < 0.5 ? ['--network', pick(NETWORKS)] : [])], true);
        assert.ok(res.code === 0 || /no attached container|not attached to network/.test(res.stderr), `round ${round} detach: ${res.stderr}`);
      } else if (roll < 0.7) {
        op = 'kill-container';
        await c.stop();
        pool[i] = undefined;
        const gone = async () => !(await endpoints()).some((e) => e.name === `c${i}`);
        for (let waited = 0; !(await gone()); waited += 100) {
          assert.ok(waited < 3000, `round ${round}: a dead container's endpoints were not released within 3 s`);
          await new Promise((r) => setTimeout(r, 100));
        }
      } else if (roll < 0.8) {
        op = 'kill-daemon';
        await daemon.restart('SIGKILL');
      } else {
        op = 'crash-during-op';
        const which = pick(['attach', 'detach']);
        const point = pick(FAULT_POINTS[which]);
        await daemon.stop();
        daemon.env = { NETD_FAULT_AT: `${which}:${point}` };
        await daemon.launch();
        const args = which === 'attach' ? ['attach', String(c.pid), '--network', pick(NETWORKS), '--name', `c${i}`] : ['detach', String(c.pid)];
        await daemon.cli(args, true);
        await daemon.stop('SIGKILL'); // dead already if the point was reached; otherwise a plain crash
        daemon.env = {};
        await daemon.launch();
      }
      counts[op] = (counts[op] ?? 0) + 1;

      await checkInvariants(daemon, topo.host);
      // Every recorded endpoint is really in its container, with its address.
      for (const e of await endpoints()) {
        const idx = Number(e.name.slice(1));
        const owner = pool[idx];
        assert.ok(owner, `round ${round}: endpoint of a container that is gone (${e.name})`);
        const addrs = await owner.ipJson<{ ifname: string; addr_info: { local: string }[] }[]>(['addr', 'show', 'dev', e.ifname]);
        assert.ok(addrs[0]?.addr_info.some((a) => a.local === e.ipv4?.split('/')[0]), `round ${round} (${op}): ${e.name} has ${e.ipv4} on ${e.ifname}`);
      }
    }
    console.log(`# soak: ${rounds} rounds, operations ${JSON.stringify(counts)}, 0 violations`);
  } catch (err) {
    console.log(`# soak FAILED with seed ${seed}; daemon log tail:\n${daemon.logs.slice(-3000)}`);
    throw err;
  } finally {
    for (const c of pool) await c?.stop();
    await daemon.destroy();
    await topo.destroy();
  }
});
