/**
 * The test image every real-runtime test uses, made offline: a root filesystem with Debian's static busybox
 * (`apt-get install busybox-static`) and one symlink per applet. runc runs it as a bundle's rootfs, podman
 * imports it as a tarball, containerd as an OCI image layout (helpers/containerd.ts).
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

export const BUSYBOX = '/bin/busybox';

/** Why no busybox image can be made here, or undefined. */
export function busyboxMissing(): string | undefined {
  return existsSync(BUSYBOX) ? undefined : `${BUSYBOX} is missing (apt-get install busybox-static; scripts/install-deps.sh --test)`;
}

/**
 * A minimal container root filesystem in `dir`: a static busybox with one symlink per applet in /bin, the
 * directories a runtime mounts over (/proc, /sys, /dev, /run, /tmp), an empty /www for httpd, and the few
 * files a shell expects. Returns `dir`.
 */
export function busyboxRootfs(dir: string): string {
  const missing = busyboxMissing();
  if (missing) throw new Error(missing);
  for (const d of ['bin', 'etc', 'tmp', 'root', 'proc', 'sys', 'dev', 'run', 'var', 'www']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(dir, 'bin/busybox'));
  chmodSync(join(dir, 'bin/busybox'), 0o755);
  const applets = spawnSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter((a) => /^[\w.[-]+$/.test(a));
  if (applets.length < 100) throw new Error(`${BUSYBOX} --list gave ${applets.length} applets: is it busybox-static?`);
  // `busybox --list` names busybox itself: linking it would replace the binary with a loop.
  for (const a of applets) if (a !== 'busybox') symlinkSync('busybox', join(dir, 'bin', a));
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\n');
  return dir;
}
