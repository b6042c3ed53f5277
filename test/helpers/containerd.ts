/**
 * A private containerd for integration tests, driven by the real `ctr` client (Debian's containerd 1.6).
 *
 * Everything of it lives in a mount namespace of its own inside a test network namespace, held open by
 * a `sleep` process (the "holder") that containerd and every `ctr` command join with `nsenter -m -n`:
 * - its own root, state and gRPC socket under a temporary directory, the native snapshotter (works on any
 *   filesystem, also an overlay root), the CRI plugin and the /opt plugin disabled;
 * - a tmpfs on /run: containerd 1.6 puts shim sockets in /run/containerd/s and runc state and ctr's FIFOs
 *   under /run/containerd whatever its config says;
 * - cgroups mounted afresh (`ip netns exec` gave the namespace a new sysfs, which has none);
 * - /etc, /opt and /var/lib seen through overlays whose upper layers are a tmpfs: `ctr run --cni` reads
 *   its network configuration from /etc/cni/net.d and plugins from /opt/cni/bin (go-cni's defaults, not
 *   configurable in ctr), and libcni caches results in /var/lib/cni. The machine's own copies of those
 *   paths are never written.
 * The image is a busybox-static rootfs packed by hand as an OCI image layout and loaded with
 * `ctr image import`: no registry.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, chmodSync, createReadStream, existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type RunOptions, type RunResult, type TestNetns } from './netns.js';

export const BUSYBOX = '/bin/busybox';
/** Where `ctr run --cni` (go-cni's defaults in containerd 1.6) looks for configuration and plugins, and libcni's cache. */
export const CNI_CONF_DIR = '/etc/cni/net.d';
export const CNI_BIN_DIR = '/opt/cni/bin';
export const CNI_CACHE_DIR = '/var/lib/cni';

/**
 * A minimal container root filesystem in `dir`: a static busybox with one symlink per applet in /bin,
 * and the few files a shell expects. Returns `dir`.
 */
export async function busyboxRootfs(dir: string): Promise<string> {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: apt-get install busybox-static (scripts/install-deps.sh --test)`);
  for (const d of ['bin', 'etc', 'tmp', 'root', 'proc', 'sys', 'dev', 'run', 'var']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  const applets = (await run([BUSYBOX, '--list'])).stdout.split('\n').filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox');
  for (const a of applets) symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
  return dir;
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

/**
 * Packs `rootfs` as a one-layer OCI image layout tarball (`oci-layout`, `index.json`, `blobs/sha256/…`) named
 * `name` (containerd's `io.containerd.image.name` annotation, which `ctr image import` uses), for linux/amd64
 * or whatever this machine is. Returns the tarball's path.
 */
export async function ociImageTar(rootfs: string, name: string, workDir: string): Promise<string> {
  const layout = join(workDir, 'layout');
  const blobs = join(layout, 'blobs/sha256');
  mkdirSync(blobs, { recursive: true });
  const layerTmp = join(workDir, 'layer.tar');
  await run(['tar', '--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', layerTmp, '.']);
  const layerDigest = await sha256File(layerTmp);
  copyFileSync(layerTmp, join(blobs, layerDigest));
  const put = (obj: unknown) => {
    const text = JSON.stringify(obj);
    const digest = createHash('sha256').update(text).digest('hex');
    writeFileSync(join(blobs, digest), text);
    return { digest: `sha256:${digest}`, size: Buffer.byteLength(text) };
  };
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const config = put({
    architecture: arch,
    os: 'linux',
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
    rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
  });
  const manifest = put({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerDigest}`, size: statSync(layerTmp).size }],
  });
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, platform: { architecture: arch, os: 'linux' }, annotations: { 'io.containerd.image.name': name } }],
    }),
  );
  const out = join(workDir, 'image.tar');
  await run(['tar', '--numeric-owner', '--owner=0', '--group=0', '-C', layout, '-cf', out, 'oci-layout', 'index.json', 'blobs']);
  rmSync(layerTmp);
  return out;
}

/**
 * Mounts cgroups at /sys/fs/cgroup in the mount namespace `exec` runs commands in, in the machine's own
 * layout: a cgroup2 filesystem when the machine is unified-only, else a tmpfs with each v1 hierarchy the
 * machine mounts (same options, so the same hierarchies) plus cgroup2 on `unified` where it has one.
 */
export async function mountCgroups(exec: (argv: string[]) => Promise<RunResult>, mounts = readFileSync('/proc/self/mounts', 'utf8')): Promise<void> {
  const lines = mounts
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length >= 4 && (f[1] === '/sys/fs/cgroup' || f[1].startsWith('/sys/fs/cgroup/')));
  const root = lines.find((f) => f[1] === '/sys/fs/cgroup');
  if (root?.[2] === 'cgroup2') {
    await exec(['mount', '-t', 'cgroup2', 'cgroup2', '/sys/fs/cgroup']);
    return;
  }
  if (!root) throw new Error('the machine has no cgroups mounted at /sys/fs/cgroup: containerd needs them');
  await exec(['mount', '-t', 'tmpfs', '-o', 'mode=755', 'cgroup', '/sys/fs/cgroup']);
  for (const [, target, type, opts] of lines.filter((f) => f[1] !== '/sys/fs/cgroup')) {
    if (type !== 'cgroup' && type !== 'cgroup2') continue;
    // Keep the options naming the hierarchy (controllers, name=…), not the machine's mount flags.
    const keep = opts.split(',').filter((o) => !/^(rw|ro|nosuid|nodev|noexec|relatime|noatime|nsdelegate|memory_recursiveprot)$/.test(o));
    await exec(['mkdir', '-p', target]);
    await exec(['mount', '-t', type, ...(keep.length && type === 'cgroup' ? ['-o', keep.join(',')] : []), type, target]);
  }
}

export interface ContainerdOptions {
  /** Network configuration files for /etc/cni/net.d: file name → content. */
  cniConfigs?: Record<string, string>;
  /** Plugins for /opt/cni/bin: name → path of an executable on the machine (linked there, as a user would). */
  cniPlugins?: Record<string, string>;
  /** containerd namespace for ctr commands (CNI container ids are `<namespace>-<id>`). */
  namespace?: string;
}

/** A containerd daemon of the test's own, in a private mount namespace inside `hostNs`. */
export class PrivateContainerd {
  private containerd?: ChildProcess;
  logs = '';
  readonly namespace: string;

  private constructor(
    readonly hostNs: TestNetns,
    readonly dir: string,
    private readonly holder: ChildProcess,
    namespace: string,
  ) {
    this.namespace = namespace;
  }

  get holderPid(): number {
    return this.holder.pid!;
  }

  get address(): string {
    return join(this.dir, 'containerd.sock');
  }

  static async start(hostNs: TestNetns, opts: ContainerdOptions = {}): Promise<PrivateContainerd> {
    for (const bin of ['containerd', 'ctr', 'containerd-shim-runc-v2', 'runc']) {
      if ((await run(['sh', '-c', `command -v ${bin}`], { allowFail: true })).code !== 0) {
        throw new Error(`${bin} is missing: apt-get install containerd (scripts/install-deps.sh --test)`);
      }
    }
    const dir = mkdtempSync(join(tmpdir(), 'netd-ctrd-'));
    // `ip netns exec` puts the holder in the test's network namespace and in a new mount namespace (root
    // made a slave: nothing mounted there reaches the machine) with a sysfs of that network namespace.
    const holder = hostNs.spawn(['sleep', 'infinity']);
    const c = new PrivateContainerd(hostNs, dir, holder, opts.namespace ?? 'netdtest');
    try {
      await c.waitHolder();
      await c.prepareMounts(opts);
      await c.launch();
    } catch (err) {
      await c.destroy();
      throw err;
    }
    return c;
  }

  private async waitHolder(): Promise<void> {
    const want = statSync(this.hostNs.path).ino;
    for (let i = 0; i < 300; i++) {
      try {
        const pid = this.holder.pid!;
        if (statSync(`/proc/${pid}/ns/net`).ino === want && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep') {
          if (statSync(`/proc/${pid}/ns/mnt`).ino === statSync('/proc/self/ns/mnt').ino) throw new Error('the holder shares the test runner’s mount namespace');
          return;
        }
      } catch (err) {
        if (err instanceof Error && /holder/.test(err.message)) throw err;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('the containerd namespace holder never started');
  }

  /** Runs a command in containerd's network and mount namespaces. */
  exec(argv: string[], opts?: RunOptions): Promise<RunResult> {
    return run(['nsenter', '-t', String(this.holderPid), '-m', '-n', '--', ...argv], opts);
  }

  /** Runs `ctr` against this containerd, in its namespaces. */
  ctr(args: string[], opts?: RunOptions): Promise<RunResult> {
    return this.exec(['ctr', '--address', this.address, '--namespace', this.namespace, ...args], opts);
  }

  /** Starts a long-running `ctr` (e.g. a foreground `ctr run`), in containerd's namespaces. */
  spawnCtr(args: string[]): ChildProcess {
    return spawn('nsenter', ['-t', String(this.holderPid), '-m', '-n', '--', 'ctr', '--address', this.address, '--namespace', this.namespace, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  private async prepareMounts(opts: ContainerdOptions): Promise<void> {
    const x = (argv: string[]) => this.exec(argv);
    await mountCgroups(x);
    await x(['mount', '-t', 'tmpfs', '-o', 'mode=755', 'run', '/run']);
    // Upper layers on a tmpfs of this namespace only: gone with it, whatever happens to the test.
    const scratch = join(this.dir, 'scratch');
    mkdirSync(scratch);
    await x(['mount', '-t', 'tmpfs', '-o', 'mode=700', 'scratch', scratch]);
    for (const [name, path] of [['etc', '/etc'], ['var-lib', '/var/lib']]) {
      await x(['mkdir', join(scratch, `${name}-up`), join(scratch, `${name}-work`)]);
      await x(['mount', '-t', 'overlay', '-o', `lowerdir=${path},upperdir=${join(scratch, `${name}-up`)},workdir=${join(scratch, `${name}-work`)}`, 'overlay', path]);
    }
    // /opt holds nothing containerd needs: a bare tmpfs (the mount point must exist: Debian's base-files has it).
    if (!existsSync('/opt')) throw new Error('/opt does not exist on this machine: cannot give ctr a private /opt/cni/bin');
    await x(['mount', '-t', 'tmpfs', '-o', 'mode=755', 'opt', '/opt']);
    await x(['mkdir', '-p', CNI_CONF_DIR, CNI_BIN_DIR, CNI_CACHE_DIR]);
    // Only the test's configurations and cache (the machine may have its own, e.g. podman's
    // 87-podman-bridge.conflist, or results cached by podman's CNI backend).
    await x(['mount', '-t', 'tmpfs', '-o', 'mode=755', 'cni-conf', CNI_CONF_DIR]);
    await x(['mount', '-t', 'tmpfs', '-o', 'mode=700', 'cni-cache', CNI_CACHE_DIR]);
    for (const [file, text] of Object.entries(opts.cniConfigs ?? {})) await this.writeFile(join(CNI_CONF_DIR, file), text);
    for (const [name, path] of Object.entries(opts.cniPlugins ?? {})) await this.installPlugin(name, path);
    writeFileSync(join(this.dir, 'config.toml'), this.config());
  }

  /** Writes a file at `path` as this mount namespace sees it. */
  async writeFile(path: string, text: string): Promise<void> {
    await this.exec(['sh', '-c', 'cat > "$1"', 'sh', path], { input: text });
  }

  /** Links `path` (an executable of the machine) as /opt/cni/bin/NAME inside the namespace. */
  async installPlugin(name: string, path: string): Promise<void> {
    await this.exec(['ln', '-sf', path, join(CNI_BIN_DIR, name)]);
  }

  private config(): string {
    const disabled = ['io.containerd.grpc.v1.cri', 'io.containerd.internal.v1.opt', 'io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.zfs', 'io.containerd.snapshotter.v1.devmapper', 'io.containerd.snapshotter.v1.aufs', 'io.containerd.tracing.processor.v1.otlp', 'io.containerd.internal.v1.tracing'];
    return [
      'version = 2',
      `root = ${JSON.stringify(join(this.dir, 'root'))}`,
      `state = ${JSON.stringify(join(this.dir, 'state'))}`,
      `disabled_plugins = ${JSON.stringify(disabled)}`,
      '[grpc]',
      `  address = ${JSON.stringify(this.address)}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(`${this.address}.ttrpc`)}`,
      '[debug]',
      `  address = ${JSON.stringify(join(this.dir, 'debug.sock'))}`,
      '  level = "info"',
      '[metrics]',
      '  address = ""',
      '',
    ].join('\n');
  }

  private async launch(): Promise<void> {
    const child = spawn('nsenter', ['-t', String(this.holderPid), '-m', '-n', '--', 'containerd', '--config', join(this.dir, 'config.toml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.containerd = child;
    child.stdout!.on('data', (d) => (this.logs += d));
    child.stderr!.on('data', (d) => (this.logs += d));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`containerd exited with ${child.exitCode ?? child.signalCode}:\n${this.logs.slice(-4000)}`);
      if (existsSync(this.address) && (await this.ctr(['version'], { allowFail: true, timeoutMs: 5000 })).code === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`containerd did not answer within 30 s:\n${this.logs.slice(-4000)}`);
  }

  /** Builds the busybox image offline and imports it as `name`. */
  async importBusybox(name: string): Promise<void> {
    const work = join(this.dir, 'image');
    mkdirSync(work);
    const rootfs = await busyboxRootfs(join(work, 'rootfs'));
    const tar = await ociImageTar(rootfs, name, work);
    await this.ctr(['image', 'import', '--snapshotter', 'native', tar], { timeoutMs: 60_000 });
  }

  /** PID of a task (from `ctr task ls`), or undefined when there is none. */
  async taskPid(id: string): Promise<number | undefined> {
    const rows = (await this.ctr(['task', 'ls'])).stdout.split('\n').slice(1);
    const row = rows.map((r) => r.trim().split(/\s+/)).find((f) => f[0] === id);
    return row ? Number(row[1]) : undefined;
  }

  /** Task status (RUNNING, STOPPED, …) or undefined. */
  async taskStatus(id: string): Promise<string | undefined> {
    const rows = (await this.ctr(['task', 'ls'])).stdout.split('\n').slice(1);
    return rows.map((r) => r.trim().split(/\s+/)).find((f) => f[0] === id)?.[2];
  }

  /** Files libcni cached for the results of ADDs (removed by a successful DEL). */
  async cachedResults(): Promise<string[]> {
    const r = await this.exec(['ls', '-1', join(CNI_CACHE_DIR, 'results')], { allowFail: true });
    return r.code === 0 ? r.stdout.split('\n').filter(Boolean) : [];
  }

  /** Processes in this containerd's mount namespace (containerd, its shims, tasks' parents): all started by the test. */
  private processesInNamespace(): number[] {
    let ino: number;
    try {
      ino = statSync(`/proc/${this.holderPid}/ns/mnt`).ino;
    } catch {
      return [];
    }
    const pids: number[] = [];
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p) || Number(p) === this.holderPid) continue;
      try {
        if (statSync(`/proc/${p}/ns/mnt`).ino === ino) pids.push(Number(p));
      } catch {
        /* gone */
      }
    }
    return pids;
  }

  async destroy(): Promise<void> {
    if (this.containerd && this.containerd.exitCode === null && this.containerd.signalCode === null) {
      // Tasks first (runc removes their cgroups), then the daemon.
      const tasks = await this.ctr(['task', 'ls', '-q'], { allowFail: true, timeoutMs: 10_000 });
      for (const id of tasks.code === 0 ? tasks.stdout.split('\n').filter(Boolean) : []) {
        await this.ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFail: true, timeoutMs: 10_000 });
        await this.ctr(['task', 'delete', '-f', id], { allowFail: true, timeoutMs: 10_000 });
      }
      // runc removed the tasks' cgroups; the namespace's parent cgroups (/<namespace>) are left empty.
      await this.exec(['sh', '-c', 'for d in /sys/fs/cgroup/"$1" /sys/fs/cgroup/*/"$1"; do [ -d "$d" ] && rmdir "$d"; done; true', 'sh', this.namespace], { allowFail: true });
      const exited = new Promise((r) => this.containerd!.once('exit', r));
      this.containerd.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    }
    // Whatever is left in the namespace (a shim, a task) was started by this test.
    for (const pid of this.processesInNamespace()) {
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
    rmSync(this.dir, { recursive: true, force: true });
  }
}
