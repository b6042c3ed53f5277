/**
 * The nftables backend: netd's own table `inet netd[-<instance>]` (nftables-layout.ts), nothing else.
 *
 * Network operations (init, setupNetwork, teardownNetwork, reconcile) read the table (one
 * `nft -j list table`), plan the difference within their scope (nftables-plan.ts) and apply it as one
 * `nft -f -` transaction: all of it or nothing. Published ports are set/map elements only, written through
 * the NftElementWriter (in-process nfnetlink when the daemon has it, else `nft -f -`): netd keeps in memory
 * what it applied per endpoint, so publishing or unpublishing is one element transaction, no read. A
 * failed element transaction (someone deleted an element, or the whole table) is repaired from a read.
 * The model of the whole table (networks and forwards known) is kept in memory too, so a table someone
 * deleted is rebuilt whole, in one transaction, by whichever operation comes next.
 */
import { performance } from 'node:perf_hooks';
import { KernelError } from '../errors.js';
import type { Logger } from '../log.js';
import type { CommandRunner } from './exec.js';
import type { Firewall, FirewallBackendOptions, FirewallWarning } from './firewall.js';
import type { Family } from './model.js';
import type { FirewallNetwork, NetworkFirewallSpec } from './spec.js';
import { BackendInput } from './backend-input.js';
import { FirewallMarks } from './marks.js';
import { sameForward, type FirewallForward, type PortForwardSpec } from './port-forward.js';
import { deleteConntrack, flowsToContainer, hostPortSweeps, type ConntrackSweep } from './conntrack.js';
import { BASE_CHAINS, NETWORK_MAPS, forwardElements, networkPrefix, tableModel, type NftTableModel } from './nftables-layout.js';
import { EVERYTHING, planTable, type PlanScope } from './nftables-plan.js';
import { readTable } from './nftables-ruleset.js';
import { coexistenceFindings, type CoexistenceFinding } from './nftables-coexistence.js';
import { elementKeyText, NftScriptElementWriter, runNftScript, type NftElementWriter, type NftSetChange } from './nft-elements.js';

/** How often (at most) reconcile reads the whole ruleset for coexistence problems. */
const COEXISTENCE_EVERY_MS = 60_000;
/** How old (at most) the look `warnings()` (netd info) answers with is. */
const WARNINGS_FRESH_MS = 1000;

export class NftablesFirewall implements Firewall {
  readonly backend = 'nftables';
  readonly tools: Firewall['tools'] = { required: ['nft'], optional: ['conntrack'] };
  /** netd's table: `netd-<instance>`, or `netd` without an instance. */
  readonly table: string;
  readonly watchedTables: Firewall['watchedTables'];
  private readonly log: Logger;
  private readonly exec: CommandRunner;
  private readonly sweep: ConntrackSweep;
  private readonly elements: NftElementWriter;
  private readonly families: readonly Family[];
  private readonly input: BackendInput;
  private queue: Promise<unknown> = Promise.resolve();
  /** Networks set up (or reconciled), by id12. */
  private readonly networks = new Map<string, FirewallNetwork>();
  /** Port forwards applied (or reconciled), by endpoint id12. */
  private readonly applied = new Map<string, FirewallForward>();
  private readonly forwardDrop = new Set<Family>();
  /** The last coexistence check's findings (logged once each while they last). */
  private findings: CoexistenceFinding[] = [];
  private coexistenceCheckedAt = -Infinity;
  private coexistenceRead: Promise<void> = Promise.resolve();

  constructor(opts: FirewallBackendOptions) {
    this.log = opts.logger.child({ component: 'firewall', backend: this.backend });
    this.exec = opts.exec;
    this.sweep = opts.sweep;
    this.elements = opts.elements ?? new NftScriptElementWriter(opts.exec);
    this.families = opts.ipv6 ? [4, 6] : [4];
    this.input = new BackendInput(this.log, this.families, opts.instance ? new FirewallMarks(opts.instance) : FirewallMarks.LEGACY);
    this.table = opts.instance ? `netd-${opts.instance.id}` : 'netd';
    this.watchedTables = [{ family: 'inet', name: this.table }];
  }

  init(): Promise<void> {
    return this.serialize(async () => {
      await this.converge('init', { chain: (c) => isBase(c), element: () => false });
      await this.checkCoexistence(0);
    });
  }

  setupNetwork(spec: NetworkFirewallSpec): Promise<void> {
    const n = this.input.network(spec);
    return this.serialize(async () => {
      const before = this.networks.get(n.id12);
      this.networks.set(n.id12, n);
      try {
        await this.converge('setup', this.networkScope(n, before), n.id12);
      } catch (err) {
        if (before) this.networks.set(n.id12, before);
        else this.networks.delete(n.id12);
        throw err;
      }
    });
  }

  teardownNetwork(spec: NetworkFirewallSpec): Promise<void> {
    const n = this.input.network(spec);
    return this.serialize(async () => {
      const before = this.networks.get(n.id12);
      this.networks.delete(n.id12);
      try {
        await this.converge('teardown', this.networkScope(n, before), n.id12);
      } catch (err) {
        if (before) this.networks.set(n.id12, before);
        throw err;
      }
    });
  }

  async reconcile(specs: NetworkFirewallSpec[], forwardSpecs: PortForwardSpec[] = []): Promise<void> {
    const { networks, forwards } = this.input.lists(specs, forwardSpecs);
    return this.serialize(async () => {
      this.networks.clear();
      for (const [id, n] of networks) this.networks.set(id, n);
      this.applied.clear();
      for (const [id, f] of forwards) this.applied.set(id, f);
      await this.converge('reconcile', EVERYTHING);
      await this.checkCoexistence(COEXISTENCE_EVERY_MS);
    });
  }

  setupPortForward(spec: PortForwardSpec): Promise<void> {
    const f = this.input.forward(spec);
    return this.serialize(async () => {
      const current = this.applied.get(f.id12);
      if (current && sameForward(current, f)) return;
      this.applied.set(f.id12, f);
      try {
        await this.writeElements('port-forward setup', current, f);
      } catch (err) {
        // Neither the transaction nor its repair went through: the kernel holds what it held.
        if (current) this.applied.set(f.id12, current);
        else this.applied.delete(f.id12);
        throw err;
      }
      await this.sweep(this.log, hostPortSweeps(f));
    });
  }

  teardownPortForward(spec: PortForwardSpec): Promise<void> {
    const f = this.input.forward(spec);
    return this.serialize(async () => {
      const current = this.applied.get(f.id12);
      this.applied.delete(f.id12);
      await this.writeElements('port-forward teardown', current ?? f, undefined, current === undefined);
      // As in the iptables backend: the UDP/SCTP flows to the old container go next, as the queue's next task.
      void this.serialize(() => deleteConntrack(this.exec, this.log, flowsToContainer(current ?? f)));
    });
  }

  async dropForwardByDefault(families: readonly Family[]): Promise<Family[]> {
    const wanted = this.families.filter((f) => families.includes(f));
    const bare = families.filter((f) => !this.families.includes(f));
    if (bare.length > 0) this.log.warn({ families: bare }, 'IPv6 firewalling is disabled: IPv6 forwarding cannot be limited to netd\'s traffic');
    if (wanted.length === 0) return wanted;
    await this.serialize(async () => {
      const before = new Set(this.forwardDrop);
      for (const f of wanted) this.forwardDrop.add(f);
      try {
        await this.converge('forward policy', { chain: (c) => c === 'forward-drop', element: () => false });
      } catch (err) {
        this.forwardDrop.clear();
        for (const f of before) this.forwardDrop.add(f);
        throw err;
      }
      this.log.warn({ families: wanted, table: this.table }, 'forwarded traffic that no netd instance accepts is dropped (netd turned IP forwarding on; netd daemon --ip-forward-no-drop keeps it routed)');
    });
    return wanted;
  }

  settled(): Promise<void> {
    return this.serialize(async () => undefined);
  }

  // ------------------------------------------------------------------------------------------------

  private model(): NftTableModel {
    return tableModel(this.families, [...this.forwardDrop], this.networks.values(), this.applied.values());
  }

  /** Read, plan within `scope`, apply in one transaction. */
  private async converge(op: string, scope: PlanScope, network?: string): Promise<void> {
    const started = performance.now();
    const current = await readTable(this.exec, this.table);
    const plan = planTable(this.table, current, this.model(), scope);
    if (plan.script === '') return;
    this.log.debug({ op, script: plan.script }, 'nft -f');
    await runNftScript(this.exec, `nft ${op}`, plan.script);
    if (plan.rebuilt && current !== undefined) this.log.warn({ op, table: this.table }, 'netd\'s nftables table was not as netd left it: rebuilt');
    const ms = Math.round((performance.now() - started) * 10) / 10;
    this.log.info({ op, network, table: this.table, rebuilt: plan.rebuilt, ...plan.counts, ms }, `firewall ${op}`);
  }

  /** A network's chains, its vmap elements (by bridge, subnet, or target chain), and the base chains. */
  private networkScope(n: FirewallNetwork, before?: FirewallNetwork): PlanScope {
    const prefix = networkPrefix(n.id12);
    const keys = new Set<string>();
    for (const x of [n, before]) {
      if (!x) continue;
      keys.add(JSON.stringify(x.bridge));
      for (const s of [x.v4, x.v6]) if (s) keys.add(s.toString());
    }
    return {
      chain: (c) => isBase(c) || c.startsWith(prefix),
      element: (set, key) => (NETWORK_MAPS as readonly string[]).includes(set) && keys.has(key),
    };
  }

  /**
   * Replaces the elements of `before` by those of `after` in one element transaction; on failure,
   * repairs exactly those elements from a read. `lenient`: a teardown of elements netd does not know it
   * applied (removes only those present).
   */
  private async writeElements(op: string, before: FirewallForward | undefined, after: FirewallForward | undefined, lenient = false): Promise<void> {
    const started = performance.now();
    const changes = new Map<string, NftSetChange>();
    const change = (set: string) => changes.get(set) ?? changes.set(set, { set, add: [], delete: [] }).get(set)!;
    if (before) for (const [set, list] of forwardElements(before)) change(set).delete!.push(...list);
    if (after) for (const [set, list] of forwardElements(after)) change(set).add!.push(...list);
    const touched = new Map<string, Set<string>>();
    for (const c of changes.values()) touched.set(c.set, new Set([...c.add!, ...c.delete!].map(elementKeyText)));
    try {
      if (lenient) throw new KernelError(op, 'ENOENT', 'not known to be applied');
      await this.elements.apply(this.table, [...changes.values()]);
    } catch (err) {
      if (!(err instanceof KernelError)) throw err;
      if (!lenient) this.log.warn({ op, endpoint: (after ?? before)?.id12, error: err.message }, 'element transaction failed; repairing from the table');
      await this.converge(op, { chain: () => false, element: (set, key) => touched.get(set)?.has(key) === true });
      return;
    }
    const count = [...changes.values()].reduce((n, c) => n + c.add!.length + c.delete!.length, 0);
    this.log.info({ op, endpoint: (after ?? before)?.id12, elements: count, ms: Math.round((performance.now() - started) * 10) / 10 }, `firewall ${op}`);
  }

  async warnings(): Promise<FirewallWarning[]> {
    await this.checkCoexistence(WARNINGS_FRESH_MS);
    return this.findings.map(({ family, table, chain, problem, fix }) => ({ family, table, chain, problem, fix }));
  }

  /**
   * Reads the ruleset for other tables that drop netd's forwarded traffic, unless the last read is younger
   * than `maxAgeMs` (a read under way is waited for); warns once about each finding not there at the last read.
   */
  private checkCoexistence(maxAgeMs: number): Promise<void> {
    const now = performance.now();
    if (now - this.coexistenceCheckedAt >= maxAgeMs) {
      this.coexistenceCheckedAt = now;
      this.coexistenceRead = this.readCoexistence();
    }
    return this.coexistenceRead;
  }

  private async readCoexistence(): Promise<void> {
    const res = await this.exec(['nft', '-j', 'list', 'ruleset']);
    if (res.code !== 0) return;
    const bridges = [...this.networks.values()].map((n) => n.bridge);
    try {
      const found = coexistenceFindings(res.stdout, bridges);
      const key = (f: CoexistenceFinding) => `${f.where}: ${f.problem}`;
      const before = new Set(this.findings.map(key));
      this.findings = found;
      for (const f of found.filter((x) => !before.has(key(x)))) {
        this.log.warn({ op: 'coexistence', where: f.where, fix: f.fix }, `another table may drop netd's traffic: ${key(f)}`);
      }
    } catch (err) {
      this.log.debug({ op: 'coexistence', err: (err as Error).message }, 'could not read the ruleset');
    }
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function isBase(chain: string): boolean {
  return (BASE_CHAINS as readonly string[]).includes(chain);
}
