/**
 * Debian's podman 4.3 (CNI backend) inside a test's "host" namespace, with everything private to the test:
 * containers.conf, storage.conf and registries.conf in a temp dir (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
 * CONTAINERS_REGISTRIES_CONF), vfs storage there, a private CNI config dir and plugin dir, an image imported
 * from a busybox-static rootfs (no registry).
 *
 * One mount namespace for podman AND the netd daemon (helpers/mount-namespace.ts): podman bind-mounts each
 * container's network namespace at /run/netns/netns-… and hands that path to the CNI plugin, which the daemon
 * must open. Its private /run keeps podman's /run/netns, /run/libpod and locks, its private /var/lib libcni's
 * result cache (/var/lib/cni, which podman's CNI backend does not let one move); podman, the daemon and
 * everything podman runs (conmon, runc, CNI plugins, OCI hooks) enter it. Nothing is mounted in the machine's own.
 */
import { spawnSync } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxMissing, busyboxRootfs } from './busybox.js';
import { removeTestCgroups } from './cgroups.js';
import { REPO } from './daemon.js';
import { MountNamespace } from './mount-namespace.js';
import { run, type RunOptions, type RunResult, type TestNetns } from './netns.js';

/** The test image `Podman.start` imports. */
export const IMAGE = 'localhost/netd-busybox:1';
/** The netd-cni executable (the package's `bin`), linked into the CNI plugin dir as `netd-cni`. */
export const NETD_CNI = join(REPO, 'dist/src/cni/plugin.js');
/** The page busybox httpd serves from /www in the image. */
export const INDEX = 'hello from netd-busybox\n';

/** What the tests read of `podman inspect`: podman's own record of the container and its networks. */
export interface PodmanContainer {
  Id: string;
  State: { Pid: number; Status: string };
  NetworkSettings: { SandboxKey: string; Networks: Record<string, { IPAddress: string; MacAddress: string; Gateway: string }> };
}

/** Why the podman test cannot run here (a missing tool), or undefined. */
export function podmanMissing(): string | undefined {
  const missing = busyboxMissing();
  if (missing) return missing;
  if (spawnSync('podman', ['--version']).status !== 0) return 'podman is missing (apt-get install podman)';
  return undefined;
}

export class Podman {
  private constructor(
    readonly host: TestNetns,
    /** podman's mount namespace in the test's host namespace: `TestDaemon.start(podman.ns)` runs netd in it. */
    readonly ns: MountNamespace,
    readonly dir: string,
  ) {}

  /** The mount namespace, podman's private configuration and the test image. */
  static async start(host: TestNetns): Promise<Podman> {
    const { mountNs, dir } = await MountNamespace.withDir(host, 'podman');
    const p = new Podman(host, mountNs, dir);
    try {
      p.writeConfig();
      await p.importImage();
      return p;
    } catch (err) {
      await p.destroy();
      throw err;
    }
  }

  get cniConfDir(): string {
    return join(this.dir, 'cni-conf');
  }

  get cniBinDir(): string {
    return join(this.dir, 'cni-bin');
  }

  get env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      CONTAINERS_CONF: join(this.dir, 'containers.conf'),
      CONTAINERS_STORAGE_CONF: join(this.dir, 'storage.conf'),
      CONTAINERS_REGISTRIES_CONF: join(this.dir, 'registries.conf'),
    };
  }

  private writeConfig(): void {
    for (const d of [this.cniConfDir, this.cniBinDir, join(this.dir, 'tmp')]) mkdirSync(d, { recursive: true });
    symlinkSync(NETD_CNI, join(this.cniBinDir, 'netd-cni'));
    writeFileSync(
      join(this.dir, 'containers.conf'),
      [
        '[containers]',
        // podman's default nofile/nproc limits exceed what this machine grants; runc fails to start without.
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
        'log_driver = "k8s-file"',
        '[engine]',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `events_logfile_path = "${join(this.dir, 'events.log')}"`,
        `tmp_dir = "${join(this.dir, 'tmp')}"`,
        'runtime = "runc"',
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = ["${this.cniBinDir}"]`,
        `network_config_dir = "${this.cniConfDir}"`,
        '',
      ].join('\n'),
    );
    writeFileSync(join(this.dir, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${join(this.dir, 'storage')}"\nrunroot = "${join(this.dir, 'runroot')}"\n`);
    writeFileSync(join(this.dir, 'registries.conf'), 'unqualified-search-registries = []\n');
  }

  private async importImage(): Promise<void> {
    const rootfs = busyboxRootfs(join(this.dir, 'rootfs'));
    writeFileSync(join(rootfs, 'www/index.html'), INDEX);
    const tar = join(this.dir, 'rootfs.tar');
    await run(['tar', '-C', rootfs, '-cf', tar, '.']);
    await this.run(['import', tar, IMAGE]);
    rmSync(rootfs, { recursive: true, force: true });
    rmSync(tar, { force: true });
  }

  /** Writes `<name>.conflist` (podman's CNI backend reads only *.conflist) into podman's CNI config dir. */
  writeConflist(conflist: { name: string } & Record<string, unknown>): string {
    const path = join(this.cniConfDir, `${conflist.name}.conflist`);
    writeFileSync(path, JSON.stringify(conflist, null, 2));
    return path;
  }

  /** Runs podman (argv after `podman`) in the holder's namespaces; rejects on a non-zero exit. */
  run(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.ns.exec(['podman', ...args], { timeoutMs: 90_000, ...opts, env: this.env });
  }

  /** `podman inspect` of one container. */
  async inspect(name: string): Promise<PodmanContainer> {
    return (JSON.parse((await this.run(['inspect', '--type', 'container', name])).stdout) as PodmanContainer[])[0];
  }

  /** Runs a command in a running container (`podman exec`). */
  exec(name: string, argv: string[], opts?: RunOptions): Promise<RunResult> {
    return this.run(['exec', name, ...argv], opts);
  }

  async destroy(): Promise<void> {
    await this.run(['rm', '--all', '--force', '--time', '0'], { allowFail: true }).catch(() => undefined);
    await this.ns.destroy();
    // podman's cgroupfs manager makes `libpod_parent/libpod-<id>` in the machine's hierarchies (the namespace
    // mounts the same ones): what is empty once the containers are gone.
    removeTestCgroups('libpod_parent');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A unix socket in front of the daemon's that records the requests passing through (`METHOD /path`) and the
 * status of each reply: tells what a client run by podman (an OCI hook) asked netd, and what netd answered.
 */
export class RecordingProxy {
  readonly requests: string[] = [];
  readonly statuses: number[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  static async start(path: string, daemonSocket: string): Promise<RecordingProxy> {
    const server = createServer();
    const proxy = new RecordingProxy(server, path);
    server.on('connection', (client) => {
      const upstream = connect(daemonSocket);
      proxy.sockets.add(client).add(upstream);
      client.on('data', (d: Buffer) => {
        for (const m of d.toString('latin1').matchAll(/^(GET|HEAD|POST|PUT|DELETE) (\S+) HTTP\/1\.[01]\r$/gm)) proxy.requests.push(`${m[1]} ${m[2]}`);
      });
      upstream.on('data', (d: Buffer) => {
        for (const m of d.toString('latin1').matchAll(/^HTTP\/1\.[01] (\d{3}) /gm)) proxy.statuses.push(Number(m[1]));
      });
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
    return proxy;
  }

  get host(): string {
    return `unix://${this.path}`;
  }

  /** Requests and replies, in order, from index `from` on: `["GET /x 200", ...]`. */
  exchanges(from = 0): string[] {
    return this.requests.slice(from).map((r, i) => `${r} ${this.statuses[from + i] ?? '?'}`);
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
