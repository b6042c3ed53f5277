/**
 * netd through its CNI plugin, run the way a runtime runs a plugin: one process per ADD/DEL with the
 * CNI_* environment and the network configuration on stdin (as bench/peers/cni.ts runs the stock
 * bridge plugin), against the same daemon setup as bench/netd.ts. Two executables:
 *  - `netd-cni` (dist/src/cni/plugin.js, node; its shebang drops NODE_EXTRA_CA_CERTS),
 *  - `netd-cni-shim` (build/Release/netd-cni-shim, C).
 * With a port, the mapping goes in runtimeConfig.portMappings (capabilities: portMappings), as libcni
 * passes it. The network exists beforehand (netd's own setup), so no ADD pays for creating it; filler
 * containers are attached through the API (they are not measured).
 * Also measured here: start-up of the executables alone (VERSION, answered without the daemon).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { REPO } from '../test/helpers/daemon.js';
import { NET, type Procs, run } from './env.js';
import { NetdDaemon, NetdImpl, type NetdDaemonOptions } from './netd.js';
import type { Ctr, Impl, PortMap, Recorder } from './harness.js';
import { msSince } from './stats.js';

export const PLUGIN_JS = join(REPO, 'dist/src/cni/plugin.js');
export const PLUGIN_SHIM = join(REPO, 'build/Release/netd-cni-shim');

/** Why a netd-cni executable cannot be measured here, or undefined. */
export function pluginMissing(kind: 'js' | 'shim'): string | undefined {
  const path = kind === 'js' ? PLUGIN_JS : PLUGIN_SHIM;
  if (existsSync(path)) return undefined;
  return kind === 'js' ? `${path} missing (npm run build)` : `${path} missing (npm ci builds it; or node-gyp rebuild)`;
}

interface CniState {
  id: string;
  result: unknown;
}

export class NetdCniImpl implements Impl {
  readonly id: string;
  private readonly netd: NetdImpl;
  private readonly plugin: string;

  constructor(
    readonly kind: 'js' | 'shim',
    procs: Procs,
    opts: NetdDaemonOptions & { outsideNs?: string },
  ) {
    this.id = kind === 'js' ? 'netd-cni' : 'netd-cni-shim';
    this.plugin = kind === 'js' ? PLUGIN_JS : PLUGIN_SHIM;
    this.netd = new NetdImpl(procs, { ...opts, network: true });
  }

  async setup(): Promise<void> {
    const missing = pluginMissing(this.kind);
    if (missing) throw new Error(missing);
    await this.netd.setup();
  }

  async portSupport(): Promise<true | string> {
    return true;
  }

  daemonPid(): number | undefined {
    return this.netd.daemonPid();
  }

  async makeContainer(name: string, index: number, ports: PortMap[]): Promise<Ctr> {
    return this.netd.makeContainer(name, index, ports);
  }

  /** Fillers go through the API: only the probes are measured, and through the plugin. */
  async fill(name: string, index: number, ports: PortMap[]): Promise<Ctr> {
    const c = await this.netd.makeContainer(name, index, ports);
    await this.netd.attach(c, 'fill');
    return c;
  }

  private conf(c: Ctr, prevResult?: unknown): Record<string, unknown> {
    const conf: Record<string, unknown> = {
      cniVersion: '1.0.0',
      name: 'bench',
      type: 'netd-cni',
      host: `unix://${NetdDaemon.SOCKET}`,
      subnet: NET.subnet,
      gateway: NET.gateway,
      capabilities: { portMappings: true },
    };
    if (c.ports.length > 0) conf.runtimeConfig = { portMappings: c.ports.map((p) => ({ hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol })) };
    if (prevResult !== undefined) conf.prevResult = prevResult;
    return conf;
  }

  private async exec(command: 'ADD' | 'DEL', c: Ctr, id: string, conf: unknown): Promise<unknown> {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: c.ns, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
    const r = await run([this.plugin], { input: JSON.stringify(conf), env, allowFail: true, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`${this.id} ${command} for ${c.name}: exit ${r.code}: ${(r.stdout || r.stderr).trim().slice(0, 400)}`);
    return r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  }

  async attach(c: Ctr): Promise<void> {
    const id = `bench-${randomBytes(16).toString('hex')}`;
    const result = await this.exec('ADD', c, id, this.conf(c));
    c.ip = (result as { ips?: { address: string }[] }).ips?.[0]?.address.split('/')[0];
    c.state = { id, result } satisfies CniState;
  }

  async detach(c: Ctr): Promise<void> {
    const st = c.state as CniState;
    await this.exec('DEL', c, st.id, this.conf(c, st.result));
    c.state = undefined;
  }

  async teardown(): Promise<void> {
    await this.netd.teardown();
  }
}

/** One executable's command line for the start-up figures. */
interface StartupCase {
  key: string;
  argv: string[];
  env: NodeJS.ProcessEnv;
}

/**
 * Start-up, hyperfine-style: `samples` runs of each (after 3 warm-up runs), interleaved so that load
 * changes hit all alike: `node -e 0` with this machine's environment and without NODE_EXTRA_CA_CERTS, the
 * JS plugin's VERSION and the shim's VERSION (both answered locally), and /bin/true: the cost of spawning a
 * process from this (node) runner, included in every figure.
 */
export function pluginStartup(rec: Recorder, samples: number): void {
  const withoutCa = { ...process.env };
  delete withoutCa.NODE_EXTRA_CA_CERTS;
  const version = { ...process.env, CNI_COMMAND: 'VERSION' };
  const cases: StartupCase[] = [
    { key: 'startup.true', argv: ['/bin/true'], env: process.env },
    { key: 'startup.node', argv: [process.execPath, '-e', '0'], env: process.env },
    { key: 'startup.node-noca', argv: [process.execPath, '-e', '0'], env: withoutCa },
    { key: 'startup.js', argv: [PLUGIN_JS], env: version },
    { key: 'startup.shim', argv: [PLUGIN_SHIM], env: version },
  ];
  if (process.env.NODE_EXTRA_CA_CERTS) rec.note(`start-up: NODE_EXTRA_CA_CERTS=${process.env.NODE_EXTRA_CA_CERTS} is set here`);
  for (let i = 0; i < samples + 3; i++) {
    for (const c of cases) {
      const t = process.hrtime.bigint();
      const r = spawnSync(c.argv[0], c.argv.slice(1), { input: '{"cniVersion":"1.0.0"}', env: c.env, stdio: ['pipe', 'pipe', 'pipe'] });
      const ms = msSince(t);
      if (r.status !== 0) throw new Error(`${c.argv.join(' ')} exited ${r.status}: ${String(r.stdout)}${String(r.stderr)}`);
      if (i >= 3) rec.add(c.key, ms);
    }
  }
}
