/**
 * The one retry pace of every loop that talks to etcd (re-list/re-watch, leased-write flush, lease re-grant,
 * reachability probe): exponential from 100 ms, doubling, capped at 5 s, with jitter, reset on success.
 * A loop waits `next()` between attempts, so an outage costs timers, not CPU (flannel#1830: a watch loop
 * that spun at 200 % CPU while etcd was down).
 *
 * Jitter is "equal jitter": the delay is drawn from [ceiling/2, ceiling], so it is never near zero (no busy
 * loop even with an unlucky random draw) and hosts that lost etcd together do not retry in lockstep.
 */
export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** A source of numbers in [0, 1); tests pass a fixed one. */
  random?: () => number;
}

export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 100;
    this.maxMs = opts.maxMs ?? 5000;
    this.factor = opts.factor ?? 2;
    this.random = opts.random ?? Math.random;
    if (!(this.initialMs > 0 && this.maxMs >= this.initialMs && this.factor >= 1)) {
      throw new RangeError(`bad backoff: initial ${this.initialMs} ms, max ${this.maxMs} ms, factor ${this.factor}`);
    }
  }

  /** The upper bound of the next delay: initial × factor^attempts, capped. */
  get ceilingMs(): number {
    return Math.min(this.maxMs, this.initialMs * this.factor ** Math.min(this.attempt, 64));
  }

  /** How many delays were handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next attempt (and one step further up the ladder). */
  next(): number {
    const ceiling = this.ceilingMs;
    this.attempt++;
    return Math.round(ceiling / 2 + this.random() * (ceiling / 2));
  }

  /** After a success: the next failure starts again from the initial delay. */
  reset(): void {
    this.attempt = 0;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts (the timer is cleared, so a closed store leaves none). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Waker().sleep(ms, signal);
}

/**
 * Sleeps that one event can cut short: when etcd answers again, every loop waiting out its backoff
 * retries at once instead of up to 5 s later.
 */
export class Waker {
  private readonly sleepers = new Set<() => void>();

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      this.sleepers.add(done);
    });
  }

  /** Ends every sleep now. */
  wake(): void {
    for (const done of [...this.sleepers]) done();
  }
}
