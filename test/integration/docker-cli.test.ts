/**
 * 7. The stock docker CLI drives netd's Docker Engine network API: network create, ls, inspect,
 * connect, disconnect, rm — with whichever docker client comes first in PATH (Debian's docker.io 20.10,
 * API 1.41, or a newer one). Without a docker client it fails under CI=true (the test setup,
 * scripts/install-deps.sh --test, installs one) and is skipped, saying so, elsewhere.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { TestContainer, requireRoot, run } from '../helpers/netns.js';
import { TestDaemon, Topology } from '../helpers/daemon.js';

const docker = spawnSync('sh', ['-c', 'command -v docker'], { encoding: 'utf8' }).stdout.trim();
const NO_DOCKER = 'no docker CLI on this machine (scripts/install-deps.sh --test installs one: apt-get install docker.io)';
const inCi = /^(1|true|yes)$/i.test(process.env.CI ?? '');

test('7. the docker CLI can create, list, inspect, connect, disconnect and remove networks', { skip: docker || inCi ? false : NO_DOCKER }, async () => {
  assert.ok(docker, `${NO_DOCKER}; under CI this test must run`);
  requireRoot();
  const version = spawnSync(docker, ['--version'], { encoding: 'utf8' }).stdout.trim();
  console.log(`docker client: ${docker} (${version})`);
  const topo = await Topology.create('dk');
  const daemon = await TestDaemon.start(topo.host);
  const config = mkdtempSync(join(tmpdir(), 'netd-dockercfg-'));
  const container = await TestContainer.start();
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_CONFIG: config, DOCKER_HOST: daemon.host };
  delete env.DOCKER_CONTEXT;
  const d = (args: string[], allowFail = false) => run([docker, ...args], { env, allowFail });
  try {
    const id = (await d(['network', 'create', '--subnet', '198.51.100.64/26', '--gateway', '198.51.100.65', '--label', 'team=net', 'dnet'])).stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);

    const ls = (await d(['network', 'ls'])).stdout;
    assert.match(ls, /NETWORK ID\s+NAME\s+DRIVER\s+SCOPE/);
    assert.match(ls, new RegExp(`${id.slice(0, 12)}\\s+dnet\\s+bridge\\s+local`));
    assert.match(ls, /\sbridge\s+bridge\s+local/);
    assert.match((await d(['network', 'ls', '--filter', 'label=team=net', '-q'])).stdout, new RegExp(`^${id.slice(0, 12)}\\s*$`));

    const inspected = JSON.parse((await d(['network', 'inspect', 'dnet'])).stdout)[0];
    assert.equal(inspected.Id, id);
    assert.deepEqual(inspected.IPAM.Config, [{ Subnet: '198.51.100.64/26', Gateway: '198.51.100.65' }]);
    assert.equal(inspected.Labels.team, 'net');

    await d(['network', 'connect', '--ip', '198.51.100.70', 'dnet', String(container.pid)]);
    const withContainer = JSON.parse((await d(['network', 'inspect', 'dnet'])).stdout)[0];
    assert.deepEqual(Object.values(withContainer.Containers).map((c) => (c as { IPv4Address: string }).IPv4Address), ['198.51.100.70/26']);
    const addr = await container.ipJson<{ addr_info: { local: string }[] }[]>(['addr', 'show', 'eth0']);
    assert.ok(addr[0].addr_info.some((a) => a.local === '198.51.100.70'));

    const busy = await d(['network', 'rm', 'dnet'], true);
    assert.notEqual(busy.code, 0);
    assert.match(busy.stderr, /active endpoint/);

    await d(['network', 'disconnect', 'dnet', String(container.pid)]);
    assert.match((await d(['network', 'rm', 'dnet'])).stdout, /dnet/);
    const missing = await d(['network', 'inspect', 'dnet'], true);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /not found|no such network/i); // 20.10 words a 404 itself: "No such network: dnet"
  } finally {
    await container.stop();
    rmSync(config, { recursive: true, force: true });
    await daemon.destroy();
    await topo.destroy();
  }
});
