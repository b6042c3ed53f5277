/**
 * The daemon side of CNI: ADD, DEL, CHECK, GC, STATUS and VERSION on the controller, one attachment
 * being (network, CNI_CONTAINERID, CNI_IFNAME). A CNI attachment is an ordinary netd endpoint: the
 * sandbox is named after the container id, the endpoint's interface is CNI_IFNAME, and it carries the
 * label io.netd.origin=cni (which GC goes by). The network is created on the first ADD when missing and
 * never removed by DEL; DEL succeeds whatever is already gone.
 */
import { performance } from 'node:perf_hooks';
import type { Controller } from '../cnm/controller.js';
import type { NetworkRecord } from '../cnm/network.js';
import type { AttachResult } from '../cnm/endpoint.js';
import { ConflictError, NotFoundError } from '../errors.js';
import type { Logger } from '../log.js';
import { PORT_MAP } from '../driverapi/labels.js';
import type { IPAddress } from '../net/index.js';
import type { EndpointRecord } from '../cnm/endpoint.js';
import { decodeStdin, parseConfig, parseIdentity, rawVersion, staticRequests, type CniConfig, type CniIdentity } from './config.js';
import { parseEnv, type CniEnv } from './env.js';
import { CNI_CODE, CniError, NETD_CODE, toCniError, type CniErrorBody } from './errors.js';
import { comparePrevResult } from './prev-result.js';
import { buildResult, type Attachment } from './result.js';
import { checkVersion, isSupported, parseVersion, versionInfo } from './version.js';

/** The label every endpoint made through CNI carries. */
export const ORIGIN_LABEL = 'io.netd.origin';
export const CNI_ORIGIN = 'cni';
/**
 * The conflist `name` an attachment was made under: two conflists may share one netd network (`"network"`),
 * and GC, DEL and CHECK only ever see their own conflist's attachments (libcni scopes by list name).
 */
export const CNI_NAME_LABEL = 'io.netd.cni.name';

/** What the route answers: 200 with a body, 204 without, or a CNI error object with its status. */
export interface CniReply {
  status: number;
  body?: unknown;
}

export class CniService {
  constructor(
    private readonly controller: Controller,
    private readonly log: Logger,
  ) {}

  /** One CNI command as the plugin forwarded it: `{env, stdin}`. Never throws. */
  async handle(request: unknown): Promise<CniReply> {
    const started = performance.now();
    const req = (typeof request === 'object' && request !== null ? request : {}) as { env?: unknown; stdin?: unknown };
    const fields: Record<string, unknown> = {};
    let cniVersion = '';
    try {
      const env = parseEnv(req.env);
      Object.assign(fields, { command: env.command, containerId: env.containerId || undefined, ifname: env.ifname || undefined });
      if (env.command === 'VERSION') {
        const raw = typeof req.stdin === 'string' && req.stdin.trim() !== '' ? decodeStdin(req.stdin) : {};
        return this.done(fields, started, { status: 200, body: versionInfo(typeof raw.cniVersion === 'string' && raw.cniVersion !== '' ? raw.cniVersion : undefined) });
      }
      const raw = decodeStdin(req.stdin);
      // Errors answer in the config's own version, even when the rest of it is refused.
      cniVersion = parseVersion(rawVersion(raw)) ? rawVersion(raw) : '';
      if (env.command === 'DEL') {
        const id = parseIdentity(raw);
        fields.network = id.network;
        return this.done(fields, started, await this.del(env, id));
      }
      const config = parseConfig(raw);
      fields.network = config.network;
      checkVersion(config.cniVersion, env.command);
      return this.done(fields, started, await this.run(env, config));
    } catch (err) {
      const e = toCniError(err);
      const body: CniErrorBody = e.toBody(cniVersion || versionInfo(undefined).cniVersion);
      return this.done({ ...fields, code: e.cniCode, error: e.message }, started, { status: e.status, body });
    }
  }

  private done(fields: Record<string, unknown>, started: number, reply: CniReply): CniReply {
    const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    const outcome = reply.status < 300 ? 'ok' : 'error';
    this.log[outcome === 'ok' ? 'info' : 'warn']({ op: 'cni', ...fields, durationMs, outcome }, `cni ${String(fields.command ?? '?')}`);
    return reply;
  }

  private run(env: CniEnv, config: CniConfig): Promise<CniReply> {
    switch (env.command) {
      case 'ADD':
        return this.add(env, config);
      case 'CHECK':
        return this.check(env, config);
      case 'GC':
        return this.gc(config);
      default:
        return this.status(config);
    }
  }

  // ---------------------------------------------------------------- ADD

  private async add(env: CniEnv, config: CniConfig): Promise<CniReply> {
    const rc = config.runtimeConfig;
    // runtimeConfig's ips/mac win over CNI_ARGS' IP/MAC (podman 4.3 sends --ip/--mac-address there).
    const { ips, mac } = staticRequests(rc, env.args);
    this.checkNamespace(env.netns);
    // A runtime reusing a container id (ctr does), or the kernel a dead namespace's inode, before the sweep
    // noticed the old namespace died.
    await this.controller.sweepIfGone(env.containerId, env.netns);
    this.checkNamespaceOwner(env);
    const network = await this.networkFor(config);
    checkPrefixLengths(network, rc.ipLengths);
    const podName = env.args.get('K8S_POD_NAME');
    const aliases = [...rc.aliases, ...(podName && isAlias(podName) ? [podName] : [])];
    const pick = (family: 4 | 6): IPAddress | undefined => ips.find((a) => a.family === family);
    const attached = (await this.controller.attach({
      target: { path: env.netns },
      network: network.id,
      name: env.containerId,
      ifname: env.ifname,
      ip: pick(4),
      ip6: pick(6),
      mac,
      aliases,
      options: rc.portMappings.length > 0 ? { [PORT_MAP]: rc.portMappings } : undefined,
      labels: { [ORIGIN_LABEL]: CNI_ORIGIN, [CNI_NAME_LABEL]: config.name },
    })) as AttachResult;
    try {
      return { status: 200, body: buildResult(config.cniVersion, attachmentOf(network, attached, env.netns), config.prevResult) };
    } catch (err) {
      // A prevResult that cannot be merged: the attach is undone, so a retried ADD starts afresh.
      await this.controller.removeEndpoint(attached.endpointId, 'cni add rollback');
      throw new CniError(CNI_CODE.INVALID_NETWORK_CONFIG, `cannot merge prevResult: ${(err as Error).message}`, undefined, { cause: err });
    }
  }

  /**
   * A namespace netd already knows under another name (`netd sandbox create`, a CLI-attached container)
   * would be joined under that name, where DEL (by CNI_CONTAINERID) never finds it: refused.
   */
  private checkNamespaceOwner(env: CniEnv): void {
    const holder = this.controller.findSandbox(env.netns);
    if (holder && holder.name !== env.containerId) {
      throw new CniError(NETD_CODE.CONFLICT, `CNI_NETNS ${env.netns} belongs to netd's ${holder.persistent ? 'sandbox' : 'container'} ${holder.name}, not to ${env.containerId}`, 'use that name as CNI_CONTAINERID, or another namespace');
    }
  }

  /** The daemon must open the runtime's namespace path itself (same mount namespace): code 4 when it cannot. */
  private checkNamespace(path: string): void {
    try {
      this.controller.namespaceOf({ path });
    } catch (err) {
      throw new CniError(CNI_CODE.INVALID_ENVIRONMENT, `netd cannot use CNI_NETNS ${path}: ${(err as Error).message}`, 'the daemon and the runtime must see the same network namespace paths (run netd in the runtime\'s mount namespace)');
    }
  }

  /** The config's network; created on first use (with `subnet`/`gateway` when given); code 7 when it contradicts them. */
  private async networkFor(config: CniConfig): Promise<NetworkRecord> {
    let network = this.findNetwork(config.network);
    if (!network) {
      try {
        network = await this.controller.createNetwork({ name: config.network, driver: 'bridge', subnet: config.subnet, gateway: config.gateway });
      } catch (err) {
        // Another ADD made it meanwhile.
        network = this.findNetwork(config.network);
        if (!network || !(err instanceof ConflictError)) throw err;
      }
    }
    const same = network.ipv4.concat(network.ipv6).find((c) => config.subnet !== undefined && c.subnet.family === config.subnet.family);
    if (config.subnet !== undefined && !same?.subnet.equals(config.subnet)) {
      throw new CniError(CNI_CODE.INVALID_NETWORK_CONFIG, `network ${network.name} exists with subnet ${same?.subnet ?? 'none'}, not ${config.subnet}`);
    }
    if (config.gateway !== undefined && !same?.gateway.equals(config.gateway)) {
      throw new CniError(CNI_CODE.INVALID_NETWORK_CONFIG, `network ${network.name} exists with gateway ${same?.gateway}, not ${config.gateway}`);
    }
    return network;
  }

  private findNetwork(name: string): NetworkRecord | undefined {
    return this.controller.networks().find((n) => n.name === name);
  }

  // ---------------------------------------------------------------- DEL, CHECK

  /**
   * Idempotent: the container, its namespace, the endpoint or the network may all be gone already. Only
   * what identifies the attachment is read, so a config ADD refused can still be deleted; a cniVersion netd
   * does not speak still releases it (the spec has a delete done whatever came before), and says so in the log.
   */
  private async del(env: CniEnv, id: CniIdentity): Promise<CniReply> {
    if (!isSupported(id.cniVersion)) this.log.warn({ op: 'cni', command: 'DEL', cniVersion: id.cniVersion }, 'cni DEL with an unsupported cniVersion: releasing anyway');
    const ep = this.attachmentOf(id, env);
    if (ep) {
      await this.controller.removeEndpoint(ep.id, 'cni del');
      // A runtime reads DEL's answer as "the interface is gone" (it may reuse the namespace at once).
      await this.controller.endpointGone(ep.id);
    }
    return { status: 204 };
  }

  /** The endpoint this conflist made for (container, ifname) on its network; never another origin's or conflist's. */
  private attachmentOf(id: CniIdentity, env: CniEnv): EndpointRecord | undefined {
    const ep = this.controller.endpointByInterface(id.network, env.containerId, env.ifname);
    return ep && isOurs(ep, id.name) ? ep : undefined;
  }

  private async check(env: CniEnv, config: CniConfig): Promise<CniReply> {
    const ep = this.attachmentOf(config, env);
    if (!ep) throw new CniError(CNI_CODE.UNKNOWN_CONTAINER, `netd has no attachment of container ${env.containerId} (${env.ifname}) on network ${config.network}`);
    // What the runtime cached (prevResult) must agree with the record, as the kernel must (the driver checks that).
    if (config.prevResult !== undefined) {
      const addresses = [ep.ipv4, ep.ipv6].filter((a) => a !== undefined).map(String);
      const recorded = { ifname: ep.ifname, mac: ep.mac?.toString(), sandbox: env.netns, addresses };
      const differences = comparePrevResult(config.prevResult, recorded);
      if (differences.length > 0) throw new CniError(NETD_CODE.CHECK_FAILED, `prevResult of ${env.containerId} differs from netd's record: ${differences[0]}`, differences.join('; '));
    }
    let problems: string[];
    try {
      problems = await this.controller.checkEndpoint(ep.id);
    } catch (err) {
      // Removed between the lookup and the check (a DEL racing it): no such attachment, as for CHECK before.
      if (err instanceof NotFoundError) throw new CniError(CNI_CODE.UNKNOWN_CONTAINER, `netd has no attachment of container ${env.containerId} (${env.ifname}) on network ${config.network}`);
      throw err;
    }
    if (problems.length > 0) throw new CniError(NETD_CODE.CHECK_FAILED, `the attachment of ${env.containerId} differs from netd's record: ${problems[0]}`, problems.join('; '));
    return { status: 204 };
  }

  // ---------------------------------------------------------------- GC, STATUS

  /**
   * Releases every attachment this conflist made on the network that the runtime does not list (no list, or
   * null, releases them all). A failed removal does not stop the rest; the failures are one error at the end.
   */
  private async gc(config: CniConfig): Promise<CniReply> {
    const network = this.findNetwork(config.network);
    if (!network) return { status: 204 };
    const keep = new Set(config.validAttachments.map((a) => `${a.containerId}\0${a.ifname}`));
    const failures: { ep: EndpointRecord; err: CniError }[] = [];
    const removed: string[] = [];
    for (const ep of this.controller.endpointsOf(network.id)) {
      if (!isOurs(ep, config.name) || keep.has(`${ep.name}\0${ep.ifname}`)) continue;
      try {
        await this.controller.removeEndpoint(ep.id, 'cni gc');
        removed.push(ep.id);
      } catch (err) {
        failures.push({ ep, err: toCniError(err) });
      }
    }
    // As DEL: released means gone from the kernel when GC answers (their teardowns run together).
    await Promise.all(removed.map((id) => this.controller.endpointGone(id)));
    if (failures.length > 0) {
      const details = failures.map(({ ep, err }) => `${ep.name} (${ep.ifname}): ${err.message}`).join('; ');
      throw new CniError(failures[0].err.cniCode, `GC could not release ${failures.length} attachment(s) of ${config.name}`, details);
    }
    return { status: 204 };
  }

  private async status(config: CniConfig): Promise<CniReply> {
    if (!(await this.controller.hasFreeAddress(config.network, config.subnet))) {
      const why = this.findNetwork(config.network) ? 'has no free address left' : `cannot be made: ${config.subnet ? `its subnet ${config.subnet} overlaps another network's` : 'no default address pool is free'}`;
      throw new CniError(CNI_CODE.NOT_AVAILABLE, `network ${config.network} ${why}`);
    }
    return { status: 204 };
  }
}

/** What the result reports of an attach: the driver's host interface, the addresses, the observers' DNS. */
function attachmentOf(network: NetworkRecord, r: AttachResult, sandbox: string): Attachment {
  const extra = r as { hostInterface?: { name: string; mac?: string }; dns?: { nameservers?: string[]; search?: string[]; options?: string[] } };
  return {
    hostInterface: extra.hostInterface,
    ifname: r.interface,
    mac: r.mac,
    sandbox,
    addresses: [
      ...(r.ipv4 ? [{ address: r.ipv4, gateway: network.ipv4[0]?.gateway.toString() }] : []),
      ...(r.ipv6 ? [{ address: r.ipv6, gateway: network.ipv6[0]?.gateway.toString() }] : []),
    ],
    defaultGateways: [r.gateway, r.gateway6].filter((g): g is string => g !== undefined),
    nameservers: extra.dns?.nameservers ?? [],
    search: extra.dns?.search ?? [],
    options: extra.dns?.options ?? [],
  };
}

/** Made through CNI under this conflist name (an endpoint from before the name label counts for any). */
function isOurs(ep: EndpointRecord, conflist: string): boolean {
  if (ep.labels?.[ORIGIN_LABEL] !== CNI_ORIGIN) return false;
  const name = ep.labels[CNI_NAME_LABEL];
  return name === undefined || name === conflist;
}

/** A prefix length given in runtimeConfig.ips must be the network's (netd puts the subnet's on the interface). */
function checkPrefixLengths(network: NetworkRecord, given: { address: IPAddress; length: number }[]): void {
  for (const { address, length } of given) {
    const subnet = (address.family === 4 ? network.ipv4 : network.ipv6)[0]?.subnet;
    if (subnet !== undefined && subnet.length !== length) {
      throw new CniError(CNI_CODE.INVALID_NETWORK_CONFIG, `runtimeConfig.ips: ${address}/${length} does not match network ${network.name}'s subnet ${subnet}`);
    }
  }
}

/** A K8S_POD_NAME netd can answer in DNS (others are left out rather than failing the ADD). */
function isAlias(name: string): boolean {
  return /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,252}$/.test(name);
}
