/**
 * A real OCI runtime (Debian's runc) inside a test's "host" namespace: a busybox-static rootfs (no registry),
 * a mount namespace of the test's own with cgroups (helpers/mount-namespace.ts), and runc with a private
 * --root. Nothing is mounted in the machine's own.
 */
import { spawn, spawnSync } from 'node:child_process';
import { openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxMissing, busyboxRootfs } from './busybox.js';
import { MountNamespace } from './mount-namespace.js';
import { run, type RunResult, type TestNetns } from './netns.js';

export const RUNC = 'runc';

/** Why the runtime test cannot run here (a missing tool), or undefined. */
export function runtimeMissing(): string | undefined {
  const missing = busyboxMissing();
  if (missing) return missing;
  if (spawnSync(RUNC, ['--version']).status !== 0) return 'runc is missing (apt-get install runc)';
  return undefined;
}

/** runc in a test namespace: its own mount namespace with cgroups, a private state root, bundles in a temp dir. */
export class Runc {
  private constructor(
    readonly ns: TestNetns,
    private readonly mountNs: MountNamespace,
    readonly dir: string,
  ) {}

  static async start(ns: TestNetns): Promise<Runc> {
    const { mountNs, dir } = await MountNamespace.withDir(ns, 'runc');
    return new Runc(ns, mountNs, dir);
  }

  get root(): string {
    return join(this.dir, 'state');
  }

  /** Runs runc (argv after the global flags) in the holder's namespaces; rejects on a non-zero exit. */
  exec(args: string[], allowFail = false): Promise<RunResult> {
    return this.mountNs.exec([RUNC, '--root', this.root, ...args], { allowFail });
  }

  /**
   * `runc run -d` (or `create`): the container keeps runc's stdio, so it gets a log file rather than the
   * pipes `run` waits on. Resolves with runc's exit code and what it (and the hooks, on failure) wrote.
   */
  detached(args: string[]): Promise<{ code: number | null; log: string }> {
    const logPath = join(this.dir, `runc-${Date.now()}-${Math.random().toString(16).slice(2)}.log`);
    const fd = openSync(logPath, 'w');
    return new Promise((resolve, reject) => {
      const [cmd, ...argv] = this.mountNs.argv([RUNC, '--root', this.root, ...args]);
      const child = spawn(cmd, argv, { stdio: ['ignore', fd, fd] });
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
    await this.mountNs.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
