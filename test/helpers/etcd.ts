/**
 * A private etcd (Debian's etcd-server) inside a test network namespace, on a temporary data dir.
 *
 * It serves clients on `http://IP:PORT` inside its namespace (for daemons in namespaces joined to it)
 * and also on a unix socket in its data dir (`socketUrl`), which is how the test process — it runs in
 * the machine's own namespace, where nothing may listen — reaches it: a unix socket is a file, not a port
 * in any network namespace. Its peer URL is 127.0.0.1:2380 inside the namespace.
 *
 * Faults for outage tests: stop() (SIGTERM), kill() (SIGKILL), pause()/resume() (SIGSTOP/SIGCONT),
 * restart() (the same data dir and flags: etcd comes back with its data and revisions).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { TestNetns } from './netns.js';

/** Why no etcd can run here, or undefined when it can. */
export function etcdMissing(): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    try {
      accessSync(join(dir, 'etcd'), constants.X_OK);
      return undefined;
    } catch {
      /* not in this directory */
    }
  }
  return 'etcd is not installed (no etcd in PATH): install the Debian package etcd-server (scripts/install-deps.sh --test does)';
}

/** PEM files for a TLS etcd: its certificate and key, and the CA it checks client certificates against. */
export interface EtcdTlsFiles {
  cert: string;
  key: string;
  ca: string;
}

const PROXY_VARS = ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY', 'all_proxy', 'ALL_PROXY'];

export class TestEtcd {
  private child?: ChildProcess;
  /** etcd's own output (last 64 KiB), for failure messages. */
  logs = '';

  private constructor(
    readonly ns: TestNetns,
    readonly ip: string,
    readonly port: number,
    readonly dir: string,
    readonly tls?: EtcdTlsFiles,
  ) {}

  /**
   * Starts etcd in `ns` listening on IP:PORT (and the socket) and waits until it answers /health. With
   * `tls`, IP:PORT is https and asks for a client certificate; the socket stays plain.
   */
  static async start(ns: TestNetns, ip: string, port = 2379, tls?: EtcdTlsFiles): Promise<TestEtcd> {
    const e = new TestEtcd(ns, ip, port, mkdtempSync(join(tmpdir(), 'netd-etcd-')), tls);
    try {
      await e.launch();
    } catch (err) {
      await e.remove();
      throw err;
    }
    return e;
  }

  /** The client URL inside the namespace. */
  get url(): string {
    return `${this.tls ? 'https' : 'http'}://${this.ip.includes(':') ? `[${this.ip}]` : this.ip}:${this.port}`;
  }

  /** The unix socket etcd also serves clients on (etcd names it HOST:PORT, in its working directory). */
  get socketPath(): string {
    return join(this.dir, `etcd:${this.port}`);
  }

  /** An endpoint for etcd3 / EtcdStore from the test process. */
  get socketUrl(): string {
    return `unix://${this.socketPath}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  private async launch(): Promise<void> {
    const env = { ...process.env };
    for (const v of PROXY_VARS) delete env[v];
    // etcd 3.4 does not remove a socket file left by a killed etcd, and would fail with EADDRINUSE.
    rmSync(this.socketPath, { force: true });
    const name = 'netd-test';
    const peer = 'http://127.0.0.1:2380';
    // `ip netns exec` execs etcd in place, so the child's pid is etcd's and signals reach it directly.
    const child = spawn(
      'ip',
      ['netns', 'exec', this.ns.name, 'etcd', '--name', name, '--data-dir', join(this.dir, 'data'),
        '--listen-client-urls', `${this.url},unix://etcd:${this.port}`, '--advertise-client-urls', this.url,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `${name}=${peer}`,
        '--initial-cluster-state', 'new', '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'warn',
        ...(this.tls ? ['--cert-file', this.tls.cert, '--key-file', this.tls.key, '--trusted-ca-file', this.tls.ca, '--client-cert-auth'] : [])],
      { cwd: this.dir, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    const keep = (d: Buffer) => (this.logs = (this.logs + d.toString()).slice(-65536));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`etcd exited (${child.exitCode ?? child.signalCode}):\n${this.logs}`);
      if (await this.healthy()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`etcd did not answer /health within 15 s:\n${this.logs}`);
  }

  /** GET /health over the socket: true when etcd says it is healthy. */
  healthy(): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request({ socketPath: this.socketPath, path: '/health', timeout: 1000 }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
      req.end();
    });
  }

  private async signal(sig: NodeJS.Signals, wait: boolean): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    if (wait && sig !== 'SIGKILL') child.kill('SIGCONT'); // a paused etcd cannot act on SIGTERM
    child.kill(sig);
    if (!wait) return;
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** SIGTERM, and wait for it to exit (SIGKILL after 10 s). */
  stop(): Promise<void> {
    return this.signal('SIGTERM', true);
  }

  /** SIGKILL (a crash): no clean shutdown. */
  kill(): Promise<void> {
    return this.signal('SIGKILL', true);
  }

  /** Starts it again on the same data dir with the same flags (stopping it first if running). */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** SIGSTOP: etcd keeps its sockets open and answers nothing. */
  pause(): Promise<void> {
    return this.signal('SIGSTOP', false);
  }

  resume(): Promise<void> {
    return this.signal('SIGCONT', false);
  }

  /** Stops it and deletes its data dir. */
  async remove(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
