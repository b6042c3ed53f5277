/**
 * Start-up: the persisted state is loaded and replayed into IPAM, operations a crash interrupted are
 * undone or completed (journal.ts), drivers make the kernel match the records again, broken endpoints of
 * live containers are plumbed again, and containers that died while netd was down are released.
 */
import { basename, dirname } from 'node:path';
import type { LoadProblem } from '../store/store.js';
import type { CoreContext } from './context.js';
import type { Endpoints } from './endpoints.js';
import type { Networks } from './networks.js';
import type { Sandboxes } from './sandboxes.js';
import { Network, networkFromStored, type NetworkRecord } from './network.js';
import { endpointFromStored, type EndpointRecord } from './endpoint.js';
import type { SandboxRecord } from './sandbox.js';

export class Recovery {
  /** Keys of namespaces netd made, as named by the records and the journal read at start (see removeOrphanNamespaces). */
  private readonly madeKeys = new Set<string>();
  /** Ids of sandbox records that could not be read and were set aside: what they hold is unknown. */
  private readonly setAsideSandboxes = new Set<string>();

  constructor(
    private readonly ctx: CoreContext,
    private readonly networks: Networks,
    private readonly endpoints: Endpoints,
    private readonly sandboxes: Sandboxes,
  ) {}

  /** Everything before the predefined networks are ensured. Returns the state files that could not be read. */
  async recover(): Promise<LoadProblem[]> {
    const problems: LoadProblem[] = [];
    this.load(problems);
    await this.replayIntents(problems);
    for (const [driver, nets, eps] of this.ctx.registry.byDriver()) await driver.restore(nets, eps);
    await this.repairEndpoints();
    await this.releaseDead();
    this.removeOrphanNamespaces();
    return problems;
  }

  private load(problems: LoadProblem[]): void {
    const { store, registry, ipam, log } = this.ctx;
    const networks = store.list<NetworkRecord>('networks', problems, networkFromStored);
    const endpoints = store.list<EndpointRecord>('endpoints', problems, endpointFromStored);
    const sandboxes = store.list<SandboxRecord>('sandboxes', problems);
    for (const p of problems) {
      log.error({ op: 'start', file: p.file, error: p.error }, 'state file unreadable; set aside');
      if (basename(dirname(p.file)) === 'sandboxes') this.setAsideSandboxes.add(basename(p.file).replace(/\.json$/, ''));
    }
    for (const sb of sandboxes) if (sb.persistent && !sb.host) this.madeKeys.add(sb.key);

    for (const record of networks) {
      registry.networksById.set(record.id, new Network(record));
      for (const c of [...record.ipv4, ...record.ipv6]) {
        ipam.addPool({ family: c.subnet.family, subnet: c.subnet, gateway: c.gateway, ipRange: c.ipRange });
        // A global network's blocks come back from the cluster (cluster/blocks.ts) before any allocation.
        if (record.scope === 'global') ipam.setBlocks(c.subnet, []);
      }
    }
    for (const sb of sandboxes) registry.sandboxesById.set(sb.id, { ...sb, endpoints: [] });
    for (const ep of endpoints) {
      const network = registry.networksById.get(ep.networkId);
      const sandbox = registry.sandboxesById.get(ep.sandboxId);
      if (!network || !sandbox) {
        log.warn({ op: 'start', endpoint: ep.id }, 'endpoint without its network or sandbox; dropped');
        store.delete('endpoints', ep.id);
        continue;
      }
      registry.addEndpoint(network, sandbox, ep);
      if (ep.ipv4 && network.record.ipv4[0]) ipam.reserve(network.record.ipv4[0].subnet, ep.ipv4);
      if (ep.ipv6 && network.record.ipv6[0]) ipam.reserve(network.record.ipv6[0].subnet, ep.ipv6);
    }
  }

  /**
   * Operations a crash interrupted: creates are rolled back (their kernel objects removed), deletes are
   * completed. Nothing is left half-done.
   */
  private async replayIntents(problems: LoadProblem[]): Promise<void> {
    const { registry, journal, log } = this.ctx;
    for (const intent of journal.pending(problems)) {
      try {
        if (intent.op === 'attach') {
          const ep = intent.endpoint;
          const network = registry.networksById.get(ep.networkId);
          if (!registry.endpointsById.has(ep.id) && network) {
            await registry.driverOf(network.record).leave(network.record, ep, undefined);
            log.warn({ op: 'start', endpoint: ep.id }, 'rolled back an attach interrupted by a crash');
          }
          journal.done(ep.id);
        } else if (intent.op === 'create-network') {
          if (!registry.networksById.has(intent.network.id)) {
            await registry.driverOf(intent.network).deleteNetwork(intent.network);
            log.warn({ op: 'start', network: intent.network.id }, 'rolled back a create-network interrupted by a crash');
          }
          journal.done(intent.network.id);
        } else if (intent.op === 'rm-network') {
          const network = registry.networksById.get(intent.networkId);
          if (network) await this.networks.finishDelete(network);
          journal.done(intent.networkId);
          log.warn({ op: 'start', network: intent.networkId }, 'completed an rm-network interrupted by a crash');
        } else if (intent.op === 'detach') {
          const ep = registry.endpointsById.get(intent.endpointId);
          if (ep) {
            const sandbox = registry.sandboxesById.get(ep.sandboxId);
            await this.endpoints.remove(registry.networkOf(ep), ep, sandbox, 'recovery', true);
            if (sandbox && sandbox.endpoints.length === 0 && !sandbox.persistent) registry.forgetSandbox(sandbox);
          } else if (intent.endpoint) {
            await this.finishTeardown(intent.endpoint);
          }
          journal.done(intent.endpointId);
          log.warn({ op: 'start', endpoint: intent.endpointId }, 'completed a detach interrupted by a crash');
        } else if (intent.op === 'sandbox-create') {
          if (this.setAsideSandboxes.has(intent.sandboxId)) {
            // Its record was written, then found unreadable: the namespace may be in use. Kept, and journaled.
            log.warn({ op: 'start', sandbox: intent.sandboxId, key: intent.key }, 'the record of an interrupted sandbox create was set aside; its namespace is kept');
            continue;
          }
          this.madeKeys.add(intent.key);
          const keyInUse = [...registry.sandboxesById.values()].some((sb) => sb.key === intent.key);
          if (!registry.sandboxesById.has(intent.sandboxId) && !keyInUse) {
            this.ctx.resolver.destroy(intent.key);
            log.warn({ op: 'start', sandbox: intent.sandboxId, key: intent.key }, 'rolled back a sandbox create interrupted by a crash');
          }
          journal.done(intent.sandboxId);
        } else if (intent.op === 'sandbox-rm') {
          const sandbox = registry.sandboxesById.get(intent.sandboxId);
          if (sandbox) await this.sandboxes.remove(sandbox);
          journal.done(intent.sandboxId);
          log.warn({ op: 'start', sandbox: intent.sandboxId }, 'completed a sandbox rm interrupted by a crash');
        }
      } catch (err) {
        log.error({ op: 'start', intent, err }, 'could not replay an interrupted operation; it stays journaled');
      }
    }
  }

  /**
   * A detach that answered but whose deferred teardown (teardown-queue.ts) a crash interrupted: its record
   * is gone, its kernel objects may not be. The driver's leave removes them; should it fail, the endpoint's
   * addresses stay reserved (nothing may get them while something could deliver to it) and it stays journaled.
   */
  private async finishTeardown(ep: EndpointRecord): Promise<void> {
    const network = this.ctx.registry.networksById.get(ep.networkId);
    if (!network) return;
    try {
      await this.ctx.registry.driverOf(network.record).leave(network.record, ep, undefined);
    } catch (err) {
      if (ep.ipv4 && network.record.ipv4[0]) this.ctx.ipam.reserve(network.record.ipv4[0].subnet, ep.ipv4);
      if (ep.ipv6 && network.record.ipv6[0]) this.ctx.ipam.reserve(network.record.ipv6[0].subnet, ep.ipv6);
      throw err;
    }
    this.ctx.log.warn({ op: 'start', endpoint: ep.id }, 'completed the teardown of a detach interrupted by a crash');
  }

  /** Endpoints of live containers whose kernel objects went missing (e.g. a veth deleted by hand) are plumbed again. */
  private async repairEndpoints(): Promise<void> {
    const { registry, resolver, log } = this.ctx;
    for (const ep of registry.endpointsById.values()) {
      const network = registry.networkOf(ep);
      const sandbox = registry.sandboxesById.get(ep.sandboxId);
      const driver = registry.driverOf(network.record);
      if (!sandbox || !driver.endpointHealthy || !resolver.alive(sandbox)) continue;
      if (await driver.endpointHealthy(network.record, ep)) continue;
      if (ep.handOff) {
        // Its interface was moved and configured by the caller (dockerd), which would not do it again.
        log.warn({ op: 'start', endpoint: ep.id }, 'endpoint is broken and its interface was handed over to its caller; disconnect and reconnect the container');
        continue;
      }
      try {
        await driver.leave(network.record, ep, sandbox);
        await driver.join(network.record, ep, sandbox);
        log.warn({ op: 'start', endpoint: ep.id }, 'endpoint was broken; plumbed again');
      } catch (err) {
        log.error({ op: 'start', endpoint: ep.id, err }, 'could not repair endpoint');
      }
    }
  }

  /**
   * Namespaces (or bare mount points) netd made that no sandbox refers to any more: a persistent sandbox
   * forgotten above because its mount was gone (after a reboot), or a create the journal names. Without
   * this a leftover file makes `netd sandbox create` of that name fail with EEXIST for ever. Only what netd
   * made is touched — the keys of persistent sandbox records and of sandbox-create intents — never another
   * file in the directory (with `--exec-root /run` it is iproute2's /run/netns too). A sandbox record set
   * aside as unreadable names no candidate (nor does a create intent of its id), so its namespace stays;
   * those kept are logged.
   */
  private removeOrphanNamespaces(): void {
    const { registry, resolver, log } = this.ctx;
    const kept = new Set([...registry.sandboxesById.values()].map((sb) => sb.key));
    const unreferenced = resolver.created().filter((key) => !kept.has(key));
    const unknown = unreferenced.filter((key) => !this.madeKeys.has(key));
    if (unknown.length > 0) log.info({ op: 'start', kept: unknown, setAside: [...this.setAsideSandboxes] }, 'files in the namespace directory netd did not make (or whose record was set aside) kept');
    for (const key of unreferenced.filter((k) => this.madeKeys.has(k))) {
      try {
        resolver.destroy(key);
        log.warn({ op: 'start', key }, 'namespace without a sandbox record removed');
      } catch (err) {
        log.error({ op: 'start', key, err }, 'could not remove a namespace without a sandbox record');
      }
    }
  }

  /** Containers that died while netd was down: release what they held. */
  private async releaseDead(): Promise<void> {
    const { registry, targets, resolver } = this.ctx;
    for (const sb of [...registry.sandboxesById.values()]) {
      if (sb.host ? sb.pid !== undefined && !targets.pidAlive(sb.pid) : !resolver.alive(sb) && !this.sandboxes.revive(sb)) {
        await this.endpoints.removeFromSandbox(sb, undefined, 'container gone', true);
        registry.forgetSandbox(sb);
      } else if (sb.endpoints.length === 0 && !sb.persistent) {
        registry.forgetSandbox(sb);
      }
    }
  }
}
