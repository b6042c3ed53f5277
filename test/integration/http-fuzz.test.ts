/**
 * Fuzzing the API with thousands of generated raw HTTP requests (fast-check; see
 * helpers/http-fuzz-arbitraries.ts) against a running daemon that has a network and an attached container.
 * No answer may be a 5xx; afterwards the same daemon process answers `_ping`, the container is still
 * attached as recorded, and the kernel holds exactly what netd's records say (links, rules, sandboxes).
 *
 * Bounded in time: NETD_FUZZ_MS (default 30000). The seed is printed; NETD_FUZZ_SEED replays a run.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { TestContainer, TestNetns, requireRoot } from '../helpers/netns.js';
import { TestDaemon, uncaughtIn } from '../helpers/daemon.js';
import { checkInvariants } from '../helpers/invariants.js';
import { rawExchange } from '../helpers/raw-http.js';
import { fuzzRequest } from '../helpers/http-fuzz-arbitraries.js';
import { logOfVeth, settle } from '../helpers/settle.js';
import type { EndpointJson } from '../helpers/endpoints.js';

const BUDGET_MS = Number(process.env.NETD_FUZZ_MS ?? 30_000);
const SEED = process.env.NETD_FUZZ_SEED !== undefined ? Number(process.env.NETD_FUZZ_SEED) : (Math.random() * 2 ** 31) | 0;
const BATCH = 64;
const CONCURRENCY = 16;

describe('HTTP fuzz', () => {
  let ns: TestNetns;
  let daemon: TestDaemon;
  let container: TestContainer;
  let pid: number;

  before(async () => {
    requireRoot();
    ns = await TestNetns.create('fuzz');
    daemon = await TestDaemon.start(ns);
    pid = daemon.pid!;
    container = await TestContainer.start();
  });

  after(async () => {
    await container?.stop();
    await daemon?.destroy();
    await ns?.destroy();
  });

  test(`thousands of hostile requests: no 5xx, the daemon lives on, kernel state = records (seed ${SEED})`, async () => {
    await daemon.cli(['create-network', 'fuzznet', '--subnet', '192.0.2.0/24']);
    const attached = JSON.parse((await daemon.cli(['attach', String(container.pid), '--network', 'fuzznet', '--name', 'fuzzcontainer'])).stdout) as { ipv4: string };
    const sock = join(daemon.dir, 'netd.sock');
    console.log(`# http fuzz: seed ${SEED} (NETD_FUZZ_SEED=${SEED} replays it), budget ${BUDGET_MS} ms`);

    let sent = 0;
    const statuses = new Map<string, number>();
    const serverErrors: string[] = [];
    const started = Date.now();
    const result = await fc.check(
      fc.asyncProperty(fc.array(fuzzRequest, { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        // CONCURRENCY connections at a time, each taking the next request as soon as it is done.
        const replies: Awaited<ReturnType<typeof rawExchange>>[] = [];
        let next = 0;
        const worker = async () => {
          for (let i = next++; i < batch.length; i = next++) replies[i] = await rawExchange(sock, batch[i].bytes, { end: batch[i].end, timeoutMs: batch[i].end ? 3000 : batch[i].bytes.includes('Connection: close') ? 10_000 : 300 });
        };
        await Promise.all(Array.from({ length: CONCURRENCY }, worker));
        sent += batch.length;
        replies.forEach((reply, i) => {
          const key = reply.status === undefined ? (reply.closed ? 'closed' : 'no answer') : String(reply.status);
          if (process.env.NETD_FUZZ_DEBUG && reply.ms > 500) console.log(`# slow ${reply.ms} ${key} ${JSON.stringify(batch[i].bytes.toString('latin1').slice(0, 160))}`);
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
          if (reply.status !== undefined && reply.status >= 500) serverErrors.push(`${reply.text.split('\r\n')[0]} ${reply.text.slice(reply.text.indexOf('{'), reply.text.indexOf('{') + 200)} <- ${JSON.stringify(batch[i].bytes.toString('latin1').slice(0, 300))}`);
        });
        assert.equal(daemon.pid, pid);
        process.kill(pid, 0); // still alive (throws ESRCH otherwise)
        assert.equal(await daemon.client.call('GET', '/_ping'), 'OK');
      }),
      { seed: SEED, numRuns: 1_000_000, interruptAfterTimeLimit: BUDGET_MS, markInterruptAsFailure: false, endOnFailure: true },
    );
    const took = Date.now() - started;
    console.log(`# http fuzz: ${sent} requests in ${took} ms; answers: ${[...statuses].sort().map(([k, n]) => `${k}×${n}`).join(' ')}`);
    assert.ok(!result.failed, `the daemon failed under fuzzing (seed ${SEED}): ${result.errorInstance instanceof Error ? result.errorInstance.message : String(result.errorInstance)}`);
    assert.deepEqual(serverErrors.slice(0, 20), [], `no request gets a 5xx (${serverErrors.length} did)`);
    assert.ok(sent >= 1000, `at least a thousand requests were sent (${sent})`);

    // Requests the fuzzer gave up on (its timeouts, closed connections) are still being done: the
    // checks below compare kernel and records once the daemon is idle.
    await settle(daemon);

    // The same process, serving.
    assert.equal(daemon.pid, pid, 'the same daemon process');
    assert.equal(await daemon.client.call('GET', '/_ping'), 'OK');
    // And nothing failed unseen: process-guards.ts logs an unhandled rejection and lives on.
    assert.deepEqual(uncaughtIn(daemon.logs), [], 'no unhandled rejection or uncaught exception in the daemon log');

    // The container is attached as before, in its records and in the kernel.
    const endpoints = await daemon.client.call<EndpointJson[]>('GET', '/netd/v1/endpoints');
    const mine = endpoints.find((e) => e.name === 'fuzzcontainer');
    assert.ok(mine, 'the container is still attached');
    assert.equal(mine.network, 'fuzznet');
    assert.equal(mine.ipv4, attached.ipv4);
    const addrs = await container.ipJson<{ ifname: string; addr_info: { local: string; prefixlen: number }[] }[]>(['addr', 'show', 'eth0']);
    assert.ok(addrs[0].addr_info.some((a) => `${a.local}/${a.prefixlen}` === attached.ipv4), 'eth0 holds its recorded address');
    assert.equal((await container.exec(['ping', '-c', '1', '-W', '2', '192.0.2.1'], { allowFail: true })).code, 0, 'and reaches its gateway');

    // Kernel state = records: bridges, veths and firewall rules (invariants), and no other link at all.
    await checkInvariants(daemon, ns);
    const networks = await daemon.client.call<{ Id: string; Driver: string; Options: Record<string, string> }[]>('GET', '/networks');
    const expected = new Set(['lo', ...networks.filter((n) => n.Driver === 'bridge').map((n) => n.Options['com.docker.network.bridge.name'] ?? `br-${n.Id.slice(0, 12)}`), ...endpoints.map((e) => e.driverState.hostIfname).filter((x): x is string => Boolean(x))]);
    const links = (JSON.parse((await ns.exec(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => l.ifname);
    const unknown = links.filter((l) => !expected.has(l));
    assert.deepEqual(unknown, [], `no link in the namespace that netd has no record of; the log of their endpoints:\n${unknown.flatMap((l) => logOfVeth(daemon, l)).join('\n')}`);
    // Sandboxes netd made: one namespace file per record, no more.
    const sandboxes = await daemon.client.call<{ name: string; key: string; persistent?: boolean }[]>('GET', '/netd/v1/sandboxes');
    const netnsDir = join(daemon.dir, 'run', 'netns');
    const files = existsSync(netnsDir) ? readdirSync(netnsDir).map((f) => join(netnsDir, f)).sort() : [];
    assert.deepEqual(files, sandboxes.filter((s) => s.persistent).map((s) => s.key).sort(), 'namespace files = persistent sandboxes');
  });
});
