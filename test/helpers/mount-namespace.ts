/**
 * A mount namespace of the test's own inside a TestNetns, for real container runtimes (runc, containerd,
 * podman) and whatever they run (shims, conmon, CNI plugins, OCI hooks, a netd daemon that must see the same
 * /run/netns paths).
 *
 * `ip netns exec` gives each command a fresh mount namespace (a slave of the machine's: nothing mounted there
 * reaches the machine) with a sysfs of the test's network namespace. One long-lived "holder" process
 * (`ip netns exec NS sleep infinity`) keeps such a namespace; it gets, once:
 * - cgroups in the machine's layout (helpers/cgroups.ts);
 * - a tmpfs on /run (runtimes' state, sockets, locks, /run/netns bind mounts);
 * - /etc and /var/lib seen through overlays whose upper layers are a tmpfs, and a tmpfs on /opt: what a
 *   runtime writes there (libcni's result cache in /var/lib/cni, configs) stays in the namespace;
 * - empty tmpfs on the CNI defaults /etc/cni/net.d and /var/lib/cni, and /opt/cni/bin empty: only the test's
 *   configurations, plugins and cache (the machine may have its own, e.g. podman's 87-podman-bridge.conflist).
 * Every command enters the holder's mount and network namespaces (`nsenter -t HOLDER -m -n`). The object is
 * shaped like TestNetns (name, path, exec, spawn), so `TestDaemon.start(mountNs)` runs netd in it too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountCgroups } from './cgroups.js';
import { MACHINE_NETNS_INODE, run, type RunOptions, type RunResult, type TestNetns } from './netns.js';

/** libcni's defaults: where `ctr run --cni` (go-cni) reads configurations and plugins, and where results are cached. */
export const CNI_CONF_DIR = '/etc/cni/net.d';
export const CNI_BIN_DIR = '/opt/cni/bin';
export const CNI_CACHE_DIR = '/var/lib/cni';

export class MountNamespace {
  private constructor(
    readonly host: TestNetns,
    private readonly holder: ChildProcess,
    /** A directory of the test's (on the machine) for the tmpfs that holds the overlays' upper layers. */
    private readonly scratch: string,
  ) {}

  get name(): string {
    return this.host.name;
  }

  get path(): string {
    return this.host.path;
  }

  get pid(): number {
    return this.holder.pid!;
  }

  /** The holder in `host`, with cgroups and private /run, /etc, /var/lib, /opt. `scratch` must not exist yet. */
  static async start(host: TestNetns, scratch: string): Promise<MountNamespace> {
    const m = new MountNamespace(host, host.spawn(['sleep', 'infinity']), scratch);
    try {
      await m.waitForHolder();
      await mountCgroups((argv) => m.exec(argv));
      await m.privateSystemDirs();
      return m;
    } catch (err) {
      await m.destroy();
      throw err;
    }
  }

  /** `ip netns exec` execs sleep once it has set up the namespaces: wait for that; refuse the machine's namespaces. */
  private async waitForHolder(): Promise<void> {
    const want = statSync(this.host.path).ino;
    if (want === MACHINE_NETNS_INODE) throw new Error(`refusing to use ${this.host.name}: it is the machine's own network namespace`);
    for (let i = 0; i < 300; i++) {
      try {
        if (statSync(`/proc/${this.pid}/ns/net`).ino === want && readFileSync(`/proc/${this.pid}/comm`, 'utf8').trim() === 'sleep') {
          if (statSync(`/proc/${this.pid}/ns/mnt`).ino === statSync('/proc/self/ns/mnt').ino) throw new Error('the namespace holder shares the test runner’s mount namespace');
          return;
        }
      } catch (err) {
        if (err instanceof Error && /holder/.test(err.message)) throw err;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('the mount namespace holder never started');
  }

  private async privateSystemDirs(): Promise<void> {
    const x = (argv: string[]) => this.exec(argv);
    await x(['mount', '-t', 'tmpfs', '-o', 'mode=755', 'netd-test-run', '/run']);
    // Upper layers on a tmpfs of this namespace only: gone with it, whatever happens to the test.
    mkdirSync(this.scratch);
    await x(['mount', '-t', 'tmpfs', '-o', 'mode=700', 'scratch', this.scratch]);
    for (const [name, path] of [['etc', '/etc'], ['var-lib', '/var/lib']]) {
      await x(['mkdir', join(this.scratch, `${name}-up`), join(this.scratch, `${name}-work`)]);
      await x(['mount', '-t', 'overlay', '-o', `lowerdir=${path},upperdir=${join(this.scratch, `${name}-up`)},workdir=${join(this.scratch, `${name}-work`)}`, 'overlay', path]);
    }
    // /opt holds nothing a runtime needs: a bare tmpfs (the mount point must exist: Debian's base-files has it).
    if (!existsSync('/opt')) throw new Error('/opt does not exist on this machine: cannot give the test a private /opt/cni/bin');
    await x(['mount', '-t', 'tmpfs', '-o', 'mode=755', 'opt', '/opt']);
    await x(['mkdir', '-p', CNI_CONF_DIR, CNI_BIN_DIR, CNI_CACHE_DIR]);
    await x(['mount', '-t', 'tmpfs', '-o', 'mode=755', 'cni-conf', CNI_CONF_DIR]);
    await x(['mount', '-t', 'tmpfs', '-o', 'mode=700', 'cni-cache', CNI_CACHE_DIR]);
  }

  /**
   * A temporary directory `netd-<tag>-…` for a runtime's files (its `scratch` holds the overlays' upper layers)
   * and the namespace in `host`; the directory is removed again when the namespace cannot start.
   */
  static async withDir(host: TestNetns, tag: string): Promise<{ mountNs: MountNamespace; dir: string }> {
    const dir = mkdtempSync(join(tmpdir(), `netd-${tag}-`));
    try {
      return { mountNs: await MountNamespace.start(host, join(dir, 'scratch')), dir };
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** argv run in the holder's mount and network namespaces. */
  argv(argv: string[]): string[] {
    return ['nsenter', '-t', String(this.pid), '-m', '-n', '--', ...argv];
  }

  /** Runs a command in the namespaces; rejects on a non-zero exit unless `allowFail`. */
  exec(argv: string[], opts?: RunOptions): Promise<RunResult> {
    return run(this.argv(argv), opts);
  }

  /** Starts a long-running process in the namespaces, its stdout and stderr piped. */
  spawn(argv: string[], env?: NodeJS.ProcessEnv): ChildProcess {
    const [cmd, ...args] = this.argv(argv);
    return spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  }

  /** Writes a file at `path` as this mount namespace sees it. */
  async writeFile(path: string, text: string): Promise<void> {
    await this.exec(['sh', '-c', 'cat > "$1"', 'sh', path], { input: text });
  }

  /** The files libcni cached in this namespace for the results of ADDs (`<network>-<container id>-<ifname>`). */
  async cniCachedResults(): Promise<string[]> {
    const r = await this.exec(['ls', '-1', join(CNI_CACHE_DIR, 'results')], { allowFail: true });
    return r.code === 0 ? r.stdout.split('\n').filter(Boolean) : [];
  }

  /** Processes in this mount namespace but the holder (a runtime, its shims, conmon, a daemon): all started by the test. */
  processes(): number[] {
    let ino: number;
    try {
      ino = statSync(`/proc/${this.pid}/ns/mnt`).ino;
    } catch {
      return [];
    }
    const pids: number[] = [];
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p) || Number(p) === this.pid) continue;
      try {
        if (statSync(`/proc/${p}/ns/mnt`).ino === ino) pids.push(Number(p));
      } catch {
        /* gone */
      }
    }
    return pids;
  }

  /** Kills whatever still runs in the namespace, then the holder: the namespace and its mounts go with it. */
  async destroy(): Promise<void> {
    for (const pid of this.processes()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (this.holder.exitCode === null && this.holder.signalCode === null) {
      const exited = new Promise((r) => this.holder.once('exit', r));
      this.holder.kill('SIGKILL');
      await exited;
    }
  }
}
