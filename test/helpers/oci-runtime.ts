/**
 * A real OCI runtime (Debian's runc) inside a test's "host" namespace: a busybox-static rootfs (no registry),
 * the cgroups runc needs mounted in a mount namespace of the test's own, and runc with a private --root.
 *
 * `ip netns exec` gives each command a fresh mount namespace with a sysfs of the test namespace, and with it
 * no cgroups. So one long-lived "holder" process (`ip netns exec NS sleep infinity`) owns a mount namespace
 * in which the cgroup hierarchies are mounted once (`mountCgroups`); every runc command enters the holder's
 * mount and network namespaces (`nsenter -t HOLDER -m -n`). Nothing is mounted in the machine's own.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type RunResult, type TestNetns } from './netns.js';

export const BUSYBOX = '/bin/busybox';
export const RUNC = 'runc';

/** Why the runtime test cannot run here (a missing tool), or undefined. */
export function runtimeMissing(): string | undefined {
  if (!existsSync(BUSYBOX)) return `${BUSYBOX} is missing (apt-get install busybox-static)`;
  if (spawnSync(RUNC, ['--version']).status !== 0) return 'runc is missing (apt-get install runc)';
  return undefined;
}

/** A rootfs directory with a static busybox and one symlink per applet, plus /www/index.html. Returns dir. */
export function busyboxRootfs(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  copyFileSync(BUSYBOX, join(bin, 'busybox'));
  const applets = spawnSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  if (applets.length < 100) throw new Error(`${BUSYBOX} --list gave ${applets.length} applets: is it busybox-static?`);
  // `busybox --list` names busybox itself: linking it would replace the binary with a loop.
  for (const applet of applets) if (applet !== 'busybox') symlinkSync('busybox', join(bin, applet));
  for (const d of ['proc', 'sys', 'dev', 'tmp', 'etc', 'www']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
  return dir;
}

/** The machine's cgroup mounts under /sys/fs/cgroup (v1 controllers, name=systemd, cgroup2), to repeat them. */
function machineCgroupMounts(): { dir: string; type: string; options: string }[] {
  const mounts: { dir: string; type: string; options: string }[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const dir = left.split(' ')[4];
    const [type, , superOptions] = right.split(' ');
    if ((type !== 'cgroup' && type !== 'cgroup2') || !dir.startsWith('/sys/fs/cgroup')) continue;
    // Only what names the hierarchy: the controllers, or name=...
    const options = type === 'cgroup2' ? '' : superOptions.split(',').filter((o) => o !== 'rw' && o !== 'ro' && !o.startsWith('release_agent') && o !== 'clone_children' && o !== 'noprefix').join(',');
    mounts.push({ dir, type, options });
  }
  return mounts;
}

/**
 * Mounts the machine's cgroup layout (a tmpfs on /sys/fs/cgroup, then each v1 hierarchy and the unified one,
 * or cgroup2 alone on a pure v2 machine) in the mount namespace of process `pid`.
 */
export async function mountCgroups(pid: number): Promise<void> {
  const mounts = machineCgroupMounts();
  if (mounts.length === 0) throw new Error('the machine has no cgroup mounted under /sys/fs/cgroup');
  const inside = (argv: string[]) => run(['nsenter', '-t', String(pid), '-m', '--', ...argv]);
  const unifiedOnly = mounts.length === 1 && mounts[0].dir === '/sys/fs/cgroup';
  if (unifiedOnly) {
    await inside(['mount', '-t', 'cgroup2', 'cgroup2', '/sys/fs/cgroup']);
    return;
  }
  await inside(['mount', '-t', 'tmpfs', '-o', 'mode=755', 'cgroup', '/sys/fs/cgroup']);
  for (const m of mounts) {
    await inside(['mkdir', '-p', m.dir]);
    await inside(['mount', '-t', m.type, ...(m.options ? ['-o', m.options] : []), m.type, m.dir]);
  }
}

/** runc in a test namespace: its own mount namespace with cgroups, a private state root, bundles in a temp dir. */
export class Runc {
  private constructor(
    readonly ns: TestNetns,
    private readonly holder: ChildProcess,
    readonly dir: string,
  ) {}

  static async start(ns: TestNetns): Promise<Runc> {
    const holder = ns.spawn(['sleep', 'infinity']);
    const dir = mkdtempSync(join(tmpdir(), 'netd-runc-'));
    const r = new Runc(ns, holder, dir);
    try {
      // `ip netns exec` execs sleep once it has set up the namespaces: wait until it has.
      const want = readlinkNs(ns.path);
      for (let i = 0; i < 200 && !(existsSync(`/proc/${holder.pid}/ns/net`) && readlinkNs(`/proc/${holder.pid}/ns/net`) === want && readComm(holder.pid!) === 'sleep'); i++) {
        await new Promise((res) => setTimeout(res, 10));
      }
      if (readComm(holder.pid!) !== 'sleep') throw new Error('the runc namespace holder did not start');
      await mountCgroups(holder.pid!);
      return r;
    } catch (err) {
      await r.destroy();
      throw err;
    }
  }

  get root(): string {
    return join(this.dir, 'state');
  }

  /** Runs runc (argv after the global flags) in the holder's namespaces; rejects on a non-zero exit. */
  exec(args: string[], allowFail = false): Promise<RunResult> {
    return run(['nsenter', '-t', String(this.holder.pid), '-m', '-n', '--', RUNC, '--root', this.root, ...args], { allowFail });
  }

  /**
   * `runc run -d` (or `create`): the container keeps runc's stdio, so it gets a log file rather than the
   * pipes `run` waits on. Resolves with runc's exit code and what it (and the hooks, on failure) wrote.
   */
  detached(args: string[]): Promise<{ code: number | null; log: string }> {
    const logPath = join(this.dir, `runc-${Date.now()}-${Math.random().toString(16).slice(2)}.log`);
    const fd = openSync(logPath, 'w');
    return new Promise((resolve, reject) => {
      const child = spawn('nsenter', ['-t', String(this.holder.pid), '-m', '-n', '--', RUNC, '--root', this.root, ...args], { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, log: readFileSync(logPath, 'utf8') });
      });
    });
  }

  /** A bundle: busybox rootfs, runc's own default config (`runc spec`) changed by `edit`. Returns its path. */
  async bundle(name: string, edit: (config: Record<string, any>) => void): Promise<string> {
    const bundle = join(this.dir, name);
    busyboxRootfs(join(bundle, 'rootfs'));
    await run([RUNC, 'spec', '--bundle', bundle]);
    const path = join(bundle, 'config.json');
    const config = JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;
    config.process.terminal = false;
    edit(config);
    writeFileSync(path, JSON.stringify(config, null, 2));
    return bundle;
  }

  /** The container's state as `runc state` reports it, or undefined when runc has none. */
  async state(id: string): Promise<{ status: string; pid: number } | undefined> {
    const res = await this.exec(['state', id], true);
    return res.code === 0 ? (JSON.parse(res.stdout) as { status: string; pid: number }) : undefined;
  }

  async destroy(): Promise<void> {
    const list = await this.exec(['list', '-q'], true);
    for (const id of list.stdout.split('\n').filter(Boolean)) await this.exec(['delete', '--force', id], true);
    if (this.holder.exitCode === null && this.holder.signalCode === null) {
      const exited = new Promise((r) => this.holder.once('exit', r));
      this.holder.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function readlinkNs(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

function readComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}
