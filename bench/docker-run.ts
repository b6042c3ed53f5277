/**
 * The `dockerrun` item: what a Docker user waits for, with dockerd's own bridge driver (`docker`) and with
 * dockerd driving netd through its remote plugin (`docker-netd`), measured the same way for both.
 *
 * At each level L (the Lth container on `bench`: L−1 running fillers), `samples` probe containers go
 * through, one at a time:
 *   1. `docker run` = POST /containers/create (NetworkMode bench) + POST /containers/ID/start on dockerd's
 *      socket ("start returned"); then the address is read (GET /containers/ID/json, not timed) and the
 *      phase host (dockerd's namespace, through the bridge) connects to ADDRESS:9 over TCP until the
 *      container's kernel answers (a refusal is an answer: no process has to listen, so the figure is the
 *      network's, not the container's start-up). "ready" = start returned + the wait for that answer.
 *      The host's neighbour cache is flushed before each probe, so a recycled address is resolved afresh.
 *   2. `docker network disconnect bench` and 3. `docker network connect bench` (API call durations; after
 *      connect the same readiness check as 1 gives "connect → ready"); 4. `docker rm -f`.
 * With netd, the plugin calls netd logs during each timed operation (op "docker-plugin", durationMs) are
 * summed per operation: how much of the operation netd itself took.
 */
import { connect } from 'node:net';
import { log, run } from './env.js';
import type { Recorder } from './harness.js';
import { HttpError } from './http.js';
import type { LogLine } from './netd.js';
import type { DockerImpl } from './peers/docker.js';
import { msSince } from './stats.js';

/** A closed port in the container: its kernel answers a SYN with a RST once the address is up. */
export const READY_PORT = 9;
/** Give up on a container that does not answer within this (the network is broken, not slow). */
const READY_TIMEOUT_MS = 10_000;
/** One connect attempt waits this long for an answer before a new one starts. */
const ATTEMPT_MS = 250;

/** The timed operations of this item, in the order a probe goes through them. */
export const RUN_OPS = ['run', 'disconnect', 'connect', 'rm'] as const;
export type RunOp = (typeof RUN_OPS)[number] | 'fill';

/** One timed operation's wall-clock window (Date.now(), the clock pino stamps netd's log lines with). */
export interface OpWindow {
  op: RunOp;
  level: number;
  from: number;
  to: number;
}

export interface DockerRunOptions {
  levels: number[];
  samples: number;
}

/** One TCP connect to ip:port: 'answered' (connected or refused) or the error code that stopped it. */
function tryConnect(ip: string, port: number, timeoutMs: number): Promise<'answered' | string> {
  return new Promise((resolve) => {
    const sock = connect({ host: ip, port });
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    const finish = (r: string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    sock.once('connect', () => finish('answered'));
    sock.once('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED' ? 'answered' : (err.code ?? err.message)));
  });
}

/** Milliseconds until ip:port answers a TCP connect, and the attempts it took. Throws after READY_TIMEOUT_MS. */
export async function waitAnswered(ip: string, port = READY_PORT): Promise<{ ms: number; attempts: number }> {
  const start = process.hrtime.bigint();
  let attempts = 0;
  let last = '';
  while (msSince(start) < READY_TIMEOUT_MS) {
    attempts++;
    last = await tryConnect(ip, port, ATTEMPT_MS);
    if (last === 'answered') return { ms: msSince(start), attempts };
    if (last !== 'timeout') await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`${ip}:${port} did not answer a TCP connect within ${READY_TIMEOUT_MS} ms (last: ${last})`);
}

/** Forgets every learnt neighbour in this namespace (permanent entries stay). Not timed. */
async function flushNeighbours(): Promise<void> {
  await run(['ip', 'neigh', 'flush', 'all']);
}

/** The plugin call a log line is about (`NetworkDriver.Join`): its `call` field, else read from its message. */
function callOf(l: LogLine): string {
  const named = l.call ?? /(?:NetworkDriver|IpamDriver|Plugin)\.[A-Za-z]+/.exec(l.msg ?? '')?.[0] ?? 'unknown';
  return named.replace(/^\//, '');
}

/**
 * Sums netd's docker-plugin log lines per timed operation: for each window, the total durationMs and,
 * per call, its summed durationMs and count. Lines are matched by their timestamp (ms) to the first
 * window that contains it; `outside` counts lines inside [first window, last window] that no window holds.
 */
export function pluginShare(lines: readonly LogLine[], windows: readonly OpWindow[]): { perWindow: { window: OpWindow; total: number; calls: Map<string, { ms: number; n: number }> }[]; outside: number } {
  const perWindow = windows.map((window) => ({ window, total: 0, calls: new Map<string, { ms: number; n: number }>() }));
  let outside = 0;
  if (windows.length === 0) return { perWindow, outside };
  const first = windows[0].from;
  const last = windows[windows.length - 1].to;
  for (const l of lines) {
    if (l.op !== 'docker-plugin' || typeof l.durationMs !== 'number' || typeof l.time !== 'number') continue;
    const w = perWindow.find((p) => l.time! >= p.window.from && l.time! <= p.window.to);
    if (!w) {
      if (l.time >= first && l.time <= last) outside++;
      continue;
    }
    const call = callOf(l);
    const c = w.calls.get(call) ?? { ms: 0, n: 0 };
    c.ms += l.durationMs;
    c.n++;
    w.calls.set(call, c);
    w.total += l.durationMs;
  }
  return { perWindow, outside };
}

/** Records the plugin's share per operation and level: `plugin|OP|L|total`, `plugin|OP|L|CALL` (+`|count`). */
export function recordPluginShare(rec: Recorder, lines: readonly LogLine[], windows: readonly OpWindow[]): void {
  const { perWindow, outside } = pluginShare(lines, windows);
  const callsOf = new Map<string, Set<string>>();
  for (const p of perWindow) {
    const key = `${p.window.op}|${p.window.level}`;
    const set = callsOf.get(key) ?? new Set<string>();
    for (const c of p.calls.keys()) set.add(c);
    callsOf.set(key, set);
  }
  for (const p of perWindow) {
    if (p.window.op === 'fill') continue;
    const key = `${p.window.op}|${p.window.level}`;
    rec.add(`plugin|${key}|total`, p.total);
    // Every call seen for this operation gets a sample from each window (0 when absent), so medians compare.
    for (const call of callsOf.get(key) ?? []) {
      rec.add(`plugin|${key}|${call}`, p.calls.get(call)?.ms ?? 0);
      rec.add(`plugin|${key}|${call}|count`, p.calls.get(call)?.n ?? 0);
    }
  }
  if (outside > 0) rec.note(`${outside} netd plugin call(s) fell between the timed operations (dockerd's work after answering)`);
}

/** Runs `fn`, records its window, returns its duration in ms. */
async function timedWindow(windows: OpWindow[], op: RunOp, level: number, fn: () => Promise<void>): Promise<number> {
  const from = Date.now();
  const start = process.hrtime.bigint();
  await fn();
  const ms = msSince(start);
  windows.push({ op, level, from, to: Date.now() });
  return ms;
}

/** The wait for a container's answer on `bench` after an operation that put it there. */
async function readiness(impl: DockerImpl, id: string, rec: Recorder, what: string): Promise<number> {
  const ip = await impl.address(id);
  if (!ip) throw new Error(`${impl.id}: ${what}: the container has no address on bench`);
  const { ms, attempts } = await waitAnswered(ip);
  if (attempts > 1) rec.note(`${what}: some containers needed more than one connect attempt to answer (up to ${ATTEMPT_MS} ms each)`);
  return ms;
}

/**
 * Runs the item. When `docker run` on `bench` fails (dockerd answers an error), the run rows are that
 * error, and connect/disconnect are still measured, on containers started on a network of dockerd's own
 * bridge driver and disconnected from it (a running container with no network either way).
 */
export async function dockerRunLevels(impl: DockerImpl, rec: Recorder, opts: DockerRunOptions): Promise<void> {
  const windows: OpWindow[] = [];
  let runError: string | undefined;
  /** `docker run` on bench, or undefined once it has failed (the failed container is removed). */
  const tryRun = async (name: string, op: RunOp, level: number): Promise<{ id: string; ms: number } | undefined> => {
    if (runError) return undefined;
    let id = '';
    try {
      return { ms: await timedWindow(windows, op, level, async () => void (id = await impl.runContainer(name))), id };
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      runError = err.message;
      log(`${impl.id}: docker run fails (${err.message}); connect/disconnect measured on containers started elsewhere`);
      await impl.remove(name).catch(() => undefined); // created but not started (or not even created)
      return undefined;
    }
  };
  let filled = 0;
  for (const level of opts.levels) {
    const fillStart = process.hrtime.bigint();
    while (filled < level - 1) {
      const name = `rfill${filled}`;
      if (!(await tryRun(name, 'fill', level))) await timedWindow(windows, 'fill', level, async () => impl.connect(await impl.runUnconnected(name)));
      filled++;
    }
    if (filled > 0) log(`${impl.id}: ${filled} containers running (${(msSince(fillStart) / 1000).toFixed(1)} s)`);
    for (let i = 0; i < opts.samples; i++) {
      const name = `run${level}-${i}`;
      await flushNeighbours();
      const ran = await tryRun(name, 'run', level);
      const id = ran?.id ?? (await impl.runUnconnected(name));
      if (ran) {
        rec.add(`run.start|${level}`, ran.ms);
        rec.add(`run.ready|${level}`, ran.ms + (await readiness(impl, id, rec, 'docker run')));
        rec.add(`disconnect|${level}`, await timedWindow(windows, 'disconnect', level, () => impl.disconnect(id)));
      }
      await flushNeighbours();
      const connected = await timedWindow(windows, 'connect', level, () => impl.connect(id));
      rec.add(`connect|${level}`, connected);
      rec.add(`connect.ready|${level}`, connected + (await readiness(impl, id, rec, 'network connect')));
      if (!ran) {
        // The same sequence's figures, in the other order: disconnect, then connected again for rm -f.
        rec.add(`disconnect|${level}`, await timedWindow(windows, 'disconnect', level, () => impl.disconnect(id)));
        await timedWindow(windows, 'fill', level, () => impl.connect(id));
      }
      rec.add(`rm|${level}`, await timedWindow(windows, 'rm', level, () => impl.remove(id)));
    }
    log(`${impl.id}: level ${level} measured`);
  }
  const lines = impl.netdLog();
  if (lines) {
    await new Promise((r) => setTimeout(r, 100)); // the last log lines
    recordPluginShare(rec, lines, windows);
  }
  if (runError) {
    rec.result.error = `docker run on the network failed: ${runError} (connect, disconnect and rm -f were measured on containers started on a bridge-driver network and disconnected from it)`;
    rec.result.errorPartial = true;
    for (const level of opts.levels) for (const k of ['run.start', 'run.ready']) rec.na(`${k}|${level}`, `docker run fails: ${runError}`);
  }
}
