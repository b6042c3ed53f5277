/**
 * The nftables planner: the one `nft -f` transaction taking netd's table from what it holds (read with
 * nftables-ruleset.ts) to the wanted model (nftables-layout.ts), changing only what `scope` covers: one
 * network's chains and vmap elements for setupNetwork/teardownNetwork, the base chains for init, one
 * forward's elements for a repair, everything for reconcile. A table that is missing, or whose sets or
 * hooks are not what netd declares, is rebuilt whole (every network and published port from the model).
 * Pure: nothing runs here.
 */
import { chainDecl, chainFingerprint, chainRules, renderTable, setDecl, type NftChain, type NftSetDecl, type NftTableModel } from './nftables-layout.js';
import { elementLines } from './nft-elements.js';
import type { ChainState, SetState, TableState } from './nftables-ruleset.js';

export interface PlanScope {
  /** Chains this operation may change or delete. */
  chain(name: string): boolean;
  /** Elements this operation may add, change or delete (by set and key text). */
  element(set: string, key: string): boolean;
}

export const EVERYTHING: PlanScope = { chain: () => true, element: () => true };

export interface Plan {
  /** The transaction; empty when nothing differs. */
  readonly script: string;
  /** The table was (re)built whole. */
  readonly rebuilt: boolean;
  readonly counts: { chains: number; elements: number };
}

function sameBase(c: NftChain, s: ChainState): boolean {
  if (!c.base) return s.base === undefined;
  return s.base !== undefined && s.base.type === c.base.type && s.base.hook === c.base.hook && s.base.priority === c.base.priority;
}

function sameSet(d: NftSetDecl, s: SetState): boolean {
  return d.type.join(' . ') === s.type.join(' . ') && d.map === s.map && d.interval === s.interval;
}

export function planTable(table: string, current: TableState | undefined, model: NftTableModel, scope: PlanScope): Plan {
  const rebuild = (): Plan => ({
    script: renderTable(table, model),
    rebuilt: true,
    counts: { chains: model.chains.length, elements: [...model.elements.values()].reduce((n, m) => n + m.size, 0) },
  });
  if (!current) return rebuild();
  const declared = new Set(model.sets.map((s) => s.name));
  // A set netd does not declare (IPv6 turned off since): only a rebuild removes it.
  if ([...current.sets.keys()].some((name) => !declared.has(name))) return rebuild();
  for (const s of model.sets) {
    const have = current.sets.get(s.name);
    if (have && !sameSet(s, have)) return rebuild();
  }
  for (const c of model.chains) {
    const have = current.chains.get(c.name);
    if (have && !sameBase(c, have)) return rebuild();
  }

  const decls: string[] = [];
  const setLines: string[] = [];
  const deletes: string[] = [];
  const flushes: string[] = [];
  const rules: string[] = [];
  const adds: string[] = [];
  let chains = 0;
  let elements = 0;

  const wanted = new Set(model.chains.map((c) => c.name));
  for (const c of model.chains) {
    if (!scope.chain(c.name)) continue;
    const have = current.chains.get(c.name);
    const fine = have !== undefined && have.rules === c.rules.length && have.fingerprint === chainFingerprint(c) && (!c.base || have.base?.policy === 'accept');
    if (fine) continue;
    chains++;
    decls.push(chainDecl(table, c));
    if (have) flushes.push(`flush chain inet ${table} ${c.name}`);
    rules.push(...chainRules(table, c));
  }
  const stale = [...current.chains.keys()].filter((name) => !wanted.has(name) && scope.chain(name));
  for (const name of stale) {
    chains++;
    flushes.push(`flush chain inet ${table} ${name}`);
  }
  for (const name of stale) flushes.push(`delete chain inet ${table} ${name}`);

  for (const s of model.sets) if (!current.sets.has(s.name)) setLines.push(setDecl(table, s));
  for (const name of declared) {
    const want = model.elements.get(name) ?? new Map<string, string>();
    const have = current.sets.get(name)?.elements ?? new Map<string, string>();
    const del: string[] = [];
    const add: string[] = [];
    for (const [key, text] of have) {
      if (!scope.element(name, key)) continue;
      if (want.get(key) !== text) del.push(key);
    }
    for (const [key, text] of want) {
      if (!scope.element(name, key)) continue;
      if (have.get(key) !== text) add.push(text);
    }
    elements += del.length + add.length;
    deletes.push(...elementLines('delete', table, name, del));
    adds.push(...elementLines('add', table, name, add));
  }
  const lines = [...decls, ...setLines, ...deletes, ...flushes, ...rules, ...adds];
  return { script: lines.length > 0 ? lines.join('\n') + '\n' : '', rebuilt: false, counts: { chains, elements } };
}
