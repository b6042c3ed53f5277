/**
 * cgroups for container runtimes in a test's mount namespace. `ip netns exec` gives a namespace a fresh sysfs,
 * which has no cgroups mounted; runc, containerd and podman need them. `mountCgroups` repeats the machine's
 * layout there (the same hierarchies, so cgroups made inside are the machine's), and `removeTestCgroups`
 * removes, once the test's containers are gone, the empty cgroups a runtime left under its parent's name.
 */
import { readFileSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { RunResult } from './netns.js';

const ROOT = '/sys/fs/cgroup';

/**
 * Mounts cgroups at /sys/fs/cgroup in the mount namespace `exec` runs commands in, in the machine's own
 * layout: a cgroup2 filesystem when the machine is unified-only, else a tmpfs with each v1 hierarchy the
 * machine mounts (its controllers or name=…, so the same hierarchies) plus cgroup2 on `unified` where it has one.
 */
export async function mountCgroups(exec: (argv: string[]) => Promise<RunResult>, mounts = readFileSync('/proc/self/mounts', 'utf8')): Promise<void> {
  const lines = mounts
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length >= 4 && (f[1] === ROOT || f[1].startsWith(`${ROOT}/`)));
  const root = lines.find((f) => f[1] === ROOT);
  if (root?.[2] === 'cgroup2') {
    await exec(['mount', '-t', 'cgroup2', 'cgroup2', ROOT]);
    return;
  }
  if (!root) throw new Error(`the machine has no cgroups mounted at ${ROOT}: container runtimes need them`);
  await exec(['mount', '-t', 'tmpfs', '-o', 'mode=755', 'cgroup', ROOT]);
  for (const [, target, type, opts] of lines.filter((f) => f[1] !== ROOT)) {
    if (type !== 'cgroup' && type !== 'cgroup2') continue;
    // Keep the options naming the hierarchy (controllers, name=…), not the machine's mount flags.
    const keep = opts.split(',').filter((o) => !/^(rw|ro|nosuid|nodev|noexec|relatime|noatime|nsdelegate|memory_recursiveprot|clone_children|noprefix|release_agent=.*)$/.test(o));
    await exec(['mkdir', '-p', target]);
    await exec(['mount', '-t', type, ...(keep.length && type === 'cgroup' ? ['-o', keep.join(',')] : []), type, target]);
  }
}

/**
 * Removes the cgroup tree `name` (e.g. podman's `libpod_parent`, a containerd namespace) from every hierarchy
 * of the machine, deepest first, wherever it is empty: what is still in use (another test's) stays.
 */
export function removeTestCgroups(name: string, root = ROOT): void {
  if (!/^[\w.-]+$/.test(name) || name === '.' || name === '..') throw new Error(`not a cgroup name of a test: ${JSON.stringify(name)}`);
  const rmTree = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rmTree(join(dir, e.name));
    try {
      rmdirSync(dir);
    } catch {
      /* still in use or not empty */
    }
  };
  const candidates = [join(root, name), ...readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(root, e.name, name))];
  for (const dir of candidates) {
    try {
      if (statSync(dir).isDirectory()) rmTree(dir);
    } catch {
      /* not in this hierarchy */
    }
  }
}
