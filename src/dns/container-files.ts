/**
 * A container's resolv.conf and hosts, as Docker keeps them for the runtime to bind-mount: netd writes
 * them for every sandbox attached to a network, in a directory of its own,
 * `<exec-root>/containers/<sandbox-id>/{resolv.conf,hosts}`, reports those paths in the attach result
 * (`resolvConfPath`, `hostsPath`, as Docker's ContainerJSON), rewrites them when what they say changes
 * (the container joins or leaves a network, a linked container comes back with another address) and
 * removes the directory when the sandbox's last endpoint goes (detach, `sandbox rm`, the dead-container
 * sweep), or at start when no sandbox owns it any more.
 *
 * Attach extras (`extras` of POST /netd/v1/attach; CLI `--resolv-conf`, `--hosts`, `--link`):
 * - `links`: `NAME[:ALIAS]` entries for containers on the network, checked before anything is attached;
 * - `resolvConf`, `hosts`: further copies at paths the client names, refused (400) unless under the
 *   administrator's `--files-root` (files-root.ts), kept current like the sandbox's own.
 * What an attach asked for is kept beside the files (`requested.json`) so a restarted daemon keeps it.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log.js';
import type { EndpointRecord } from '../cnm/endpoint.js';
import type { SandboxRecord } from '../cnm/sandbox.js';
import type { AttachExtras, ObservedNetwork } from '../cnm/observer.js';
import { writeFileAtomic } from '../store/atomic-file.js';
import { rewriteInPlace } from '../store/in-place-file.js';
import { FilesRoot } from './files-root.js';
import { parseLink, renderHosts, type HostsEntry } from './hosts-file.js';
import { renderResolvConf, type DnsConfig } from './resolv-conf.js';

/** The attach extras read here. */
export const FILE_EXTRAS = ['resolvConf', 'hosts', 'links'] as const;

const RESOLV_CONF = 'resolv.conf';
const HOSTS = 'hosts';
const REQUESTED = 'requested.json';
/** Sandbox ids are hex (cnm newId); nothing else ever names a directory here. */
const SANDBOX_ID = /^[0-9a-f]{12,64}$/;
/** Links per attach, at most (each is a lookup and hosts lines on every rewrite). */
const MAX_LINKS = 256;

export interface ContainerFilesOptions {
  log: Logger;
  /** `<exec-root>/containers`; undefined: no files of netd's own (a DNS service tested alone). */
  dir?: string;
  /** Where clients may name files (`--files-root`); undefined: nowhere. */
  filesRoot?: FilesRoot;
  /** The resolver configuration for a container on a network. */
  dnsConfig(network: ObservedNetwork): DnsConfig | undefined;
  /** The addresses of the container called `name` on a network now, if one is there. */
  named(networkId: string, name: string): { ipv4?: string; ipv6?: string } | undefined;
}

interface Link {
  networkId: string;
  name: string;
  alias?: string;
}

/** What attaches of a sandbox asked for; persisted beside its files. */
interface Requested {
  resolvConf?: string;
  hosts?: string;
  links: Link[];
}

interface SandboxFiles {
  id: string;
  name: string;
  /** Joined endpoints (the DNS of the network joined first, by endpoint creation time, is the container's). */
  endpoints: Map<string, { network: ObservedNetwork; endpoint: EndpointRecord }>;
  /** Its directory was made (once per sandbox, not per write). */
  dirMade?: boolean;
  requested: Requested;
  /** Content last written, per path, to skip writes that change nothing. */
  written: Map<string, string>;
  /** What the latest attach is told of the files it asked for. */
  outcome?: { resolvConf?: string; hosts?: string; problems?: string[] };
}

/** The extras of one attach, with their types checked. */
interface FilesRequest {
  resolvConf?: string;
  hosts?: string;
  links: { name: string; alias?: string }[];
}

export class ContainerFiles {
  private readonly sandboxes = new Map<string, SandboxFiles>();
  /** Per network id, the sandboxes whose links name containers there (refreshed when it changes). */
  private readonly linkers = new Map<string, Set<SandboxFiles>>();
  /**
   * Until `restored()`: the daemon is replaying its endpoints at start; files are rendered once per
   * sandbox afterwards, not once per restored endpoint, and only then is `requested.json` read.
   */
  private restoring: boolean;

  constructor(private readonly opts: ContainerFilesOptions) {
    if (opts.dir) mkdirSync(opts.dir, { recursive: true, mode: 0o711 });
    this.restoring = opts.dir !== undefined;
  }

  /** Before an attach changes anything: refuses (400) extras that cannot be honoured. */
  check(network: ObservedNetwork, extras: AttachExtras): void {
    const req = this.parse(extras);
    for (const link of req.links) {
      if (!this.opts.named(network.id, link.name)) throw new InvalidArgumentError(`link ${link.name}: no container named ${link.name} on network ${network.name}`);
    }
    if (req.resolvConf !== undefined) FilesRoot.check(this.opts.filesRoot, req.resolvConf, 'resolvConf');
    if (req.hosts !== undefined) FilesRoot.check(this.opts.filesRoot, req.hosts, 'hosts');
  }

  joined(network: ObservedNetwork, endpoint: EndpointRecord, sandbox: SandboxRecord, extras: AttachExtras): void {
    let sb = this.sandboxes.get(sandbox.id);
    if (!sb) {
      // What an attach asked for survives a restart; a sandbox new since the start has nothing kept.
      sb = { id: sandbox.id, name: sandbox.name, endpoints: new Map(), requested: this.restoring ? this.loadRequested(sandbox.id) : { links: [] }, written: new Map() };
      this.sandboxes.set(sandbox.id, sb);
      this.index(sb);
    }
    sb.name = sandbox.name;
    sb.endpoints.set(endpoint.id, { network, endpoint });
    // Every attach is told what became of the files, even when it named none (netd's own may fail too).
    sb.outcome = {};
    const req = this.parse(extras);
    if (req.resolvConf !== undefined || req.hosts !== undefined || req.links.length > 0) {
      const links = sb.requested.links.filter((l) => !(l.networkId === network.id && req.links.some((r) => r.name === l.name)));
      sb.requested = {
        resolvConf: req.resolvConf ?? sb.requested.resolvConf,
        hosts: req.hosts ?? sb.requested.hosts,
        links: [...links, ...req.links.map((l) => ({ networkId: network.id, ...l }))],
      };
      this.index(sb);
      this.saveRequested(sb);
    }
    if (this.restoring) return;
    this.render(sb);
    this.refreshLinkers(network.id, sb);
  }

  left(network: ObservedNetwork, endpoint: EndpointRecord): void {
    const sb = this.sandboxes.get(endpoint.sandboxId);
    if (sb) {
      sb.endpoints.delete(endpoint.id);
      if (sb.endpoints.size === 0) {
        this.sandboxes.delete(sb.id);
        for (const l of sb.requested.links) this.linkers.get(l.networkId)?.delete(sb);
        this.removeDir(sb.id);
      } else {
        this.render(sb);
      }
    }
    this.refreshLinkers(network.id, sb);
  }

  /** The attach result's fields: the paths to bind-mount, and what became of files the client named. */
  describe(endpoint: EndpointRecord): Record<string, unknown> {
    const sb = this.sandboxes.get(endpoint.sandboxId);
    if (!sb) return {};
    const out: Record<string, unknown> = {};
    if (this.opts.dir) {
      // Only paths whose latest write succeeded: a runtime must not bind-mount a file that is not there.
      const resolvConf = join(this.opts.dir, sb.id, RESOLV_CONF);
      const hosts = join(this.opts.dir, sb.id, HOSTS);
      if (sb.written.has(resolvConf)) out.resolvConfPath = resolvConf;
      if (sb.written.has(hosts)) out.hostsPath = hosts;
    }
    if (sb.outcome && Object.keys(sb.outcome).length > 0) out.files = sb.outcome;
    sb.outcome = undefined;
    return out;
  }

  /**
   * At start, once every restored endpoint has joined: each sandbox's files are rendered (once), and
   * directories no sandbox owns are removed.
   */
  restored(): void {
    this.restoring = false;
    for (const sb of this.sandboxes.values()) this.render(sb);
    if (!this.opts.dir) return;
    for (const name of readdirSync(this.opts.dir)) {
      if (SANDBOX_ID.test(name) && !this.sandboxes.has(name)) {
        this.removeDir(name);
        this.opts.log.info({ op: 'container-files', sandbox: name }, 'files of a sandbox that is gone removed');
      }
    }
  }

  // ---------------------------------------------------------------- internals

  private parse(extras: AttachExtras): FilesRequest {
    // JSON null is the same as absent.
    const [resolvConf, hosts, links] = FILE_EXTRAS.map((k) => extras[k] ?? undefined);
    for (const [what, v] of [['resolvConf', resolvConf], ['hosts', hosts]] as const) {
      if (v !== undefined && typeof v !== 'string') throw new InvalidArgumentError(`${what} must be a path (a string)`);
    }
    if (links !== undefined && (!Array.isArray(links) || links.some((l) => typeof l !== 'string'))) {
      throw new InvalidArgumentError('links must be a list of NAME[:ALIAS]');
    }
    if (((links as string[] | undefined)?.length ?? 0) > MAX_LINKS) throw new InvalidArgumentError(`at most ${MAX_LINKS} links per attach`);
    const parsed = ((links as string[] | undefined) ?? []).map((text) => {
      try {
        return parseLink(text);
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
    });
    return { resolvConf: resolvConf as string | undefined, hosts: hosts as string | undefined, links: parsed };
  }

  /** Writes the sandbox's files (and the client's copies) from what is known now. */
  private render(sb: SandboxFiles): void {
    const problems: string[] = [];
    const resolvConf = renderResolvConf(this.dnsOf(sb));
    const hosts = renderHosts(this.hostsOf(sb));
    if (this.opts.dir) {
      const dir = join(this.opts.dir, sb.id);
      try {
        this.makeDir(sb);
        this.writeOwn(sb, join(dir, RESOLV_CONF), resolvConf);
        this.writeOwn(sb, join(dir, HOSTS), hosts);
      } catch (err) {
        problems.push(`could not write the files in ${dir}: ${(err as Error).message}`);
      }
    }
    for (const [key, content] of [['resolvConf', resolvConf], ['hosts', hosts]] as const) {
      const path = sb.requested[key];
      if (path === undefined) continue;
      try {
        // Checked again each time (one walk): the tree below the files root may have changed since the attach.
        const root = this.opts.filesRoot;
        this.writeOnce(sb, path, content, () => (root ? root.write(path, content, key) : FilesRoot.check(root, path, key)));
        if (sb.outcome) sb.outcome[key] = path;
      } catch (err) {
        problems.push(`could not write ${path}: ${(err as Error).message}`);
      }
    }
    if (problems.length > 0) {
      if (sb.outcome) sb.outcome.problems = problems;
      this.opts.log.warn({ op: 'container-files', sandbox: sb.id, problems }, 'resolv.conf/hosts not (all) written');
    }
  }

  /**
   * One of netd's own files: created atomically the first time, then rewritten in place, so a runtime's
   * bind mount of it (which pins the inode) sees every change.
   */
  private writeOwn(sb: SandboxFiles, path: string, content: string): void {
    this.writeOnce(sb, path, content, () => {
      if (!rewriteInPlace(path, content)) writeFileAtomic(path, content);
    });
  }

  private writeOnce(sb: SandboxFiles, path: string, content: string, write: () => void): void {
    if (sb.written.get(path) === content) return;
    sb.written.delete(path);
    write();
    sb.written.set(path, content);
  }

  /**
   * The container's resolver: the first network that gives one, in the order the endpoints were created
   * (the same before and after a restart, whatever order endpoints are restored in).
   */
  private dnsOf(sb: SandboxFiles): DnsConfig {
    const byAge = [...sb.endpoints.values()].sort(
      (a, b) => (a.endpoint.created < b.endpoint.created ? -1 : a.endpoint.created > b.endpoint.created ? 1 : a.endpoint.id < b.endpoint.id ? -1 : 1),
    );
    for (const { network } of byAge) {
      const dns = this.opts.dnsConfig(network);
      if (dns) return dns;
    }
    return { nameservers: [], search: [], options: [] };
  }

  private hostsOf(sb: SandboxFiles): { self: HostsEntry[]; links: HostsEntry[] } {
    const self: HostsEntry[] = [];
    for (const { endpoint } of sb.endpoints.values()) {
      for (const a of [endpoint.ipv4, endpoint.ipv6]) if (a) self.push({ address: a.address.toString(), names: [sb.name] });
    }
    const links: HostsEntry[] = [];
    for (const link of sb.requested.links) {
      // A linked container that is not on the network now has no entry; it returns when the name does.
      const target = this.opts.named(link.networkId, link.name);
      const names = link.alias ? [link.alias, link.name] : [link.name];
      for (const address of [target?.ipv4, target?.ipv6]) if (address) links.push({ address, names });
    }
    return { self, links };
  }

  /** Sandboxes whose links name containers on `networkId` follow what that network now holds. */
  private refreshLinkers(networkId: string, except: SandboxFiles | undefined): void {
    for (const sb of this.linkers.get(networkId) ?? []) if (sb !== except) this.render(sb);
  }

  private index(sb: SandboxFiles): void {
    for (const l of sb.requested.links) {
      let set = this.linkers.get(l.networkId);
      if (!set) this.linkers.set(l.networkId, (set = new Set()));
      set.add(sb);
    }
  }

  private makeDir(sb: SandboxFiles): void {
    if (sb.dirMade) return;
    mkdirSync(join(this.opts.dir!, sb.id), { recursive: true, mode: 0o755 });
    sb.dirMade = true;
  }

  private loadRequested(id: string): Requested {
    if (!this.opts.dir) return { links: [] };
    try {
      const raw = JSON.parse(readFileSync(join(this.opts.dir, id, REQUESTED), 'utf8')) as Requested;
      return { resolvConf: raw.resolvConf, hosts: raw.hosts, links: Array.isArray(raw.links) ? raw.links : [] };
    } catch {
      return { links: [] };
    }
  }

  private saveRequested(sb: SandboxFiles): void {
    if (!this.opts.dir) return;
    const dir = join(this.opts.dir, sb.id);
    try {
      this.makeDir(sb);
      writeFileAtomic(join(dir, REQUESTED), JSON.stringify(sb.requested) + '\n', { mode: 0o600 });
    } catch (err) {
      this.opts.log.warn({ op: 'container-files', sandbox: sb.id, err }, 'could not keep what the attach asked for');
    }
  }

  private removeDir(id: string): void {
    if (!this.opts.dir || !SANDBOX_ID.test(id)) return;
    rmSync(join(this.opts.dir, id), { recursive: true, force: true });
  }
}
