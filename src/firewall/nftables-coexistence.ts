/**
 * Coexistence with other tables. nf_tables runs every base chain of every table at a hook: an accept in
 * netd's table does not stop a drop in another one (iptables-nft's `FORWARD` with policy DROP, Docker's
 * tables, firewalld). netd never changes another table; it reads `nft -j list ruleset` and says what
 * would drop its bridges' forwarded traffic, and what rule lets it through (as Docker's nftables mode
 * documents). A chain that already accepts by netd's mark (itself, or in a chain it jumps to, as DOCKER-USER),
 * before what drops, is no finding. Pure parsing here; the backend logs each finding once and reports the
 * last check's findings (`Firewall.warnings`, `netd info`).
 */
import { NFT_TABLE_RE } from './nft-elements.js';
import { ACCEPT_MARK } from './nftables-layout.js';
import type { FirewallWarning } from './firewall.js';

type Json = unknown;
const obj = (v: Json): Record<string, Json> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, Json>) : {});

export interface CoexistenceFinding extends FirewallWarning {
  /** `family table chain`. */
  readonly where: string;
}

const MARK = Number(ACCEPT_MARK);

/** `meta mark & ACCEPT_MARK == ACCEPT_MARK ... accept`: the fix (iptables' `-m mark --mark M/M -j ACCEPT` reads the same). */
function acceptsMark(expr: readonly Json[]): boolean {
  const marked = expr.some((e) => {
    const m = obj(obj(e).match);
    const and = obj(m.left)['&'];
    return m.op === '==' && m.right === MARK && Array.isArray(and) && obj(obj(and[0]).meta).key === 'mark' && and[1] === MARK;
  });
  return marked && expr.some((e) => 'accept' in obj(e));
}

/** The chain a rule jumps to (or goes to), if that is all it does besides counting. */
function jumpTarget(expr: readonly Json[]): string | undefined {
  const rest = expr.filter((e) => !('counter' in obj(e)));
  if (rest.length !== 1) return undefined;
  const verdict = obj(obj(rest[0]).jump).target ?? obj(obj(rest[0]).goto).target;
  return typeof verdict === 'string' ? verdict : undefined;
}

/** Whether a rule's expressions end in drop or reject. */
function drops(expr: readonly Json[]): boolean {
  return expr.some((e) => 'drop' in obj(e) || 'reject' in obj(e));
}

/** The interface names a rule matches on (iifname/oifname ==). */
function interfaces(expr: readonly Json[]): string[] {
  const out: string[] = [];
  for (const e of expr) {
    const m = obj(obj(e).match);
    const key = obj(obj(m.left).meta).key;
    if ((key === 'iifname' || key === 'oifname') && typeof m.right === 'string') out.push(m.right);
  }
  return out;
}

/**
 * The one rule that lets through what netd accepted: netd's forward chain runs at priority filter - 1, before
 * other tables' filter chains, and marks what it accepts (ACCEPT_MARK), so the other chain can accept by mark.
 */
function fixFor(family: string, table: string, chain: string, bridges: readonly string[]): string {
  const br = bridges.length > 0 ? ` (netd's bridges: ${bridges.join(', ')})` : '';
  if ((family === 'ip' || family === 'ip6') && table === 'filter' && chain === 'FORWARD') {
    const cmd = family === 'ip' ? 'iptables' : 'ip6tables';
    return `accept what netd accepted${br}: ${cmd} -I FORWARD -m mark --mark ${ACCEPT_MARK}/${ACCEPT_MARK} -j ACCEPT (with dockerd: in DOCKER-USER instead of FORWARD)`;
  }
  return `accept what netd accepted${br}: nft insert rule ${family} ${table} ${chain} meta mark and ${ACCEPT_MARK} == ${ACCEPT_MARK} accept`;
}

/** What in other tables drops forwarded traffic of netd's bridges. */
export function coexistenceFindings(rulesetJson: string, bridges: readonly string[]): CoexistenceFinding[] {
  const list = obj(JSON.parse(rulesetJson)).nftables;
  const items = (Array.isArray(list) ? list : []).map(obj);
  const forwardChains = new Map<string, { family: string; table: string; chain: string; policyDrop: boolean }>();
  const findings: CoexistenceFinding[] = [];
  const ours = (family: Json, table: Json) => family === 'inet' && typeof table === 'string' && NFT_TABLE_RE.test(table);
  const rules = items.map((i) => obj(i.rule)).filter((r) => Array.isArray(r.expr)) as (Record<string, Json> & { expr: Json[] })[];
  const chainOf = (r: Record<string, Json>) => `${String(r.family)} ${String(r.table)} ${String(r.chain)}`;
  // Chains with a rule accepting by netd's mark (a forward chain's jump to one counts as that rule).
  const accepting = new Set(rules.filter((r) => acceptsMark(r.expr)).map(chainOf));
  for (const item of items) {
    const c = obj(item.chain);
    if (c.hook !== 'forward' || ours(c.family, c.table)) continue;
    const [family, table, chain] = [String(c.family), String(c.table), String(c.name)];
    forwardChains.set(`${family} ${table} ${chain}`, { family, table, chain, policyDrop: c.policy === 'drop' });
  }
  const fixed = new Set<string>();
  for (const r of rules) {
    const where = chainOf(r);
    const c = forwardChains.get(where);
    if (!c || fixed.has(where)) continue;
    const target = jumpTarget(r.expr);
    if (acceptsMark(r.expr) || (target !== undefined && accepting.has(`${c.family} ${c.table} ${target}`))) {
      fixed.add(where); // what drops after it no longer drops netd's traffic
      continue;
    }
    if (!drops(r.expr)) continue;
    const hit = interfaces(r.expr).filter((n) => bridges.includes(n));
    const unconditional = r.expr.length === 1 || (r.expr.length === 2 && 'counter' in obj(r.expr[0]));
    if (hit.length === 0 && !unconditional) continue;
    const problem = `rule handle ${String(r.handle)} drops ${hit.length > 0 ? `traffic of netd's bridge ${hit.join(', ')}` : 'every forwarded packet that reaches it'}`;
    findings.push({ where, family: c.family, table: c.table, chain: c.chain, problem, fix: fixFor(c.family, c.table, c.chain, bridges) });
  }
  const policies: CoexistenceFinding[] = [];
  for (const [where, c] of forwardChains) {
    if (!c.policyDrop || fixed.has(where)) continue;
    const problem = 'base chain at the forward hook with policy drop: it drops forwarded traffic it does not accept itself, netd\'s included';
    policies.push({ where, family: c.family, table: c.table, chain: c.chain, problem, fix: fixFor(c.family, c.table, c.chain, bridges) });
  }
  return [...policies, ...findings];
}
