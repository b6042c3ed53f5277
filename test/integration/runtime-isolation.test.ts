/**
 * The real-runtime harnesses keep a runtime's files off the machine: podman's CNI backend caches each ADD's
 * result in libcni's /var/lib/cni/results (not configurable in podman 4.3), and writes its own state under
 * /run and /var/lib. With podman driving netd-cni, the cache entry must exist in the test's mount namespace
 * and nowhere on the machine; a podman run must leave /run/netns and the machine's CNI directories alone.
 * (scripts/run-tests.js checks the same for the whole suite, with scripts/machine-state.js.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { requireRoot } from '../helpers/netns.js';
import { TestDaemon, Topology } from '../helpers/daemon.js';
import { CNI_CACHE_DIR } from '../helpers/mount-namespace.js';
import { IMAGE, Podman, podmanMissing } from '../helpers/podman.js';

const machineEntries = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);

test('podman: libcni’s result cache and the container’s netns stay in the test’s mount namespace', async () => {
  requireRoot();
  const missing = podmanMissing();
  if (missing) throw new Error(`the podman isolation test cannot run: ${missing}; run scripts/install-deps.sh --test`);
  const topo = await Topology.create('iso');
  let podman: Podman | undefined;
  let daemon: TestDaemon | undefined;
  try {
    podman = await Podman.start(topo.host);
    daemon = await TestDaemon.start(podman.ns);
    podman.writeConflist({ cniVersion: '0.4.0', name: 'isonet', plugins: [{ type: 'netd-cni', host: daemon.host, subnet: '198.51.100.0/24' }] });
    const netnsBefore = machineEntries('/run/netns');
    const id = (await podman.run(['run', '-d', '--name', 'iso1', '--network', 'isonet', IMAGE, 'sleep', '1000'])).stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);

    const inside = await podman.ns.cniCachedResults();
    assert.ok(inside.some((f) => f.includes(id)), `libcni cached the ADD in the test's namespace: ${JSON.stringify(inside)}`);
    const onMachine = machineEntries(`${CNI_CACHE_DIR}/results`).filter((f) => f.includes(id));
    assert.deepEqual(onMachine, [], `the machine's ${CNI_CACHE_DIR}/results holds nothing of the test's container`);
    const sandbox = (await podman.inspect('iso1')).NetworkSettings.SandboxKey;
    assert.match(sandbox, /^\/run\/netns\//);
    const newNetns = machineEntries('/run/netns').filter((e) => !netnsBefore.includes(e) && sandbox.endsWith(`/${e}`));
    assert.deepEqual(newNetns, [], `podman's ${sandbox} is in the test's /run, not the machine's`);

    await podman.run(['rm', '--force', '--time', '0', 'iso1']);
    assert.ok(!(await podman.ns.cniCachedResults()).some((f) => f.includes(id)), 'the DEL removed the cached result');
  } finally {
    await podman?.destroy();
    await daemon?.destroy();
    await topo.destroy();
  }
});
