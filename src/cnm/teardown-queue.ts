/**
 * The second half of detaches: what a detach leaves to be done after it has answered.
 *
 * A detach answers once its endpoint is cut off (the driver's cutOff: no traffic any more), its record is
 * gone and the observers (DNS) have forgotten it. The slow kernel work — the driver's leave: port-forward
 * rules, the veth's deletion, the conntrack sweep — and only after it the release of the endpoint's
 * addresses and host ports run here, right after the answer, several at once (the driver batches what the
 * kernel allows: bridge links are deleted together, firewall changes are serialized by the firewall).
 *
 * Each teardown holds what its endpoint held — the namespace it was in, its endpoint id, its addresses on
 * its network, its host ports — until it is done; an operation that needs one of them waits for it
 * (`settle`), so nothing is handed out while something could still deliver to the old container.
 * The journal's detach intent stays until the teardown is done: after a crash in between, the start
 * completes it (recovery.ts). A failed teardown is logged (one event: ids, duration, error), keeps its
 * intent and its addresses, and is completed by the next start; it is never retried in a loop here.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import type { HostPortClaim } from './host-ports.js';
import { InFlight } from './in-flight.js';

/** What a pending teardown holds. */
export interface TeardownClaims {
  endpointId: string;
  networkId: string;
  /** Identity of the namespace the endpoint was in (its interface there goes only with the teardown). */
  nsId: string;
  /** `address` strings of the endpoint on its network. */
  addresses: string[];
  /** The host ports it published (host-ports.ts). */
  hostPorts: HostPortClaim[];
}

export class TeardownQueue {
  private readonly pending = new InFlight<TeardownClaims>();

  constructor(private readonly log: Logger) {}

  /** How many teardowns are not done yet. */
  get size(): number {
    return this.pending.size;
  }

  /**
   * Runs `work` right after the current operation has answered (it starts on a later turn of the event loop).
   * Its failure is logged, never thrown.
   */
  enqueue(claims: TeardownClaims, work: () => Promise<void>): void {
    const started = performance.now();
    const done = new Promise<void>((resolve) => setImmediate(resolve))
      .then(work)
      .then(
        () => this.log.debug({ op: 'teardown', endpoint: claims.endpointId, network: claims.networkId, durationMs: elapsed(started), outcome: 'ok' }, 'teardown'),
        (err: unknown) => {
          const e = err as Error & { code?: string; step?: string };
          this.log.error(
            { op: 'teardown', endpoint: claims.endpointId, network: claims.networkId, durationMs: elapsed(started), outcome: 'error', error: e?.message ?? String(err), code: e?.code, step: e?.step },
            'teardown failed; it stays journaled and is completed at the next start',
          );
        },
      );
    void this.pending.add(claims, done);
  }

  /** Waits until every pending teardown that `holds` matches is done (none: returns at once). */
  settle(holds: (c: TeardownClaims) => boolean): Promise<void> {
    return this.pending.settle(holds);
  }

  /** Waits until no teardown is pending, including those enqueued meanwhile (daemon and controller stop). */
  drain(): Promise<void> {
    return this.pending.drain();
  }
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}
