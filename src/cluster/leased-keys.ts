/**
 * The host's own records in etcd (its host key, its endpoints): keys attached to one lease, kept alive
 * here with one keepalive every TTL/3. If the host dies, the lease expires and etcd deletes them all in
 * one revision, which is how peers learn of it.
 *
 * The keepalive is netd's, not etcd3's `autoKeepAlive`: that one retries every 100 ms while etcd is
 * down (5–6 % of a core here for 2×TTL) and declares the lease lost after 2×TTL without an answer, even
 * when a restarted etcd has renewed it (a new leader extends every lease). Here a failed keepalive is
 * retried with the backoff (capped at TTL/3), and the lease counts as lost only when etcd says so (a
 * keepalive answered with TTL 0, or a write refused for an unknown lease).
 *
 * Writes never fail into the caller. Each goes to an outbox (latest value per key wins, written in the
 * order of their latest write) that a single writer flushes in transactions of up to 64 operations; while etcd is
 * down the writer waits with the shared backoff and tries again. The store remembers every key and value
 * it holds, so when the lease is lost (etcd gone longer than the lease lived, or the lease revoked behind
 * its back) it grants a new lease as soon as etcd answers and puts all of them again under it.
 */
import { EtcdLeaseInvalidError, type Etcd3, type IRequestOp, type Lease } from 'etcd3';
import type { Logger } from '../log.js';
import { Backoff, type Waker } from './backoff.js';
import { message } from './watch.js';

/** etcd refuses transactions of more than 128 operations by default (--max-txn-ops). */
const MAX_BATCH = 64;

export interface LeaseHost {
  readonly client: Etcd3;
  readonly log: Logger;
  readonly leaseTtlSeconds: number;
  /** The deadline of one keepalive. */
  readonly callTimeoutMs: number;
  /** Backoff sleeps end early when etcd answers again. */
  readonly waker: Waker;
  reachable(): void;
  unreachable(err: unknown): void;
  isOutage(err: unknown): boolean;
}

interface QueuedWrite {
  /** undefined: delete the key. */
  value: string | undefined;
  /** Called with true once this value (or a later one for the key) is in etcd; false if never. */
  waiters: ((written: boolean) => void)[];
}

interface HeldLease {
  lease: Lease;
  id: string;
}

export class LeasedKeys {
  private readonly held = new Map<string, string>();
  private readonly queue = new Map<string, QueuedWrite>();
  private readonly abort = new AbortController();
  private readonly backoff = new Backoff();
  private current?: HeldLease;
  private granting?: Promise<HeldLease>;
  private flushing = false;
  /** Written one operation per transaction until one succeeds (after etcd refused a whole batch). */
  private oneByOne = false;

  constructor(private readonly host: LeaseHost) {}

  /** Writes queued and not yet in etcd. */
  get pending(): number {
    return this.queue.size;
  }

  /** The lease the keys are attached to now (decimal id), if one is granted. */
  get leaseId(): string | undefined {
    return this.current?.id;
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  put(key: string, value: string): Promise<boolean> {
    if (this.stopped) return this.refuse(key);
    this.held.set(key, value);
    return this.enqueue(key, value, true);
  }

  delete(key: string): Promise<boolean> {
    if (this.stopped) return this.refuse(key);
    this.held.delete(key);
    return this.enqueue(key, undefined, true);
  }

  /** Revokes the lease: etcd deletes every key on it now. Ends this outbox. */
  async revoke(): Promise<void> {
    const held = this.stop();
    if (held) {
      await held.lease.revoke();
      this.host.log.info({ lease: held.id }, 'etcd lease revoked');
    }
  }

  /** Stops keeping the lease alive without revoking it (as a killed process would): the keys expire after the TTL. */
  release(): void {
    this.stop()?.lease.release();
  }

  private stop(): HeldLease | undefined {
    if (this.stopped) return undefined;
    this.abort.abort();
    const held = this.current;
    this.current = undefined;
    for (const write of this.queue.values()) for (const w of write.waiters) w(false);
    if (this.queue.size > 0) this.host.log.warn({ pending: this.queue.size }, 'etcd leased writes dropped: store closed before etcd took them');
    this.queue.clear();
    this.held.clear();
    return held;
  }

  private refuse(key: string): Promise<boolean> {
    this.host.log.warn({ key }, 'etcd leased write after the store closed: ignored');
    return Promise.resolve(false);
  }

  /** Queues a write (replacing a queued one for the same key) and starts the writer. */
  private enqueue(key: string, value: string | undefined, wait: boolean): Promise<boolean> {
    const earlier = this.queue.get(key);
    const write: QueuedWrite = { value, waiters: earlier?.waiters ?? [] };
    this.queue.delete(key);
    this.queue.set(key, write);
    const written = wait ? new Promise<boolean>((resolve) => write.waiters.push(resolve)) : Promise.resolve(true);
    this.kick();
    return written;
  }

  private kick(): void {
    if (this.flushing || this.stopped) return;
    this.flushing = true;
    void this.flush();
  }

  /** The single writer: drains the outbox, pacing itself with the backoff while etcd is away. */
  private async flush(): Promise<void> {
    while (this.queue.size > 0 && !this.stopped) {
      const batch = [...this.queue.entries()].slice(0, this.oneByOne ? 1 : MAX_BATCH);
      try {
        const { id } = await this.lease();
        await this.host.client.kv.txn({ compare: [], success: batch.map(([key, w]) => toOp(key, w.value, id)), failure: [] });
        for (const [key, write] of batch) {
          if (this.queue.get(key) !== write) continue; // replaced meanwhile: the newer value is still to go
          this.queue.delete(key);
          for (const w of write.waiters) w(true);
        }
        this.oneByOne = false;
        this.backoff.reset();
        this.host.reachable();
        continue;
      } catch (err) {
        if (this.stopped) break;
        this.failed(err, batch);
      }
      await this.host.waker.sleep(this.backoff.next(), this.abort.signal);
    }
    this.flushing = false; // in the same turn as the emptiness check: an enqueue after it kicks a new writer
  }

  private failed(err: unknown, batch: [string, QueuedWrite][]): void {
    if (err instanceof EtcdLeaseInvalidError) {
      if (this.current) this.lost(this.current.lease, err);
    } else if (this.host.isOutage(err)) {
      this.host.unreachable(err);
    } else if (batch.length > 1) {
      this.host.log.warn({ err: message(err), ops: batch.length }, 'etcd refused a batch of leased writes: retrying them one by one');
      this.oneByOne = true;
    } else {
      const [key, write] = batch[0];
      this.host.log.error({ key, err: message(err) }, 'etcd refused a leased write: dropped');
      if (this.queue.get(key) === write) this.queue.delete(key);
      for (const w of write.waiters) w(false);
    }
  }

  /** The current lease, granted (once, however many callers wait) when there is none. */
  private lease(): Promise<HeldLease> {
    if (this.current) return Promise.resolve(this.current);
    this.granting ??= this.grant().finally(() => (this.granting = undefined));
    return this.granting;
  }

  private async grant(): Promise<HeldLease> {
    const lease = this.host.client.lease(this.host.leaseTtlSeconds, { autoKeepAlive: false });
    lease.on('lost', (err: Error) => this.lost(lease, err));
    let id: string;
    try {
      id = await lease.grant();
    } catch (err) {
      lease.release();
      throw err;
    }
    if (this.stopped) {
      lease.release();
      throw new Error('store closed');
    }
    const held = { lease, id };
    this.current = held;
    this.host.log.info({ lease: id, ttl: this.host.leaseTtlSeconds }, 'etcd lease granted');
    void this.keepAlive(held);
    return held;
  }

  /** One keepalive every TTL/3 while `held` is the lease; after a failure, retries paced by the backoff. */
  private async keepAlive(held: HeldLease): Promise<void> {
    const intervalMs = (this.host.leaseTtlSeconds * 1000) / 3;
    const backoff = new Backoff({ maxMs: Math.max(100, Math.min(5000, intervalMs)) });
    let wait = intervalMs;
    for (;;) {
      await this.host.waker.sleep(wait, this.abort.signal);
      if (this.stopped || this.current !== held) return;
      try {
        // A TTL 0 answer emits 'lost' (handled by lost()) and rejects.
        await held.lease.keepaliveOnce({ deadline: Date.now() + this.host.callTimeoutMs });
        this.host.reachable();
        backoff.reset();
        wait = intervalMs;
      } catch (err) {
        if (this.stopped || this.current !== held) return;
        if (err instanceof EtcdLeaseInvalidError) return this.lost(held.lease, err);
        this.host.unreachable(err);
        wait = backoff.next();
      }
    }
  }

  /** The lease is gone: forget it, queue every held key again, and let the writer grant a new one. */
  private lost(lease: Lease, err: Error): void {
    if (this.current?.lease !== lease || this.stopped) return; // a grant that failed, or an old lease
    this.host.log.warn({ lease: this.current.id, err: err.message, keys: this.held.size }, 'etcd lease lost: granting a new one and putting the keys again');
    this.current = undefined;
    lease.release();
    for (const [key, value] of this.held) if (!this.queue.has(key)) this.enqueue(key, value, false);
    this.kick();
  }
}

function toOp(key: string, value: string | undefined, lease: string): IRequestOp {
  const k = Buffer.from(key, 'utf8');
  return value === undefined ? { request_delete_range: { key: k } } : { request_put: { key: k, value: Buffer.from(value, 'utf8'), lease } };
}
