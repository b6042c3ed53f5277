/**
 * The planner: the restore script that takes one family from what iptables-save shows to the wanted
 * layout (iptables-layout.ts). It declares only missing chains (declaring an existing one under --noflush
 * would flush it), adds only missing rules, and deletes — with -D of the exact saved text — netd-tagged
 * rules that are not wanted or are duplicated. Pure: no commands run here.
 */
import { ruleKey, TABLES, type Family, type Table } from './model.js';
import type { SavedRule, SavedState } from './iptables-save.js';
import { RestoreScript } from './restore-script.js';
import { CHAIN, type Layout } from './iptables-layout.js';

/** Chains whose contents netd never reads, changes or deletes. */
function isProtected(table: string, chain: string): boolean {
  return table === 'filter' && chain === CHAIN.USER;
}

/** Whether a saved rule jumps (or goes) to `chain`. */
function jumpsTo(r: SavedRule, chain: string): boolean {
  return r.tokens.some((t, i) => (t === '-j' || t === '-g') && r.tokens[i + 1] === chain);
}

/** Whether a chain outside the layout is netd's to delete in this operation, given its saved rules. */
export type ChainScope = (table: Table, chain: string, rules: readonly SavedRule[]) => boolean;

/**
 * Plans the restore script taking `saved` to `layout`. Rules outside `layout` are deleted only when
 * `inScope(comment)` says they are netd's to manage in this operation, and never in NETD-USER. Chains
 * outside `layout` are flushed and deleted only when `chainInScope` says so (an endpoint's port-forward
 * chain that nothing knows any more); netd-marked jumps to such a chain go with it (an old shared bucket's
 * `netd:pf` jump); one that a foreign rule still jumps to is flushed but kept.
 */
export function planFamily(
  family: Family,
  saved: SavedState,
  layout: Layout,
  inScope: (comment: string | undefined) => boolean,
  chainInScope: ChainScope = () => false,
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
    const stale = new Set([...(current?.chains ?? [])].filter((c) => !wantedChains.has(c) && !isProtected(table, c) && chainInScope(table, c, rulesOf(c))));

    // 2. Stale rules: netd's (in scope) but not wanted. (Those inside stale chains go with the flush.)
    const wanted = new Set<string>();
    for (const h of layout.heads) if (h.table === table) for (const r of h.rules) wanted.add(`${h.chain}\n${ruleKey(r, family)}`);
    for (const p of layout.rules) if (p.rule.table === table) wanted.add(`${p.rule.chain}\n${ruleKey(p.rule, family)}`);
    const deleted = new Set<SavedRule>();
    for (const [chain, list] of current?.rules ?? []) {
      if (isProtected(table, chain) || stale.has(chain)) continue;
      for (const r of list) {
        const toStale = r.comment?.startsWith('netd') === true && [...stale].some((c) => jumpsTo(r, c));
        if ((inScope(r.comment) || toStale) && !wanted.has(`${chain}\n${r.key}`)) {
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
