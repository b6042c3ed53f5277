/**
 * scripts/machine-state.js, which scripts/run-tests.js uses after the suite to fail a run that changed the
 * machine outside its namespaces: here on a scratch tree standing in for `/`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../helpers/daemon.js';

type State = Record<string, string[]>;
const { machineState, changes } = createRequire(__filename)(join(REPO, 'scripts/machine-state.js')) as {
  machineState(root?: string): State;
  changes(before: State, after: State): string[];
};

test('machine-state: a run that leaves everything as it was reports nothing; each kind of change one line', () => {
  const root = mkdtempSync(join(tmpdir(), 'netd-machine-state-'));
  try {
    const p = (path: string) => join(root, path);
    for (const d of ['var/lib/cni/results', 'etc/cni/net.d', 'run/netns', 'run/containerd', 'run/docker/plugins', 'sys/fs/cgroup/memory/system.slice']) mkdirSync(p(d), { recursive: true });
    writeFileSync(p('var/lib/cni/results/mynet-abc-eth0'), '{}');
    writeFileSync(p('etc/cni/net.d/87-podman-bridge.conflist'), '{}');
    writeFileSync(p('run/netns/someone-elses'), '');
    const before = machineState(root);
    assert.deepEqual(changes(before, machineState(root)), []);

    // Entries that are not the tests' (a netns not named netdt-*) may come and go.
    writeFileSync(p('run/netns/cni-1234'), '');
    // Nor do systemd's own units (a timer's service, a login's slice) started while the suite ran.
    for (const unit of ['apt-daily.service', 'user.slice', 'session-3.scope']) mkdirSync(p(`sys/fs/cgroup/memory/${unit}`));
    assert.deepEqual(changes(before, machineState(root)), []);

    writeFileSync(p('var/lib/cni/results/mynet-abc-eth0'), '{"changed":true}'); // a cached result rewritten
    utimesSync(p('var/lib/cni/results/mynet-abc-eth0'), new Date(), new Date(Date.now() + 5000));
    writeFileSync(p('run/netns/netdt-pdm-123456'), ''); // a test's netns left behind
    mkdirSync(p('run/containerd/io.containerd.runtime.v2.task')); // runtime state on the machine
    mkdirSync(p('sys/fs/cgroup/memory/libpod_parent')); // a runtime's cgroup on the machine
    writeFileSync(p('run/docker/plugins/netd.sock'), ''); // a plugin socket a dockerd test left on the machine
    const found = changes(before, machineState(root));
    const has = (re: RegExp) => assert.ok(found.some((l) => re.test(l)), `${re} among ${JSON.stringify(found, null, 1)}`);
    has(/^\/var\/lib\/cni: added or changed .*mynet-abc-eth0 file 16 /);
    has(/^\/var\/lib\/cni: removed or changed .*mynet-abc-eth0 file 2 /);
    has(/^\/run\/netns: left .*netdt-pdm-123456$/);
    has(/^\/run\/containerd: left .*io\.containerd\.runtime\.v2\.task$/);
    has(/^\/sys\/fs\/cgroup: left .*memory\/libpod_parent$/);
    has(/^\/run\/docker\/plugins: left .*netd\.sock$/);
    assert.ok(!found.some((l) => /cni-1234|someone-elses|system\.slice/.test(l)), JSON.stringify(found));

    // A file added and removed again still shows: its directory changed.
    const fresh = machineState(root);
    writeFileSync(p('etc/cni/net.d/zz.conflist'), '{}');
    rmSync(p('etc/cni/net.d/zz.conflist'));
    utimesSync(p('etc/cni/net.d'), new Date(), new Date(Date.now() + 10_000));
    assert.deepEqual(changes(fresh, machineState(root)).map((l) => l.split(' ').slice(0, 7).join(' ')), [
      `/etc/cni/net.d: added or changed ${p('etc/cni/net.d')} dir -`,
      `/etc/cni/net.d: removed or changed ${p('etc/cni/net.d')} dir -`,
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('machine-state: nf_tables tables named netd* are found in `nft list tables` (the nftables backend’s leak check)', () => {
  const { netdNftTablesIn } = createRequire(__filename)(join(REPO, 'scripts/machine-state.js')) as { netdNftTablesIn(text: string): string[] };
  const text = ['table ip filter', 'table ip nat', 'table inet netd-0123abcd', 'table inet netd', 'table ip6 netdx', 'table inet firewalld', 'table ip docker-bridges', ''].join('\n');
  assert.deepEqual(netdNftTablesIn(text), ['inet netd', 'inet netd-0123abcd', 'ip6 netdx']);
  assert.deepEqual(netdNftTablesIn('table ip filter\n'), []);
});
