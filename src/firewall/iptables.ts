/**
 * The iptables backend: netd's rules laid out the way Docker 29 lays out its own (with NETD-* names),
 * applied with one `iptables-restore -w --noflush` (and/or `ip6tables-restore`) per operation and family.
 *
 * Every operation is read → plan → apply:
 *   read   one iptables-save per family (in parallel), parsed into chains and rules;
 *   plan   compare with the wanted layout: declare only missing chains, add only missing rules, delete
 *          (with -D of the exact saved text) netd-tagged rules that are not wanted or are duplicated;
 *   apply  one restore batch per family, the families in parallel.
 * iptables-restore commits each table at its COMMIT line, so a batch is atomic per table only. When a
 * later table, or the other family, fails, the tables already committed are reverted with the inverse
 * script (see RestoreScript.inverse): each operation is all-or-nothing as seen from iptables-save.
 *
 * Layout (filter, per family):
 *   FORWARD        -j NETD-USER, -j NETD-FORWARD        the first two rules, in that order, exactly once
 *   NETD-USER      the administrator's; created empty when missing, never declared otherwise (declaring
 *                  an existing chain under --noflush flushes it), never read from or written to
 *   NETD-FORWARD   -j NETD-CT, -j NETD-INTERNAL, -j NETD-BRIDGE (first three), then per network
 *                  `-i br -j ACCEPT` (icc=false: `-i br -o br -j DROP`, `-i br ! -o br -j ACCEPT`;
 *                  internal: `-i br -o br -j ACCEPT|DROP` only)
 *   NETD-CT        -o br -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT       (not internal)
 *   NETD-INTERNAL  ! -s SUBNET -o br -j DROP; ! -d SUBNET -i br -j DROP            (internal only)
 *   NETD-BRIDGE    -o br -j NETD                                                    (not internal)
 *   NETD           ! -i br -o br -j DROP: nothing from outside the bridge — another netd bridge
 *                  included — gets in. This is the inter-network isolation (in both directions, as a
 *                  reply can never be established). Published ports (issue 3) will insert their
 *                  ACCEPTs at the TOP of NETD; per-network DROPs are always appended, so every ACCEPT
 *                  stays ahead of every DROP whatever order things were added in.
 * nat: PREROUTING --dst-type LOCAL -j NETD; OUTPUT ! -d loopback --dst-type LOCAL -j NETD;
 *      POSTROUTING -j NETD-POSTROUTING; per network (not internal, masquerade on)
 *      NETD-POSTROUTING -s SUBNET ! -o br -j MASQUERADE. NETD (nat) is for DNAT of published ports.
 * Every rule carries `-m comment --comment netd` (base) or `netd:<id12>` (per network).
 */
import { performance } from 'node:perf_hooks';
import { CommandError, InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log.js';
import type { CommandRunner } from './exec.js';
import { runChecked } from './exec.js';
import type { Firewall } from './firewall.js';
import {
  parseCidr,
  parseSave,
  RestoreScript,
  ruleKey,
  TABLES,
  type Cidr,
  type Family,
  type Rule,
  type SavedRule,
  type SavedState,
  type Table,
} from './model.js';
import { BASE_TAG, isNetdTag, normalizeNetwork, type FirewallNetwork, type NetworkFirewallSpec } from './spec.js';

export const CHAIN = {
  USER: 'NETD-USER',
  FORWARD: 'NETD-FORWARD',
  CT: 'NETD-CT',
  INTERNAL: 'NETD-INTERNAL',
  BRIDGE: 'NETD-BRIDGE',
  NETD: 'NETD',
  POSTROUTING: 'NETD-POSTROUTING',
} as const;

/** A wanted rule; `top` rules are inserted at position 1 when missing, others appended. */
export interface PlacedRule {
  readonly rule: Rule;
  readonly top?: boolean;
}

/** What should exist in one family. */
export interface Layout {
  readonly chains: readonly { readonly table: Table; readonly chain: string }[];
  /** Chains that must START with exactly these rules, in this order, each exactly once. */
  readonly heads: readonly { readonly table: Table; readonly chain: string; readonly rules: readonly Rule[] }[];
  /** Rules that must exist exactly once, anywhere in their chain. */
  readonly rules: readonly PlacedRule[];
}

const EMPTY_LAYOUT: Layout = { chains: [], heads: [], rules: [] };

const LOOPBACK: Record<Family, Cidr> = { 4: parseCidr('127.0.0.0/8'), 6: parseCidr('::1/128') };

const jump = (table: Table, chain: string, to: string, extra: Partial<Rule> = {}): Rule => ({
  table,
  chain,
  ...extra,
  comment: BASE_TAG,
  target: { kind: 'jump', chain: to },
});

/** netd's base chains and jumps for one family. */
export function baseLayout(family: Family): Layout {
  const local = { matches: [{ module: 'addrtype', dstType: 'LOCAL' }] } as const;
  return {
    chains: [
      ...[CHAIN.USER, CHAIN.FORWARD, CHAIN.CT, CHAIN.INTERNAL, CHAIN.BRIDGE, CHAIN.NETD].map((chain) => ({ table: 'filter' as const, chain })),
      ...[CHAIN.NETD, CHAIN.POSTROUTING].map((chain) => ({ table: 'nat' as const, chain })),
    ],
    heads: [
      { table: 'filter', chain: 'FORWARD', rules: [jump('filter', 'FORWARD', CHAIN.USER), jump('filter', 'FORWARD', CHAIN.FORWARD)] },
      {
        table: 'filter',
        chain: CHAIN.FORWARD,
        rules: [CHAIN.CT, CHAIN.INTERNAL, CHAIN.BRIDGE].map((to) => jump('filter', CHAIN.FORWARD, to)),
      },
    ],
    rules: [
      { rule: jump('nat', 'PREROUTING', CHAIN.NETD, local) },
      { rule: jump('nat', 'OUTPUT', CHAIN.NETD, { dst: { cidr: LOOPBACK[family], negate: true }, ...local }) },
      { rule: jump('nat', 'POSTROUTING', CHAIN.POSTROUTING) },
    ],
  };
}

/** The subnet a network has in a family, if any. */
export function subnetOf(n: FirewallNetwork, family: Family): Cidr | undefined {
  return family === 4 ? n.v4 : n.v6;
}

/** One network's rules in one family (none when it has no subnet of that family). */
export function networkRules(n: FirewallNetwork, family: Family): PlacedRule[] {
  const subnet = subnetOf(n, family);
  if (!subnet) return [];
  const br = n.bridge;
  const comment = n.tag;
  const filter = (chain: string, r: Omit<Rule, 'table' | 'chain' | 'comment'>): PlacedRule => ({
    rule: { table: 'filter', chain, comment, ...r },
  });
  const ACCEPT = { kind: 'verdict', verdict: 'ACCEPT' } as const;
  const DROP = { kind: 'verdict', verdict: 'DROP' } as const;

  if (n.internal) {
    // As Docker: no conntrack shortcut (it would let replies bypass NETD-INTERNAL), no NETD-BRIDGE
    // entry, no MASQUERADE; traffic may only stay on the bridge and within the subnet.
    return [
      filter(CHAIN.INTERNAL, { src: { cidr: subnet, negate: true }, out: { name: br }, target: DROP }),
      filter(CHAIN.INTERNAL, { dst: { cidr: subnet, negate: true }, in: { name: br }, target: DROP }),
      filter(CHAIN.FORWARD, { in: { name: br }, out: { name: br }, target: n.icc ? ACCEPT : DROP }),
    ];
  }
  const rules: PlacedRule[] = [
    filter(CHAIN.CT, { out: { name: br }, matches: [{ module: 'conntrack', ctstate: ['RELATED', 'ESTABLISHED'] }], target: ACCEPT }),
    filter(CHAIN.BRIDGE, { out: { name: br }, target: { kind: 'jump', chain: CHAIN.NETD } }),
    filter(CHAIN.NETD, { in: { name: br, negate: true }, out: { name: br }, target: DROP }),
  ];
  if (n.icc) {
    rules.push(filter(CHAIN.FORWARD, { in: { name: br }, target: ACCEPT }));
  } else {
    rules.push(
      filter(CHAIN.FORWARD, { in: { name: br }, out: { name: br }, target: DROP }),
      filter(CHAIN.FORWARD, { in: { name: br }, out: { name: br, negate: true }, target: ACCEPT }),
    );
  }
  if (n.masquerade) {
    rules.push({
      rule: {
        table: 'nat',
        chain: CHAIN.POSTROUTING,
        src: { cidr: subnet },
        out: { name: br, negate: true },
        comment,
        target: { kind: 'masquerade' },
      },
    });
  }
  return rules;
}

function mergeLayouts(base: Layout, extra: readonly PlacedRule[]): Layout {
  return { chains: base.chains, heads: base.heads, rules: [...base.rules, ...extra] };
}

/** Chains whose contents netd never reads, changes or deletes. */
function isProtected(table: string, chain: string): boolean {
  return table === 'filter' && chain === CHAIN.USER;
}

/**
 * Plans the restore script taking `saved` to `layout`. Rules outside `layout` are deleted only when
 * `inScope(comment)` says they are netd's to manage in this operation, and never in NETD-USER.
 */
export function planFamily(family: Family, saved: SavedState, layout: Layout, inScope: (comment: string | undefined) => boolean): RestoreScript {
  const script = new RestoreScript(family);
  for (const table of TABLES) {
    const current = saved.get(table);
    const rulesOf = (chain: string): readonly SavedRule[] => current?.rules.get(chain) ?? [];

    // 1. Chains: declare only the missing ones (declaring an existing chain would flush it).
    for (const c of layout.chains) {
      if (c.table === table && !current?.chains.has(c.chain)) script.push(table, { kind: 'new-chain', chain: c.chain });
    }

    // 2. Stale rules: netd's (in scope) but not wanted.
    const wanted = new Set<string>();
    for (const h of layout.heads) if (h.table === table) for (const r of h.rules) wanted.add(`${h.chain}\n${ruleKey(r, family)}`);
    for (const p of layout.rules) if (p.rule.table === table) wanted.add(`${p.rule.chain}\n${ruleKey(p.rule, family)}`);
    for (const [chain, list] of current?.rules ?? []) {
      if (isProtected(table, chain)) continue;
      for (const r of list) {
        if (inScope(r.comment) && !wanted.has(`${chain}\n${r.key}`)) script.push(table, { kind: 'delete-saved', saved: r });
      }
    }

    // 3. Heads: unless the chain already starts with exactly these rules (and holds no other copy),
    //    delete every copy and insert them at the top.
    for (const h of layout.heads) {
      if (h.table !== table) continue;
      const list = rulesOf(h.chain);
      const keys = h.rules.map((r) => ruleKey(r, family));
      const inPlace =
        keys.every((k, i) => list[i]?.key === k) && keys.every((k) => list.filter((r) => r.key === k).length === 1);
      if (inPlace) continue;
      for (const r of list) if (keys.includes(r.key)) script.push(table, { kind: 'delete-saved', saved: r });
      for (const r of [...h.rules].reverse()) script.push(table, { kind: 'add', rule: r, top: true });
    }

    // 4. Other rules: add when missing, drop extra copies (a crash between add and record, an old bug).
    for (const p of layout.rules) {
      if (p.rule.table !== table) continue;
      const key = ruleKey(p.rule, family);
      const copies = rulesOf(p.rule.chain).filter((r) => r.key === key);
      if (copies.length === 0) script.push(table, { kind: 'add', rule: p.rule, top: p.top ?? false });
      // -D removes the first match, so the first copies are the ones that go.
      for (const extra of copies.slice(0, -1)) script.push(table, { kind: 'delete-saved', saved: extra });
    }
  }
  return script;
}

/** The line iptables-restore reports as failed, if it says. */
export function failedLine(stderr: string): number | undefined {
  const m = /line (\d+) failed/.exec(stderr) ?? /Error occurred at line: (\d+)/.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

const SAVE_CMD: Record<Family, string> = { 4: 'iptables-save', 6: 'ip6tables-save' };
const RESTORE_CMD: Record<Family, string> = { 4: 'iptables-restore', 6: 'ip6tables-restore' };

export interface IptablesOptions {
  logger: Logger;
  exec: CommandRunner;
  ipv6: boolean;
}

export class IptablesFirewall implements Firewall {
  readonly backend = 'iptables';
  private readonly log: Logger;
  private readonly exec: CommandRunner;
  private readonly families: readonly Family[];
  /** Operations run one at a time: each plans from its own read, which a concurrent apply would stale. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: IptablesOptions) {
    this.log = opts.logger.child({ component: 'firewall', backend: this.backend });
    this.exec = opts.exec;
    this.families = opts.ipv6 ? [4, 6] : [4];
  }

  init(): Promise<void> {
    return this.serialize(() => this.converge('init', this.families, baseLayout, (c) => c === BASE_TAG));
  }

  async setupNetwork(spec: NetworkFirewallSpec): Promise<void> {
    const n = this.normalize(spec);
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
    const n = this.normalize(spec);
    // Every family, whatever the subnets: removal goes by tag, so nothing of the network is left behind.
    return this.serialize(() => this.converge('teardown', this.families, () => EMPTY_LAYOUT, (c) => c === n.tag, n));
  }

  async reconcile(specs: NetworkFirewallSpec[]): Promise<void> {
    if (!Array.isArray(specs)) throw new InvalidArgumentError('reconcile needs a list of networks');
    const byId = new Map<string, FirewallNetwork>();
    const bridges = new Map<string, string>();
    for (const spec of specs) {
      const n = this.normalize(spec);
      const seen = byId.get(n.id12);
      if (seen && JSON.stringify(seen) !== JSON.stringify(n)) {
        throw new InvalidArgumentError(`two different networks share the id prefix ${n.id12}`);
      }
      const owner = bridges.get(n.bridge);
      if (owner && owner !== n.id12) throw new InvalidArgumentError(`networks ${owner} and ${n.id12} both use bridge ${n.bridge}`);
      byId.set(n.id12, n);
      bridges.set(n.bridge, n.id12);
    }
    const networks = [...byId.values()];
    return this.serialize(() =>
      this.converge('reconcile', this.families, (f) => mergeLayouts(baseLayout(f), networks.flatMap((n) => networkRules(n, f))), isNetdTag),
    );
  }

  private normalize(spec: NetworkFirewallSpec): FirewallNetwork {
    const n = normalizeNetwork(spec);
    if (n.v6 && !this.families.includes(6)) {
      this.log.warn({ network: n.id12, subnet: n.v6.text }, 'IPv6 firewalling is disabled: ignoring the IPv6 subnet');
      return { ...n, v6: undefined };
    }
    return n;
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async read(family: Family): Promise<SavedState> {
    const res = await runChecked(this.exec, [SAVE_CMD[family]]);
    return parseSave(res.stdout);
  }

  private async converge(
    op: string,
    families: readonly Family[],
    layoutFor: (f: Family) => Layout,
    inScope: (comment: string | undefined) => boolean,
    network?: FirewallNetwork,
  ): Promise<void> {
    const started = performance.now();
    const states = await Promise.all(families.map((f) => this.read(f)));
    const scripts = families.map((f, i) => planFamily(f, states[i], layoutFor(f), inScope));
    await this.apply(op, scripts);
    const counts = scripts.map((s) => ({ family: s.family, ...s.summary() }));
    this.log.info({ op, network: network?.id12, counts, ms: Math.round((performance.now() - started) * 10) / 10 }, `firewall ${op}`);
  }

  /**
   * Runs one restore per non-empty script, the families in parallel (a table commit that deletes rules
   * waits for the kernel, ~10 ms here, so this halves dual-stack times). If any fails, whatever any of
   * them committed is reverted, then the first error is thrown.
   */
  private async apply(op: string, scripts: readonly RestoreScript[]): Promise<void> {
    const results = await Promise.all(
      scripts
        .filter((s) => !s.isEmpty)
        .map(async (script) => {
          const { text, commits } = script.render();
          const argv = [RESTORE_CMD[script.family], '-w', '--noflush'];
          this.log.debug({ op, family: script.family, script: text }, 'iptables-restore');
          return { script, text, commits, argv, res: await this.exec(argv, text) };
        }),
    );
    const committed: { script: RestoreScript; tables: Table[] }[] = [];
    let failure: CommandError | undefined;
    for (const { script, text, commits, argv, res } of results) {
      if (res.code === 0) {
        committed.push({ script, tables: script.tables });
        continue;
      }
      failure ??= new CommandError(argv.join(' '), res.code, res.stderr);
      const line = failedLine(res.stderr);
      // Tables whose COMMIT came before the failing line are in the kernel already.
      const partial = line === undefined ? [] : commits.filter((c) => c.line < line).map((c) => c.table);
      if (partial.length > 0) committed.push({ script, tables: partial });
      this.log.error(
        { op, family: script.family, line, text: line ? text.split('\n')[line - 1] : undefined, stderr: res.stderr.trim() },
        line === undefined
          ? 'iptables-restore failed without naming a line; assuming nothing was applied (reconcile repairs any leftover)'
          : 'iptables-restore failed',
      );
    }
    if (failure) {
      await this.revert(op, committed);
      throw failure;
    }
  }

  private async revert(op: string, committed: readonly { script: RestoreScript; tables: Table[] }[]): Promise<void> {
    await Promise.all(
      committed.map(async ({ script, tables }) => {
        const inverse = script.inverse(tables);
        if (inverse.isEmpty) return;
        const res = await this.exec([RESTORE_CMD[script.family], '-w', '--noflush'], inverse.render().text);
        if (res.code === 0) {
          this.log.warn({ op, family: script.family, tables }, 'reverted the part of the operation already applied');
        } else {
          this.log.error(
            { op, family: script.family, tables, stderr: res.stderr.trim() },
            'could not revert a partly applied operation; reconcile will repair it',
          );
        }
      }),
    );
  }
}
