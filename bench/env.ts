/**
 * The environment a benchmark phase runs in, and the guards that keep it there.
 *
 * The runner (run.ts) never does network work in its own namespace. For every phase it creates a fresh
 * namespace with TestNetns (checked to be new and to hold only `lo`) and starts `phase.js` inside it with
 * `ip netns exec`, which also gives the phase a mount namespace of its own (slave of the machine's, with a
 * fresh /sys). The phase then checks again that it is not in the machine's namespace and mounts a private
 * tmpfs on /run, so that container namespaces (/run/netns/...), sockets and iptables' lock file live and
 * die with the phase. Everything a phase makes — daemons, bridges, containers, the "outside" namespace —
 * is made from inside it.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createPersistentNetns, deletePersistentNetns } from '../src/kernel/netns.js';
import { mount } from '../src/kernel/native.js';
import { run, type RunOptions, type RunResult } from '../test/helpers/netns.js';

export { run, type RunResult };

/** Environment variables the runner hands to a phase: inodes of the machine's namespace and of the phase's. */
export const ENV_MACHINE_NETNS = 'NETD_BENCH_MACHINE_NETNS';
export const ENV_MACHINE_MNTNS = 'NETD_BENCH_MACHINE_MNTNS';
export const ENV_PHASE_NETNS = 'NETD_BENCH_PHASE_NETNS';

/** Where container namespaces are bind-mounted inside a phase (the phase's private /run). */
export const NETNS_DIR = '/run/netns';

/** Addresses. 198.18.0.0/15 is reserved for benchmarking (RFC 2544); nothing here leaves the phase anyway. */
export const NET = {
  /** The container network of every attach benchmark: room for 4000 containers. */
  subnet: '198.18.0.0/20',
  gateway: '198.18.0.1',
  prefixLen: 20,
  /** Networks created by the create/rm-network benchmark: 198.19.N.0/24. */
  extraSubnet: (n: number) => `198.19.${n}.0/24`,
  /** The simulated outside host and the phase host's address facing it (as in test/helpers Topology). */
  hostExt: '198.51.100.1',
  outside: '198.51.100.2',
  /** The whole 198.18.0.0/15, routed from the outside to the phase host for direct traffic. */
  benchRange: '198.18.0.0/15',
};

export function nsInode(path: string): number {
  return statSync(path).ino;
}

/** The inode of a namespace file, or undefined when it cannot be read (EACCES on a sandboxed PID 1). */
function readableInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

let phaseTag = 'bench';

/** Progress on stderr (stdout of a phase is not used). */
export function log(msg: string): void {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[${t} ${phaseTag}] ${msg}\n`);
}

/**
 * Called first thing in a phase: verifies that this process is in the namespace the runner made for it
 * (and not the machine's), that the namespace is empty, and gives it a private /run. Throws otherwise.
 */
export async function enterPhaseNamespace(tag: string): Promise<void> {
  phaseTag = tag;
  const machine = Number(process.env[ENV_MACHINE_NETNS]);
  const machineMnt = Number(process.env[ENV_MACHINE_MNTNS]);
  const expected = Number(process.env[ENV_PHASE_NETNS]);
  const own = nsInode('/proc/self/ns/net');
  if (!machine || !machineMnt || !expected) throw new Error(`phase started without ${ENV_MACHINE_NETNS}/${ENV_MACHINE_MNTNS}/${ENV_PHASE_NETNS}: run it through run.js`);
  // PID 1's namespaces are the machine's when they can be read at all (a sandboxed init may refuse).
  const init = readableInode('/proc/1/ns/net');
  if (own === machine || own === init) throw new Error('refusing to run: this process is in the machine\'s own network namespace');
  if (own !== expected) throw new Error(`refusing to run: in network namespace ${own}, expected the phase's ${expected}`);
  // ip netns exec gave us a mount namespace of our own (with / as a slave): mounts made here do not
  // reach the machine. Refuse if that is not the case.
  const mnt = nsInode('/proc/self/ns/mnt');
  if (mnt === machineMnt || mnt === readableInode('/proc/1/ns/mnt')) {
    throw new Error('refusing to run: this process shares the runner\'s mount namespace (start it with ip netns exec)');
  }
  const links = (await run(['ip', '-o', 'link', 'show'])).stdout.trim().split('\n');
  if (links.length !== 1 || !/^1: lo:/.test(links[0])) {
    throw new Error(`refusing to run: a fresh namespace holds only lo, this one has ${links.length} links`);
  }
  mount('tmpfs', '/run', 'tmpfs', 0, 'mode=755');
  mkdirSync(NETNS_DIR, { recursive: true, mode: 0o755 });
  await run(['ip', 'link', 'set', 'lo', 'up']);
}

/**
 * A container's network namespace, bind-mounted at /run/netns/NAME (so `ip netns exec NAME` and
 * `ip -n NAME` work too), made with netd's createPersistentNetns (no process per container).
 */
export function newContainerNs(name: string): string {
  const path = `${NETNS_DIR}/${name}`;
  createPersistentNetns(path);
  const ino = nsInode(path);
  if (ino === nsInode('/proc/self/ns/net') || ino === Number(process.env[ENV_MACHINE_NETNS])) {
    throw new Error(`${path} is not a new namespace`);
  }
  return path;
}

export function removeContainerNs(path: string): void {
  deletePersistentNetns(path);
}

/** argv that runs a command inside the network namespace at nsPath (no /sys remount: not needed here). */
export function inNs(nsPath: string, argv: string[]): string[] {
  return ['nsenter', `--net=${nsPath}`, '--', ...argv];
}

export function runIn(nsPath: string, argv: string[], opts?: RunOptions): Promise<RunResult> {
  return run(inNs(nsPath, argv), opts);
}

/**
 * The simulated outside host: a namespace joined to the phase's by a veth (ext0 198.51.100.1 here,
 * ext1 198.51.100.2 there), routing the benchmark range through the phase host. Built from the phase
 * namespace, like test/helpers' Topology.
 */
export async function createOutside(): Promise<string> {
  const path = newContainerNs('bench-outside');
  await run(['ip', 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'ext1', 'netns', 'bench-outside']);
  await run(['ip', 'addr', 'add', `${NET.hostExt}/24`, 'dev', 'ext0']);
  await run(['ip', 'link', 'set', 'ext0', 'up']);
  await run(['ip', '-batch', '-', '-n', 'bench-outside'], {
    input: ['link set lo up', `addr add ${NET.outside}/24 dev ext1`, 'link set ext1 up', `route add ${NET.benchRange} via ${NET.hostExt}`].join('\n') + '\n',
  });
  return path;
}

/** Long-running processes a phase started; all are killed (by their own PIDs) when the phase ends. */
export class Procs {
  private readonly children = new Set<ChildProcess>();

  spawn(argv: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.on('error', () => undefined); // reported through exit codes and waits
    return child;
  }

  async killAll(): Promise<void> {
    await Promise.all([...this.children].map((c) => stopChild(c, 'SIGKILL', 5000)));
  }
}

/** Signals a child and waits for it to exit (SIGKILL after timeoutMs). */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

/** Resolves when `pattern` appears in the child's stdout, rejects if it exits first or after timeoutMs. */
export function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (d: Buffer) => {
      seen += d.toString();
      if (pattern.test(seen)) done();
    };
    const onExit = (code: number | null) => done(new Error(`process exited (${code}) before printing ${pattern}: ${seen.slice(-300)}`));
    const timer = setTimeout(() => done(new Error(`no ${pattern} within ${timeoutMs} ms: ${seen.slice(-300)}`)), timeoutMs);
    const done = (err?: Error) => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    };
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

/** VmHWM and VmRSS of a process in KiB (from /proc/PID/status). */
export function memoryOf(pid: number): { hwmKiB: number; rssKiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { hwmKiB: field('VmHWM'), rssKiB: field('VmRSS') };
}

/** Resets a process's peak RSS (VmHWM) to its current RSS: writing 5 to clear_refs. */
export function resetPeakRss(pid: number): void {
  // Best effort: on kernels without it, VmHWM is the peak since the process started.
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    /* keep the since-start peak */
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** First existing path of a list, or undefined. */
export function firstExisting(paths: string[]): string | undefined {
  return paths.find((p) => existsSync(p));
}

/** Deterministic container address: .2 onwards in the benchmark /20 (skipping the gateway at .1). */
export function containerIp(index: number): string {
  const n = index + 2; // 198.18.0.2 is index 0
  if (n >= 4095) throw new Error(`container index ${index} does not fit the /20`);
  return `198.18.${n >> 8}.${n & 255}`;
}

/** Every cgroup directory named `parent` (and below) in every hierarchy mounted on /sys/fs/cgroup, deepest first. */
function cgroupDirs(parent: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
    out.push(dir);
  };
  if (!existsSync('/sys/fs/cgroup')) return out;
  const top = join('/sys/fs/cgroup', parent); // cgroup v2, unified at /sys/fs/cgroup
  if (existsSync(join(top, 'cgroup.procs'))) walk(top);
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const dir = join('/sys/fs/cgroup', h, parent);
    if (existsSync(join(dir, 'cgroup.procs'))) walk(dir);
  }
  return out;
}

/**
 * Kills every process in the cgroup `parent` (a name this run made up for dockerd's containers, so all
 * of them are ours) and removes its directories. Returns how many processes were killed.
 */
export async function removeCgroup(parent: string, report: (msg: string) => void): Promise<number> {
  const dirs = cgroupDirs(parent);
  let killed = 0;
  for (const dir of dirs) {
    let procs: string[] = [];
    try {
      procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
    } catch {
      /* gone */
    }
    for (const pid of procs) {
      try {
        process.kill(Number(pid), 'SIGKILL');
        killed++;
      } catch {
        /* exited */
      }
    }
  }
  if (killed > 0) await sleep(500);
  for (const dir of dirs) {
    try {
      rmdirSync(dir);
    } catch (err) {
      report(`could not remove cgroup ${dir}: ${(err as Error).message}`);
    }
  }
  return killed;
}

/** SIGKILLs every process (but this one) whose network namespace has inode `nsIno`. Returns how many. */
export function killProcessesInNetns(nsIno: number): number {
  let killed = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (statSync(`/proc/${entry}/ns/net`).ino === nsIno) {
        process.kill(Number(entry), 'SIGKILL');
        killed++;
      }
    } catch {
      /* exited meanwhile, or not ours to read */
    }
  }
  return killed;
}

/**
 * SIGKILLs every other process in this phase's network namespace: all of them were started by the phase
 * (the namespace was made for it), e.g. containerd and the shims dockerd started. Returns how many.
 */
export function killOthersInThisNetns(): number {
  return killProcessesInNetns(nsInode('/proc/self/ns/net'));
}
