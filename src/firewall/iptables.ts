/**
 * The iptables backend: netd's rules as iptables-layout.ts lays them out, applied with one
 * `iptables-restore -w --noflush` (and/or `ip6tables-restore`) per operation and family.
 *
 * Every operation is read → plan → apply:
 *   read   one iptables-save per family (in parallel), parsed into chains and rules;
 *   plan   compare with the wanted layout (iptables-plan.ts): declare only missing chains, add only
 *          missing rules, delete netd-tagged rules that are not wanted or are duplicated;
 *   apply  one restore batch per family, the families in parallel, all-or-nothing (iptables-commands.ts).
 * Operations run one at a time, each planning from its own read.
 *
 * Port forwards take a fast path: netd keeps in memory what it applied per endpoint, so adding or
 * removing one is a restore of a few lines into the endpoint's own chains, with no iptables-save read.
 * The kernel is read only by init/setupNetwork/teardownNetwork/reconcile, and when a fast restore fails
 * (then the endpoint's part is repaired from a read).
 */
import { performance } from 'node:perf_hooks';
import { CommandError, InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log.js';
import type { CommandRunner } from './exec.js';
import type { Firewall, FirewallWarning, FirewallBackendOptions } from './firewall.js';
import type { Family, Table } from './model.js';
import { RestoreScript } from './restore-script.js';
import { BackendInput } from './backend-input.js';
import { normalizeNetwork, type FirewallNetwork, type NetworkFirewallSpec } from './spec.js';
import { BASE_TAG, FirewallMarks } from './marks.js';
import {
  forwardFamily,
  forwardLayout,
  normalizeForward,
  sameForward,
  type FirewallForward,
  type PortForwardSpec,
} from './port-forward.js';
import { deleteConntrack, flowsToContainer, hostPortSweeps, type ConntrackSweep } from './conntrack.js';
import { baseLayout, EMPTY_LAYOUT, mergeLayouts, networkRules, subnetOf, withForwards, type Layout } from './iptables-layout.js';
import { planFamily, type ChainScope } from './iptables-plan.js';
import { IptablesCommands, iptablesTools } from './iptables-commands.js';
import type { SavedState } from './iptables-save.js';

/** Read-plan-apply rounds before an operation gives up (see converge). */
const CONVERGE_ATTEMPTS = 3;
/** What iptables-restore says when a chain this operation saw missing was made meanwhile (by another instance). */
const RACE_RE = /Chain already exists/;

/** Key of a bucket chain known to exist. */
function bucketKey(family: Family, table: Table, chain: string): string {
  return `${family}/${table}/${chain}`;
}

export class IptablesFirewall implements Firewall {
  readonly backend = 'iptables';
  private readonly log: Logger;
  private readonly exec: CommandRunner;
  private readonly sweep: ConntrackSweep;
  private readonly commands: IptablesCommands;
  private readonly families: readonly Family[];
  /** This daemon's marks: what it may change and remove (marks.ts). */
  private readonly marks: FirewallMarks;
  private readonly input: BackendInput;
  readonly tools: Firewall['tools'];
  get watchedTables(): Firewall['watchedTables'] {
    return this.families.flatMap((f) => (['filter', 'nat', 'raw'] as const).map((name) => ({ family: f === 4 ? ('ip' as const) : ('ip6' as const), name })));
  }
  /** Operations run one at a time: each plans from its own read, which a concurrent apply would stale. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Port forwards this process applied (or reconciled), by endpoint id12: what the fast path relies on. */
  private readonly applied = new Map<string, FirewallForward>();
  /** Bucket chains (and their jumps from NETD) known to exist: `family/table/chain`. */
  private readonly buckets = new Set<string>();
  /** Families whose FORWARD policy netd keeps at DROP (it turned their forwarding on): every converge re-asserts it. */
  private readonly forwardDrop = new Set<Family>();

  constructor(opts: FirewallBackendOptions) {
    this.log = opts.logger.child({ component: 'firewall', backend: this.backend });
    this.exec = opts.exec;
    this.sweep = opts.sweep;
    this.commands = new IptablesCommands(opts.exec, this.log);
    this.families = opts.ipv6 ? [4, 6] : [4];
    this.marks = opts.instance ? new FirewallMarks(opts.instance) : FirewallMarks.LEGACY;
    this.input = new BackendInput(this.log, this.families, this.marks);
    this.tools = iptablesTools(this.families);
  }

  init(): Promise<void> {
    return this.serialize(() => this.converge('init', this.families, baseLayout, (c) => c === BASE_TAG));
  }

  async setupNetwork(spec: NetworkFirewallSpec): Promise<void> {
    const n = this.input.network(spec);
    // Only the families the network has a subnet in: the other family has nothing of it to add.
    const families = this.families.filter((f) => subnetOf(n, f));
    return this.serialize(() =>
      this.converge(
        'setup',
        families,
        (f) => mergeLayouts(baseLayout(f), networkRules(n, f)),
        (c) => c === BASE_TAG || c === n.tag,
        n,
      ),
    );
  }

  async teardownNetwork(spec: NetworkFirewallSpec): Promise<void> {
    const n = this.input.network(spec);
    // Every family, whatever the subnets: removal goes by tag, so nothing of the network is left behind.
    return this.serialize(() => this.converge('teardown', this.families, () => EMPTY_LAYOUT, (c) => c === n.tag, n));
  }

  /** What reconcile converges to: the checked inputs, the layout per family, and what is netd's to change. */
  private reconcileTarget(specs: NetworkFirewallSpec[], forwardSpecs: PortForwardSpec[]) {
    const { networks: byId, forwards } = this.input.lists(specs, forwardSpecs);
    const networks = [...byId.values()];
    // The ids whose old marks (from before instances) an adopting instance owns: its own records'.
    const adopted = new Set([...byId.keys(), ...forwards.keys()]);
    return {
      forwards,
      layoutFor: (f: Family) => withForwards(mergeLayouts(baseLayout(f), networks.flatMap((n) => networkRules(n, f))), [...forwards.values()], f),
      inScope: (c: string | undefined) => this.marks.owns(c, adopted),
      chainInScope: ((t, c, rules) => this.marks.ownsChain(t, c, adopted, rules)) satisfies ChainScope,
    };
  }

  /**
   * True when reconcile with these would change nothing: one iptables-save per family, outside the queue
   * of changes (a read is atomic per table), nothing applied.
   */
  async intact(specs: NetworkFirewallSpec[], forwardSpecs: PortForwardSpec[] = []): Promise<boolean> {
    const target = this.reconcileTarget(specs, forwardSpecs);
    const states = await Promise.all(this.families.map((f) => this.commands.read(f)));
    return this.families.every((f, i) => {
      const script = planFamily(f, states[i], target.layoutFor(f), target.inScope, target.chainInScope);
      return script.isEmpty && !this.keepForwardDrop(script, states[i]);
    });
  }

  async reconcile(specs: NetworkFirewallSpec[], forwardSpecs: PortForwardSpec[] = []): Promise<void> {
    const { forwards, layoutFor, inScope, chainInScope } = this.reconcileTarget(specs, forwardSpecs);
    return this.serialize(async () => {
      try {
        await this.converge('reconcile', this.families, layoutFor, inScope, undefined, chainInScope);
      } catch (err) {
        // The kernel is in an unknown state: forget what the fast path knew, so it reads before it writes.
        this.applied.clear();
        this.buckets.clear();
        throw err;
      }
      this.applied.clear();
      this.buckets.clear();
      for (const [id12, f] of forwards) {
        this.applied.set(id12, f);
        this.rememberBuckets(f);
      }
    });
  }

  async setupPortForward(spec: PortForwardSpec): Promise<void> {
    const f = this.input.forward(spec);
    return this.serialize(async () => {
      const current = this.applied.get(f.id12);
      if (current && sameForward(current, f)) return;
      if (current) {
        await this.removeForward(current);
        this.applied.delete(f.id12);
      }
      await this.addForward(f);
      this.applied.set(f.id12, f);
      await this.sweep(this.log, hostPortSweeps(f));
    });
  }

  async teardownPortForward(spec: PortForwardSpec): Promise<void> {
    const f = this.input.forward(spec);
    return this.serialize(async () => {
      const current = this.applied.get(f.id12);
      if (current) await this.removeForward(current);
      else await this.converge('port-forward teardown', this.families, () => EMPTY_LAYOUT, (c) => c === f.tag, undefined, (_t, c) => c === f.chain);
      this.applied.delete(f.id12);
      // The UDP/SCTP flows to the old container go next, as the queue's next task: the caller does not
      // wait for `conntrack` (a process, ~13 ms here, mostly the kernel walking the conntrack hash), and
      // every later change of this firewall, such as publishing the same host port again, waits for it.
      void this.serialize(() => deleteConntrack(this.exec, this.log, flowsToContainer(current ?? f)));
    });
  }

  /**
   * Fast path: declare the endpoint's chains (and a bucket not known to exist), fill them, jump to them;
   * no read. Repairs from a read on failure.
   */
  private async addForward(f: FirewallForward): Promise<void> {
    const families = this.families.filter((fam) => forwardFamily(f, fam));
    const scripts = families.map((fam) => {
      const l = forwardLayout(f, fam);
      const script = new RestoreScript(fam);
      for (const b of l.buckets) {
        if (this.buckets.has(bucketKey(fam, b.table, b.chain))) continue;
        script.push(b.table, { kind: 'new-chain', chain: b.chain });
        script.push(b.table, { kind: 'add', rule: b.jump.rule, top: b.jump.top ?? false });
      }
      for (const c of l.chains) script.push(c.table, { kind: 'new-chain', chain: c.chain });
      for (const c of l.contents) for (const rule of c.rules) script.push(c.table, { kind: 'add', rule, top: false });
      for (const j of l.jumps) script.push(j.rule.table, { kind: 'add', rule: j.rule, top: j.top ?? false });
      return script;
    });
    await this.fastOrRepair('port-forward setup', f, scripts, () =>
      this.converge('port-forward setup', families, (fam) => withForwards(baseLayout(fam), [f], fam), (c) => c === BASE_TAG || c === f.tag, undefined, (_t, c) => c === f.chain),
    );
    this.rememberBuckets(f);
  }

  /** Buckets stay when they empty (reconcile removes unused ones), so once made they are known to exist. */
  private rememberBuckets(f: FirewallForward): void {
    for (const fam of this.families) for (const b of forwardLayout(f, fam).buckets) this.buckets.add(bucketKey(fam, b.table, b.chain));
  }

  /**
   * Fast path: remove the jumps, flush and delete the endpoint's chains, and its buckets when it was
   * their last member; no read. Repairs from a read on failure.
   */
  private async removeForward(f: FirewallForward): Promise<void> {
    const families = this.families.filter((fam) => forwardFamily(f, fam));
    const emptied: string[] = [];
    const scripts = families.map((fam) => {
      const l = forwardLayout(f, fam);
      const script = new RestoreScript(fam);
      for (const j of l.jumps) script.push(j.rule.table, { kind: 'delete-rule', rule: j.rule, top: j.top ?? false });
      for (const c of l.contents) script.push(c.table, { kind: 'flush-chain', chain: f.chain, rules: c.rules });
      for (const c of l.chains) script.push(c.table, { kind: 'delete-chain', chain: c.chain });
      for (const b of l.buckets) {
        const key = bucketKey(fam, b.table, b.chain);
        if (!this.buckets.has(key) || this.bucketUsedByOthers(f, fam, b.table, b.chain)) continue;
        script.push(b.table, { kind: 'delete-rule', rule: b.jump.rule, top: b.jump.top ?? false });
        script.push(b.table, { kind: 'delete-chain', chain: b.chain });
        emptied.push(key);
      }
      return script;
    });
    let repaired = false;
    await this.fastOrRepair('port-forward teardown', f, scripts, async () => {
      repaired = true;
      await this.converge('port-forward teardown', this.families, () => EMPTY_LAYOUT, (c) => c === f.tag, undefined, (_t, c) => c === f.chain);
    });
    // After a repair the buckets are left in place (reconcile removes unused ones): still known.
    if (!repaired) for (const key of emptied) this.buckets.delete(key);
  }

  private bucketUsedByOthers(f: FirewallForward, family: Family, table: Table, chain: string): boolean {
    for (const other of this.applied.values()) {
      if (other.id12 === f.id12 || other.bucket !== chain) continue;
      if (forwardLayout(other, family).buckets.some((b) => b.table === table)) return true;
    }
    return false;
  }

  private async fastOrRepair(op: string, f: FirewallForward, scripts: RestoreScript[], repair: () => Promise<void>): Promise<void> {
    const started = performance.now();
    try {
      await this.commands.apply(op, scripts);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      // E.g. someone flushed the tables, or removed a rule of ours: apply() reverted whatever it
      // committed; converge from a fresh read instead.
      this.log.warn({ op, endpoint: f.id12, error: err.message }, 'fast path failed; repairing from iptables-save');
      await repair();
      return;
    }
    const counts = scripts.map((s) => ({ family: s.family, ...s.summary() }));
    this.log.info({ op, endpoint: f.id12, counts, ms: Math.round((performance.now() - started) * 10) / 10 }, `firewall ${op}`);
  }

  async dropForwardByDefault(families: readonly Family[]): Promise<Family[]> {
    const wanted = this.families.filter((f) => families.includes(f));
    const bare = families.filter((f) => !this.families.includes(f));
    if (bare.length > 0) this.log.warn({ families: bare }, 'IPv6 firewalling is disabled: the IPv6 FORWARD policy cannot be set to DROP');
    if (wanted.length === 0) return wanted;
    await this.serialize(async () => {
      for (const f of wanted) this.forwardDrop.add(f);
      const states = await Promise.all(wanted.map((f) => this.commands.read(f)));
      const scripts = wanted.map((f, i) => {
        const script = new RestoreScript(f);
        this.keepForwardDrop(script, states[i]);
        return script;
      });
      await this.commands.apply('forward policy', scripts);
      this.log.warn({ families: wanted }, 'FORWARD policy kept at DROP: netd turned IP forwarding on (netd daemon --ip-forward-no-drop keeps the policy)');
    });
    return wanted;
  }

  /** Adds the FORWARD policy DROP to a script of a family netd keeps it for, unless it is DROP already. */
  private keepForwardDrop(script: RestoreScript, state: SavedState | undefined): boolean {
    const current = state?.get('filter')?.policies.get('FORWARD');
    if (!this.forwardDrop.has(script.family) || current === 'DROP') return false;
    script.push('filter', { kind: 'policy', chain: 'FORWARD', policy: 'DROP', previous: 'ACCEPT' });
    return true;
  }

  settled(): Promise<void> {
    return this.serialize(async () => undefined);
  }

  /**
   * None looked for: netd's accepts are rules of iptables' own FORWARD chain, before its policy. (Another
   * nf_tables table's drop would still drop; only the nftables backend reads other tables so far.)
   */
  async warnings(): Promise<FirewallWarning[]> {
    return [];
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async converge(
    op: string,
    families: readonly Family[],
    layoutFor: (f: Family) => Layout,
    inScope: (comment: string | undefined) => boolean,
    network?: FirewallNetwork,
    chainInScope?: ChainScope,
  ): Promise<void> {
    const started = performance.now();
    let scripts: RestoreScript[];
    for (let attempt = 1; ; attempt++) {
      const states = await Promise.all(families.map((f) => this.commands.read(f)));
      scripts = families.map((f, i) => planFamily(f, states[i], layoutFor(f), inScope, chainInScope));
      const reset = scripts.filter((script, i) => this.keepForwardDrop(script, states[i])).map((script) => script.family);
      if (reset.length > 0) this.log.warn({ op, families: reset }, 'FORWARD policy was changed; set back to DROP (netd turned IP forwarding on)');
      try {
        await this.commands.apply(op, scripts);
        break;
      } catch (err) {
        // Another netd instance may have changed the shared chains between the read and the apply (a
        // chain made meanwhile fails `-N`): apply() reverted this attempt; plan again from a fresh read.
        if (!(err instanceof CommandError) || !RACE_RE.test(err.stderr) || attempt >= CONVERGE_ATTEMPTS) throw err;
        this.log.warn({ op, attempt, error: err.message }, 'firewall changed under this operation; planning again');
      }
    }
    const counts = scripts.map((s) => ({ family: s.family, ...s.summary() }));
    this.log.info({ op, network: network?.id12, counts, ms: Math.round((performance.now() - started) * 10) / 10 }, `firewall ${op}`);
  }
}
