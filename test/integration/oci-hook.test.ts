/**
 * `netd oci-hook` end to end, against a real daemon in a throwaway "host" namespace:
 * (a) the hook fed the state JSON any runtime writes, for a real process in a network namespace of its own;
 * (b) a real runtime, Debian's runc, running a busybox-static container whose config.json calls the hook
 *     (createRuntime or prestart, and poststop), in the test's host namespace with cgroups mounted there.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { TestContainer, requireRoot, run, type RunResult } from '../helpers/netns.js';
import { CLI, REPO, TestDaemon, Topology, kernelSnapshot } from '../helpers/daemon.js';
import { Runc, runtimeMissing } from '../helpers/oci-runtime.js';
import { listEndpoints, type EndpointJson } from '../helpers/endpoints.js';

const NET = 'hooknet'; // 192.0.2.0/24
const NET2 = 'hooknet2'; // 203.0.113.0/24
const ip = (cidr: string | undefined) => String(cidr).split('/')[0];

describe('netd oci-hook', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  const containers: TestContainer[] = [];

  async function container(): Promise<TestContainer> {
    const c = await TestContainer.start();
    containers.push(c);
    return c;
  }

  /** The hook as a runtime runs it: the state JSON on stdin. */
  function hook(args: string[], state: unknown, host = daemon.host): Promise<RunResult> {
    return run(['node', CLI, '--host', host, 'oci-hook', ...args], { input: typeof state === 'string' ? state : JSON.stringify(state), allowFail: true });
  }

  const created = (id: string, pid: number, annotations: Record<string, string> = {}) => ({ ociVersion: '1.0.2', id, status: 'creating', pid, bundle: '/nonexistent/bundle', annotations });
  const stopped = (id: string) => ({ ociVersion: '1.0.2', id, status: 'stopped', bundle: '/nonexistent/bundle' });

  async function endpoints(name?: string): Promise<EndpointJson[]> {
    const list = await listEndpoints(daemon);
    return name === undefined ? list : list.filter((e) => e.name === name);
  }

  /** The IPv4 addresses on the container's eth0 ([] when it has no eth0). */
  async function eth0Addresses(pid: number): Promise<string[]> {
    const res = await run(['nsenter', '-t', String(pid), '-n', '--', 'ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0'], { allowFail: true });
    if (res.code !== 0) return [];
    return (JSON.parse(res.stdout) as { addr_info: { local: string }[] }[]).flatMap((l) => l.addr_info.map((a) => a.local));
  }

  async function hostLinkExists(name: string): Promise<boolean> {
    return (await topo.host.exec(['ip', 'link', 'show', 'dev', name], { allowFail: true })).code === 0;
  }

  function assertOk(res: RunResult, what: string): void {
    assert.equal(res.code, 0, `${what}: exit ${res.code}, stderr ${res.stderr}`);
  }

  before(async () => {
    requireRoot();
    topo = await Topology.create('hook');
    daemon = await TestDaemon.start(topo.host);
    await daemon.cli(['create-network', NET, '--subnet', '192.0.2.0/24']);
    await daemon.cli(['create-network', NET2, '--subnet', '203.0.113.0/24']);
  });

  after(async () => {
    for (const c of containers) await c.stop();
    await daemon?.destroy();
    await topo?.destroy();
  });

  test('(a) createRuntime attaches the PID under the id; a replay replaces; poststop detaches, and again succeeds', async () => {
    const c1 = await container();
    const first = await hook(['--network', NET], created('hk1', c1.pid));
    assertOk(first, 'createRuntime');
    const [ep1, ...more1] = await endpoints('hk1');
    assert.equal(more1.length, 0);
    assert.equal(ep1.network, NET);
    assert.deepEqual(await eth0Addresses(c1.pid), [ip(ep1.ipv4)]);
    assert.equal((await c1.exec(['ping', '-c', '1', '-W', '2', '192.0.2.1'], { allowFail: true })).code, 0, 'the container reaches its gateway');

    // The runtime runs the hook again for the same container: replaced, not refused.
    assertOk(await hook(['--network', NET], created('hk1', c1.pid)), 'replayed createRuntime');
    const [ep2, ...more2] = await endpoints('hk1');
    assert.equal(more2.length, 0, 'still one endpoint');
    assert.notEqual(ep2.id, ep1.id, 'a new endpoint replaced the old one');
    assert.equal(await hostLinkExists(ep1.driverState.hostIfname!), false, 'the old veth is gone');
    assert.deepEqual(await eth0Addresses(c1.pid), [ip(ep2.ipv4)]);

    // A restarted container: same id, a new process.
    const c2 = await container();
    assertOk(await hook(['--stage', 'createRuntime', '--network', NET], created('hk1', c2.pid)), 'createRuntime for the restarted container');
    const [ep3, ...more3] = await endpoints('hk1');
    assert.equal(more3.length, 0);
    assert.deepEqual(await eth0Addresses(c1.pid), [], 'the old process lost its interface');
    assert.deepEqual(await eth0Addresses(c2.pid), [ip(ep3.ipv4)]);

    // poststop: status stopped, no pid (as runc and podman send it).
    const post = await hook([], stopped('hk1'));
    assertOk(post, 'poststop');
    assert.equal(post.stderr, '');
    assert.deepEqual(await endpoints('hk1'), []);
    assert.deepEqual(await eth0Addresses(c2.pid), []);
    assert.equal(await hostLinkExists(ep3.driverState.hostIfname!), false, 'the veth is gone');
    const again = await hook(['--stage', 'poststop'], stopped('hk1'));
    assertOk(again, 'poststop again');
    assert.equal(again.stderr, '');
    // poststop never fails, not even without a daemon.
    const noDaemon = await hook(['--stage', 'poststop'], stopped('hk1'), 'unix:///nonexistent/netd-test/netd.sock');
    assertOk(noDaemon, 'poststop without a daemon');
    assert.match(noDaemon.stderr, /^netd: oci-hook poststop: cannot reach netd .*\(ignored; [^\n]*\n$/);
  });

  test('(a) the hook replaces or detaches only its own attachments: a live CLI one of that name (even all digits) is refused and kept', async () => {
    const owner = await container();
    const intruder = await container();
    for (const name of ['hkcli', String(intruder.pid)]) {
      await daemon.cli(['attach', String(owner.pid), '--network', NET, '--name', name]);
      const [before] = await endpoints(name);
      assert.ok(before, `${name} attached by the CLI`);
      const refused = await hook(['--network', NET], created(name, intruder.pid));
      assert.equal(refused.code, 1, `createRuntime over a CLI container ${name}: ${refused.stderr}`);
      assert.match(refused.stderr, new RegExp(`^[^\\n]*the name ${name} is taken by a live container netd attached otherwise[^\\n]*\\n$`));
      assertOk(await hook([], stopped(name)), `poststop of ${name}`);
      assert.deepEqual((await endpoints(name)).map((e) => e.id), [before.id], `${name} is still the CLI's`);
      assert.deepEqual(await eth0Addresses(owner.pid), [ip(before.ipv4)]);
      assert.deepEqual(await eth0Addresses(intruder.pid), [], 'the hook attached nothing');
      await daemon.cli(['detach', name]);
    }
    assertOk(await hook(['--network', NET], created('hk8', intruder.pid)), 'createRuntime');
    assert.equal((await endpoints('hk8'))[0]?.labels?.['io.netd.origin'], 'oci-hook', 'hook attachments are labelled');
    assertOk(await hook([], stopped('hk8')), 'poststop');
    assert.deepEqual(await endpoints('hk8'), []);
  });

  test('(a) options come from the io.netd.* annotations; each flag wins over its annotation', async () => {
    const c = await container();
    const annotations = { 'io.netd.network': NET2, 'io.netd.ip': '203.0.113.50', 'io.netd.publish': '8081:80, 8082:81/udp', 'io.netd.aliases': 'web,www' };
    assertOk(await hook([], created('hk2', c.pid, annotations)), 'createRuntime with annotations');
    const [ep] = await endpoints('hk2');
    assert.equal(ep.network, NET2);
    assert.equal(ip(ep.ipv4), '203.0.113.50');
    assert.deepEqual(await eth0Addresses(c.pid), ['203.0.113.50']);
    assert.deepEqual((await daemon.cli(['port', 'hk2'])).stdout.split('\n').filter(Boolean), ['80/tcp -> 0.0.0.0:8081', '81/udp -> 0.0.0.0:8082']);
    const dig = await c.exec(['dig', '+short', '+time=2', '+tries=1', '@203.0.113.1', 'www'], { allowFail: true });
    assert.equal(dig.stdout.trim(), '203.0.113.50', `the alias from the annotation resolves in netd's DNS: ${dig.stdout}${dig.stderr}`);

    assertOk(await hook(['--network', NET, '--ip', '192.0.2.77', '-p', '9090:90'], created('hk2', c.pid, annotations)), 'createRuntime with flags');
    const [flagged, ...others] = await endpoints('hk2');
    assert.equal(others.length, 0);
    assert.equal(flagged.network, NET);
    assert.deepEqual(await eth0Addresses(c.pid), ['192.0.2.77']);
    assert.deepEqual((await daemon.cli(['port', 'hk2'])).stdout.split('\n').filter(Boolean), ['90/tcp -> 0.0.0.0:9090']);
    assertOk(await hook([], stopped('hk2')), 'poststop');
    assert.deepEqual(await endpoints('hk2'), []);
  });

  test('(a) a bad state or bad options: exit 1, one line on stderr, nothing changed (not even an attachment of that id)', async () => {
    const c = await container();
    assertOk(await hook(['--network', NET], created('hk3', c.pid)), 'createRuntime');
    const dead = spawnSync('true').pid!; // a PID whose process has exited
    const before = { kernel: await kernelSnapshot(topo.host), endpoints: await endpoints(), eth0: await eth0Addresses(c.pid) };
    const bad: [string[], unknown, RegExp][] = [
      [[], 'not json at all', /invalid OCI state on stdin: not JSON/],
      [[], '', /invalid OCI state on stdin: empty/],
      [[], ' '.repeat(300 * 1024) + JSON.stringify(created('hk3', c.pid)), /larger than 262144 bytes/],
      [[], [created('hk3', c.pid)], /not a JSON object/],
      [[], created('../hk3', c.pid), /id "..\/hk3" must be/],
      [[], { ...created('hk3', c.pid), id: 'x'.repeat(65) }, /must be 1-64/],
      [[], { ...created('hk3', c.pid), pid: -5 }, /pid -5 is not a positive integer/],
      [[], { ...created('hk3', c.pid), pid: '12' }, /pid "12"/],
      [[], { ...created('hk3', c.pid), status: 'paused' }, /status "paused"/],
      [[], { ...created('hk3', c.pid), annotations: { 'io.netd.network': 7 } }, /annotation "io.netd.network" is not a string/],
      [[], created('hk3', dead), new RegExp(`no process ${dead} `)],
      [[], created('hk3', c.pid, { 'io.netd.publish': '80:80:80:80' }), /annotation io.netd.publish: invalid published port/],
      [['-p', '70000:80'], created('hk3', c.pid), /invalid published port/],
      [['--network', 'no-such-net'], created('hk3', c.pid), /no-such-net/],
      [['--stage', 'createRuntime'], stopped('hk3'), /a createRuntime hook needs a live container/],
      [['--stage', 'prestart'], { id: 'hk3' }, /a prestart hook needs a live container: the state has no pid/],
      [['--stage', 'sometime'], created('hk3', c.pid), /argument 'sometime' is invalid/],
    ];
    for (const [args, state, why] of bad) {
      const res = await hook(args, state);
      const what = `${args.join(' ')} ${JSON.stringify(state).slice(0, 100)}`;
      assert.equal(res.code, 1, `${what}: exit ${res.code}, stderr ${res.stderr}`);
      assert.match(res.stderr, why, what);
      assert.match(res.stderr, /^[^\n]+\n$/, `${what}: one line`);
    }
    assert.deepEqual({ kernel: await kernelSnapshot(topo.host), endpoints: await endpoints(), eth0: await eth0Addresses(c.pid) }, before);
    assertOk(await hook([], stopped('hk3')), 'poststop');
  });

  describe('(b) a real runtime: runc runs the hook from config.json', () => {
    let runc: Runc | undefined;
    const missing = runtimeMissing();

    before(async () => {
      if (missing) {
        // Never a silent pass: CI installs runc and busybox-static (scripts/install-deps.sh --test).
        if (process.env.CI === 'true') throw new Error(`the runc test cannot run: ${missing}`);
        return;
      }
      runc = await Runc.start(topo.host);
    });

    after(async () => {
      await runc?.destroy();
    });

    /** The hook entry a runtime's config.json holds: path is absolute, args[0] is argv[0]. */
    const hookEntry = (...args: string[]) => ({ path: process.execPath, args: ['node', CLI, '--host', daemon.host, 'oci-hook', ...args], timeout: 30 });

    async function runContainer(id: string, stage: 'createRuntime' | 'prestart', edit: (config: Record<string, any>) => void): Promise<number> {
      const bundle = await runc!.bundle(id, (config) => {
        // CAP_NET_RAW: busybox ping inside the container (runc exec) uses a raw socket.
        for (const set of ['bounding', 'effective', 'permitted']) config.process.capabilities[set].push('CAP_NET_RAW');
        config.hooks = { [stage]: [hookEntry()], poststop: [hookEntry()] };
        edit(config);
      });
      writeFileSync(join(bundle, 'rootfs/www/index.html'), `hello from ${id}\n`);
      const started = await runc!.detached(['run', '-d', '--bundle', bundle, id]);
      assert.equal(started.code, 0, `runc run ${id}: ${started.log}`);
      const state = await runc!.state(id);
      assert.equal(state?.status, 'running');
      return state!.pid;
    }

    /** An HTTP GET from a namespace (node's client: the host's static busybox wget crashes in glibc's resolver). */
    function httpGet(ns: Topology['host'], url: string, timeoutMs = 3000): Promise<RunResult> {
      const client =
        "const [url, ms] = process.argv.slice(1); require('node:http').get(url, { timeout: Number(ms) }, (res) => { let body = ''; res.on('data', (d) => (body += d)); res.on('end', () => process.stdout.write(body)); })" +
        ".on('timeout', function () { this.destroy(new Error('timeout')); }).on('error', (e) => { process.stderr.write(String(e.code || e.message)); process.exit(1); });";
      return ns.exec(['node', '-e', client, url, String(timeoutMs)], { allowFail: true });
    }

    async function stopAndDelete(id: string): Promise<void> {
      await runc!.exec(['kill', id, 'KILL']);
      for (let i = 0; i < 100 && (await runc!.state(id))?.status !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal((await runc!.state(id))?.status, 'stopped');
      await runc!.exec(['delete', id]); // runs the poststop hook
      assert.equal(await runc!.state(id), undefined);
    }

    test('createRuntime: eth0 with netd\'s address, the gateway reachable, a published port reachable from outside; runc delete detaches', async (t) => {
      if (!runc) return t.skip(`runc test skipped: ${missing}`);
      const pid = await runContainer('rc1', 'createRuntime', (config) => {
        config.process.args = ['httpd', '-f', '-p', '80', '-h', '/www'];
        config.hooks.createRuntime = [hookEntry('--network', NET, '-p', '8080:80')];
      });
      const [ep, ...more] = await endpoints('rc1');
      assert.equal(more.length, 0);
      assert.equal(ep.network, NET);
      assert.deepEqual(await eth0Addresses(pid), [ip(ep.ipv4)], "the container's eth0 has netd's address");
      const ping = await runc!.exec(['exec', 'rc1', 'ping', '-c', '1', '-W', '2', '192.0.2.1'], true);
      assert.equal(ping.code, 0, `ping from runc exec: ${ping.stdout}${ping.stderr}`);
      const get = await httpGet(topo.outside, `http://${Topology.HOST_EXT}:8080/`);
      if (get.stdout !== 'hello from rc1\n') {
        const direct = await httpGet(topo.host, `http://${ip(ep.ipv4)}/`);
        const listening = await runc!.exec(['exec', 'rc1', 'netstat', '-ltn'], true);
        assert.fail(`published port from outside: ${get.stdout}${get.stderr}; from the host to ${ep.ipv4}: ${direct.stdout}${direct.stderr}; in the container: ${listening.stdout}${listening.stderr}`);
      }

      await stopAndDelete('rc1');
      assert.deepEqual(await endpoints('rc1'), [], 'the poststop hook detached it');
      assert.equal(await hostLinkExists(ep.driverState.hostIfname!), false, 'the veth is gone');
      const after = await httpGet(topo.outside, `http://${Topology.HOST_EXT}:8080/`, 1000);
      assert.notEqual(after.code, 0, 'the port is no longer published');
    });

    test('the shipped hooks.d file, as podman injects it (its stages into config.json), with the annotations it asks for', async (t) => {
      if (!runc) return t.skip(`runc test skipped: ${missing}`);
      const file = JSON.parse(readFileSync(join(REPO, 'examples/oci-hooks.d/netd.json'), 'utf8')) as { hook: { path: string; args: string[] }; when: { annotations: Record<string, string> }; stages: string[] };
      const annotations = { 'io.netd.network': NET, 'io.netd.publish': '8083:80' };
      // containers/common's `when`: each annotation pattern matches some annotation of the container.
      const matches = Object.entries(file.when.annotations).every(([k, v]) => Object.entries(annotations).some(([ak, av]) => new RegExp(k).test(ak) && new RegExp(v).test(av)));
      assert.ok(matches, 'the file applies to a container annotated io.netd.network');
      // Only where netd lives (and the test daemon's socket) differ from the file.
      const entry = { ...file.hook, path: existsSync(file.hook.path) ? file.hook.path : process.execPath, args: [file.hook.args[0], CLI, '--host', daemon.host, ...file.hook.args.slice(2)] };
      const pid = await runContainer('rc3', 'createRuntime', (config) => {
        config.process.args = ['httpd', '-f', '-p', '80', '-h', '/www'];
        config.annotations = annotations;
        config.hooks = Object.fromEntries(file.stages.map((stage) => [stage, [entry]]));
      });
      const [ep] = await endpoints('rc3');
      assert.equal(ep.network, NET);
      assert.deepEqual(await eth0Addresses(pid), [ip(ep.ipv4)]);
      const get = await httpGet(topo.outside, `http://${Topology.HOST_EXT}:8083/`);
      assert.equal(get.stdout, 'hello from rc3\n', `published port from outside: ${get.stderr}`);
      await stopAndDelete('rc3');
      assert.deepEqual(await endpoints('rc3'), []);
      assert.equal(await hostLinkExists(ep.driverState.hostIfname!), false);
    });

    test('a hook that fails fails the container\'s start: runc run exits non-zero with the hook\'s message, nothing attached', async (t) => {
      if (!runc) return t.skip(`runc test skipped: ${missing}`);
      const bundle = await runc.bundle('rc4', (config) => {
        config.process.args = ['sleep', '3600'];
        config.hooks = { createRuntime: [hookEntry('--network', 'no-such-net')], poststop: [hookEntry()] };
      });
      const started = await runc.detached(['run', '-d', '--bundle', bundle, 'rc4']);
      assert.notEqual(started.code, 0, 'runc run failed');
      assert.match(started.log, /network no-such-net not found/, started.log);
      assert.equal((await runc.state('rc4'))?.status ?? 'none', 'none', 'no container left');
      assert.deepEqual(await endpoints('rc4'), []);
    });

    test('prestart, options from the config\'s annotations: attached as annotated, detached by runc delete', async (t) => {
      if (!runc) return t.skip(`runc test skipped: ${missing}`);
      const pid = await runContainer('rc2', 'prestart', (config) => {
        config.process.args = ['sleep', '3600'];
        config.annotations = { 'io.netd.network': NET2, 'io.netd.ip': '203.0.113.60' };
      });
      const [ep] = await endpoints('rc2');
      assert.equal(ep.network, NET2);
      assert.deepEqual(await eth0Addresses(pid), ['203.0.113.60']);
      const ping = await runc!.exec(['exec', 'rc2', 'ping', '-c', '1', '-W', '2', '203.0.113.1'], true);
      assert.equal(ping.code, 0, `ping from runc exec: ${ping.stdout}${ping.stderr}`);
      await stopAndDelete('rc2');
      assert.deepEqual(await endpoints('rc2'), [], 'the poststop hook detached it');
      assert.equal(await hostLinkExists(ep.driverState.hostIfname!), false);
    });
  });
});
