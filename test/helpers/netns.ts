/**
 * Throwaway network namespaces for integration tests. Nothing here ever touches the namespace the test
 * runner started in (the machine's own): every namespace is created fresh, checked to be new and empty,
 * and deleted afterwards. When the test process cannot create namespaces it fails loudly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

/** Inode of the network namespace the test process started in: the one that must never be changed. */
export const MACHINE_NETNS_INODE = statSync('/proc/self/ns/net').ino;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  /** Resolve with a non-zero exit code instead of rejecting. */
  allowFail?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command (argv, never a shell string) and collects its output. */
export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const result = { code, stdout, stderr };
      if (code !== 0 && !opts.allowFail) {
        reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr.trim()}`));
      } else {
        resolve(result);
      }
    });
    // A command that exits without reading its input must not fail the run with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Fails loudly (never skips) when the suite lacks the privileges it needs. */
export function requireRoot(): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error('integration tests must run as root (they create network namespaces); run the suite with sudo');
  }
}

function uniqueName(tag: string): string {
  // ip netns names are file names; keep them short and predictable.
  return `netdt-${tag.replace(/[^a-z0-9]/gi, '').slice(0, 10)}-${randomBytes(3).toString('hex')}`;
}

/** A named network namespace (`ip netns add`), verified to be new and to hold only `lo`. */
export class TestNetns {
  private constructor(
    readonly name: string,
    readonly path: string,
  ) {}

  static async create(tag: string): Promise<TestNetns> {
    requireRoot();
    const name = uniqueName(tag);
    await run(['ip', 'netns', 'add', name]);
    const ns = new TestNetns(name, `/run/netns/${name}`);
    try {
      if (statSync(ns.path).ino === MACHINE_NETNS_INODE) {
        throw new Error(`refusing to use ${name}: it is the machine's own network namespace`);
      }
      const links = JSON.parse((await ns.exec(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string }[];
      if (links.length !== 1 || links[0].ifname !== 'lo') {
        throw new Error(`refusing to use ${name}: a fresh namespace should hold only lo, found ${links.map((l) => l.ifname)}`);
      }
      await ns.exec(['ip', 'link', 'set', 'lo', 'up']);
    } catch (err) {
      await ns.destroy();
      throw err;
    }
    return ns;
  }

  /** Runs a command inside this namespace (with its own /sys, as `ip netns exec` provides). */
  exec(argv: string[], opts?: RunOptions): Promise<RunResult> {
    return run(['ip', 'netns', 'exec', this.name, ...argv], opts);
  }

  /** Starts a long-running process inside this namespace. */
  spawn(argv: string[], env?: NodeJS.ProcessEnv): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  }

  async destroy(): Promise<void> {
    await run(['ip', 'netns', 'del', this.name], { allowFail: true });
  }
}

/**
 * A "container": a process in a network namespace of its own (`unshare -n sleep infinity`), which netd
 * attaches to by PID. Commands run inside it with `nsenter -t PID -n`.
 */
export class TestContainer {
  private constructor(
    readonly process: ChildProcess,
    readonly pid: number,
  ) {}

  static async start(): Promise<TestContainer> {
    requireRoot();
    const child = spawn('unshare', ['--net', '--', 'sleep', 'infinity'], { stdio: 'ignore' });
    if (child.pid === undefined) throw new Error('could not start a container process');
    const pid = child.pid;
    // unshare(1) execs sleep in place: wait until the process is in its new namespace.
    for (let i = 0; i < 200; i++) {
      try {
        if (statSync(`/proc/${pid}/ns/net`).ino !== MACHINE_NETNS_INODE) {
          const c = new TestContainer(child, pid);
          if (/sleep/.test(await readComm(pid))) return c;
        }
      } catch {
        /* not there yet */
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    throw new Error('container process never entered a new network namespace');
  }

  /** A second process in the same network namespace as `other` (as a runtime does for `container:` mode). */
  static async startSharing(other: TestContainer): Promise<TestContainer> {
    const child = spawn('nsenter', ['-t', String(other.pid), '-n', '--', 'sleep', 'infinity'], { stdio: 'ignore' });
    if (child.pid === undefined) throw new Error('could not start a sharing process');
    const want = statSync(other.netnsPath).ino;
    for (let i = 0; i < 200; i++) {
      try {
        if (statSync(`/proc/${child.pid}/ns/net`).ino === want && /sleep/.test(await readComm(child.pid))) return new TestContainer(child, child.pid);
      } catch {
        /* not there yet */
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    throw new Error('sharing process never entered the namespace');
  }

  get netnsPath(): string {
    return `/proc/${this.pid}/ns/net`;
  }

  exec(argv: string[], opts?: RunOptions): Promise<RunResult> {
    return run(['nsenter', '-t', String(this.pid), '-n', '--', ...argv], opts);
  }

  /** JSON from `ip -j ...` run inside the container. */
  async ipJson<T = unknown>(args: string[]): Promise<T> {
    return JSON.parse((await this.exec(['ip', '-j', ...args])).stdout) as T;
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise((r) => this.process.once('exit', r));
    this.process.kill('SIGKILL');
    await exited;
  }
}

async function readComm(pid: number): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
}
