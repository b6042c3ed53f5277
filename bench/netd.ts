/**
 * netd under test: the daemon started from dist/ inside the phase namespace, driven through its API on
 * the unix socket with a keep-alive HTTP client (as a runtime would call it; no CLI, so no node start-up
 * in the figures). The CLI is measured separately.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../test/helpers/daemon.js';
import { NET, Procs, log, newContainerNs, run, sleep, stopChild } from './env.js';
import { Unavailable, checkPublishedPort, newIndex, type Ctr, type Impl, type PortMap, type Recorder } from './harness.js';
import { FIREWALL_BACKEND_NAMES } from '../src/daemon/defaults.js';
import { Netns } from '../src/kernel/netns.js';
import { Rtnl } from '../src/kernel/rtnetlink.js';
import { HttpError, UnixHttp } from './http.js';
import { msSince } from './stats.js';

export interface LogLine {
  op?: string;
  durationMs?: number;
  outcome?: string;
  /** The Docker plugin's call (`NetworkDriver.Join`...), on `op: "docker-plugin"` lines. */
  call?: string;
  /** pino's timestamp (ms since the epoch). */
  time?: number;
  /** pino's message. */
  msg?: string;
}

export interface NetdDaemonOptions {
  /** Directory on disk for the data root (state is fsynced there, as in production). */
  work: string;
  /** Write a V8 CPU profile of the daemon there (node --cpu-prof). */
  profileDir?: string;
  /** Load trace-preload into the daemon, which writes its per-operation breakdown to this file on exit. */
  traceFile?: string;
  /** More `netd daemon` flags (e.g. `--docker-plugin unix:///run/docker/plugins/netd.sock`). */
  extraArgs?: string[];
  /** `--firewall-backend` (default: the daemon's own default). */
  firewallBackend?: string;
}

/**
 * The daemon exited while starting with a firewall backend other than the default one: that backend is
 * not available in this build (e.g. `nftables` before it is registered), so its rows are n/a, not a failure.
 */
export class BackendUnavailable extends Unavailable {
  static readonly PREFIX = 'backend not available: ';
  constructor(why: string) {
    super(`${BackendUnavailable.PREFIX}${why}`);
  }
}

/** The default backend (the first netd has): a start failure with it is a failure of the run. */
const DEFAULT_BACKEND: string = FIREWALL_BACKEND_NAMES[0];

/** The daemon process, its API client and its log. */
export class NetdDaemon {
  readonly logLines: LogLine[] = [];
  /** Lines that are not JSON log lines (the CLI's one-line error when the daemon cannot start). */
  readonly otherLines: string[] = [];
  private partial = '';

  private constructor(
    readonly child: ChildProcess,
    readonly http: UnixHttp,
  ) {
    child.stderr?.on('data', (d: Buffer) => this.onLog(d.toString()));
    child.stdout?.on('data', (d: Buffer) => this.onLog(d.toString()));
  }

  static readonly SOCKET = '/run/netd-bench/netd.sock';

  static async start(procs: Procs, opts: NetdDaemonOptions): Promise<NetdDaemon> {
    const dataRoot = join(opts.work, 'netd-data');
    mkdirSync('/run/netd-bench', { recursive: true });
    const node = [
      process.execPath,
      ...(opts.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`] : []),
      ...(opts.traceFile ? ['--require', join(__dirname, 'trace-preload.js')] : []),
    ];
    const env = opts.traceFile ? { ...process.env, NETD_BENCH_TRACE: opts.traceFile } : process.env;
    const child = procs.spawn([
      ...node,
      CLI,
      '--host',
      `unix://${NetdDaemon.SOCKET}`,
      'daemon',
      '--data-root',
      dataRoot,
      '--exec-root',
      '/run/netd-bench/exec',
      '--log-level',
      'info',
      '--bridge',
      'netdb0',
      ...(opts.firewallBackend ? ['--firewall-backend', opts.firewallBackend] : []),
      ...(opts.extraArgs ?? []),
    ], { env });
    const d = new NetdDaemon(child, new UnixHttp(NetdDaemon.SOCKET));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) {
        await sleep(50); // the last output
        const why = d.startError();
        if (opts.firewallBackend && opts.firewallBackend !== DEFAULT_BACKEND) throw new BackendUnavailable(why);
        throw new Error(`netd exited with ${child.exitCode}: ${why}`);
      }
      if (existsSync(NetdDaemon.SOCKET)) {
        try {
          if ((await d.http.request('GET', '/_ping')).status === 200) return d;
        } catch {
          /* not listening yet */
        }
      }
      await sleep(50);
    }
    throw new Error('netd did not come up within 20 s');
  }

  /** The first line of what the daemon said when it would not start (its CLI error, else its last error log line). */
  private startError(): string {
    const text = this.otherLines.find((l) => l.trim()) ?? [...this.logLines].reverse().find((l) => (l as { level?: number }).level !== undefined && ((l as { level: number }).level ?? 0) >= 50)?.msg ?? this.partial;
    return text.trim().split('\n')[0].replace(/^netd: /, '').slice(0, 300) || 'no output';
  }

  private onLog(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const l of lines) {
      try {
        this.logLines.push(JSON.parse(l) as LogLine);
      } catch {
        if (this.otherLines.length < 100) this.otherLines.push(l);
      }
    }
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  async stop(): Promise<void> {
    this.http.close();
    await stopChild(this.child, 'SIGTERM');
  }
}

/** The shapes of `ports` in the attach body this runner tries, in order (published ports are in progress). */
const PORT_SHAPES: { name: string; body: (p: PortMap[]) => unknown }[] = [
  { name: '"HOST:CONTAINER/tcp" strings', body: (p) => p.map((m) => `${m.hostPort}:${m.containerPort}/${m.protocol}`) },
  { name: '{hostPort, containerPort, protocol} objects', body: (p) => p.map((m) => ({ hostPort: m.hostPort, containerPort: m.containerPort, protocol: m.protocol })) },
  { name: 'Docker PortBinding objects', body: (p) => p.map((m) => ({ Proto: 6, Port: m.containerPort, HostPort: m.hostPort, HostPortEnd: m.hostPort })) },
];

interface AttachReply {
  ipv4?: string;
  [key: string]: unknown;
}

export class NetdImpl implements Impl {
  readonly id = 'netd';
  private daemon?: NetdDaemon;
  private portShape?: (typeof PORT_SHAPES)[number];
  private portSupportResult?: true | string;
  /** Keys of successful operations, in order, to pair with the daemon's log lines. */
  private readonly keys: Record<'attach' | 'detach', string[]> = { attach: [], detach: [] };

  constructor(
    private readonly procs: Procs,
    private readonly opts: NetdDaemonOptions & { outsideNs?: string; network?: boolean },
  ) {}

  get http(): UnixHttp {
    if (!this.daemon) throw new Error('netd is not running');
    return this.daemon.http;
  }

  get cliHost(): string {
    return `unix://${NetdDaemon.SOCKET}`;
  }

  async setup(): Promise<void> {
    this.daemon = await NetdDaemon.start(this.procs, this.opts);
    if (this.opts.network !== false) {
      await this.http.call('POST', '/networks/create', {
        Name: 'bench',
        Driver: 'bridge',
        IPAM: { Driver: 'default', Config: [{ Subnet: NET.subnet, Gateway: NET.gateway }] },
        Options: { 'com.docker.network.bridge.name': 'netdbench0' },
      });
    }
  }

  daemonPid(): number | undefined {
    return this.daemon?.pid;
  }

  /**
   * Published ports are being added to netd (issue 3) as `ports` in the attach body. Tries the shapes
   * it may take; a shape counts only if traffic then reaches the container through the host's port.
   */
  async portSupport(): Promise<true | string> {
    if (this.portSupportResult !== undefined) return this.portSupportResult;
    if (!this.opts.outsideNs) throw new Error('netd port detection needs the outside namespace');
    const port: PortMap = { hostPort: 19999, containerPort: 5201, protocol: 'tcp' };
    const reasons: string[] = [];
    for (const shape of PORT_SHAPES) {
      // Names are never pure hex: netd also resolves a container by sandbox-id prefix.
      const c: Ctr = { name: `portprobe${newIndex()}`, index: -1, ns: '', ports: [port] };
      c.ns = newContainerNs(c.name);
      const r = await this.http.request<AttachReply & { message?: string }>('POST', '/netd/v1/attach', {
        target: { path: c.ns },
        network: 'bench',
        name: c.name,
        ports: shape.body(c.ports),
      });
      if (r.status >= 400) {
        reasons.push(`${shape.name}: HTTP ${r.status} ${r.body?.message ?? ''}`.trim());
        continue;
      }
      this.keys.attach.push('probe.ports');
      const echoed = JSON.stringify(r.body).includes(String(port.hostPort));
      const err = await checkPublishedPort(this.procs, this.opts.outsideNs, c, port);
      await this.http.call('POST', '/netd/v1/detach', { container: c.name, network: 'bench' });
      this.keys.detach.push('probe.ports');
      if (!err) {
        this.portShape = shape;
        log(`netd: published ports work, as ${shape.name}`);
        return (this.portSupportResult = true);
      }
      if (echoed) throw new Error(`netd accepted the port mapping (${shape.name}) but it carries no traffic: ${err}`);
      reasons.push(`${shape.name}: accepted and ignored`);
    }
    log(`netd: published ports not available (${reasons.join('; ')})`);
    return (this.portSupportResult = 'n/a (not implemented)');
  }

  async makeContainer(name: string, index: number, ports: PortMap[]): Promise<Ctr> {
    return { name, index, ns: newContainerNs(name), ports };
  }

  async attach(c: Ctr, key: string): Promise<void> {
    const body: Record<string, unknown> = { target: { path: c.ns }, network: 'bench', name: c.name };
    if (c.ports.length > 0) {
      if (!this.portShape) throw new Error('attach with ports, but netd has no working port shape');
      body.ports = this.portShape.body(c.ports);
    }
    const reply = await this.http.call<AttachReply>('POST', '/netd/v1/attach', body);
    c.ip = reply.ipv4?.split('/')[0];
    this.keys.attach.push(key);
  }

  async detach(c: Ctr, key: string): Promise<void> {
    await this.http.call('POST', '/netd/v1/detach', { container: c.name, network: 'bench' });
    this.keys.detach.push(key);
  }

  /**
   * Detach answers before the slow kernel work is done (the veth deletion goes on after): this waits, from
   * `start` (when the detach request was sent), until the container's eth0 is gone, i.e. the veth pair is
   * deleted. Polled every ~1 ms with a netlink socket in the container's namespace opened before the
   * request; gives up after 2 s (NaN). Called before the detach; the function it returns, after it.
   */
  async convergence(c: Ctr): Promise<(start: bigint) => Promise<number>> {
    const ns = Netns.open(c.ns);
    let rtnl: Rtnl;
    try {
      rtnl = Rtnl.open(ns);
    } finally {
      ns.close();
    }
    return async (start) => {
      try {
        while (msSince(start) < 2000) {
          if (!(await rtnl.linkByName('eth0'))) return msSince(start);
          await sleep(1);
        }
        return NaN;
      } finally {
        rtnl.close();
      }
    };
  }

  /** An operation done behind the client's back (the CLI), so the daemon's log lines stay paired. */
  external(op: 'attach' | 'detach', key: string): void {
    this.keys[op].push(key);
  }

  /** The daemon's own `durationMs` per operation (controller time, without HTTP), paired with our keys. */
  async finish(rec: Recorder): Promise<void> {
    if (!this.daemon) return;
    await sleep(100); // let the last log lines arrive
    if (this.opts.traceFile) {
      await this.daemon.stop(); // the trace is written when the daemon exits
      this.readTrace(rec, this.opts.traceFile);
    }
    for (const op of ['attach', 'detach'] as const) {
      const lines = this.daemon.logLines.filter((l) => l.op === op && l.outcome === 'ok' && typeof l.durationMs === 'number');
      const keys = this.keys[op];
      if (lines.length !== keys.length) {
        rec.note(`netd log: ${lines.length} ${op} lines for ${keys.length} ${op} calls; daemon-side times not paired`);
        continue;
      }
      keys.forEach((k, i) => {
        if (/^(attach|detach|portadd)\||^fill\./.test(k)) rec.add(`daemon.${k}`, lines[i].durationMs as number);
      });
    }
  }

  /** Pairs the trace's records (successful operations, in order) with our keys. */
  private readTrace(rec: Recorder, file: string): void {
    let records: TraceRecord[];
    try {
      records = JSON.parse(readFileSync(file, 'utf8')) as TraceRecord[];
    } catch (err) {
      rec.note(`trace: no records (${(err as Error).message})`);
      return;
    }
    for (const op of ['attach', 'detach'] as const) {
      const ok = records.filter((r) => r.op === op && r.ok);
      const keys = this.keys[op];
      if (ok.length !== keys.length) {
        rec.note(`trace: ${ok.length} ${op} records for ${keys.length} ${op} calls; not paired`);
        continue;
      }
      const labels = new Map<string, Set<string>>();
      ok.forEach((r, i) => {
        const set = labels.get(keys[i]) ?? new Set<string>();
        for (const l of Object.keys(r.parts)) set.add(l);
        labels.set(keys[i], set);
      });
      ok.forEach((r, i) => {
        const key = keys[i];
        if (!/^(attach|detach|portadd)\|/.test(key)) return;
        rec.add(`trace|${key}|total`, r.totalMs);
        // Every label seen for this key gets a sample from every operation (0 when absent), so medians compare.
        for (const l of labels.get(key) ?? []) {
          rec.add(`trace|${key}|${l}`, r.parts[l]?.ms ?? 0);
          rec.add(`trace|${key}|${l}|count`, r.parts[l]?.n ?? 0);
        }
      });
    }
  }

  async teardown(): Promise<void> {
    await this.daemon?.stop();
  }
}

interface TraceRecord {
  op: string;
  ok: boolean;
  totalMs: number;
  parts: Record<string, { ms: number; n: number }>;
}

/** The CLI figure: `netd attach PATH` / `netd detach NAME` as processes, node start-up included. */
export async function cliCycles(impl: NetdImpl, rec: Recorder, samples: number): Promise<void> {
  for (let i = 0; i < samples; i++) {
    const name = `cli${i}`;
    const ns = newContainerNs(name);
    let t = process.hrtime.bigint();
    await run([process.execPath, CLI, '--host', impl.cliHost, 'attach', ns, '--network', 'bench', '--name', name]);
    rec.add('cli.attach|noport|1', msSince(t));
    impl.external('attach', 'cli.attach');
    t = process.hrtime.bigint();
    await run([process.execPath, CLI, '--host', impl.cliHost, 'detach', name, '--network', 'bench']);
    rec.add('cli.detach|noport|1', msSince(t));
    impl.external('detach', 'cli.detach');
  }
}

export { HttpError };
