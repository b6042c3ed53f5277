/**
 * containerd drives netd through the CNI plugin: the real `ctr run --cni` (Debian's containerd 1.6) with
 * examples/cni/containerd.conflist (the `netd-cni` plugin from package.json's `bin`, linked into a private
 * /opt/cni/bin), against a real netd daemon, in throwaway namespaces (test/helpers/containerd.ts).
 *
 * What containerd 1.6's ctr does (cmd/ctr/commands/run/run.go): it runs the CNI ADD itself, with
 * CNI_CONTAINERID `<namespace>-<id>` and CNI_NETNS `/proc/<task pid>/ns/net`; it sends a DEL, with an
 * empty CNI_NETNS, only from a foreground `ctr run` once its task has exited. `ctr run -d`, `ctr task kill`,
 * `ctr task delete` and `ctr container rm` never send one: netd's dead-container sweep must release those.
 *
 * Without ctr/containerd/busybox it fails under CI=true (scripts/install-deps.sh --test installs them) and is
 * skipped, saying so, elsewhere.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { TestNetns, requireRoot } from '../helpers/netns.js';
import { REPO, TestDaemon } from '../helpers/daemon.js';
import { BUSYBOX, PrivateContainerd } from '../helpers/containerd.js';

const have = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
const MISSING = ['ctr', 'containerd', 'containerd-shim-runc-v2', 'runc'].filter((b) => !have(b)).concat(existsSync(BUSYBOX) ? [] : [BUSYBOX]);
const NO_CONTAINERD = `missing ${MISSING.join(', ')} (scripts/install-deps.sh --test installs them: apt-get install containerd busybox-static)`;
const inCi = /^(1|true|yes)$/i.test(process.env.CI ?? '');

const IMAGE = 'localhost/netd-busybox:1';
const SUBNET = '192.0.2.0/24';
const NETWORK = 'ctrnet';
const SETTLE_MS = 15_000;
const CONF_NAME = (JSON.parse(readFileSync(join(REPO, 'examples/cni/containerd.conflist'), 'utf8')) as { name: string }).name;

interface EndpointJson {
  id: string;
  name: string;
  network: string;
  ifname: string;
  ipv4?: unknown;
  mac?: string;
  labels?: Record<string, string>;
  driverState: { hostIfname?: string };
}
interface AddrJson {
  ifname: string;
  address?: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

/** The plugin executable as package.json's `bin` names it (what a user links into a CNI bin directory). */
function pluginPath(): string {
  const bin = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { bin?: Record<string, string> }).bin ?? {};
  assert.ok(bin['netd-cni'], 'package.json has no `netd-cni` bin entry');
  const path = join(REPO, bin['netd-cni']);
  assert.ok(existsSync(path), `${path} (package.json bin netd-cni) does not exist: npm run build`);
  return path;
}

/** examples/cni/containerd.conflist, pointed at the test daemon and a documentation subnet. */
function conflist(host: string): string {
  const list = JSON.parse(readFileSync(join(REPO, 'examples/cni/containerd.conflist'), 'utf8')) as { name: string; plugins: Record<string, unknown>[] };
  const netd = list.plugins.find((p) => p.type === 'netd-cni');
  assert.ok(netd, 'examples/cni/containerd.conflist has no netd-cni plugin');
  Object.assign(netd, { host, network: NETWORK, subnet: SUBNET });
  return JSON.stringify(list, null, 2);
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = SETTLE_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function exited(child: ChildProcess, ms: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ctr run did not exit within ${ms} ms`)), ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe('containerd: ctr run --cni through netd-cni', { skip: MISSING.length === 0 || inCi ? false : NO_CONTAINERD }, () => {
  let host: TestNetns;
  let daemon: TestDaemon;
  let ctrd: PrivateContainerd;

  before(async () => {
    assert.deepEqual(MISSING, [], `${NO_CONTAINERD}; under CI this test must run`);
    requireRoot();
    const plugin = pluginPath();
    host = await TestNetns.create('ctrd');
    // Without the dead-container sweep (NETD_TEST_SWEEP_MS=0) until test 3 turns it on: test 2 sees ctr's own DEL release.
    daemon = await TestDaemon.start(host, [], { NETD_TEST_SWEEP_MS: '0' });
    ctrd = await PrivateContainerd.start(host, { cniConfigs: { '10-netd.conflist': conflist(daemon.host) }, cniPlugins: { 'netd-cni': plugin } });
    console.log(`containerd: ${(await ctrd.exec(['containerd', '--version'])).stdout.trim()}`);
    await ctrd.importBusybox(IMAGE);
  });

  after(async () => {
    await ctrd?.destroy();
    await daemon?.destroy();
    await host?.destroy();
  });

  const endpoints = async () => JSON.parse((await daemon.cli(['endpoints', '--format', 'json'])).stdout) as EndpointJson[];
  const endpointOf = async (id: string) => (await endpoints()).find((e) => e.name === `${ctrd.namespace}-${id}`);
  const hostLinkExists = async (name: string) => (await host.exec(['ip', 'link', 'show', 'dev', name], { allowFail: true })).code === 0;
  // libcni's cache file for an attachment: <conflist name>-<container id>-<ifname>.
  const cacheEntry = (id: string) => `${CONF_NAME}-${ctrd.namespace}-${id}-eth0`;

  /** The task's eth0 and default route, read from its namespace. */
  async function taskNetwork(pid: number): Promise<{ address: string; prefix: number; mac: string; gateway: string }> {
    const nsenter = (args: string[]) => ctrd.exec(['nsenter', '-t', String(pid), '-n', 'ip', '-j', ...args]);
    const [eth0] = JSON.parse((await nsenter(['addr', 'show', 'dev', 'eth0'])).stdout) as AddrJson[];
    const v4 = eth0.addr_info.find((a) => a.family === 'inet');
    assert.ok(v4, `eth0 in the task has no IPv4 address: ${JSON.stringify(eth0)}`);
    const routes = JSON.parse((await nsenter(['-4', 'route', 'show', 'default'])).stdout) as { gateway?: string; dev?: string }[];
    assert.equal(routes.length, 1, `one default route in the task: ${JSON.stringify(routes)}`);
    assert.equal(routes[0].dev, 'eth0');
    return { address: v4.local, prefix: v4.prefixlen, mac: eth0.address ?? '', gateway: routes[0].gateway ?? '' };
  }

  it('1. ctr run --cni -d: the task gets eth0 with netd’s address, netd lists the endpoint, the container pings the gateway', async () => {
    await ctrd.ctr(['run', '--snapshotter', 'native', '--cni', '-d', IMAGE, 'c1', 'sleep', '1000'], { timeoutMs: 60_000 });
    const pid = await ctrd.taskPid('c1');
    assert.ok(pid, 'ctr task ls shows c1');

    const ep = await endpointOf('c1');
    assert.ok(ep, `netd endpoints lists container ${ctrd.namespace}-c1: ${JSON.stringify(await endpoints())}`);
    assert.equal(ep.ifname, 'eth0');
    assert.equal(ep.network, NETWORK);
    assert.equal(ep.labels?.['io.netd.origin'], 'cni', 'made through CNI');

    const net = await taskNetwork(pid);
    assert.match(net.address, /^192\.0\.2\.\d+$/);
    assert.equal(net.prefix, 24);
    assert.match(JSON.stringify(ep.ipv4), new RegExp(`${net.address.replace(/\./g, '\\.')}\\b`), 'netd’s record holds the address the task has');
    assert.equal(net.mac, ep.mac, 'eth0 has the MAC netd recorded');
    assert.match(net.gateway, /^192\.0\.2\.\d+$/);
    // The gateway is on netd's bridge in the host namespace, and the host end of the veth is there.
    const hostAddrs = JSON.parse((await host.exec(['ip', '-j', '-4', 'addr', 'show'])).stdout) as AddrJson[];
    assert.ok(hostAddrs.some((l) => l.addr_info.some((a) => a.local === net.gateway)), `the host namespace holds the gateway ${net.gateway}`);
    assert.ok(ep.driverState.hostIfname && (await hostLinkExists(ep.driverState.hostIfname)), 'the host-side veth exists');
    assert.deepEqual(await ctrd.cachedResults(), [cacheEntry('c1')], 'libcni cached the ADD result');

    const ping = await ctrd.ctr(['task', 'exec', '--exec-id', 'ping1', 'c1', 'ping', '-c', '1', '-W', '5', net.gateway], { allowFail: true });
    assert.equal(ping.code, 0, `ping from the container to ${net.gateway}: ${ping.stdout}${ping.stderr}`);
  });

  it('2. a foreground ctr run --cni --rm: when its task is killed ctr sends DEL with CNI_NETNS="", which succeeds and releases the endpoint', async () => {
    const fg = ctrd.spawnCtr(['run', '--snapshotter', 'native', '--cni', '--rm', IMAGE, 'c2', 'sleep', '1000']);
    let stderr = '';
    fg.stderr!.on('data', (d) => (stderr += d));
    try {
      const ep = await until('the endpoint of c2', async () => ((await ctrd.taskStatus('c2')) === 'RUNNING' ? endpointOf('c2') : undefined), 60_000);
      const hostVeth = ep.driverState.hostIfname!;
      assert.ok(await hostLinkExists(hostVeth));
      assert.ok((await ctrd.cachedResults()).includes(cacheEntry('c2')));

      await ctrd.ctr(['task', 'kill', '-s', 'SIGKILL', 'c2']);
      // ctr waits for the exit, runs the DEL (empty netns: the task's /proc/PID is gone), deletes the task and,
      // with --rm, the container; then it exits with the task's status.
      const code = await exited(fg, 60_000);
      assert.equal(code, 137, `ctr run exits with the killed task's status (stderr: ${stderr})`);
      assert.doesNotMatch(stderr, /network review|level=error/, 'go-cni reported no DEL failure');
      // libcni drops its cached result only when every plugin's DEL succeeded.
      assert.ok(!(await ctrd.cachedResults()).includes(cacheEntry('c2')), 'libcni removed its cached result: the DEL succeeded');
      assert.equal(await endpointOf('c2'), undefined, 'the endpoint is released');
      assert.equal(await hostLinkExists(hostVeth), false, `the host-side veth ${hostVeth} is gone`);
      assert.doesNotMatch((await ctrd.ctr(['container', 'ls', '-q'])).stdout, /^c2$/m, '--rm removed the container');
      // The daemon runs without the dead-container sweep here: ctr's DEL (CNI_NETNS="") itself released it.
      const released = daemon.logs.split('\n').filter((l) => l.includes('"op":"release-endpoint"') && l.includes(ep.id)).map((l) => (JSON.parse(l) as { reason?: string }).reason);
      assert.deepEqual(released, ['cni del'], 'released once, by ctr\'s DEL');
    } finally {
      if (fg.exitCode === null && fg.signalCode === null) fg.kill('SIGKILL');
    }
  });

  it('3. ctr run -d, then ctr task kill: no DEL ever comes; netd’s dead-container sweep releases the endpoint; task delete and container rm send none either', async () => {
    // This one is the sweep's: the daemon again with its default sweep (c1 stays attached across the restart).
    daemon.env = {};
    await daemon.restart();
    await ctrd.ctr(['run', '--snapshotter', 'native', '--cni', '-d', IMAGE, 'c3', 'sleep', '1000'], { timeoutMs: 60_000 });
    const ep = await endpointOf('c3');
    assert.ok(ep, 'netd lists c3');
    const hostVeth = ep.driverState.hostIfname!;
    assert.ok(await hostLinkExists(hostVeth));

    await ctrd.ctr(['task', 'kill', '-s', 'SIGKILL', 'c3']);
    await until('c3 stopped', async () => ((await ctrd.taskStatus('c3')) === 'STOPPED' ? true : undefined));
    // The task is stopped but not deleted: nothing has called the plugin since the ADD.
    await until('netd releases c3 by itself', async () => ((await endpointOf('c3')) === undefined ? true : undefined));
    assert.equal(await hostLinkExists(hostVeth), false, `the host-side veth ${hostVeth} is gone`);
    assert.ok((await ctrd.cachedResults()).includes(cacheEntry('c3')), 'no DEL was sent (libcni still caches the ADD result)');

    await ctrd.ctr(['task', 'delete', 'c3']);
    await ctrd.ctr(['container', 'rm', 'c3']);
    assert.ok((await ctrd.cachedResults()).includes(cacheEntry('c3')), 'ctr task delete / container rm sent no DEL either (containerd 1.6)');
    assert.equal(await endpointOf('c3'), undefined);

    // c1 (test 1) is still attached and untouched by the sweep.
    const c1 = await ctrd.taskPid('c1');
    assert.ok(c1 && (await endpointOf('c1')), 'c1 is still attached');
  });
});
