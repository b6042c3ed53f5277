/**
 * What every implementation under test provides (netd, the peers, the raw floors), and the measurements
 * that are the same for all of them: attach/detach latency at growing occupancy, the cost of a published
 * port with many existing, concurrent attaches, and published-port throughput.
 */
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { NET, Procs, inNs, log, run, runIn, sleep, stopChild, waitForOutput } from './env.js';
import { msSince } from './stats.js';

export interface PortMap {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp';
}

/** A container as the benchmark sees it: a network namespace (path) and the ports it publishes. */
export interface Ctr {
  name: string;
  /** Unique within a phase; implementations without IPAM derive the address from it. */
  index: number;
  ns: string;
  ports: PortMap[];
  /** IPv4 address (no prefix) once attached. */
  ip?: string;
  /** Whatever the implementation needs to detach it again (a CNI result, a docker container id...). */
  state?: unknown;
}

export interface Impl {
  /** Short id used in keys and headings: netd, cni, netavark, docker, ip, rtnl. */
  readonly id: string;
  setup(): Promise<void>;
  /** true when published ports can be measured; otherwise the reason they cannot. */
  portSupport(): Promise<true | string>;
  /** Makes a container ready to be attached (untimed). */
  makeContainer(name: string, index: number, ports: PortMap[]): Promise<Ctr>;
  /** The timed operation: create the endpoint and join it. `key` names the measurement, for logs. */
  attach(c: Ctr, key: string): Promise<void>;
  detach(c: Ctr, key: string): Promise<void>;
  /** A container already attached, made the cheapest way (dockerd attaches at creation); default: make + attach. */
  fill?(name: string, index: number, ports: PortMap[]): Promise<Ctr>;
  /** Fills in c.ip when attach does not learn it (dockerd's connect answers nothing): untimed. */
  resolveIp?(c: Ctr): Promise<void>;
  /**
   * For an implementation whose detach answers before its kernel work is done (netd): called before a
   * detach; the function returned is called after it with the detach's start and gives the time from
   * then until the kernel state has converged (the container's interface gone).
   */
  convergence?(c: Ctr): Promise<(start: bigint) => Promise<number>>;
  /** PID of the implementation's daemon, for memory figures. */
  daemonPid?(): number | undefined;
  /** Measurements the implementation adds itself (netd: the daemon's own durationMs per operation). */
  finish?(rec: Recorder): Promise<void>;
  teardown(): Promise<void>;
}

/** A phase's measurements: latency samples (ms), single values, and n/a reasons, by key. */
export interface PhaseResult {
  phase: string;
  impl: string;
  /** netd's firewall backend in this phase (phases that start netd). */
  backend?: string;
  loadavg: number[];
  durationS: number;
  samples: Record<string, number[]>;
  values: Record<string, number>;
  na: Record<string, string>;
  notes: string[];
  /** Something did not work: the run exits non-zero. */
  error?: string;
  /** The error concerns only the keys marked n/a: the phase's other figures stand and are reported. */
  errorPartial?: boolean;
  /** The implementation is not available here (not installed, does not start): n/a, not a failure. */
  unavailable?: string;
}

export class Recorder {
  readonly result: PhaseResult;
  private readonly started = process.hrtime.bigint();

  constructor(phase: string, impl: string) {
    this.result = { phase, impl, loadavg: loadavg(), durationS: 0, samples: {}, values: {}, na: {}, notes: [] };
  }

  add(key: string, ms: number): void {
    (this.result.samples[key] ??= []).push(ms);
  }

  set(key: string, value: number): void {
    this.result.values[key] = value;
  }

  na(key: string, reason: string): void {
    this.result.na[key] = reason;
  }

  note(text: string): void {
    if (!this.result.notes.includes(text)) this.result.notes.push(text);
  }

  done(): PhaseResult {
    this.result.durationS = msSince(this.started) / 1000;
    return this.result;
  }
}

/** Thrown by an implementation's setup when it cannot run here (a peer that is not installed or will not start). */
export class Unavailable extends Error {}

let nextIndex = 0;
/** A fresh container index, unique within the phase. */
export function newIndex(): number {
  return nextIndex++;
}

async function timedOp(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return msSince(start);
}

/** Port published by the i-th probe container: host 20000+i → container 5201 (iperf3's port). */
export function probePort(i: number): PortMap {
  return { hostPort: 20000 + i, containerPort: 5201, protocol: 'tcp' };
}

const PROBE_JS = join(__dirname, 'probe.js');

/**
 * Checks that a published port really carries traffic: a TCP server in the container, a client in the
 * outside namespace connecting to the host's address. Returns an error message, or undefined if it works.
 */
export async function checkPublishedPort(procs: Procs, outsideNs: string, c: Ctr, port: PortMap): Promise<string | undefined> {
  const server = procs.spawn(inNs(c.ns, [process.execPath, PROBE_JS, 'serve', String(port.containerPort)]));
  try {
    await waitForOutput(server, /listening/);
    const r = await runIn(outsideNs, [process.execPath, PROBE_JS, 'connect', NET.hostExt, String(port.hostPort), '3000'], { allowFail: true });
    return r.code === 0 ? undefined : `outside → ${NET.hostExt}:${port.hostPort} → ${c.name}:${port.containerPort} failed: ${(r.stderr || r.stdout).trim()}`;
  } finally {
    await stopChild(server, 'SIGKILL');
  }
}

/** Checks that an attached container reaches its gateway (one ping). Throws if not. */
export async function checkConnectivity(c: Ctr): Promise<void> {
  const r = await runIn(c.ns, ['ping', '-c', '1', '-W', '2', NET.gateway], { allowFail: true });
  if (r.code !== 0) throw new Error(`${c.name} (${c.ip}) cannot ping the gateway ${NET.gateway}: ${r.stdout.trim()} ${r.stderr.trim()}`);
}

export interface LevelOptions {
  /** Occupancy levels: the Nth container on the network (e.g. 1, 100, 1000). */
  levels: number[];
  /** Attach/detach cycles measured at each level (per port variant). */
  samples: number;
  /** Measure the with-one-published-port variant as well. */
  ports: true | string;
  outsideNs: string;
  procs: Procs;
}

/** The probe containers of a measurement: `samples` without a port and, if asked, `samples` publishing one. */
async function makeProbes(impl: Impl, samples: number, withPorts: boolean): Promise<{ probes: Ctr[]; portProbes: Ctr[] }> {
  const probes: Ctr[] = [];
  const portProbes: Ctr[] = [];
  for (let i = 0; i < samples; i++) {
    probes.push(await impl.makeContainer(`probe${i}`, newIndex(), []));
    if (withPorts) portProbes.push(await impl.makeContainer(`pport${i}`, newIndex(), [probePort(i)]));
  }
  return { probes, portProbes };
}

/**
 * Item 1: attach and detach latency of the Nth container on one network. At each level the network holds
 * N-1 attached containers; then `samples` probe containers are attached and detached one at a time (so
 * each probe is the Nth), alternating the variants without and with one published port.
 */
export async function attachLevels(impl: Impl, rec: Recorder, opts: LevelOptions): Promise<void> {
  const { probes, portProbes } = await makeProbes(impl, opts.samples, opts.ports === true);
  if (opts.ports !== true) for (const l of opts.levels) for (const op of ['attach', 'detach']) rec.na(`${op}|port|${l}`, opts.ports);

  const filled: Ctr[] = [];
  let checked = false;
  for (const level of opts.levels) {
    const fillStart = process.hrtime.bigint();
    while (filled.length < level - 1) {
      const name = `fill${filled.length}`;
      let c: Ctr;
      if (impl.fill) {
        c = await impl.fill(name, newIndex(), []);
      } else {
        c = await impl.makeContainer(name, newIndex(), []);
        rec.add('fill.attach', await timedOp(() => impl.attach(c, 'fill.attach')));
      }
      filled.push(c);
    }
    if (filled.length > 0) log(`${impl.id}: ${filled.length} containers attached (${(msSince(fillStart) / 1000).toFixed(1)} s)`);
    for (let i = 0; i < opts.samples; i++) {
      const variants: [Ctr, string][] = [[probes[i], 'noport']];
      if (opts.ports === true) variants.push([portProbes[i], 'port']);
      // Alternate which variant goes first, so neither always follows the other.
      if (i % 2 === 1) variants.reverse();
      for (const [c, variant] of variants) {
        const ak = `attach|${variant}|${level}`;
        rec.add(ak, await timedOp(() => impl.attach(c, ak)));
        if (!checked) {
          // Once per implementation: the attached container really is on the network.
          await checkConnectivity(c);
          if (variant === 'port') {
            const err = await checkPublishedPort(opts.procs, opts.outsideNs, c, c.ports[0]);
            if (err) throw new Error(`${impl.id}: published port does not work: ${err}`);
            checked = true;
          } else if (opts.ports !== true) {
            checked = true;
          }
        }
        const dk = `detach|${variant}|${level}`;
        const converged = await impl.convergence?.(c);
        const dstart = process.hrtime.bigint();
        await impl.detach(c, dk);
        rec.add(dk, msSince(dstart));
        // Waiting for the kernel work also keeps it from overlapping the next probe's attach.
        if (converged) {
          const ms = await converged(dstart);
          if (Number.isFinite(ms)) rec.add(`converged|${variant}|${level}`, ms);
          else rec.note(`${c.name}'s interface still there 2 s after its detach`);
        }
      }
    }
    log(`${impl.id}: level ${level} measured (load ${loadavg()[0].toFixed(2)})`);
  }
  // The fillers are not detached: the phase's namespaces (and everything in them) are dropped at its end.
}

export interface PortCostOptions {
  /** Existing published ports at which the cost of one more is measured (e.g. 0, 1000, 10000). */
  levels: number[];
  /** Ports each filler container publishes. */
  perContainer: number;
  samples: number;
  /** Give up filling beyond this many seconds in all (the level is then reported n/a). */
  fillBudgetS: number;
}

/**
 * Item 5: the cost of attaching a container with one published port when N ports are already published
 * (by filler containers), next to the cost of the same attach without a port at the same N.
 */
export async function portCost(impl: Impl, rec: Recorder, opts: PortCostOptions): Promise<void> {
  const { probes, portProbes } = await makeProbes(impl, opts.samples, true);
  const filled: Ctr[] = [];
  let published = 0;
  const fillStart = process.hrtime.bigint();
  for (const level of opts.levels) {
    let gaveUp = false;
    while (published < level) {
      if (msSince(fillStart) / 1000 > opts.fillBudgetS) {
        gaveUp = true;
        break;
      }
      const k = filled.length;
      const n = Math.min(opts.perContainer, level - published);
      // Host ports 30000.. for fillers; container ports distinct within a container.
      const ports: PortMap[] = Array.from({ length: n }, (_, j) => ({ hostPort: 30000 + published + j, containerPort: 10000 + j, protocol: 'tcp' }));
      const t = process.hrtime.bigint();
      const c = impl.fill ? await impl.fill(`pfill${k}`, newIndex(), ports) : await impl.makeContainer(`pfill${k}`, newIndex(), ports);
      if (!impl.fill) await impl.attach(c, 'fill.attach');
      rec.add('portfill.attach', msSince(t));
      filled.push(c);
      published += n;
    }
    if (gaveUp) {
      const reason = `n/a (filling stopped at ${published} ports after ${opts.fillBudgetS} s)`;
      // This level and every higher one.
      for (const l of opts.levels.filter((x) => x >= level)) {
        rec.na(`portadd|port|${l}`, reason);
        rec.na(`portadd|noport|${l}`, reason);
      }
      log(`${impl.id}: ${reason}`);
      break;
    }
    log(`${impl.id}: ${published} ports published by ${filled.length} containers (${(msSince(fillStart) / 1000).toFixed(1)} s); load ${loadavg()[0].toFixed(2)}`);
    for (let i = 0; i < opts.samples; i++) {
      const pairs: [Ctr, string][] = [
        [portProbes[i], 'port'],
        [probes[i], 'noport'],
      ];
      if (i % 2 === 1) pairs.reverse();
      for (const [c, variant] of pairs) {
        const key = `portadd|${variant}|${level}`;
        rec.add(key, await timedOp(() => impl.attach(c, key)));
        await impl.detach(c, `${key}.detach`);
      }
    }
  }
  // Fillers stay: dropping the phase's namespaces removes them (netavark needs ~15 s to tear down 100 ports).
}

/**
 * Item 6: `count` attaches issued at once (then as many detaches), wall time, distinct addresses, and the
 * daemon's peak RSS over the burst.
 */
export async function concurrentAttaches(impl: Impl, rec: Recorder, count: number, resetPeak: (pid: number) => void, memoryOf: (pid: number) => { hwmKiB: number; rssKiB: number }): Promise<void> {
  // Warm-up: the first attach may create the bridge (CNI, netavark); the burst should not race on that.
  const warm = await impl.makeContainer('warm', newIndex(), []);
  await impl.attach(warm, 'warm');
  await impl.detach(warm, 'warm');
  const ctrs: Ctr[] = [];
  for (let i = 0; i < count; i++) ctrs.push(await impl.makeContainer(`conc${i}`, newIndex(), []));
  const pid = impl.daemonPid?.();
  if (pid !== undefined) {
    rec.set('conc.rss.before', memoryOf(pid).rssKiB);
    resetPeak(pid);
  }
  await sleep(200);
  const start = process.hrtime.bigint();
  const results = await Promise.allSettled(ctrs.map((c) => impl.attach(c, 'conc.attach')));
  rec.set('conc.attach.wall', msSince(start));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) throw new Error(`${failed.length} of ${count} concurrent attaches failed, e.g.: ${String(failed[0].reason?.message ?? failed[0].reason)}`);
  if (pid !== undefined) rec.set('conc.rss.peak', memoryOf(pid).hwmKiB);
  if (impl.resolveIp) for (const c of ctrs) await impl.resolveIp(c);
  const ips = new Set(ctrs.map((c) => c.ip));
  if (ips.size !== count || ips.has(undefined)) throw new Error(`${count} concurrent attaches gave ${ips.size} distinct addresses`);
  await checkConnectivity(ctrs[count - 1]);
  const dstart = process.hrtime.bigint();
  const dres = await Promise.allSettled(ctrs.map((c) => impl.detach(c, 'conc.detach')));
  rec.set('conc.detach.wall', msSince(dstart));
  const dfailed = dres.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (dfailed.length > 0) throw new Error(`${dfailed.length} of ${count} concurrent detaches failed, e.g.: ${String(dfailed[0].reason?.message ?? dfailed[0].reason)}`);
}

export interface ThroughputOptions {
  seconds: number;
  trials: number;
  outsideNs: string;
  procs: Procs;
}

/** Gbit/s received by the iperf3 server, from a client run in the namespace at `outsideNs` (a path); one retry after a failure. */
export async function iperf(rec: Recorder, outsideNs: string, host: string, port: number, seconds: number): Promise<number> {
  let last = '';
  for (let attempt = 0; attempt < 2; attempt++) {
    if (attempt > 0) {
      rec.note(`iperf3 to ${host}:${port} failed once and was retried (${last})`);
      await sleep(1000);
    }
    const r = await runIn(outsideNs, ['iperf3', '-c', host, '-p', String(port), '-t', String(seconds), '-J'], { timeoutMs: (seconds + 20) * 1000, allowFail: true });
    let parsed: { end?: { sum_received?: { bits_per_second?: number } }; error?: string } = {};
    try {
      parsed = JSON.parse(r.stdout) as typeof parsed;
    } catch {
      /* reported below */
    }
    const bps = parsed.end?.sum_received?.bits_per_second;
    if (r.code === 0 && bps) return bps / 1e9;
    last = `exit ${r.code}: ${parsed.error ?? (r.stderr.trim() || r.stdout.trim().slice(0, 200))}`;
  }
  throw new Error(`iperf3 to ${host}:${port}: ${last}`);
}

/**
 * Item 7: TCP throughput from the outside namespace to a container, through a published port and
 * directly to the container's address (routed through the phase host, with FORWARD accepting it).
 * Trials alternate between the two paths.
 */
export async function throughput(impl: Impl, rec: Recorder, ports: true | string, opts: ThroughputOptions): Promise<void> {
  const port = probePort(0);
  const c = await impl.makeContainer('iperf', newIndex(), ports === true ? [port] : []);
  await impl.attach(c, 'tput.attach');
  await impl.resolveIp?.(c);
  if (!c.ip) throw new Error(`${impl.id}: attach reported no address`);
  // Direct traffic from another machine is not every stack's default (Docker ≥ 28 drops it): open it
  // explicitly for this measurement, in the administrator's chain the stack leaves alone (netd's
  // NETD-USER, Docker's DOCKER-USER: both keep their own jumps first in FORWARD and would undo an insert
  // there), else at the top of FORWARD; and ahead of any raw-table DROP (ACCEPT ends the raw chain).
  const chains = (await run(['iptables', '-w', '-S'])).stdout;
  const chain = ['NETD-USER', 'DOCKER-USER'].find((ch) => chains.includes(`-N ${ch}\n`)) ?? 'FORWARD';
  for (const dir of ['-d', '-s']) await run(['iptables', '-w', '-I', chain, '1', dir, `${c.ip}/32`, '-j', 'ACCEPT']);
  await run(['iptables', '-w', '-t', 'raw', '-I', 'PREROUTING', '1', '-d', `${c.ip}/32`, '-j', 'ACCEPT']);
  rec.note(`direct path opened in ${chain}`);
  // --forceflush: iperf3 block-buffers its output into a pipe otherwise, and "listening" never shows.
  const server = opts.procs.spawn(inNs(c.ns, ['iperf3', '-s', '--forceflush', '-p', String(port.containerPort)]));
  try {
    await waitForOutput(server, /Server listening/);
    if (ports !== true) rec.na('tput.published', ports);
    for (let t = 0; t < opts.trials; t++) {
      rec.add('tput.direct', await iperf(rec, opts.outsideNs, c.ip, port.containerPort, opts.seconds));
      if (ports === true) rec.add('tput.published', await iperf(rec, opts.outsideNs, NET.hostExt, port.hostPort, opts.seconds));
    }
  } finally {
    await stopChild(server, 'SIGKILL');
  }
  await impl.detach(c, 'tput.detach');
}

/** Creating and removing networks, for implementations that have networks as objects (netd, dockerd). */
export interface NetworkOps {
  create(name: string, subnet: string): Promise<string>;
  remove(id: string): Promise<void>;
  /** Bridge networks that exist before the benchmark creates any (netd's predefined `bridge`). */
  existing: number;
}

/**
 * Item 4: create-network and rm-network latency with N bridge networks existing: fill to N, then create
 * and remove one more network `samples` times.
 */
export async function networkLevels(ops: NetworkOps, rec: Recorder, levels: number[], samples: number): Promise<void> {
  const made: string[] = [];
  let existing = ops.existing;
  for (const level of levels) {
    while (existing < level) {
      made.push(await ops.create(`net${made.length}`, NET.extraSubnet(made.length)));
      existing++;
    }
    for (let i = 0; i < samples; i++) {
      const start = process.hrtime.bigint();
      const id = await ops.create(`sample${i}`, NET.extraSubnet(250));
      rec.add(`netcreate|${level}`, msSince(start));
      const rstart = process.hrtime.bigint();
      await ops.remove(id);
      rec.add(`netrm|${level}`, msSince(rstart));
    }
    log(`networks: level ${level} measured`);
  }
  // The filler networks are left: the phase's namespace, and with it every bridge, is dropped at its end.
}
