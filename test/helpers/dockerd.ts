/**
 * A private dockerd (Debian's docker.io 20.10) for integration tests, inside a test's "host" network namespace
 * and a mount namespace of the test's own (helpers/mount-namespace.ts: cgroups, private /run, /etc, /var/lib,
 * /opt). The netd daemon under test runs in the SAME two namespaces (`TestDaemon.start(dockerd.ns, …)`):
 * - dockerd finds remote plugins at /run/docker/plugins/NAME.sock: the namespace's private /run, where
 *   `netd daemon --docker-plugin unix:///run/docker/plugins/netd.sock` puts its socket;
 * - a remote driver makes its veths in dockerd's network namespace (dockerd moves them into the container);
 * - dockerd's SandboxKey paths (`<exec-root>/netns/<id>`) are bind mounts in this mount namespace only.
 * dockerd itself: vfs storage and its data root in a temporary directory, its exec root, pidfile and managed
 * containerd under the private /run, its API socket in the temporary directory (so the docker CLI runs from
 * the machine, with a private DOCKER_CONFIG), no default bridge, no userland proxy, debug logs kept (the
 * best witness of what it sent to a plugin), and every container under a cgroup parent of the test's own,
 * so the teardown can find and remove them all. The image is imported from a busybox-static rootfs (no
 * registry): busybox httpd serves /www, and /www/cgi-bin/ip answers with the client's address (REMOTE_ADDR).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { busyboxMissing, busyboxRootfs } from './busybox.js';
import { removeTestCgroups } from './cgroups.js';
import { MountNamespace } from './mount-namespace.js';
import { run, type RunOptions, type RunResult, type TestNetns } from './netns.js';

/** The test image `PrivateDockerd.start` imports. */
export const IMAGE = 'netd-busybox:1';
/** The page busybox httpd serves at / in the image. */
export const INDEX = 'hello from netd-busybox\n';
/** A CGI script in the image: answers with the client's address as the server saw it. */
export const WHOAMI_PATH = '/cgi-bin/ip';
/** dockerd's exec root inside the private /run: SandboxKeys are `<EXEC_ROOT>/netns/<id>`. */
export const EXEC_ROOT = '/run/dkt';
/** Where dockerd looks for remote plugins' sockets, and where the test's netd puts its own. */
export const PLUGIN_SOCKET = '/run/docker/plugins/netd.sock';
/** What a test passes to `netd daemon` to serve dockerd. */
export const PLUGIN_ARGS = ['--docker-plugin', `unix://${PLUGIN_SOCKET}`];

const inCi = /^(1|true|yes)$/i.test(process.env.CI ?? '');

/** The docker client the tests drive dockerd with: Debian's, beside its dockerd, else the first in PATH. */
function dockerClient(): string | undefined {
  if (process.env.NETD_TEST_DOCKER) return process.env.NETD_TEST_DOCKER;
  if (existsSync('/usr/bin/docker') && /^Docker version 20\./.test(spawnSync('/usr/bin/docker', ['--version'], { encoding: 'utf8' }).stdout ?? '')) return '/usr/bin/docker';
  return spawnSync('sh', ['-c', 'command -v docker'], { encoding: 'utf8' }).stdout.trim() || undefined;
}

/** Why dockerd cannot run here (a missing tool), or undefined. */
export function dockerdMissing(): string | undefined {
  const missing = busyboxMissing();
  if (missing) return missing;
  for (const bin of ['dockerd', 'containerd', 'containerd-shim-runc-v2', 'runc']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) return `${bin} is missing (apt-get install docker.io; scripts/install-deps.sh --test)`;
  }
  if (!dockerClient()) return 'no docker CLI (apt-get install docker.io; scripts/install-deps.sh --test)';
  return undefined;
}

/**
 * The `describe`/`test` option for a dockerd test: skipped (saying why) where dockerd is missing, except under
 * CI=true, where the test runs and fails loudly (call `requireDockerd()` first in it).
 */
export function dockerdSkip(): false | string {
  const missing = dockerdMissing();
  return missing && !inCi ? `dockerd cannot run here: ${missing}` : false;
}

/** Throws (the test fails) when dockerd cannot run here. */
export function requireDockerd(): void {
  const missing = dockerdMissing();
  if (missing) throw new Error(`the dockerd test cannot run: ${missing}${inCi ? ' (CI=true: it must)' : ''}`);
}

/** What the tests read of `docker inspect` of a container. */
export interface DockerContainer {
  Id: string;
  Name: string;
  State: { Pid: number; Status: string; Running: boolean };
  NetworkSettings: {
    SandboxID: string;
    SandboxKey: string;
    Ports: Record<string, { HostIp: string; HostPort: string }[] | null>;
    Networks: Record<string, { NetworkID: string; EndpointID: string; IPAddress: string; IPPrefixLen: number; GlobalIPv6Address: string; Gateway: string; MacAddress: string }>;
  };
}

/** What the tests read of `docker network inspect`. */
export interface DockerNetwork {
  Id: string;
  Name: string;
  Driver: string;
  Internal: boolean;
  EnableIPv6: boolean;
  IPAM: { Driver: string; Config: { Subnet: string; Gateway?: string }[] };
  Options: Record<string, string>;
  Containers: Record<string, { EndpointID: string; IPv4Address: string; IPv6Address: string; MacAddress: string }>;
}

export class PrivateDockerd {
  private child?: ChildProcess;
  /** Everything dockerd wrote (stdout and stderr, debug level), over every launch. */
  logs = '';
  /** The cgroup (in every hierarchy) the containers go under. */
  readonly cgroupParent = `netd-dkt-${randomBytes(4).toString('hex')}`;
  readonly client: string;

  private constructor(
    readonly host: TestNetns,
    /** dockerd's mount namespace in the test's host namespace: `TestDaemon.start(dockerd.ns, …)` runs netd in it. */
    readonly ns: MountNamespace,
    readonly dir: string,
    readonly extraArgs: string[],
  ) {
    this.client = dockerClient() ?? 'docker';
  }

  /** The mount namespace, a running dockerd and the test image. `extraArgs` go to every launch of dockerd. */
  static async start(host: TestNetns, extraArgs: string[] = []): Promise<PrivateDockerd> {
    requireDockerd();
    const { mountNs, dir } = await MountNamespace.withDir(host, 'dockerd');
    const d = new PrivateDockerd(host, mountNs, dir, extraArgs);
    try {
      mkdirSync(join(dir, 'cli'));
      await d.launch();
      await d.importImage();
      return d;
    } catch (err) {
      await d.destroy();
      throw err;
    }
  }

  get socket(): string {
    return join(this.dir, 'docker.sock');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The plugin socket as the machine reaches it (through the holder's view of the private /run). */
  get pluginSocket(): string {
    return `/proc/${this.ns.pid}/root${PLUGIN_SOCKET}`;
  }

  private args(): string[] {
    return [
      'dockerd',
      '--debug',
      '--data-root',
      join(this.dir, 'data'),
      '--exec-root',
      EXEC_ROOT,
      '--pidfile',
      '/run/dkt.pid',
      '-H',
      `unix://${this.socket}`,
      '--storage-driver',
      'vfs',
      '--bridge',
      'none',
      '--userland-proxy=false',
      '--cgroup-parent',
      `/${this.cgroupParent}`,
      '--exec-opt',
      'native.cgroupdriver=cgroupfs',
      ...this.extraArgs,
    ];
  }

  /** Starts dockerd (again) and waits until it answers `docker version`. */
  async launch(): Promise<void> {
    const child = this.ns.spawn(this.args());
    this.child = child;
    this.logs += `--- dockerd launched (pid ${child.pid}) ---\n`;
    child.stdout!.on('data', (d) => (this.logs += d));
    child.stderr!.on('data', (d) => (this.logs += d));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`dockerd exited with ${child.exitCode ?? child.signalCode}:\n${this.tail()}`);
      if (existsSync(this.socket) && (await this.docker(['version', '--format', '{{.Server.Version}}'], { allowFail: true, timeoutMs: 10_000 })).code === 0) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`dockerd did not answer within 60 s:\n${this.tail()}`);
  }

  /** The last lines of dockerd's log (for failure messages). */
  tail(lines = 40): string {
    return this.logs.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** dockerd's log lines that mention `what` (a call to a plugin, an endpoint id, an error). */
  logLines(what: string | RegExp): string[] {
    return this.logs.split('\n').filter((l) => (typeof what === 'string' ? l.includes(what) : what.test(l)));
  }

  private async importImage(): Promise<void> {
    const rootfs = busyboxRootfs(join(this.dir, 'rootfs'));
    writeFileSync(join(rootfs, 'www/index.html'), INDEX);
    mkdirSync(join(rootfs, 'www/cgi-bin'));
    writeFileSync(join(rootfs, 'www', WHOAMI_PATH), '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$REMOTE_ADDR"\n');
    chmodSync(join(rootfs, 'www', WHOAMI_PATH), 0o755);
    const tar = join(this.dir, 'rootfs.tar');
    await run(['tar', '--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', tar, '.']);
    await this.docker(['import', '--change', 'ENV PATH=/bin', '--change', 'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]', tar, IMAGE], { timeoutMs: 120_000 });
    rmSync(rootfs, { recursive: true, force: true });
    rmSync(tar, { force: true });
  }

  /** Runs the docker CLI (argv after `docker`) against this dockerd; rejects on a non-zero exit. */
  docker(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: `unix://${this.socket}`, DOCKER_CONFIG: join(this.dir, 'cli'), ...opts.env };
    delete env.DOCKER_CONTEXT;
    return run([this.client, ...args], { timeoutMs: 90_000, ...opts, env });
  }

  /**
   * `docker run -d --name NAME ARGS… IMAGE CMD…` (the image's command by default: httpd on port 80); returns
   * the container id. On failure the error carries dockerd's log lines about the attempt.
   */
  async runContainer(name: string, args: string[], cmd: string[] = []): Promise<string> {
    const mark = this.logs.length;
    const res = await this.docker(['run', '-d', '--name', name, ...args, IMAGE, ...cmd], { allowFail: true });
    if (res.code !== 0) throw new Error(`docker run ${name} ${args.join(' ')} failed: ${res.stderr.trim()}\ndockerd logged:\n${this.logs.slice(mark).trimEnd().split('\n').slice(-30).join('\n')}`);
    return res.stdout.trim();
  }

  /** Runs a command in a running container (`docker exec`). */
  exec(name: string, argv: string[], opts?: RunOptions): Promise<RunResult> {
    return this.docker(['exec', name, ...argv], { allowFail: true, ...opts });
  }

  /** An HTTP GET by busybox wget in a container (busybox's -T crashes: timeout(1) bounds it); '' when it fails. */
  async fetchIn(name: string, url: string, seconds = 5): Promise<string> {
    const res = await this.exec(name, ['timeout', String(seconds), 'wget', '-q', '-O', '-', url]);
    return res.code === 0 ? res.stdout : '';
  }

  /** One ping from a container; true when it was answered. */
  async pingIn(name: string, address: string, seconds = 2): Promise<boolean> {
    const v6 = address.includes(':') ? ['-6'] : [];
    return (await this.exec(name, ['ping', ...v6, '-c', '1', '-W', String(seconds), address])).code === 0;
  }

  /** Resolves `host` with busybox nslookup in a container (dockerd's embedded DNS); the addresses answered. */
  async lookupIn(name: string, host: string): Promise<string[]> {
    const res = await this.exec(name, ['timeout', '5', 'nslookup', host]);
    const answer = res.stdout.split(/\n\s*\n/).slice(1).join('\n');
    return [...answer.matchAll(/^Address(?: \d+)?:\s*(\S+)/gm)].map((m) => m[1]);
  }

  async inspect(name: string): Promise<DockerContainer> {
    return (JSON.parse((await this.docker(['inspect', '--type', 'container', name])).stdout) as DockerContainer[])[0];
  }

  async inspectNetwork(name: string): Promise<DockerNetwork> {
    return (JSON.parse((await this.docker(['network', 'inspect', name])).stdout) as DockerNetwork[])[0];
  }

  /** `docker network create ARGS… NAME`; the id. On failure the error carries dockerd's log of the attempt. */
  async createNetwork(name: string, args: string[]): Promise<string> {
    const mark = this.logs.length;
    const res = await this.docker(['network', 'create', ...args, name], { allowFail: true });
    if (res.code !== 0) throw new Error(`docker network create ${args.join(' ')} ${name} failed: ${res.stderr.trim()}\ndockerd logged:\n${this.logs.slice(mark).trimEnd().split('\n').slice(-30).join('\n')}`);
    return res.stdout.trim();
  }

  /**
   * Kills dockerd with SIGKILL and waits for it to go. Its managed containerd dies with it (dockerd starts it
   * with a parent-death signal); the shims and containers live on. containerd lingers as a zombie until the
   * machine's init reaps it, and its pidfile stays: a dockerd started meanwhile takes the zombie for a live
   * containerd and waits for its socket in vain. So: wait for it to be gone, and drop a pidfile naming a dead one.
   */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const children = childrenOf(child.pid!);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.logs += '--- dockerd killed (SIGKILL) ---\n';
    for (let i = 0; i < 100 && children.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
    const pidfile = `/proc/${this.ns.pid}/root${EXEC_ROOT}/containerd/containerd.pid`;
    try {
      if (!alive(Number(readFileSync(pidfile, 'utf8').trim()))) rmSync(pidfile);
    } catch {
      /* no pidfile */
    }
  }

  /** SIGTERM, as an administrator stops dockerd; waits up to `ms` before SIGKILL. */
  async stop(ms = 20_000): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    await exited;
    clearTimeout(timer);
  }

  /** PIDs of every process in the test's container cgroups (pids hierarchy, or cgroup2). */
  containerProcesses(): number[] {
    const roots = ['/sys/fs/cgroup/pids', '/sys/fs/cgroup/unified', '/sys/fs/cgroup'].map((r) => join(r, this.cgroupParent)).filter((p) => existsSync(p));
    const pids = new Set<number>();
    const walk = (dir: string): void => {
      try {
        for (const p of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) pids.add(Number(p));
        for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
      } catch {
        /* gone */
      }
    };
    for (const r of roots) walk(r);
    return [...pids];
  }

  /**
   * Leaves nothing: containers removed through dockerd (runc removes their cgroups and mounts), dockerd stopped
   * (it stops its containerd), whatever still runs in the namespace or the test's cgroups killed, the cgroups
   * and the temporary directory removed. Works also after a failed start or a killed dockerd.
   */
  async destroy(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      const ids = await this.docker(['ps', '-aq'], { allowFail: true, timeoutMs: 20_000 });
      const all = ids.code === 0 ? ids.stdout.split('\n').filter(Boolean) : [];
      if (all.length) await this.docker(['rm', '-f', ...all], { allowFail: true, timeoutMs: 60_000 });
      await this.stop();
    }
    await this.ns.destroy();
    for (let i = 0; i < 100; i++) {
      const left = this.containerProcesses();
      if (!left.length) break;
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    removeTestCgroups(this.cgroupParent);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The direct children of a process (all its threads'). */
function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
  } catch {
    return [];
  }
}

/** Whether a process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
