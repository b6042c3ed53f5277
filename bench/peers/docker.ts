/**
 * Docker's libnetwork, as dockerd (Debian `docker.io`) does it, started inside the phase namespace:
 * cgroups remounted (ip netns exec gave the phase a fresh /sys without them), vfs storage, private data
 * and exec roots, no default bridge, no userland proxy (so published ports are kernel DNAT, like netd's),
 * containers under a cgroup parent of this run's own so they can all be found and removed.
 *
 * The timed operations go straight to dockerd's API on its socket (no docker CLI start-up), as with netd:
 * attach = POST /networks/bench/connect of a running container that has no network, detach =
 * /disconnect. Docker publishes ports per container (`-p` at creation), not per connect: a "with port"
 * probe is created with `-p 20000+i:5201`, so that when it is connected to `bench` (its only network,
 * hence its gateway network) dockerd programs the mapping during the connect.
 *
 * The `docker-netd` variant is the same dockerd driving netd through its remote plugin (issue 14): a netd
 * daemon started first, in the same network and mount namespace, with `--docker-plugin` on
 * /run/docker/plugins/netd.sock (the phase's private /run, where dockerd discovers plugins by name), and
 * `bench` created with `-d netd --ipam-driver netd`.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { mount } from '../../src/kernel/native.js';
import { NET, Procs, killOthersInThisNetns, log, removeCgroup, run, sleep, stopChild } from '../env.js';
import { Unavailable, type Ctr, type Impl, type NetworkOps, type PortMap } from '../harness.js';
import { UnixHttp } from '../http.js';
import { NetdDaemon, type LogLine } from '../netd.js';
import { CLI } from '../../test/helpers/daemon.js';

const SOCKET = '/run/bench-docker.sock';
const EXEC_ROOT = '/run/bdk';
const IMAGE = 'netd-bench/sleep:1';
/** Where dockerd looks for a remote plugin named `netd` (on the phase's private /run). */
export const NETD_PLUGIN_SOCKET = '/run/docker/plugins/netd.sock';

/** Path of a command found in PATH, or undefined. */
export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = join(dir, cmd);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Why dockerd cannot drive netd here (this netd has no `daemon --docker-plugin`), or undefined. */
export function dockerPluginMissing(): string | undefined {
  const r = spawnSync(process.execPath, [CLI, 'daemon', '--help'], { encoding: 'utf8', timeout: 30_000 });
  return /--docker-plugin/.test(r.stdout ?? '') ? undefined : 'this netd has no `daemon --docker-plugin` (the Docker plugin, issue 14)';
}

/**
 * Mounts the cgroup hierarchies the machine has (as PID 1 sees them) on this phase's fresh /sys, so
 * dockerd and runc find them. Only this mount namespace is changed.
 */
function remountCgroups(): void {
  const mounts = readFileSync('/proc/1/mountinfo', 'utf8')
    .split('\n')
    .map((line) => {
      const [pre, post] = line.split(' - ');
      if (!post) return undefined;
      const mountPoint = pre.split(' ')[4];
      const [fstype, , superOpts] = post.split(' ');
      return { mountPoint, fstype, superOpts };
    })
    .filter((m): m is { mountPoint: string; fstype: string; superOpts: string } => m !== undefined && (m.mountPoint === '/sys/fs/cgroup' || m.mountPoint.startsWith('/sys/fs/cgroup/')))
    .sort((a, b) => a.mountPoint.length - b.mountPoint.length);
  if (mounts.length === 0) throw new Unavailable('no cgroup hierarchy mounted on this machine');
  for (const m of mounts) {
    mkdirSync(m.mountPoint, { recursive: true });
    const opts = m.superOpts
      .split(',')
      .filter((o) => o !== 'rw' && o !== 'ro')
      .join(',');
    if (m.fstype === 'tmpfs') mount('cgroup_root', m.mountPoint, 'tmpfs', 0, 'mode=755');
    else if (m.fstype === 'cgroup2') mount('cgroup2', m.mountPoint, 'cgroup2', 0, opts || null);
    else if (m.fstype === 'cgroup') mount('cgroup', m.mountPoint, 'cgroup', 0, opts || null);
  }
}

/** A root filesystem holding only /bin/sleep and the libraries it needs, as a tar: an image without a registry. */
async function buildRootfs(work: string): Promise<string> {
  const root = join(work, 'rootfs');
  const sleepBin = (await run(['readlink', '-f', which('sleep') ?? '/bin/sleep'])).stdout.trim();
  const files = [sleepBin];
  const ldd = await run(['ldd', sleepBin], { allowFail: true });
  for (const m of ldd.stdout.matchAll(/(\/\S+) \(0x/g)) files.push(m[1]);
  for (const f of files) {
    const target = join(root, f === sleepBin ? '/bin/sleep' : f);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync((await run(['readlink', '-f', f])).stdout.trim(), target);
  }
  const tar = join(work, 'rootfs.tar');
  await run(['tar', '-C', root, '-cf', tar, '.']);
  return tar;
}

interface DockerState {
  id: string;
}

export class DockerImpl implements Impl {
  readonly id: 'docker' | 'docker-netd';
  private child?: ChildProcess;
  private netd?: NetdDaemon;
  private auxMade = false;
  private http = new UnixHttp(SOCKET);
  private readonly logs: string[] = [];

  constructor(
    private readonly procs: Procs,
    private readonly work: string,
    /** Containers go under this cgroup, in every hierarchy, so they can all be found and removed. */
    private readonly cgroupParent: string,
    private readonly opts: { network?: boolean; netdPlugin?: boolean; firewallBackend?: string } = {},
  ) {
    this.id = opts.netdPlugin ? 'docker-netd' : 'docker';
  }

  /** The network driver and IPAM driver `bench` (and every network made here) is created with. */
  private get drivers(): { Driver: string; ipam: string } {
    return this.opts.netdPlugin ? { Driver: 'netd', ipam: 'netd' } : { Driver: 'bridge', ipam: 'default' };
  }

  /** The netd daemon behind the plugin (docker-netd), started before dockerd so the plugin is found. */
  private async startNetd(): Promise<void> {
    this.netd = await NetdDaemon.start(this.procs, { work: this.work, firewallBackend: this.opts.firewallBackend, extraArgs: ['--docker-plugin', `unix://${NETD_PLUGIN_SOCKET}`] });
    const plugin = new UnixHttp(NETD_PLUGIN_SOCKET);
    try {
      const r = await plugin.request<{ Implements?: string[] }>('POST', '/Plugin.Activate');
      if (r.status !== 200 || !r.body?.Implements?.includes('NetworkDriver')) throw new Error(`netd's plugin socket answered /Plugin.Activate with ${r.status} ${JSON.stringify(r.body)}`);
    } finally {
      plugin.close();
    }
  }

  /** netd's log lines (docker-netd), to see what the plugin calls cost inside netd. */
  netdLog(): LogLine[] | undefined {
    return this.netd?.logLines;
  }

  async setup(): Promise<void> {
    const dockerd = which('dockerd');
    if (!dockerd || !which('docker')) throw new Unavailable('dockerd not installed (apt-get install docker.io)');
    remountCgroups();
    if (this.opts.netdPlugin) await this.startNetd();
    mkdirSync(EXEC_ROOT, { recursive: true });
    const child = this.procs.spawn([
      dockerd,
      '--data-root',
      join(this.work, 'docker'),
      '--exec-root',
      EXEC_ROOT,
      '--pidfile',
      join(EXEC_ROOT, 'dockerd.pid'),
      '-H',
      `unix://${SOCKET}`,
      '--storage-driver',
      'vfs',
      '--userland-proxy=false',
      '--bridge=none',
      '--cgroup-parent',
      `/${this.cgroupParent}`,
      '--log-level',
      'warn',
    ]);
    this.child = child;
    const keep = (d: Buffer) => {
      this.logs.push(d.toString());
      if (this.logs.length > 50) this.logs.shift();
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Unavailable(`dockerd did not start (exit ${child.exitCode}): ${this.logs.join('').trim().split('\n').slice(-3).join(' | ')}`);
      if (Date.now() > deadline) throw new Unavailable('dockerd did not answer within 60 s');
      try {
        if (existsSync(SOCKET) && (await this.http.request('GET', '/_ping')).status === 200) break;
      } catch {
        /* not yet */
      }
      await sleep(200);
    }
    await run(['docker', '-H', `unix://${SOCKET}`, 'import', await buildRootfs(this.work), IMAGE], { timeoutMs: 120_000 });
    if (this.opts.network !== false) {
      const { Driver, ipam } = this.drivers;
      await this.http.call('POST', '/networks/create', {
        Name: 'bench',
        Driver,
        CheckDuplicate: true,
        IPAM: { Driver: ipam, Config: [{ Subnet: NET.subnet, Gateway: NET.gateway }] },
        Options: { 'com.docker.network.bridge.name': 'dkbench0' },
      });
    }
  }

  async portSupport(): Promise<true | string> {
    return true;
  }

  daemonPid(): number | undefined {
    return this.child?.pid;
  }

  /** `docker run` through the API: creates a container on `network` (publishing `ports`) and starts it; its id. */
  async runContainer(name: string, ports: PortMap[] = [], network = 'bench'): Promise<string> {
    const exposed: Record<string, object> = {};
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const p of ports) {
      exposed[`${p.containerPort}/tcp`] = {};
      bindings[`${p.containerPort}/tcp`] = [{ HostIp: '', HostPort: String(p.hostPort) }];
    }
    const { Id } = await this.http.call<{ Id: string }>('POST', `/containers/create?name=${name}`, {
      Image: IMAGE,
      Cmd: ['/bin/sleep', 'infinity'],
      ExposedPorts: exposed,
      HostConfig: { NetworkMode: network, PortBindings: bindings },
    });
    await this.http.call('POST', `/containers/${Id}/start`);
    return Id;
  }

  /**
   * A running container with no network, started on a network of dockerd's own bridge driver (`aux`,
   * made at the first call) and disconnected from it: for connect figures when `docker run` on `bench`
   * does not work.
   */
  async runUnconnected(name: string): Promise<string> {
    if (!this.auxMade) {
      await this.http.call('POST', '/networks/create', { Name: 'aux', Driver: 'bridge', CheckDuplicate: true, IPAM: { Driver: 'default', Config: [{ Subnet: NET.extraSubnet(251) }] }, Options: { 'com.docker.network.bridge.name': 'dkaux0' } });
      this.auxMade = true;
    }
    const id = await this.runContainer(name, [], 'aux');
    await this.http.call('POST', '/networks/aux/disconnect', { Container: id });
    return id;
  }

  /** Creates and starts a container on `bench` (publishing `ports`); returns it attached. */
  private async create(name: string, index: number, ports: PortMap[]): Promise<Ctr> {
    const Id = await this.runContainer(name, ports);
    const info = await this.inspect(Id);
    return { name, index, ns: `/proc/${info.State.Pid}/ns/net`, ports, ip: info.NetworkSettings.Networks.bench?.IPAddress, state: { id: Id } satisfies DockerState };
  }

  private inspect(id: string): Promise<{ State: { Pid: number }; NetworkSettings: { Networks: Record<string, { IPAddress: string }> } }> {
    return this.http.call('GET', `/containers/${id}/json`);
  }

  /** The container's IPv4 address on `bench` (GET /containers/ID/json), or undefined. */
  async address(id: string): Promise<string | undefined> {
    return (await this.inspect(id)).NetworkSettings.Networks.bench?.IPAddress || undefined;
  }

  /** `docker network connect bench ID` through the API. */
  async connect(id: string): Promise<void> {
    await this.http.call('POST', '/networks/bench/connect', { Container: id });
  }

  /** `docker network disconnect bench ID` through the API. */
  async disconnect(id: string): Promise<void> {
    await this.http.call('POST', '/networks/bench/disconnect', { Container: id });
  }

  /** `docker rm -f ID` through the API. */
  async remove(id: string): Promise<void> {
    await this.http.call('DELETE', `/containers/${id}?force=1`);
  }

  /** A running container with no network, ready to be connected. */
  async makeContainer(name: string, index: number, ports: PortMap[]): Promise<Ctr> {
    const c = await this.create(name, index, ports);
    await this.disconnect((c.state as DockerState).id);
    c.ip = undefined;
    return c;
  }

  async fill(name: string, index: number, ports: PortMap[]): Promise<Ctr> {
    return this.create(name, index, ports);
  }

  async attach(c: Ctr): Promise<void> {
    await this.connect((c.state as DockerState).id);
    c.ip = undefined; // looked up after the timed part (resolveIp)
  }

  /** The container's address on `bench` (an extra request, outside the timed attach). */
  async resolveIp(c: Ctr): Promise<void> {
    c.ip = await this.address((c.state as DockerState).id);
  }

  async detach(c: Ctr): Promise<void> {
    await this.disconnect((c.state as DockerState).id);
  }

  /** create-network / rm-network through the API. Docker here runs without a default bridge. */
  networkOps(): NetworkOps {
    return {
      existing: 0,
      create: async (name, subnet) => (await this.http.call<{ Id: string }>('POST', '/networks/create', { Name: name, Driver: this.drivers.Driver, CheckDuplicate: true, IPAM: { Driver: this.drivers.ipam, Config: [{ Subnet: subnet }] } })).Id,
      remove: async (id) => void (await this.http.call('DELETE', `/networks/${id}`)),
    };
  }

  /**
   * Fast and complete: dockerd, containerd and the shims are killed (they all live in this phase's
   * namespace, which is about to be dropped with every rule and link dockerd made), then every container
   * process through this run's cgroup. Removing hundreds of containers one by one would take minutes.
   */
  async teardown(): Promise<void> {
    this.http.close();
    if (this.child) await stopChild(this.child, 'SIGKILL');
    // netd goes after dockerd (it is a process of this phase's too: killOthersInThisNetns would get it).
    await this.netd?.stop();
    killOthersInThisNetns();
    // Anything left in this run's cgroups (a shim or a container process dockerd did not reap) goes too.
    await removeCgroup(this.cgroupParent, log);
  }
}

