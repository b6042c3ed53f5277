/**
 * Waiting for a daemon to be idle. A client that gives up on a request (its timeout, a closed connection)
 * does not stop the operation: the controller finishes it, in its turn behind the lock. A check of kernel
 * state against records made while such operations are still queued sees a veth whose attach has not
 * recorded it yet (or a record whose detach is under way). `settle` waits until they are all done.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError } from '../../src/cli/client.js';
import type { TestDaemon } from './daemon.js';

/** The container the barrier detaches: no such container exists, so the detach changes nothing. */
const BARRIER = 'zz-settle-barrier';

/** A request that goes through the controller's FIFO lock: it returns once every operation queued before it is done. */
async function barrier(daemon: TestDaemon): Promise<void> {
  try {
    await daemon.client.call('POST', '/netd/v1/detach', { container: BARRIER });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
  }
}

/** The controller's operation events in the daemon's log so far (one per locked operation), the barrier's left out. */
function operationsLogged(daemon: TestDaemon): number {
  return daemon.logs.split('\n').filter((l) => /"outcome":"(ok|error)"|"op":"firewall-reload"/.test(l) && !l.includes(BARRIER)).length;
}

/**
 * A detach answers once its container is cut off; its veth and rules are removed right after, each pending
 * teardown journaled (src/cnm/teardown-queue.ts) until done. Returns once the journal holds no detach —
 * every answered detach's kernel work is done — polling; throws after `timeoutMs`.
 */
export async function converged(daemon: TestDaemon, timeoutMs = 15_000): Promise<void> {
  const dir = join(daemon.dataRoot, 'intents');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let left: string[] = [];
    try {
      left = readdirSync(dir).filter((f) => isDetach(join(dir, f)));
    } catch {
      return; // no journal yet
    }
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`operations still journaled after ${timeoutMs} ms: ${left.join(', ')}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function isDetach(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { op?: string }).op === 'detach';
  } catch {
    return false; // removed meanwhile
  }
}

/**
 * Returns once no operation ran between two barriers `quietMs` apart: everything the clients sent has been
 * done (requests still being read reach the lock within that time). Throws after `timeoutMs`.
 */
export async function settle(daemon: TestDaemon, { quietMs = 300, timeoutMs = 60_000 } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await barrier(daemon);
  let seen = operationsLogged(daemon);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, quietMs));
    await barrier(daemon);
    const now = operationsLogged(daemon);
    if (now === seen) return converged(daemon, Math.max(1, deadline - Date.now()));
    seen = now;
  }
  throw new Error(`the daemon did not become idle within ${timeoutMs} ms`);
}

/** The daemon's log lines about the endpoint a host veth (`veth` + 7 hex characters of its id) belongs to. */
export function logOfVeth(daemon: TestDaemon, ifname: string): string[] {
  const prefix = /^veth([0-9a-f]{7})$/.exec(ifname)?.[1];
  if (!prefix) return [];
  return daemon.logs.split('\n').filter((l) => l.includes(`"${prefix}`) || l.includes(ifname));
}
