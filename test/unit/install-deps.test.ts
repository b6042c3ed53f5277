/**
 * scripts/install-deps.sh --test against stub dpkg-query/apt-get/systemctl/npm (nothing is installed):
 * it disables only the units of packages it installed, and leaves Debian's containerd and runc out
 * where Docker CE's containerd.io is installed (they conflict).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../helpers/daemon.js';

const BASE = 'iproute2 iptables nftables dnsutils iperf3 netcat-openbsd conntrack iputils-ping procps util-linux python3 make g++ socat kmod busybox-static etcd-server';

function runScript(installed: string, stubs = ['docker']): { apt: string[]; systemctl: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'netd-install-deps-'));
  try {
    const log = join(dir, 'log');
    const stub = (name: string, body: string) => {
      writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(dir, name), 0o755);
    };
    stub('dpkg-query', `for a; do pkg=$a; done; for p in $FAKE_INSTALLED; do [ "$p" = "$pkg" ] && { printf 'install ok installed'; exit 0; }; done; exit 1`);
    stub('apt-get', `echo "apt-get $*" >>"${log}"`);
    stub('systemctl', `echo "systemctl $*" >>"${log}"`);
    stub('npm', 'exit 0');
    for (const name of stubs) stub(name, 'exit 0');
    const r = spawnSync('bash', [join(REPO, 'scripts/install-deps.sh'), '--test'], {
      env: { PATH: `${dir}:/usr/bin:/bin`, FAKE_INSTALLED: installed, NETD_POLICY_RC_D: join(dir, 'policy-rc.d') },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const lines = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
    const words = (prefix: string) => lines.filter((l) => l.startsWith(prefix)).flatMap((l) => l.split(' ').slice(1));
    return { apt: words('apt-get install'), systemctl: words('systemctl disable') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('only the units of packages installed in this run are disabled', () => {
  const r = runScript(`${BASE} runc containerd docker.io`); // podman is the one missing
  assert.ok(r.apt.includes('podman'), r.apt.join(' '));
  assert.deepEqual(r.systemctl.filter((w) => w.endsWith('.service') || w.endsWith('.socket')).sort(), ['podman-restart.service', 'podman.service', 'podman.socket']);
});

test('etcd-server is installed for the cluster-store tests and its system etcd.service disabled, never started', () => {
  const r = runScript('iproute2 iptables nftables dnsutils iperf3 netcat-openbsd conntrack iputils-ping procps util-linux python3 make g++ socat kmod busybox-static runc containerd docker.io podman');
  assert.ok(r.apt.includes('etcd-server'), r.apt.join(' '));
  assert.deepEqual(r.systemctl.filter((w) => w.endsWith('.service') || w.endsWith('.socket')), ['etcd.service']);
});

test('with Docker CE\'s containerd.io installed, Debian\'s containerd and runc are not asked for', () => {
  const r = runScript(`${BASE} containerd.io docker.io`);
  assert.ok(r.apt.includes('podman'), r.apt.join(' '));
  assert.ok(!r.apt.includes('containerd') && !r.apt.includes('runc'), r.apt.join(' '));
  assert.ok(!r.systemctl.includes('containerd.service') && !r.systemctl.includes('docker.service'), r.systemctl.join(' '));
});

test('a docker client without dockerd: docker.io is asked for (the Docker plugin test runs dockerd)', (t) => {
  const NO_DOCKERD = `${BASE} runc containerd podman`;
  assert.ok(!runScript(NO_DOCKERD, ['docker', 'dockerd']).apt.includes('docker.io'), 'docker and dockerd there: nothing to install');
  // The stub PATH keeps /usr/bin and /bin (the script needs them): where dockerd lives there, it cannot be hidden.
  if (existsSync('/usr/bin/dockerd') || existsSync('/bin/dockerd')) return t.skip('dockerd is in /usr/bin on this machine: cannot hide it from the script');
  assert.ok(runScript(NO_DOCKERD, ['docker']).apt.includes('docker.io'));
});
