/**
 * A private containerd for integration tests, driven by the real `ctr` client (Debian's containerd 1.6).
 *
 * Everything of it lives in a mount namespace of the test's own inside a test network namespace
 * (helpers/mount-namespace.ts: cgroups, private /run, /etc, /var/lib, /opt), which containerd and every `ctr`
 * command join:
 * - its own root, state and gRPC socket under a temporary directory, the native snapshotter (works on any
 *   filesystem, also an overlay root), the CRI plugin and the /opt plugin disabled;
 * - containerd 1.6 puts shim sockets in /run/containerd/s and runc state and ctr's FIFOs under /run/containerd
 *   whatever its config says: the namespace's own /run;
 * - `ctr run --cni` reads its network configuration from /etc/cni/net.d and plugins from /opt/cni/bin (go-cni's
 *   defaults, not configurable in ctr), and libcni caches results in /var/lib/cni: all private to the namespace.
 * The image is a busybox-static rootfs packed by hand as an OCI image layout and loaded with
 * `ctr image import`: no registry.
 */
import { type ChildProcess } from 'node:child_process';
import { copyFileSync, createReadStream, existsSync, mkdirSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { BUSYBOX, busyboxRootfs } from './busybox.js';
import { removeTestCgroups } from './cgroups.js';
import { CNI_BIN_DIR, CNI_CACHE_DIR, CNI_CONF_DIR, MountNamespace } from './mount-namespace.js';
import { run, type RunOptions, type RunResult, type TestNetns } from './netns.js';

export { BUSYBOX, CNI_BIN_DIR, CNI_CACHE_DIR, CNI_CONF_DIR };

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
    private readonly mountNs: MountNamespace,
    namespace: string,
  ) {
    this.namespace = namespace;
  }

  get holderPid(): number {
    return this.mountNs.pid;
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
    const { mountNs, dir } = await MountNamespace.withDir(hostNs, 'ctrd');
    const c = new PrivateContainerd(hostNs, dir, mountNs, opts.namespace ?? 'netdtest');
    try {
      for (const [file, text] of Object.entries(opts.cniConfigs ?? {})) await c.writeFile(join(CNI_CONF_DIR, file), text);
      for (const [name, path] of Object.entries(opts.cniPlugins ?? {})) await c.installPlugin(name, path);
      writeFileSync(join(dir, 'config.toml'), c.config());
      await c.launch();
    } catch (err) {
      await c.destroy();
      throw err;
    }
    return c;
  }

  /** Runs a command in containerd's network and mount namespaces. */
  exec(argv: string[], opts?: RunOptions): Promise<RunResult> {
    return this.mountNs.exec(argv, opts);
  }

  /** Runs `ctr` against this containerd, in its namespaces. */
  ctr(args: string[], opts?: RunOptions): Promise<RunResult> {
    return this.exec(['ctr', '--address', this.address, '--namespace', this.namespace, ...args], opts);
  }

  /** Starts a long-running `ctr` (e.g. a foreground `ctr run`), in containerd's namespaces. */
  spawnCtr(args: string[]): ChildProcess {
    return this.mountNs.spawn(['ctr', '--address', this.address, '--namespace', this.namespace, ...args]);
  }

  /** Writes a file at `path` as this mount namespace sees it. */
  writeFile(path: string, text: string): Promise<void> {
    return this.mountNs.writeFile(path, text);
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
    const child = this.mountNs.spawn(['containerd', '--config', join(this.dir, 'config.toml')]);
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
    const rootfs = busyboxRootfs(join(work, 'rootfs'));
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
  cachedResults(): Promise<string[]> {
    return this.mountNs.cniCachedResults();
  }

  async destroy(): Promise<void> {
    if (this.containerd && this.containerd.exitCode === null && this.containerd.signalCode === null) {
      // Tasks first (runc removes their cgroups), then the daemon.
      const tasks = await this.ctr(['task', 'ls', '-q'], { allowFail: true, timeoutMs: 10_000 });
      for (const id of tasks.code === 0 ? tasks.stdout.split('\n').filter(Boolean) : []) {
        await this.ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFail: true, timeoutMs: 10_000 });
        await this.ctr(['task', 'delete', '-f', id], { allowFail: true, timeoutMs: 10_000 });
      }
      const exited = new Promise((r) => this.containerd!.once('exit', r));
      this.containerd.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    }
    // Whatever is left in the namespace (a shim, a task) was started by this test.
    await this.mountNs.destroy();
    // runc removed the tasks' cgroups; the namespace's parent cgroups (/<namespace>) are left empty.
    removeTestCgroups(this.namespace);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
