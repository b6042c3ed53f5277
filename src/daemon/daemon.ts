/**
 * The daemon: wires the kernel layer, the firewall, IPAM, the store and the drivers into a Controller,
 * restores state, and serves the API until it is told to stop. Kernel state is left in place on stop, so
 * containers keep their networking while netd restarts.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import type { Server } from 'node:http';
import { createLogger, type Logger } from '../log.js';
import { InvalidArgumentError } from '../errors.js';
import { Controller } from '../cnm/controller.js';
import { Ipam } from '../ipam/ipam.js';
import { DEFAULT_ADDRESS_POOLS, parseAddressPool } from '../ipam/default-pools.js';
import { defaultIpv6Pool } from '../ipam/ula.js';
import { Store } from '../store/store.js';
import { DataRootLock } from '../store/lock.js';
import { Rtnl } from '../kernel/rtnetlink.js';
import { createFirewall, type FirewallBackendName } from '../firewall/factory.js';
import { hostPortSweeper } from '../firewall/conntrack.js';
import { findTool, missingTool, requireTools } from '../firewall/tools.js';
import { watchFirewallTables } from '../firewall/nft-netlink-watch.js';
import { NfnetlinkElementWriter } from '../firewall/nft-netlink-elements.js';
import type { NftElementWriter } from '../firewall/nft-elements.js';
import { BridgeDriver } from '../drivers/bridge/bridge-driver.js';
import { HostDriver } from '../drivers/host.js';
import { NullDriver } from '../drivers/null.js';
import { OPT_BRIDGE_NAME, OPT_DEFAULT_BRIDGE } from '../drivers/bridge/options.js';
import { parseIfName } from '../net/index.js';
import { startApiServer } from '../api/server.js';
import { claimUnixSocket, parseHost } from '../api/listen.js';
import { parsePluginAddress, startDockerPluginServer } from '../api/docker-plugin-api.js';
import { DockerPlugin } from '../docker-plugin/plugin.js';
import { pluginStateDir } from '../docker-plugin/state.js';
import { loadInstance } from './instance.js';
import { ProcNamespaceResolver } from './namespace-resolver.js';
import { hostSubnets } from './host-subnets.js';
import { DnsService } from '../dns/dns-service.js';
import { FilesRoot } from '../dns/files-root.js';
import type { DaemonConfig } from './defaults.js';
import { setUpCluster, type ClusterMode } from './cluster-setup.js';

export interface RunningDaemon {
  controller: Controller;
  log: Logger;
  stop(): Promise<void>;
}

/**
 * NETD_TEST_SWEEP_MS (tests only, like NETD_TEST_IDLE_TIMEOUT_MS): the dead-container sweep's interval,
 * 0 = no sweep, so a test can tell a runtime's own DEL or poststop hook from the sweep. Unset or invalid: undefined.
 */
function testSweepMs(): number | undefined {
  const text = process.env.NETD_TEST_SWEEP_MS;
  const ms = text === undefined || text === '' ? NaN : Number(text);
  return Number.isSafeInteger(ms) && ms >= 0 ? ms : undefined;
}

export async function startDaemon(config: DaemonConfig): Promise<RunningDaemon> {
  const log = createLogger(config.logLevel);
  parseIfName(config.bridge);
  for (const [what, ms] of [['sweep interval', config.sweepIntervalMs], ['firewall check interval', config.firewallCheckIntervalMs]] as const) {
    if (ms !== undefined && !(Number.isSafeInteger(ms) && ms >= 0)) throw new InvalidArgumentError(`${what} must be a whole number of milliseconds, not ${ms}`);
  }
  const pools = (config.defaultAddressPools.length > 0 ? config.defaultAddressPools : DEFAULT_ADDRESS_POOLS).map(parseAddressPool);
  mkdirSync(config.dataRoot, { recursive: true, mode: 0o700 });
  const listen = parseHost(config.host);
  const pluginPath = config.dockerPlugin === undefined ? undefined : parsePluginAddress(config.dockerPlugin);
  if (pluginPath !== undefined && listen.kind === 'unix' && resolvePath(pluginPath) === resolvePath(listen.path)) throw new InvalidArgumentError(`--docker-plugin ${config.dockerPlugin} is the API's socket (--host): give it a path of its own`);
  const lock = DataRootLock.acquire(config.dataRoot);
  let rtnl: Rtnl | undefined;
  let elements: NftElementWriter | undefined;
  let server: Server | undefined;
  let pluginServer: Server | undefined;
  let dns: DnsService | undefined;
  let execLock: DataRootLock | undefined;
  let clusterMode: ClusterMode | undefined;
  try {
    // Namespaces and container files live there: two daemons (two data roots) must not share it.
    if (resolvePath(config.execRoot) !== resolvePath(config.dataRoot)) {
      mkdirSync(config.execRoot, { recursive: true, mode: 0o755 });
      execLock = DataRootLock.acquire(config.execRoot, 'exec root');
    }
    // Before anything changes in the kernel: a live daemon on the socket path stops this one here.
    if (listen.kind === 'unix') await claimUnixSocket(listen.path);
    // The plugin's socket exists from here on, before recovery: a dockerd started first finds it (calls
    // wait until the controller is ready) instead of failing its containers (moby/libnetwork#813).
    let plugin: DockerPlugin | undefined;
    if (pluginPath !== undefined) {
      await claimUnixSocket(pluginPath);
      plugin = new DockerPlugin(pluginStateDir(config.dataRoot), log);
      pluginServer = await startDockerPluginServer({ path: pluginPath, plugin, log });
    }
    const instance = loadInstance(config.dataRoot);
    // No IPv6 pool given: IPv6 networks without a subnet get /64s of this host's own ULA /48.
    if (!pools.some((p) => p.base.family === 6)) pools.push(defaultIpv6Pool(config.dataRoot));
    dns = new DnsService({
      log,
      servers: config.dns,
      containerFilesDir: join(config.execRoot, 'containers'),
      filesRoot: config.filesRoot === undefined ? undefined : FilesRoot.open(config.filesRoot),
    });
    rtnl = Rtnl.open();
    const hostRtnl = rtnl;
    elements = config.firewallBackend === 'nftables' ? openElementWriter(log) : undefined;
    const firewall = createFirewall({
      logger: log,
      backend: config.firewallBackend as FirewallBackendName | undefined,
      elements,
      instance,
      sweep: hostPortSweeper(async () => (await hostRtnl.addresses()).map((a) => a.cidr.address)),
    });
    requireTools(firewall.tools.required);
    for (const tool of firewall.tools.optional.filter((t) => !findTool(t))) log.warn({ op: 'start', tool }, `${missingTool(tool).message}; netd works without it, with less cleanup`);
    const ipam = new Ipam(pools);
    const bridge = new BridgeDriver({ rtnl: hostRtnl, firewall, log, instance, ipForwardNoDrop: config.ipForwardNoDrop, forwardingFile: join(config.dataRoot, 'forwarding.json') });
    clusterMode = setUpCluster(config, { rtnl: hostRtnl, bridge, ipam, dns, log, instance });
    const controller = new Controller({
      store: new Store(config.dataRoot),
      ipam,
      // The overlay driver first: its restore hands its networks to the bridge driver before the bridge
      // driver's own restore converges the firewall for all of them (overlay-driver.ts).
      drivers: [...(clusterMode ? [clusterMode.overlay] : []), bridge, new HostDriver(), new NullDriver()],
      resolver: new ProcNamespaceResolver(join(config.execRoot, 'netns')),
      log,
      hostSubnets: () => hostSubnets(hostRtnl),
      // Docker's three: the default network first.
      predefined: [
        { name: 'bridge', driver: 'bridge', options: { [OPT_BRIDGE_NAME]: config.bridge, [OPT_DEFAULT_BRIDGE]: 'true' } },
        { name: 'host', driver: 'host' },
        { name: 'none', driver: 'null' },
      ],
      observers: [dns, ...(plugin ? [plugin.observer] : []), ...(clusterMode ? [clusterMode.cluster] : [])],
    });
    if (clusterMode) controller.joinCluster(clusterMode.cluster);
    const problems = await controller.start();
    clusterMode?.start(controller);
    instance.adopted(); // the marks netd used before instances are replaced by now
    dns.removeOrphanFiles();
    await plugin?.ready(controller);
    const stopMonitors = controller.startMonitors({
      sweepMs: testSweepMs() ?? config.sweepIntervalMs,
      firewallMs: config.firewallCheckIntervalMs,
      // NETD_TEST_NO_FIREWALL_WATCH=1 (tests only): the timed check instead, as where nf_tables cannot be watched.
      watchFirewall: process.env.NETD_TEST_NO_FIREWALL_WATCH === '1' ? undefined : (notify) => watchFirewallTables(firewall, log, notify),
    });
    const info = async () => ({ instance: instance.id, firewall: { backend: firewall.backend, warnings: await firewall.warnings() } });
    const cluster = clusterMode ? () => clusterMode!.cluster.status() : undefined;
    server = await startApiServer({ host: config.host, controller, log, group: config.group, info, cluster });
    log.info({ op: 'start', host: config.host, dockerPlugin: pluginPath, dataRoot: config.dataRoot, instance: instance.id, adoptedLegacyMarks: instance.adoptLegacy, networks: controller.networks().length, endpoints: controller.endpoints().length, stateProblems: problems.length }, 'netd is ready');
    const srv = server;
    const pluginSrv = pluginServer;
    const dnsService = dns;
    return {
      controller,
      log,
      stop: async () => {
        await stopMonitors();
        await new Promise<void>((resolve) => srv.close(() => resolve()));
        if (pluginSrv) await new Promise<void>((resolve) => pluginSrv.close(() => resolve()));
        await controller.stop(); // detaches' deferred teardowns
        await clusterMode?.close();
        await firewall.settled(); // e.g. conntrack deletions that follow a detach
        await dnsService.close();
        elements?.close();
        hostRtnl.close();
        execLock?.release();
        lock.release();
        log.info({ op: 'stop' }, 'netd stopped');
      },
    };
  } catch (err) {
    await clusterMode?.close().catch(() => undefined);
    server?.close();
    pluginServer?.close();
    await dns?.close();
    rtnl?.close();
    elements?.close();
    execLock?.release();
    lock.release();
    throw err;
  }
}

/**
 * The nftables backend's element writer: in-process over nfnetlink (published ports cost no process); where
 * that socket cannot open, the backend's default (`nft -f -` per change), with a warning.
 */
function openElementWriter(log: Logger): NftElementWriter | undefined {
  try {
    return new NfnetlinkElementWriter();
  } catch (err) {
    log.warn({ op: 'start', err }, 'nfnetlink socket unavailable: published ports are written with nft -f');
    return undefined;
  }
}
