/**
 * The netd-cni executables driven as cnitool 1.1.2 drives a plugin (../shared/observed/cnitool-1.1.2-calls.txt):
 * the spec's CNI_* environment, the network configuration on stdin as libcni writes it (the plugin's entry
 * of the conflist with `name` and `cniVersion` put in, `runtimeConfig` for the enabled capabilities,
 * `prevResult` on CHECK and DEL, keys sorted), containers as `ip netns add` namespaces. Both executables —
 * the JS plugin and the native shim — run every step against a real daemon, and each step is followed by
 * the kernel's state in the container namespace (`ip -j addr/route`), on the host (iptables) and
 * `netd endpoints`. For the same input both print the same bytes and exit alike.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { TestDaemon, Topology, testFirewallBackend } from '../helpers/daemon.js';
import { netdFirewallEmpty, netdRulesThat } from '../helpers/firewall-state.js';
import { TestNetns, requireRoot } from '../helpers/netns.js';
import { PLUGINS, goJson, jsonOut, requirePlugins, runPlugin, type PluginBin, type PluginRun } from '../helpers/cni-plugin.js';

interface Addr {
  ifname: string;
  address: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

const SUPPORTED = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

describe('netd-cni executables driven as cnitool does (JS plugin and native shim)', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  const namespaces: TestNetns[] = [];

  before(async () => {
    requireRoot();
    requirePlugins();
    topo = await Topology.create('cnp');
    daemon = await TestDaemon.start(topo.host);
  });

  after(async () => {
    for (const ns of namespaces) await ns.destroy();
    await daemon?.destroy();
    await topo?.destroy();
  });

  async function netns(tag: string): Promise<TestNetns> {
    const ns = await TestNetns.create(tag);
    namespaces.push(ns);
    return ns;
  }

  /** cnitool's container id: "cnitool-" and the first 20 hex digits of sha512(netns path). */
  const containerId = (ns: TestNetns) => `cnitool-${createHash('sha512').update(ns.path).digest('hex').slice(0, 20)}`;

  /** A conflist with one netd-cni plugin (what a user drops in /etc/cni/net.d). */
  const conflist = (name: string, cniVersion: string, plugin: Record<string, unknown> = {}) => ({
    cniVersion,
    name,
    plugins: [{ type: 'netd-cni', host: daemon.host, capabilities: { portMappings: true }, ...plugin }],
  });
  type Conflist = ReturnType<typeof conflist>;

  /** stdin as libcni builds it for the conflist's plugin. */
  function stdinOf(list: Conflist, extra: { runtimeConfig?: unknown; prevResult?: unknown; [k: string]: unknown } = {}): string {
    const conf: Record<string, unknown> = { ...list.plugins[0], name: list.name, cniVersion: list.cniVersion };
    for (const [k, v] of Object.entries(extra)) if (v !== undefined) conf[k] = v;
    return goJson(conf);
  }

  /** The environment cnitool sets (CNI_ARGS on ADD only, as observed). */
  function envOf(command: string, ns: TestNetns | undefined, args = ''): Record<string, string> {
    return { CNI_COMMAND: command, CNI_CONTAINERID: ns ? containerId(ns) : '', CNI_NETNS: ns ? ns.path : '', CNI_IFNAME: 'eth0', CNI_ARGS: args, CNI_PATH: '/opt/cni/bin:/usr/lib/cni' };
  }

  /** Runs a plugin as the runtime would, from the "host" namespace the daemon runs in. */
  const exec = (bin: PluginBin, env: Record<string, string>, stdin: string) => runPlugin(bin, env, stdin, 30_000, ['ip', 'netns', 'exec', topo.host.name]);

  /** Runs both executables on the same input; asserts the same stdout bytes and exit code. */
  async function both(env: Record<string, string>, stdin: string): Promise<PluginRun> {
    const [js, shim] = [await exec(PLUGINS[0], env, stdin), await exec(PLUGINS[1], env, stdin)];
    assert.equal(shim.code, js.code, `exit codes: js ${js.code} ${js.stdout}, shim ${shim.code} ${shim.stdout}`);
    assert.equal(shim.stdout.toString(), js.stdout.toString(), 'js and shim print the same bytes');
    return js;
  }

  function ok(r: PluginRun, what: string): void {
    assert.equal(r.code, 0, `${what}: exit ${r.code}: ${r.stdout} ${r.stderr}`);
  }

  async function links(ns: TestNetns): Promise<string[]> {
    return (JSON.parse((await ns.exec(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => l.ifname).sort();
  }

  /** eth0's MAC and IPv4 addresses, and the default routes, in the container namespace. */
  async function eth0(ns: TestNetns): Promise<{ mac?: string; v4: string[]; defaults: string[] }> {
    const addrs = JSON.parse((await ns.exec(['ip', '-j', 'addr', 'show'])).stdout) as Addr[];
    const e = addrs.find((a) => a.ifname === 'eth0');
    const routes = JSON.parse((await ns.exec(['ip', '-j', '-4', 'route', 'show', 'default'])).stdout) as { gateway?: string; dev: string }[];
    return {
      mac: e?.address,
      v4: (e?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
      defaults: routes.map((r) => `${r.gateway} ${r.dev}`),
    };
  }

  /** `netd endpoints` rows (container, network, interface) for a network. */
  async function endpointRows(network: string): Promise<string[]> {
    const out = (await daemon.cli(['endpoints'])).stdout.split('\n').slice(1);
    return out.map((l) => l.trim().split(/\s+/)).filter((c) => c[2] === network).map((c) => `${c[1]} ${c[3]}`).sort();
  }

  /** Whether netd DNATs `port` (iptables: a `--dport` DNAT rule; nftables: a DNAT rule or map element of netd's table). */
  const dnat = async (port: number) => {
    if (testFirewallBackend() === 'iptables') return new RegExp(`--dport ${port} .*-j DNAT`).test((await topo.host.exec(['iptables-save', '-t', 'nat'])).stdout);
    assert.equal(await netdFirewallEmpty(topo.host), false, 'netd has its nftables table');
    return (await netdRulesThat(topo.host, 'dnat', port)).length > 0;
  };

  PLUGINS.forEach((bin, i) => {
    test(`${bin.name}: ADD, CHECK, DEL, DEL again, VERSION, STATUS, GC — the kernel and netd's listing after each`, async () => {
      const net = `cnp-${bin.name}`;
      const list = conflist(net, '1.0.0', { subnet: `192.0.2.${i * 64}/26` });
      const gw = `192.0.2.${i * 64 + 1}`;
      const hostPort = 8080 + i;
      const ns = await netns(`cnp${bin.name}`);
      const id = containerId(ns);
      const runtimeConfig = { portMappings: [{ containerPort: 80, hostPort, protocol: 'tcp' }] };

      // ADD
      const add = await exec(bin, envOf('ADD', ns, 'IgnoreUnknown=1;K8S_POD_NAME=demo'), stdinOf(list, { runtimeConfig }));
      ok(add, 'ADD');
      const result = jsonOut(add);
      assert.equal(result.cniVersion, '1.0.0');
      const k = await eth0(ns);
      assert.deepEqual(result.interfaces[1], { name: 'eth0', mac: k.mac, sandbox: ns.path }, 'the container interface as the kernel has it');
      assert.deepEqual(result.ips, [{ address: k.v4[0], gateway: gw, interface: 1 }]);
      assert.equal(k.v4.length, 1);
      assert.deepEqual(k.defaults, [`${gw} eth0`]);
      assert.equal(await dnat(hostPort), true, 'runtimeConfig.portMappings published the port');
      assert.deepEqual(await endpointRows(net), [`${id} eth0`]);

      // CHECK: nothing printed, nothing changed
      const check = await exec(bin, envOf('CHECK', ns), stdinOf(list, { prevResult: result }));
      ok(check, 'CHECK');
      assert.equal(check.stdout.length, 0);
      assert.deepEqual(await eth0(ns), k);
      assert.deepEqual(await endpointRows(net), [`${id} eth0`]);

      // DEL, then DEL again
      for (const what of ['DEL', 'DEL again']) {
        const del = await exec(bin, envOf('DEL', ns), stdinOf(list, { runtimeConfig, prevResult: result }));
        ok(del, what);
        assert.equal(del.stdout.length, 0);
        assert.deepEqual(await links(ns), ['lo'], `${what}: eth0 is gone from the container`);
        assert.equal(await dnat(hostPort), false, `${what}: the port is unpublished`);
        assert.deepEqual(await endpointRows(net), [], `${what}: netd lists no endpoint`);
      }

      // VERSION
      const version = await exec(bin, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
      ok(version, 'VERSION');
      assert.deepEqual(jsonOut(version), { cniVersion: '1.0.0', supportedVersions: SUPPORTED });
      assert.deepEqual(await links(ns), ['lo']);
      assert.deepEqual(await endpointRows(net), []);

      // STATUS (1.1.0)
      const list11 = conflist(net, '1.1.0', { subnet: `192.0.2.${i * 64}/26` });
      const status = await exec(bin, { CNI_COMMAND: 'STATUS', CNI_PATH: '/opt/cni/bin' }, stdinOf(list11));
      ok(status, 'STATUS');
      assert.equal(status.stdout.length, 0);
      assert.deepEqual(await links(ns), ['lo']);
      assert.deepEqual(await endpointRows(net), []);

      // GC: two attachments, one listed as valid: the other is released
      const [a, b] = [await netns(`cnpa${bin.name}`), await netns(`cnpb${bin.name}`)];
      for (const c of [a, b]) ok(await exec(bin, envOf('ADD', c), stdinOf(list11)), 'ADD for GC');
      assert.deepEqual(await endpointRows(net), [`${containerId(a)} eth0`, `${containerId(b)} eth0`].sort());
      const gc = await exec(bin, { CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, stdinOf(list11, { 'cni.dev/valid-attachments': [{ containerID: containerId(a), ifname: 'eth0' }] }));
      ok(gc, 'GC');
      assert.equal(gc.stdout.length, 0);
      assert.deepEqual(await links(b), ['lo'], 'GC released the unlisted attachment in the kernel');
      assert.equal((await eth0(a)).v4.length, 1, 'the listed one keeps its address');
      assert.deepEqual(await endpointRows(net), [`${containerId(a)} eth0`]);
      ok(await exec(bin, envOf('DEL', a), stdinOf(list11)), 'DEL after GC');
      assert.deepEqual(await links(a), ['lo']);
    });

    test(`${bin.name}: a 0.4.0 conflist (podman's) gets a 0.4.0 result (ips with version); NETD_HOST finds the daemon`, async () => {
      const net = `cnp04-${bin.name}`;
      const list = conflist(net, '0.4.0', { subnet: `203.0.113.${64 + i * 64}/26` });
      delete (list.plugins[0] as { host?: string }).host;
      const ns = await netns(`cnp04${bin.name}`);
      const add = await exec(bin, { ...envOf('ADD', ns), NETD_HOST: daemon.host }, stdinOf(list));
      ok(add, 'ADD 0.4.0');
      const result = jsonOut(add);
      assert.equal(result.cniVersion, '0.4.0');
      const k = await eth0(ns);
      assert.deepEqual(result.ips, [{ version: '4', address: k.v4[0], gateway: `203.0.113.${65 + i * 64}`, interface: 1 }]);
      assert.equal(result.interfaces[1].mac, k.mac, 'the sandbox interface has its mac (podman requires it)');
      ok(await exec(bin, { ...envOf('CHECK', ns), NETD_HOST: daemon.host }, stdinOf(list, { prevResult: result })), 'CHECK 0.4.0');
      ok(await exec(bin, { ...envOf('DEL', ns), NETD_HOST: daemon.host }, stdinOf(list, { prevResult: result })), 'DEL 0.4.0');
      assert.deepEqual(await links(ns), ['lo']);
    });
  });

  test('errors as CNI JSON on stdout with exit 1, identical from both: bad stdin (6), unsupported cniVersion (1), no CNI_COMMAND (4), ADD twice, CHECK of an unknown container (3)', async () => {
    const list = conflist('cnp-err', '1.0.0', { subnet: '203.0.113.0/26' });
    const ns = await netns('cnperr');
    const cases: [Record<string, string>, string, number][] = [
      [envOf('ADD', ns), '{"cniVersion":"1.0.0","name":', 6],
      [envOf('ADD', ns), stdinOf({ ...list, cniVersion: '0.2.0' }), 1],
      [envOf('CHECK', ns), stdinOf({ ...list, cniVersion: '0.3.1' }), 1],
      [Object.fromEntries(Object.entries(envOf('ADD', ns)).filter(([k]) => k !== 'CNI_COMMAND')), stdinOf(list), 4],
      [{ ...envOf('ADD', ns), CNI_COMMAND: '' }, stdinOf(list), 4],
      [envOf('CHECK', ns), stdinOf(list), 3],
    ];
    for (const [env, stdin, code] of cases) {
      const r = await both(env, stdin);
      assert.equal(r.code, 1);
      const err = jsonOut(r);
      assert.equal(err.code, code, JSON.stringify(err));
      assert.equal(typeof err.msg, 'string');
      assert.deepEqual(await links(ns), ['lo'], 'nothing attached');
    }
    assert.equal((await daemon.cli(['networks'])).stdout.includes('cnp-err'), false, 'a refused ADD created no network');

    ok(await exec(PLUGINS[0], envOf('ADD', ns), stdinOf(list)), 'ADD');
    const mac = (await eth0(ns)).mac;
    const twice = await both(envOf('ADD', ns), stdinOf(list));
    assert.equal(twice.code, 1);
    assert.match(jsonOut(twice).msg, /already/);
    assert.equal((await eth0(ns)).mac, mac, 'the second ADD changed nothing');
    const del = await both(envOf('DEL', ns), stdinOf(list));
    assert.deepEqual([del.code, del.stdout.length], [0, 0]);
    assert.deepEqual(await links(ns), ['lo']);
    const version = await both({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.3.1"}');
    assert.deepEqual(jsonOut(version), { cniVersion: '0.3.1', supportedVersions: SUPPORTED });
  });

  test('daemon down: code 50 naming the socket and errno, identical from both; VERSION still answers', async () => {
    await daemon.stop();
    const list = conflist('cnp-down', '1.0.0');
    const ns = await netns('cnpdown');
    for (const command of ['ADD', 'DEL', 'CHECK']) {
      const r = await both(envOf(command, ns), stdinOf(list));
      assert.equal(r.code, 1);
      const err = jsonOut(r);
      assert.equal(err.code, 50);
      assert.equal(err.msg, 'netd is not available');
      assert.match(err.details, new RegExp(`^cannot connect to ${daemon.host.slice('unix://'.length)}: (ENOENT|ECONNREFUSED)$`));
    }
    const v = await both({ CNI_COMMAND: 'VERSION' }, stdinOf(list));
    assert.deepEqual(jsonOut(v), { cniVersion: '1.0.0', supportedVersions: SUPPORTED });
  });
});
