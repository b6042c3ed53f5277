/**
 * netd's embedded DNS, as a controller observer: it follows networks and endpoints, runs a
 * NetworkDnsServer on each network's gateway, tells attach callers which resolv.conf to use, and has
 * each container's resolv.conf and hosts files written (container-files.ts; attach extras `resolvConf`,
 * `hosts`, `links`).
 *
 * What each kind of network gets (chosen to match what Docker users know), as its driver's capabilities
 * say (never by driver name):
 * - user-defined networks whose driver gives names (bridge): names resolved on the gateway, everything
 *   else forwarded; containers get `nameserver GATEWAY` (v4, then v6), the host's search domains and
 *   options, plus `ndots:0`;
 * - predefined networks with an interface (the default `bridge`): no names (as in Docker, which resolves
 *   names on user-defined networks only); containers get the upstream resolvers
 *   themselves (the daemon's --dns servers, or the host's resolv.conf nameservers), as Docker gives
 *   them. Loopback resolvers (127.0.0.53...) are unreachable from a container, so those are left out,
 *   and when nothing else is left the container is pointed at the gateway, where netd forwards for it
 *   (where Docker would fall back to Google's public resolvers);
 * - networks in the host's namespace (`host`): the host's own resolv.conf (loopback resolvers work);
 * - networks with neither (`none`): nothing.
 * If a network's listener cannot bind (port 53 taken), containers get the upstreams as on the default
 * bridge, and the failure is logged: the daemon never stops for DNS.
 */
import { statSync } from 'node:fs';
import type { Logger } from '../log.js';
import type { EndpointRecord } from '../cnm/endpoint.js';
import type { SandboxRecord } from '../cnm/sandbox.js';
import type { InterfaceAddress } from '../net/index.js';
import type { AttachExtras, NetworkObserver, ObservedNetwork } from '../cnm/observer.js';
import { NameDirectory } from './directory.js';
import { namesOf, type EndpointNames } from './records.js';
import { Forwarder } from './forwarder.js';
import { Responder } from './responder.js';
import { NetworkDnsServer } from './dns-server.js';
import { ContainerFiles, FILE_EXTRAS } from './container-files.js';
import type { FilesRoot } from './files-root.js';
import {
  HOST_RESOLV_CONF,
  MAX_NAMESERVERS,
  containerOptions,
  formatUpstream,
  isLoopback,
  parseUpstream,
  readResolvConf,
  type DnsConfig,
  type ResolvConf,
  type Upstream,
} from './resolv-conf.js';

export interface DnsServiceOptions {
  log: Logger;
  /** Upstream resolvers (`--dns`): replace the host resolv.conf's nameservers. */
  servers?: string[];
  /** The host's resolv.conf (search domains, options, and upstreams when `servers` is empty). */
  resolvConf?: string;
  /** Listening port (53; tests of the service alone may use another). */
  port?: number;
  timeoutMs?: number;
  attemptMs?: number;
  maxInFlight?: number;
  /** Where each container's resolv.conf and hosts are written (`<exec-root>/containers`); none if undefined. */
  containerFilesDir?: string;
  /** Where clients may name further copies (`--files-root`); nowhere if undefined. */
  filesRoot?: FilesRoot;
}

/** How often the host's resolv.conf is checked for changes, at most. */
const RESOLV_CONF_CHECK_MS = 2000;

/** The address of an interface address, as text (what DNS answers and hosts files carry). */
const plain = (a: InterfaceAddress | undefined): string | undefined => a?.address.toString();

export class DnsService implements NetworkObserver {
  private readonly directory = new NameDirectory();
  private readonly servers = new Map<string, NetworkDnsServer>();
  private readonly files: ContainerFiles;
  /** The attach extras this observer reads (checked by `checkAttach`). */
  readonly extrasKeys: readonly string[] = FILE_EXTRAS;
  private readonly forwarder: Forwarder;
  private readonly responder: Responder;
  private readonly configured: Upstream[];
  private readonly resolvConfPath: string;
  private host: ResolvConf;
  private hostUpstreams: Upstream[] = [];
  private hostStamp = '';
  private hostCheckedAt = 0;

  constructor(private readonly opts: DnsServiceOptions) {
    // A bad --dns value is the operator's mistake: refuse to start, before anything listens.
    this.configured = (opts.servers ?? []).map(parseUpstream);
    this.resolvConfPath = opts.resolvConf ?? HOST_RESOLV_CONF;
    this.host = readResolvConf(this.resolvConfPath);
    this.hostUpstreams = upstreamsOf(this.host);
    this.hostStamp = stamp(this.resolvConfPath);
    this.forwarder = new Forwarder({ log: opts.log, timeoutMs: opts.timeoutMs, attemptMs: opts.attemptMs, maxInFlight: opts.maxInFlight });
    this.responder = new Responder({ directory: this.directory, forwarder: this.forwarder, upstreams: () => this.upstreams(), log: opts.log });
    this.files = new ContainerFiles({
      log: opts.log,
      dir: opts.containerFilesDir,
      filesRoot: opts.filesRoot,
      dnsConfig: (network) => this.dnsConfig(network),
      named: (networkId, name) => this.directory.endpointNamed(networkId, name),
    });
    opts.log.info({ op: 'dns', upstreams: this.upstreams().map(formatUpstream), source: this.configured.length > 0 ? '--dns' : this.resolvConfPath }, 'DNS upstreams');
  }

  /** The upstreams in force: --dns, or the host's resolv.conf as it is now. */
  upstreams(): Upstream[] {
    if (this.configured.length > 0) return this.configured;
    this.hostConf();
    return this.hostUpstreams;
  }

  /** The host's resolv.conf, re-read when it changed (checked at most every few seconds). */
  private hostConf(): ResolvConf {
    const now = Date.now();
    if (now - this.hostCheckedAt >= RESOLV_CONF_CHECK_MS) {
      this.hostCheckedAt = now;
      const s = stamp(this.resolvConfPath);
      if (s !== this.hostStamp) {
        this.hostStamp = s;
        this.host = readResolvConf(this.resolvConfPath);
        this.hostUpstreams = upstreamsOf(this.host);
        this.opts.log.info({ op: 'dns', file: this.resolvConfPath, nameservers: this.host.nameservers }, 'host resolv.conf changed');
      }
    }
    return this.host;
  }

  // ---------------------------------------------------------------- observer hooks

  async networkCreated(network: ObservedNetwork): Promise<void> {
    const configs = [...network.ipv4, ...network.ipv6];
    this.directory.addNetwork({
      id: network.id,
      name: network.name,
      resolvesNames: resolvesNames(network),
      internal: network.internal,
      subnets: configs.map((c) => c.subnet),
    });
    const gateways = configs.map((c) => c.gateway);
    if (gateways.length === 0 || this.servers.has(network.id)) return;
    const server = new NetworkDnsServer({
      networkId: network.id,
      networkName: network.name,
      addresses: gateways,
      port: this.opts.port,
      directory: this.directory,
      responder: this.responder,
      log: this.opts.log,
    });
    this.servers.set(network.id, server);
    const outcomes = await server.start();
    const failed = outcomes.filter((o) => o.error !== undefined);
    if (failed.length > 0) {
      this.opts.log.error(
        { op: 'dns', network: network.id, name: network.name, failed: failed.map((o) => `${o.transport} ${o.address}: ${o.error}`) },
        'DNS listener could not start; containers on this network get the upstream resolvers instead',
      );
    } else {
      this.opts.log.debug({ op: 'dns', network: network.id, name: network.name, addresses: server.listening, port: this.opts.port ?? 53 }, 'DNS listening');
    }
  }

  async networkRemoved(network: ObservedNetwork): Promise<void> {
    const server = this.servers.get(network.id);
    this.servers.delete(network.id);
    this.directory.removeNetwork(network.id);
    await server?.close();
  }

  endpointJoined(network: ObservedNetwork, endpoint: EndpointRecord, sandbox: SandboxRecord, extras: AttachExtras): void {
    this.directory.join(network.id, {
      endpointId: endpoint.id,
      sandboxId: endpoint.sandboxId,
      // A name longer than a DNS label (63) cannot be answered: the short container id stands in for it.
      name: dnsName(endpoint),
      names: namesOf({ ...endpoint, name: dnsName(endpoint) }),
      ipv4: plain(endpoint.ipv4),
      ipv6: plain(endpoint.ipv6),
    });
    this.files.joined(network, endpoint, sandbox, extras ?? {});
  }

  endpointLeft(network: ObservedNetwork, endpoint: EndpointRecord): void {
    this.directory.leave(network.id, endpoint.id);
    this.files.left(network, endpoint);
  }

  /**
   * A container on another host of the cluster joined a global network this host has (cluster/cluster.ts):
   * its names answer here too. Its sandbox id is its host's, so it is never taken for a local client.
   */
  remoteJoined(networkId: string, entry: EndpointNames): void {
    this.directory.leave(networkId, entry.endpointId);
    this.directory.join(networkId, entry);
  }

  remoteLeft(networkId: string, endpointId: string): void {
    this.directory.leave(networkId, endpointId);
  }

  /** Before an attach: links must name containers on the network, client paths lie under --files-root. */
  checkAttach(network: ObservedNetwork, extras: AttachExtras): void {
    this.files.check(network, extras);
  }

  describeEndpoint(network: ObservedNetwork, endpoint: EndpointRecord): Record<string, unknown> | undefined {
    const dns = this.dnsConfig(network);
    return { ...(dns ? { dns } : {}), ...this.files.describe(endpoint) };
  }

  /** At start, after every restored endpoint joined: containers' files are rendered once, directories nobody owns go. */
  removeOrphanFiles(): void {
    this.files.restored();
  }

  async close(): Promise<void> {
    const servers = [...this.servers.values()];
    this.servers.clear();
    await Promise.all(servers.map((s) => s.close()));
  }

  // ---------------------------------------------------------------- what containers use

  /** The resolver configuration for a container on this network. */
  dnsConfig(network: ObservedNetwork): DnsConfig | undefined {
    const caps = network.capabilities;
    if (!caps.interface && !caps.hostNamespace) return undefined; // no way to any resolver
    const host = this.hostConf();
    const upstreams = this.upstreams().filter((u) => u.port === 53);
    if (caps.hostNamespace) {
      const nameservers = this.configured.length > 0 ? upstreams.map((u) => u.address) : host.nameservers;
      return { nameservers: nameservers.slice(0, MAX_NAMESERVERS), search: host.search, options: [...host.options] };
    }
    const listening = this.servers.get(network.id)?.listening ?? [];
    if (resolvesNames(network) && listening.length > 0) {
      return { nameservers: listening.slice(0, MAX_NAMESERVERS), search: host.search, options: containerOptions(host.options) };
    }
    const reachable = upstreams.map((u) => u.address).filter((a) => !isLoopback(a));
    const nameservers = reachable.length > 0 ? reachable : listening;
    return { nameservers: nameservers.slice(0, MAX_NAMESERVERS), search: host.search, options: [...host.options] };
  }
}

function upstreamsOf(conf: ResolvConf): Upstream[] {
  return conf.nameservers.slice(0, MAX_NAMESERVERS).map(parseUpstream);
}

/** Container names are answered on user-defined networks whose driver gives names (not on predefined ones, as Docker). */
function resolvesNames(network: ObservedNetwork): boolean {
  return network.capabilities.dnsNames === true && !network.predefined;
}

/** Identity of a file's current content for change detection (missing file: empty). */
function stamp(path: string): string {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return '';
  }
}

/**
 * The endpoint's container name as DNS can carry it (labels of at most 63 bytes, 253 in all), else its short
 * sandbox id (CNI container ids may be longer).
 */
export function dnsName(endpoint: EndpointRecord): string {
  const fits = endpoint.name.length <= 253 && endpoint.name.split('.').every((label) => label.length <= 63);
  return fits ? endpoint.name : endpoint.sandboxId.slice(0, 12);
}
