/**
 * One prefix watch that survives everything etcd can do to it: list the prefix (a snapshot at a revision),
 * hand the snapshot to `onResync`, watch from revision + 1 with previous values, and on any end of that
 * watch — cancelled because its revision was compacted (etcd3 emits one `error` and never retries it),
 * the connection dropped, etcd paused or restarted — list again, resync, watch again. Never re-watch at an
 * old revision (flannel 016ef83: a watch behind compaction re-created at the same revision forever).
 * Attempts are paced by the shared backoff, so an outage costs timers, not CPU.
 *
 * etcd3's watch manager would resume a dropped stream by itself at the revision after the last response
 * header it saw; that header can be ahead of events not yet delivered, and a compaction in between still
 * ends in `error`. One path (re-list) for every break is simpler and never misses a change.
 */
import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import type { Logger } from '../log.js';
import { Backoff, type Waker } from './backoff.js';

export interface StoredKv {
  key: string;
  value: string;
  modRevision: bigint;
}

/** Every key under a prefix at one revision (the response header's: the revision to watch after). */
export interface Snapshot {
  revision: bigint;
  kvs: StoredKv[];
}

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value (puts only). */
  value?: string;
  /** The value before this event, when etcd still had it. */
  prevValue?: string;
  /** The revision of this change (of the delete, for deletes). */
  modRevision: bigint;
}

export interface WatchHandlers {
  /** Changes, in revision order, one call per watch response. */
  onEvents(events: WatchEvent[]): void;
  /** The whole prefix: first at start, then after every break. Keys absent from it are gone. */
  onResync(snapshot: Snapshot): void;
}

/** What a watch needs from its store. */
export interface WatchHost {
  readonly client: Etcd3;
  readonly log: Logger;
  /** How long a watch may take to be created before it counts as a failure. */
  readonly callTimeoutMs: number;
  /** Backoff sleeps end early when etcd answers again. */
  readonly waker: Waker;
  list(prefix: string): Promise<Snapshot>;
  reachable(): void;
  unreachable(err: unknown): void;
}

export class PrefixWatch {
  private readonly abort = new AbortController();
  private readonly backoff = new Backoff();
  private watcher?: Watcher;
  /** How many snapshots were delivered (1 after the start; each further one is a recovery). */
  resyncs = 0;
  /** Settles when the watch has stopped for good (after `stop()`). */
  readonly done: Promise<void>;

  constructor(
    private readonly host: WatchHost,
    readonly prefix: string,
    private readonly handlers: WatchHandlers,
  ) {
    this.done = this.run();
  }

  stop(): Promise<void> {
    this.abort.abort();
    return this.done;
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      try {
        const snapshot = await this.host.list(this.prefix);
        if (this.stopped) break;
        this.host.log.debug({ prefix: this.prefix, revision: String(snapshot.revision), keys: snapshot.kvs.length }, 'etcd watch listed');
        this.resyncs++;
        this.deliver('onResync', () => this.handlers.onResync(snapshot));
        const ended = await this.follow(snapshot.revision + 1n);
        if (this.stopped) break;
        this.host.log.info({ prefix: this.prefix, reason: ended.message }, 'etcd watch ended: re-listing');
        failures = 0;
      } catch (err) {
        if (this.stopped) break;
        this.host.log.debug({ prefix: this.prefix, err: message(err) }, 'etcd watch attempt failed');
        this.host.unreachable(err);
        if (failures++ === 0) this.host.log.warn({ prefix: this.prefix, err: message(err) }, 'etcd watch could not start: retrying with backoff');
      }
      await this.host.waker.sleep(this.backoff.next(), this.abort.signal);
    }
    this.release();
  }

  /** Watches from `revision` until the watch breaks (resolves with why) or the watch is stopped. */
  private follow(revision: bigint): Promise<Error> {
    return new Promise((resolve, reject) => {
      const watcher = this.host.client.watch().prefix(this.prefix).startRevision(String(revision)).withPreviousKV().watcher();
      this.watcher = watcher;
      let connected = false;
      const timer = setTimeout(() => finish(new Error(`watch not created within ${this.host.callTimeoutMs} ms`), true), this.host.callTimeoutMs);
      const onAbort = () => finish(new Error('stopped'), false);
      const finish = (why: Error, failed: boolean, detached = false) => {
        clearTimeout(timer);
        this.abort.signal.removeEventListener('abort', onAbort);
        this.release(detached);
        if (failed && !connected) reject(why);
        else resolve(why);
      };
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
      watcher.on('connected', () => {
        connected = true;
        clearTimeout(timer);
        this.host.log.debug({ prefix: this.prefix, revision: String(revision) }, 'etcd watch created');
        this.backoff.reset();
        this.host.reachable();
      });
      watcher.on('data', (res: IWatchResponse) => {
        const events = res.events.map(toEvent);
        if (events.length > 0) this.deliver('onEvents', () => this.handlers.onEvents(events));
      });
      // A cancel from etcd (compaction) arrives as `error`; etcd3 has detached the watcher already.
      watcher.on('error', (err: Error) => finish(err, false, true));
      watcher.on('disconnected', (err: Error) => {
        this.host.unreachable(err);
        finish(err, true);
      });
    });
  }

  /**
   * Drops the current watcher (if any); its late events and errors go nowhere. One etcd cancelled itself
   * (`detached`) must not be cancelled again: etcd3 would wait for an answer to a cancel of an unknown id.
   */
  private release(detached = false): void {
    const w = this.watcher;
    if (!w) return;
    this.watcher = undefined;
    w.removeAllListeners();
    w.on('error', () => undefined);
    // Not awaited: with etcd paused, a cancel on a live stream waits for an answer that may never come.
    if (!detached) w.cancel().catch(() => undefined);
  }

  /** A handler that throws must not break the watch (etcd3 would rethrow it as an uncaught exception). */
  private deliver(what: string, call: () => void): void {
    try {
      call();
    } catch (err) {
      this.host.log.error({ prefix: this.prefix, err: message(err) }, `etcd watch ${what} handler threw`);
    }
  }
}

function toEvent(ev: IWatchResponse['events'][number]): WatchEvent {
  const isPut = String(ev.type).toLowerCase() === 'put';
  return {
    type: isPut ? 'put' : 'delete',
    key: ev.kv.key.toString('utf8'),
    value: isPut ? ev.kv.value.toString('utf8') : undefined,
    prevValue: ev.prev_kv ? ev.prev_kv.value.toString('utf8') : undefined,
    modRevision: BigInt(ev.kv.mod_revision),
  };
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
