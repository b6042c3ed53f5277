/**
 * A netd daemon running inside a test's "host" namespace, on temporary paths, plus the topology around
 * it: an "outside" namespace reached from the host through a veth (198.51.100.1 ↔ 198.51.100.2).
 */
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Client } from '../../src/cli/client.js';
import { TestNetns, run, type RunResult } from './netns.js';
import { firewallBackendArgs, testFirewallBackend } from './backend.js';
import { nftNetdState } from './firewall-state.js';

export const REPO = resolve(__dirname, '../../..');
export const CLI = join(REPO, 'dist/src/cli/main.js');
/** A daemon log entry for an error nothing caught (src/daemon/process-guards.ts): a bug, even when the daemon lives on. */
export const UNCAUGHT = /unhandled promise rejection|uncaught exception/;
/** The log lines (at most five) that report such an error. */
export function uncaughtIn(logs: string): string[] {
  return logs.split('\n').filter((l) => UNCAUGHT.test(l)).slice(0, 5);
}
export const FIXTURES = join(REPO, 'test/fixtures');

export { testFirewallBackend, firewallBackendArgs } from './backend.js';

export class TestDaemon {
  private child?: ChildProcess;
  logs = '';
  /** Extra environment for the next launch (e.g. NETD_FAULT_AT). */
  env: NodeJS.ProcessEnv = {};
  readonly client: Client;

  constructor(
    readonly hostNs: TestNetns,
    readonly dir: string,
    readonly extraArgs: string[] = [],
  ) {
    this.client = new Client(this.host);
  }

  get host(): string {
    return `unix://${join(this.dir, 'netd.sock')}`;
  }

  get dataRoot(): string {
    return join(this.dir, 'data');
  }

  /** The daemon's instance id (in its marks: `netd:<instance>:<id12>`), made at its first start. */
  get instance(): string {
    return (JSON.parse(readFileSync(join(this.dataRoot, 'instance.json'), 'utf8')) as { id: string }).id;
  }

  /** `env`: extra environment for the daemon (e.g. `{NETD_TEST_SWEEP_MS: '0'}`), kept for later launches. */
  static async start(hostNs: TestNetns, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<TestDaemon> {
    const d = new TestDaemon(hostNs, mkdtempSync(join(tmpdir(), 'netd-it-')), extraArgs);
    d.env = env;
    await d.launch();
    return d;
  }

  async launch(): Promise<void> {
    const backend = this.extraArgs.includes('--firewall-backend') ? [] : firewallBackendArgs();
    const child = this.hostNs.spawn(['node', CLI, '--host', this.host, 'daemon', '--data-root', this.dataRoot, '--exec-root', join(this.dir, 'run'), '--log-level', 'debug', ...backend, ...this.extraArgs], { ...process.env, ...this.env });
    this.child = child;
    child.stdout?.on('data', (d) => (this.logs += d));
    child.stderr?.on('data', (d) => (this.logs += d));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`netd exited with ${child.exitCode ?? child.signalCode}:\n${this.logs}`);
      if (existsSync(join(this.dir, 'netd.sock'))) {
        try {
          await this.client.call('GET', '/_ping');
          return;
        } catch {
          /* not listening yet */
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`netd did not come up within 15 s:\n${this.logs}`);
  }

  /** Runs the netd CLI against this daemon. */
  cli(args: string[], allowFail = false): Promise<RunResult> {
    return run(['node', CLI, '--host', this.host, ...args], { allowFail });
  }

  /** Waits for the daemon to exit by itself; returns how it ended. */
  async exited(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const child = this.child!;
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`netd did not exit within ${timeoutMs} ms`)), timeoutMs);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return { code: child.exitCode, signal: child.signalCode };
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal);
    await this.launch();
  }

  async destroy(): Promise<void> {
    await this.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Host namespace + outside namespace joined by a veth pair, with documentation-range addresses. */
export class Topology {
  private constructor(
    readonly host: TestNetns,
    readonly outside: TestNetns,
  ) {}

  static readonly HOST_EXT = '198.51.100.1';
  static readonly OUTSIDE = '198.51.100.2';

  static async create(tag: string): Promise<Topology> {
    const host = await TestNetns.create(`${tag}h`);
    let outside: TestNetns | undefined;
    try {
      outside = await TestNetns.create(`${tag}o`);
      // Created from inside the host namespace, so no link ever exists in the machine's own namespace.
      await host.exec(['ip', 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'ext1', 'netns', outside.name]);
      await host.exec(['ip', 'addr', 'add', `${Topology.HOST_EXT}/24`, 'dev', 'ext0']);
      await host.exec(['ip', 'link', 'set', 'ext0', 'up']);
      await outside.exec(['ip', 'addr', 'add', `${Topology.OUTSIDE}/24`, 'dev', 'ext1']);
      await outside.exec(['ip', 'link', 'set', 'ext1', 'up']);
      return new Topology(host, outside);
    } catch (err) {
      await outside?.destroy();
      await host.destroy();
      throw err;
    }
  }

  async destroy(): Promise<void> {
    await this.outside.destroy();
    await this.host.destroy();
  }
}

/** What netd could have left behind in a namespace: links, addresses, routes, firewall rules. */
export async function kernelSnapshot(ns: TestNetns): Promise<Record<string, string[]>> {
  const links = JSON.parse((await ns.exec(['ip', '-j', '-d', 'link', 'show'])).stdout) as { ifname: string; linkinfo?: { info_kind?: string }; master?: string }[];
  const addrs = JSON.parse((await ns.exec(['ip', '-j', 'addr', 'show'])).stdout) as { ifname: string; addr_info: { local: string; prefixlen: number }[] }[];
  const routes4 = JSON.parse((await ns.exec(['ip', '-j', '-4', 'route', 'show', 'table', 'all'])).stdout) as Record<string, unknown>[];
  const routes6 = JSON.parse((await ns.exec(['ip', '-j', '-6', 'route', 'show', 'table', 'all'])).stdout) as Record<string, unknown>[];
  const rules = (await ns.exec(['iptables-save'])).stdout + (await ns.exec(['ip6tables-save'])).stdout;
  return {
    links: links.map((l) => `${l.ifname} ${l.linkinfo?.info_kind ?? ''} ${l.master ?? ''}`).sort(),
    // IPv6 link-local addresses and their routes are the kernel's autoconfiguration, which lands a moment
    // after a link comes up: not netd's state, and racy to compare.
    addresses: addrs
      .flatMap((a) => a.addr_info.map((i) => `${a.ifname} ${i.local}/${i.prefixlen}`))
      .filter((a) => !/ fe80:/.test(a))
      .sort(),
    routes: [...routes4, ...routes6]
      .map((r) => `${r.table ?? 'main'} ${r.dst} ${r.gateway ?? ''} ${r.dev ?? ''}`)
      .filter((r) => !/ (fe80:|ff00:|multicast)/.test(r))
      .sort(),
    rules: rules
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.replace(/\[\d+:\d+\]/, '[0:0]')),
    // On the nftables backend, netd's own tables too (test/helpers/firewall-state.ts; `rules` then holds what
    // iptables shows, where netd must add nothing).
    ...(testFirewallBackend() === 'nftables' ? { nftables: await nftNetdState(ns) } : {}),
  };
}

/** Starts tcp-whoami (answers each connection with the client's address) in `ns`; resolves once it listens. */
export async function startWhoami(ns: TestNetns, address: string, port: number): Promise<ChildProcess> {
  const server = ns.spawn(['node', join(FIXTURES, 'tcp-whoami.cjs'), address, String(port)]);
  await new Promise<void>((resolve, reject) => {
    server.stdout!.once('data', () => resolve());
    server.once('exit', (code) => reject(new Error(`tcp-whoami in ${ns.name} exited ${code}`)));
  });
  return server;
}
