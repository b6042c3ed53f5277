/**
 * netd's one door to etcd (cluster mode): one etcd3 client, the few operations the overlay needs, and
 * its reachability. Values are strings (JSON is the caller's business); revisions are bigint.
 *
 * - Plain reads and compare-and-swap writes (network claims, deletions) go to etcd and fail into the
 *   caller (StoreUnavailableError when etcd does not answer within the call timeout).
 * - The host's own records are leased writes (src/cluster/leased-keys.ts): queued, never failing, put
 *   again under a new lease when the old one is lost.
 * - Watches (src/cluster/watch.ts) re-list and re-watch after every break, compaction included.
 *
 * etcd3's own retry and circuit-breaker policies are replaced by single attempts: each loop here paces
 * itself with src/cluster/backoff.ts (100 ms → 5 s), and a breaker would hold calls back for 5 s after
 * etcd returned. Unary calls carry a deadline, so a paused etcd costs a timeout, not a hang.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import {
  CompareResult,
  CompareTarget,
  Etcd3,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  EtcdWatchStreamEnded,
  isRecoverableError,
  Range,
  type ICompare,
  type IOptions,
  type IRequestOp,
} from 'etcd3';
import { InvalidArgumentError, NetdError, StoreUnavailableError, asNetdError } from '../errors.js';
import type { Logger } from '../log.js';
import { Backoff, Waker, sleep } from './backoff.js';
import { LeasedKeys, type LeaseHost } from './leased-keys.js';
import { PrefixWatch, message, type Snapshot, type WatchHandlers, type WatchHost } from './watch.js';

export type { Snapshot, StoredKv, WatchEvent, WatchHandlers } from './watch.js';
export type { PrefixWatch } from './watch.js';

export interface EtcdTlsFiles {
  /** CA bundle (PEM) to verify etcd with; the system's roots when absent. */
  ca?: string;
  /** Client certificate and key (PEM) for etcd's client-cert authentication. */
  cert?: string;
  key?: string;
}

export interface EtcdStoreOptions {
  /** Endpoint URLs (`http://H:P`, `https://H:P`; `unix://PATH` for a local socket), e.g. from parseUrl. */
  endpoints: string[];
  tls?: EtcdTlsFiles;
  /** TTL of the host's lease: how long after a crash its records live on. */
  leaseTtlSeconds?: number;
  log: Logger;
  /** Deadline of every unary call (connection set-up included). */
  dialTimeoutMs?: number;
}

export interface StoredValue {
  value: string;
  modRevision: bigint;
  createRevision: bigint;
}

/** A one-shot policy: etcd3 calls `execute(fn)`; run fn once (no retry, no breaker). */
const once = { execute: (fn: (context: unknown) => unknown) => Promise.resolve().then(() => fn({ signal: new AbortController().signal, attempt: 0 })) };

const HOST = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)$/;

export class EtcdStore extends EventEmitter implements WatchHost, LeaseHost {
  readonly client: Etcd3;
  readonly log: Logger;
  readonly leaseTtlSeconds: number;
  readonly callTimeoutMs: number;
  readonly waker = new Waker();
  private readonly leased: LeasedKeys;
  private readonly watches = new Set<PrefixWatch>();
  private readonly abort = new AbortController();
  private isUp = false;
  private probing = false;
  private closing?: Promise<void>;

  /**
   * `etcd://H:P[,H:P...]` (or a list of `http://H:P` / `https://H:P`) → endpoint URLs. A port defaults to
   * 2379. `tls`: the endpoints of `etcd://` use https (and `http://` is refused).
   */
  static parseUrl(text: string, tls = false): string[] {
    const bad = (why: string) => new InvalidArgumentError(`cluster store ${JSON.stringify(text)}: ${why} (expected etcd://HOST:PORT[,HOST:PORT...])`);
    if (typeof text !== 'string' || text.length === 0 || text.length > 4096) throw bad('empty or too long');
    let rest = text;
    let defaultScheme: string | undefined;
    if (rest.startsWith('etcd://')) {
      rest = rest.slice('etcd://'.length);
      defaultScheme = tls ? 'https' : 'http';
    }
    const endpoints = rest.split(',').map((item) => {
      const m = /^(?:(https?):\/\/)?([^/?#]*?)(?::(\d{1,5}))?\/?$/.exec(item);
      if (!m) throw bad(`${JSON.stringify(item)} is not HOST:PORT`);
      const scheme = m[1] ?? defaultScheme;
      if (!scheme) throw bad(`${JSON.stringify(item)} has no scheme`);
      if (tls && scheme === 'http') throw bad(`${item} is plain http but TLS files are given`);
      if (!HOST.test(m[2])) throw bad(`${JSON.stringify(m[2])} is not a host name or address`);
      const port = m[3] === undefined ? 2379 : Number(m[3]);
      if (!(port >= 1 && port <= 65535)) throw bad(`port ${m[3]} is out of range`);
      return `${scheme}://${m[2]}:${port}`;
    });
    if (new Set(endpoints.map((e) => e.split(':')[0])).size > 1) throw bad('mixes http and https endpoints');
    return endpoints;
  }

  constructor(opts: EtcdStoreOptions) {
    super();
    this.log = opts.log;
    this.leaseTtlSeconds = opts.leaseTtlSeconds ?? 10;
    this.callTimeoutMs = opts.dialTimeoutMs ?? 5000;
    if (!Number.isInteger(this.leaseTtlSeconds) || this.leaseTtlSeconds < 1) throw new InvalidArgumentError(`lease TTL ${this.leaseTtlSeconds}: expected whole seconds ≥ 1`);
    if (opts.endpoints.length === 0) throw new InvalidArgumentError('cluster store: no etcd endpoint');
    const options: IOptions = {
      hosts: opts.endpoints,
      credentials: opts.tls ? readTls(opts.tls) : undefined,
      // A proxy in the environment must not capture etcd traffic; pings find a half-open connection (etcd3#110).
      grpcOptions: { 'grpc.enable_http_proxy': 0, 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5000 },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.callTimeoutMs }),
      faultHandling: { global: once as never, host: () => once as never },
    };
    this.client = new Etcd3(options);
    this.leased = new LeasedKeys(this);
    this.on('error', () => undefined); // nothing here emits 'error'; never let one throw
    void this.probe(true);
  }

  /** Whether etcd answered the last time anything here talked to it. */
  get up(): boolean {
    return this.isUp;
  }

  /** Leased writes queued and not yet in etcd. */
  get pendingWrites(): number {
    return this.leased.pending;
  }

  /** The lease the host's keys are attached to now (decimal id), if one is granted. */
  get leaseId(): string | undefined {
    return this.leased.leaseId;
  }

  async get(key: string): Promise<StoredValue | undefined> {
    const r = await this.call('get', () => this.client.kv.range({ key: Buffer.from(key) }));
    const kv = r.kvs[0];
    return kv && { value: kv.value.toString('utf8'), modRevision: BigInt(kv.mod_revision), createRevision: BigInt(kv.create_revision) };
  }

  async list(prefix: string): Promise<Snapshot> {
    const range = Range.prefix(prefix);
    const r = await this.call('list', () => this.client.kv.range({ key: range.start, range_end: range.end }));
    return {
      revision: BigInt(r.header.revision),
      kvs: r.kvs.map((kv) => ({ key: kv.key.toString('utf8'), value: kv.value.toString('utf8'), modRevision: BigInt(kv.mod_revision) })),
    };
  }

  /** Puts every entry, in one transaction, if none of the keys exists; false (nothing written) otherwise. */
  createIfAbsent(entries: { key: string; value: string }[]): Promise<boolean> {
    if (entries.length === 0) throw new InvalidArgumentError('createIfAbsent: no entries');
    return this.txn(
      'createIfAbsent',
      entries.map((e) => compare(e.key, CompareTarget.Version, { version: 0 })),
      entries.map((e) => put(e.key, e.value)),
    );
  }

  /** Puts `value` if the key is still at `modRevision`. */
  replaceIf(key: string, value: string, modRevision: bigint): Promise<boolean> {
    return this.txn('replaceIf', [compare(key, CompareTarget.Mod, { mod_revision: String(modRevision) })], [put(key, value)]);
  }

  /** Deletes the key if it is still at `modRevision`. */
  deleteIf(key: string, modRevision: bigint): Promise<boolean> {
    return this.txn('deleteIf', [compare(key, CompareTarget.Mod, { mod_revision: String(modRevision) })], [del(key)]);
  }

  /** One transaction: if `guardKey` is at `guardModRevision`, delete `keys` and every key under `prefixes`. */
  deletePrefixWhen(guardKey: string, guardModRevision: bigint, keys: string[], prefixes: string[]): Promise<boolean> {
    const ops = [...keys.map((k) => del(k)), ...prefixes.map((p) => del(p, true))];
    return this.txn('deletePrefixWhen', [compare(guardKey, CompareTarget.Mod, { mod_revision: String(guardModRevision) })], ops);
  }

  /** Compacts etcd's history up to `revision` (watches behind it are cancelled and resync). */
  async compact(revision: bigint): Promise<void> {
    await this.call('compact', () => this.client.kv.compact({ revision: String(revision), physical: true }));
  }

  /** Puts `key` under the host's lease. Never rejects: true once in etcd, false if the store closed first. */
  leasedPut(key: string, value: string): Promise<boolean> {
    return this.leased.put(key, value);
  }

  /** Deletes one of the host's leased keys (queued like leasedPut). */
  leasedDelete(key: string): Promise<boolean> {
    return this.leased.delete(key);
  }

  /** Clean shutdown: revoke the lease, so etcd deletes the host's keys now. */
  async revokeLease(): Promise<void> {
    await this.call('revokeLease', () => this.leased.revoke());
  }

  /** For tests: stop keeping the lease alive without revoking it (as `kill -9` would): the keys expire after the TTL. */
  abandon(): void {
    this.leased.release();
  }

  /** Lists `prefix`, hands it to onResync, then streams changes; re-lists after any break. Stop with `.stop()`. */
  watch(prefix: string, handlers: WatchHandlers): PrefixWatch {
    if (this.closing) throw new NetdError('etcd store is closed', 500, 'internal');
    const w = new PrefixWatch(this, prefix, handlers);
    this.watches.add(w);
    void w.done.then(() => this.watches.delete(w));
    return w;
  }

  /** Stops the watches, the keepalive (the lease is left to expire) and the client. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.abort.abort();
      this.leased.release();
      await Promise.all([...this.watches].map((w) => w.stop()));
      this.client.close();
      this.log.info('etcd store closed');
    })();
    return this.closing;
  }

  /** etcd answered. */
  reachable(): void {
    if (this.isUp || this.closing) return;
    this.isUp = true;
    this.log.info('etcd reachable');
    this.waker.wake();
    this.emit('up');
  }

  /** A call failed; if it failed for want of etcd, the store is down until something gets through. */
  unreachable(err: unknown): void {
    if (!this.isOutage(err) || this.closing) return;
    if (this.isUp) {
      this.isUp = false;
      this.log.warn({ err: message(err) }, 'etcd unreachable');
      this.emit('down');
    }
    void this.probe(false);
  }

  isOutage(err: unknown): boolean {
    return (
      err instanceof GRPCUnavailableError ||
      err instanceof GRPCDeadlineExceededError ||
      err instanceof GRPCCancelledError ||
      err instanceof EtcdWatchStreamEnded ||
      (err instanceof Error && isRecoverableError(err))
    );
  }

  /** While down, asks etcd for its status with backoff until it answers (so `up` returns without traffic). */
  private async probe(now: boolean): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    const backoff = new Backoff();
    try {
      if (!now) await sleep(backoff.next(), this.abort.signal);
      while (!this.isUp && !this.abort.signal.aborted) {
        try {
          await this.client.maintenance.status();
          this.reachable();
        } catch (err) {
          this.unreachable(err);
          await sleep(backoff.next(), this.abort.signal);
        }
      }
    } finally {
      this.probing = false;
    }
  }

  private async txn(what: string, compares: ICompare[], success: IRequestOp[]): Promise<boolean> {
    const r = await this.call(what, () => this.client.kv.txn({ compare: compares, success, failure: [] }));
    return r.succeeded;
  }

  /** Runs one etcd call: marks the store up or down, and types the failure. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      const r = await fn();
      this.reachable();
      return r;
    } catch (err) {
      if (this.isOutage(err)) {
        this.unreachable(err);
        throw new StoreUnavailableError(`etcd ${what}: ${message(err)}`, { cause: err });
      }
      throw asNetdError(err);
    }
  }
}

function compare(key: string, target: CompareTarget, field: Partial<ICompare>): ICompare {
  return { key: Buffer.from(key), target, result: CompareResult.Equal, ...field };
}

function put(key: string, value: string): IRequestOp {
  return { request_put: { key: Buffer.from(key), value: Buffer.from(value) } };
}

function del(key: string, prefix = false): IRequestOp {
  if (!prefix) return { request_delete_range: { key: Buffer.from(key) } };
  const range = Range.prefix(key);
  return { request_delete_range: { key: range.start, range_end: range.end } };
}

function readTls(files: EtcdTlsFiles): NonNullable<IOptions['credentials']> {
  const read = (what: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new InvalidArgumentError(`cluster store TLS ${what} ${path}: ${message(err)}`);
    }
  };
  if ((files.cert === undefined) !== (files.key === undefined)) throw new InvalidArgumentError('cluster store TLS: a client certificate needs its key, and a key its certificate');
  // grpc-js takes null for "the system's roots"; etcd3's type insists on a Buffer.
  return { rootCertificate: read('CA', files.ca) ?? (null as unknown as Buffer), certChain: read('certificate', files.cert), privateKey: read('key', files.key) };
}
