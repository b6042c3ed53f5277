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
 *   NETD           `-o br -m conntrack --ctstate DNAT -j ACCEPT` (not internal), inserted at the TOP:
 *                  what a published port DNATed to this bridge gets in by. Then, appended,
 *                  `! -i br -o br -j DROP`: nothing else from outside the bridge — another netd bridge
 *                  included — gets in. This is the inter-network isolation (in both directions, as a
 *                  reply can never be established), and it also stops direct routing to container
 *                  addresses from other machines (those packets are not DNATed). ACCEPTs always go at
 *                  the top and DROPs are always appended, so every ACCEPT stays ahead of every DROP
 *                  whatever order things were added in.
 * nat: PREROUTING --dst-type LOCAL -j NETD; OUTPUT --dst-type LOCAL -j NETD (IPv6: ! -d ::1, which cannot
 *      be DNATed to another host); POSTROUTING -j NETD-POSTROUTING; per network (not internal)
 *      NETD-POSTROUTING -s SUBNET ! -o br -j MASQUERADE (masquerade on),
 *      NETD-POSTROUTING -s SUBNET -o br --ctstate DNAT -j MASQUERADE (hairpin: a container reaching a
 *      published port on the same bridge gets answered through the host), and for IPv4
 *      NETD-POSTROUTING -s 127.0.0.0/8 -o br -j MASQUERADE (the host's own connections to 127.0.0.1,
 *      DNATed to a container; needs route_localnet=1 on the bridge, which the bridge driver sets).
 *      NETD (nat) jumps to bucket chains NETD-PFB-<2 hex>, which jump to each endpoint's NETD-PF-<id12>
 *      chain of DNAT rules (see port-forward.ts).
 * raw: PREROUTING -j NETD; IPv4: NETD -d 127.0.0.0/8 ! -i lo -j DROP. Packets for 127/8 that arrive on a
 *      real interface are martians — unless DNAT (a port published on 127.0.0.1) rewrites them before
 *      routing, or route_localnet lets them through a bridge to the host's loopback services. Dropped
 *      before conntrack sees them, whatever port, so a loopback-only mapping is loopback-only.
 * Every rule carries `-m comment --comment netd` (base), `netd:<id12>` (per network) or `netd:pf:<id12>`
 * (per endpoint's published ports).
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
import { runChecked } from './exec.js';
import type { Firewall } from './firewall.js';
import { Prefix } from '../net/index.js';
import {
  parseSave,
  RestoreScript,
  ruleKey,
  TABLES,
  type Family,
  type PlacedRule,
  type Rule,
  type SavedRule,
  type SavedState,
  type Table,
} from './model.js';
import { BASE_TAG, isNetdTag, normalizeNetwork, type FirewallNetwork, type NetworkFirewallSpec } from './spec.js';
import {
  forwardFamily,
  forwardLayout,
  isForwardChain,
  normalizeForward,
  sameForward,
  type FirewallForward,
  type PortForwardSpec,
} from './port-forward.js';
import { deleteConntrack, flowsToContainer, flowsToHostPorts } from './conntrack.js';

export type { PlacedRule } from './model.js';

export const CHAIN = {
  USER: 'NETD-USER',
  FORWARD: 'NETD-FORWARD',
  CT: 'NETD-CT',
  INTERNAL: 'NETD-INTERNAL',
  BRIDGE: 'NETD-BRIDGE',
  NETD: 'NETD',
  POSTROUTING: 'NETD-POSTROUTING',
} as const;

/** What should exist in one family. */
export interface Layout {
  readonly chains: readonly { readonly table: Table; readonly chain: string }[];
  /** Chains that must START with exactly these rules, in this order, each exactly once. */
  readonly heads: readonly { readonly table: Table; readonly chain: string; readonly rules: readonly Rule[] }[];
  /** Rules that must exist exactly once, anywhere in their chain. */
  readonly rules: readonly PlacedRule[];
}

const EMPTY_LAYOUT: Layout = { chains: [], heads: [], rules: [] };

const LOOPBACK: Record<Family, Prefix> = { 4: Prefix.parse('127.0.0.0/8'), 6: Prefix.parse('::1/128') };
const DROP = { kind: 'verdict', verdict: 'DROP' } as const;
const ACCEPT = { kind: 'verdict', verdict: 'ACCEPT' } as const;

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
      { table: 'raw', chain: CHAIN.NETD },
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
      // IPv4 loopback is DNATed too (127.0.0.1:8080 from the host reaches a container through
      // route_localnet); ::1 cannot be, as IPv6 has no route_localnet.
      { rule: jump('nat', 'OUTPUT', CHAIN.NETD, family === 4 ? local : { dst: { cidr: LOOPBACK[6], negate: true }, ...local }) },
      { rule: jump('nat', 'POSTROUTING', CHAIN.POSTROUTING) },
      { rule: jump('raw', 'PREROUTING', CHAIN.NETD) },
      ...(family === 4
        ? [{ rule: { table: 'raw', chain: CHAIN.NETD, dst: { cidr: LOOPBACK[4] }, in: { name: 'lo', negate: true }, comment: BASE_TAG, target: DROP } as const }]
        : []),
    ],
  };
}

/** The subnet a network has in a family, if any. */
export function subnetOf(n: FirewallNetwork, family: Family): Prefix | undefined {
  return family === 4 ? n.v4 : n.v6;
}

/** One network's rules in one family (none when it has no subnet of that family). */
export function networkRules(n: FirewallNetwork, family: Family): PlacedRule[] {
  const subnet = subnetOf(n, family);
  if (!subnet) return [];
  const br = n.bridge;
  const comment = n.tag;
  const filter = (chain: string, r: Omit<Rule, 'table' | 'chain' | 'comment'>, top = false): PlacedRule => ({
    rule: { table: 'filter', chain, comment, ...r },
    top,
  });
  const postrouting = (r: Omit<Rule, 'table' | 'chain' | 'comment' | 'target'>): PlacedRule => ({
    rule: { table: 'nat', chain: CHAIN.POSTROUTING, comment, ...r, target: { kind: 'masquerade' } },
  });
  const dnatState = { module: 'conntrack', ctstate: ['DNAT'] } as const;

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
    // Published ports: whatever netd DNATed to this bridge gets in, from anywhere.
    filter(CHAIN.NETD, { out: { name: br }, matches: [dnatState], target: ACCEPT }, true),
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
  if (n.masquerade) rules.push(postrouting({ src: { cidr: subnet }, out: { name: br, negate: true } }));
  // Hairpin: a container reaching a port published to this bridge (its own or a neighbour's) through a
  // host address must be answered through the host, so its source becomes the bridge's address.
  rules.push(postrouting({ src: { cidr: subnet }, out: { name: br }, matches: [dnatState] }));
  // The host's own connections from 127.0.0.1, DNATed into the bridge: a container cannot answer 127.0.0.1.
  if (family === 4) rules.push(postrouting({ src: { cidr: LOOPBACK[4] }, out: { name: br } }));
  return rules;
}

/** A layout plus the chains, contents and jumps of these port forwards, and of their buckets (once each). */
function withForwards(layout: Layout, forwards: readonly FirewallForward[], family: Family): Layout {
  const chains = [...layout.chains];
  const rules = [...layout.rules];
  const buckets = new Set<string>();
  for (const f of forwards) {
    const l = forwardLayout(f, family);
    for (const b of l.buckets) {
      if (buckets.has(`${b.table}/${b.chain}`)) continue;
      buckets.add(`${b.table}/${b.chain}`);
      chains.push({ table: b.table, chain: b.chain });
      rules.push(b.jump);
    }
    chains.push(...l.chains);
    for (const c of l.contents) rules.push(...c.rules.map((rule) => ({ rule })));
    rules.push(...l.jumps);
  }
  return { chains, heads: layout.heads, rules };
}

/** Key of a bucket chain known to exist. */
function bucketKey(family: Family, table: Table, chain: string): string {
  return `${family}/${table}/${chain}`;
}

function mergeLayouts(base: Layout, extra: readonly PlacedRule[]): Layout {
  return { chains: base.chains, heads: base.heads, rules: [...base.rules, ...extra] };
}

/** Chains whose contents netd never reads, changes or deletes. */
function isProtected(table: string, chain: string): boolean {
  return table === 'filter' && chain === CHAIN.USER;
}

/** Whether a saved rule jumps (or goes) to `chain`. */
function jumpsTo(r: SavedRule, chain: string): boolean {
  return r.tokens.some((t, i) => (t === '-j' || t === '-g') && r.tokens[i + 1] === chain);
}

/**
 * Plans the restore script taking `saved` to `layout`. Rules outside `layout` are deleted only when
 * `inScope(comment)` says they are netd's to manage in this operation, and never in NETD-USER. Chains
 * outside `layout` are flushed and deleted only when `chainInScope` says so (an endpoint's port-forward
 * chain that nothing knows any more); one that a foreign rule still jumps to is flushed but kept.
 */
export function planFamily(
  family: Family,
  saved: SavedState,
  layout: Layout,
  inScope: (comment: string | undefined) => boolean,
  chainInScope: (table: Table, chain: string) => boolean = () => false,
): RestoreScript {
  const script = new RestoreScript(family);
  for (const table of TABLES) {
    const current = saved.get(table);
    const rulesOf = (chain: string): readonly SavedRule[] => current?.rules.get(chain) ?? [];

    // 1. Chains: declare only the missing ones (declaring an existing chain would flush it).
    const wantedChains = new Set<string>();
    for (const c of layout.chains) {
      if (c.table !== table) continue;
      wantedChains.add(c.chain);
      if (!current?.chains.has(c.chain)) script.push(table, { kind: 'new-chain', chain: c.chain });
    }
    const stale = new Set([...(current?.chains ?? [])].filter((c) => !wantedChains.has(c) && !isProtected(table, c) && chainInScope(table, c)));

    // 2. Stale rules: netd's (in scope) but not wanted. (Those inside stale chains go with the flush.)
    const wanted = new Set<string>();
    for (const h of layout.heads) if (h.table === table) for (const r of h.rules) wanted.add(`${h.chain}\n${ruleKey(r, family)}`);
    for (const p of layout.rules) if (p.rule.table === table) wanted.add(`${p.rule.chain}\n${ruleKey(p.rule, family)}`);
    const deleted = new Set<SavedRule>();
    for (const [chain, list] of current?.rules ?? []) {
      if (isProtected(table, chain) || stale.has(chain)) continue;
      for (const r of list) {
        if (inScope(r.comment) && !wanted.has(`${chain}\n${r.key}`)) {
          script.push(table, { kind: 'delete-saved', saved: r });
          deleted.add(r);
        }
      }
    }

    // 2b. Stale chains: all flushed first (they may jump to each other), then deleted unless still referenced.
    for (const chain of stale) if (rulesOf(chain).length > 0) script.push(table, { kind: 'flush-chain', chain, saved: rulesOf(chain) });
    for (const chain of stale) {
      const referenced = [...(current?.rules ?? [])].some(([c, list]) => !stale.has(c) && list.some((r) => !deleted.has(r) && jumpsTo(r, chain)));
      if (!referenced) script.push(table, { kind: 'delete-chain', chain });
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
  /** Port forwards this process applied (or reconciled), by endpoint id12: what the fast path relies on. */
  private readonly applied = new Map<string, FirewallForward>();
  /** Bucket chains (and their jumps from NETD) known to exist: `family/table/chain`. */
  private readonly buckets = new Set<string>();

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

  async reconcile(specs: NetworkFirewallSpec[], forwardSpecs: PortForwardSpec[] = []): Promise<void> {
    if (!Array.isArray(specs)) throw new InvalidArgumentError('reconcile needs a list of networks');
    if (!Array.isArray(forwardSpecs)) throw new InvalidArgumentError('reconcile needs a list of port forwards');
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
    const forwards = new Map<string, FirewallForward>();
    for (const spec of forwardSpecs) {
      const f = this.normalizeForward(spec);
      if (forwards.has(f.id12)) throw new InvalidArgumentError(`two port forwards share the endpoint id prefix ${f.id12}`);
      forwards.set(f.id12, f);
    }
    return this.serialize(async () => {
      try {
        await this.converge(
          'reconcile',
          this.families,
          (f) => withForwards(mergeLayouts(baseLayout(f), networks.flatMap((n) => networkRules(n, f))), [...forwards.values()], f),
          isNetdTag,
          undefined,
          isForwardChain,
        );
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
    const f = this.normalizeForward(spec);
    return this.serialize(async () => {
      const current = this.applied.get(f.id12);
      if (current && sameForward(current, f)) return;
      if (current) {
        await this.removeForward(current);
        this.applied.delete(f.id12);
      }
      await this.addForward(f);
      this.applied.set(f.id12, f);
      await deleteConntrack(this.exec, this.log, flowsToHostPorts(f));
    });
  }

  async teardownPortForward(spec: PortForwardSpec): Promise<void> {
    const f = this.normalizeForward(spec);
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
      await this.apply(op, scripts);
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

  private normalizeForward(spec: PortForwardSpec): FirewallForward {
    return normalizeForward(spec, this.families, (m) =>
      this.log.warn({ endpoint: spec.endpointId?.slice?.(0, 12), hostIp: m.hostIp, hostPort: m.hostPort }, 'IPv6 firewalling is disabled: ignoring an IPv6 port mapping'),
    );
  }

  private normalize(spec: NetworkFirewallSpec): FirewallNetwork {
    const n = normalizeNetwork(spec);
    if (n.v6 && !this.families.includes(6)) {
      this.log.warn({ network: n.id12, subnet: n.v6.toString() }, 'IPv6 firewalling is disabled: ignoring the IPv6 subnet');
      return { ...n, v6: undefined };
    }
    return n;
  }

  settled(): Promise<void> {
    return this.serialize(async () => undefined);
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
    chainInScope?: (table: Table, chain: string) => boolean,
  ): Promise<void> {
    const started = performance.now();
    const states = await Promise.all(families.map((f) => this.read(f)));
    const scripts = families.map((f, i) => planFamily(f, states[i], layoutFor(f), inScope, chainInScope));
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
