/**
 * Coexistence with other tables. nf_tables runs every base chain of every table at a hook: an accept in
 * netd's table does not stop a drop in another one (iptables-nft's `FORWARD` with policy DROP, Docker's
 * tables, firewalld). netd never changes another table; it reads `nft -j list ruleset` and says what
 * would drop its bridges' forwarded traffic, and what rule lets it through (as Docker's nftables mode
 * documents). Pure parsing here; the backend logs each finding once.
 */
import { NFT_TABLE_RE } from './nft-elements.js';
import { ACCEPT_MARK } from './nftables-layout.js';

type Json = unknown;
const obj = (v: Json): Record<string, Json> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, Json>) : {});

export interface CoexistenceFinding {
  /** `family table chain`. */
  readonly where: string;
  readonly problem: string;
  /** What lets netd's traffic through. */
  readonly fix: string;
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
  const forwardChains = new Set<string>();
  const findings: CoexistenceFinding[] = [];
  const ours = (family: Json, table: Json) => family === 'inet' && typeof table === 'string' && NFT_TABLE_RE.test(table);
  for (const item of items) {
    const c = obj(item.chain);
    if (c.hook !== 'forward' || ours(c.family, c.table)) continue;
    const [family, table, chain] = [String(c.family), String(c.table), String(c.name)];
    forwardChains.add(`${family} ${table} ${chain}`);
    if (c.policy === 'drop') {
      findings.push({ where: `${family} ${table} ${chain}`, problem: 'base chain at the forward hook with policy drop: it drops forwarded traffic it does not accept itself, netd\'s included', fix: fixFor(family, table, chain, bridges) });
    }
  }
  for (const item of items) {
    const r = obj(item.rule);
    const where = `${String(r.family)} ${String(r.table)} ${String(r.chain)}`;
    if (!forwardChains.has(where) || !Array.isArray(r.expr) || !drops(r.expr)) continue;
    const names = interfaces(r.expr);
    const hit = names.filter((n) => bridges.includes(n));
    const unconditional = r.expr.length === 1 || (r.expr.length === 2 && 'counter' in obj(r.expr[0]));
    if (hit.length === 0 && !unconditional) continue;
    findings.push({
      where,
      problem: `rule handle ${String(r.handle)} drops ${hit.length > 0 ? `traffic of netd's bridge ${hit.join(', ')}` : 'every forwarded packet that reaches it'}`,
      fix: fixFor(String(r.family), String(r.table), String(r.chain), bridges),
    });
  }
  return findings;
}
