/**
 * The controller's lock: mutating operations run one at a time, in arrival order (a FIFO mutex), each
 * logged as one structured event (ids, duration, outcome). An attach holds the lock only while it is
 * prepared; its driver's join may go on after the lock is released (joins.ts). Every other operation
 * under the lock first waits until no attach is in flight.
 */
import { performance } from 'node:perf_hooks';
import type { NetdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { IpamConfig } from './network.js';
import { Mutex } from './mutex.js';
import type { Joins } from './joins.js';

/** What an operation prepared under the lock leaves to finish after it: `rest` (may be running already). */
export interface Continued<T> {
  rest: Promise<T>;
}

export class ControllerLock {
  private readonly mutex = new Mutex();

  constructor(
    private readonly joins: Joins,
    private readonly log: Logger,
  ) {}

  /** Runs `fn` under the lock once no attach is in flight; no log event. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    return this.mutex.run(async () => {
      await this.joins.drain();
      return fn();
    });
  }

  /** Serialises an operation (after the attaches in flight) and logs one event for it. */
  exclusive<T>(op: string, fields: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
    return this.continued(op, fields, async () => {
      await this.joins.drain();
      return { rest: Promise.resolve(await fn()) };
    });
  }

  /**
   * Runs `prepare` under the lock; the lock is released when it returns, and the operation ends (and is
   * logged) when its `rest` settles. Nothing is drained: `prepare` waits for what it conflicts with.
   */
  async continued<T>(op: string, fields: Record<string, unknown>, prepare: () => Promise<Continued<T>>): Promise<T> {
    let started = 0;
    try {
      const { rest } = await this.mutex.run(() => {
        started = performance.now();
        return prepare();
      });
      const result = await rest;
      this.log.info({ op, ...fields, ...summarise(result), durationMs: since(started), outcome: 'ok' }, op);
      return result;
    } catch (err) {
      const e = err as NetdError;
      this.log.warn({ op, ...fields, durationMs: since(started), outcome: 'error', error: e.message, code: e.code, step: (e as { step?: string }).step }, op);
      throw err;
    }
  }
}

function since(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}

function summarise(result: unknown): Record<string, unknown> {
  if (!result || typeof result !== 'object') return {};
  const r = result as Record<string, unknown>;
  if ('endpointId' in r) return { endpoint: r.endpointId, sandbox: r.sandboxId, networkId: r.networkId, ipv4: r.ipv4 };
  if ('id' in r && 'driver' in r) return { networkId: r.id, driver: r.driver, subnet: (r.ipv4 as IpamConfig[] | undefined)?.[0]?.subnet };
  return {};
}
