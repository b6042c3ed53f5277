/**
 * A backend-aware view of netd's firewall state in a test namespace, so that a test checks the daemon's
 * behaviour on whichever backend the suite runs on (NETD_TEST_FIREWALL_BACKEND, test/helpers/daemon.ts):
 *
 * - iptables: netd's lines of `iptables-save` and `ip6tables-save` (its chains, the jumps to them, rules naming
 *   its bridges or carrying its comments), counters zeroed;
 * - nftables: netd's tables (`netd`, `netd-<instance>`, any family) from `nft -j list ruleset`, rendered one line
 *   per table, chain, rule, set/map and element (elements sorted; handles and counters left out, so that two
 *   readings of the same state compare equal), PLUS any netd line iptables-save still shows (prefixed
 *   `iptables: `): the nftables backend must leave nothing of netd in iptables.
 *
 * Rule lines render nft's JSON expressions in nft's own words (`ip saddr 172.17.0.0/16 oifname != "netd0"
 * masquerade`), generically: an expression this file does not know is still rendered (key and arguments), never
 * dropped, so that a "mentions" check cannot pass because a rule was not understood.
 */
import { testFirewallBackend } from './backend.js';
import type { TestNetns } from './netns.js';

export type FirewallBackend = 'iptables' | 'nftables';
export type IpFamily = 4 | 6;

/** netd's nf_tables table names: `netd` (no instance) and `netd-<instance id>`. */
export const NETD_TABLE = /^netd(-.+)?$/;
/** An iptables-save line of netd's: its chains (NETD*), its bridges' names and its comments (netd…). */
const IPTABLES_NETD = /NETD|netd/;

// ------------------------------------------------------------------------------------------ iptables

/** netd's lines of an iptables-save text: rules and chain declarations, counters zeroed. */
export function netdIptablesLines(save: string): string[] {
  return save
    .split('\n')
    .filter((l) => (l.startsWith('-A ') || l.startsWith(':')) && IPTABLES_NETD.test(l))
    .map((l) => l.replace(/\[\d+:\d+\]/, '[0:0]'));
}

/** netd's lines of `iptables-save` then `ip6tables-save` in `ns`. */
export async function iptablesNetdState(ns: TestNetns): Promise<string[]> {
  const v4 = (await ns.exec(['iptables-save'])).stdout;
  const v6 = (await ns.exec(['ip6tables-save'])).stdout;
  return [...netdIptablesLines(v4), ...netdIptablesLines(v6)];
}

// ------------------------------------------------------------------------------------------ nftables

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The objects of `nft -j list ruleset` (`{"nftables": [{kind: {...}}, ...]}`) as [kind, body] pairs. */
export function nftObjects(ruleset: unknown): [string, Obj][] {
  if (!isObj(ruleset) || !Array.isArray(ruleset.nftables)) throw new Error(`not nft JSON output: ${JSON.stringify(ruleset).slice(0, 200)}`);
  const out: [string, Obj][] = [];
  for (const o of ruleset.nftables) {
    if (!isObj(o)) continue;
    for (const [kind, body] of Object.entries(o)) if (isObj(body)) out.push([kind, body]);
  }
  return out;
}

/** Binary operators nft's JSON spells as their own key (`{"&": [a, b]}`). */
const BINOPS = new Set(['&', '|', '^', '<<', '>>']);
/** Statements whose argument-less form is just their name (`{"accept": null}`). */
const VERDICT_TARGETS = new Set(['jump', 'goto']);

/** One nft JSON expression or statement in nft's words; anything unknown keeps its key and arguments. */
export function renderNftExpr(e: unknown): string {
  if (e === null || e === undefined) return '';
  if (typeof e === 'string') return e.startsWith('@') ? e : /^[\w.:/-]+$/.test(e) ? e : JSON.stringify(e);
  if (typeof e === 'number' || typeof e === 'boolean') return String(e);
  if (Array.isArray(e)) return `{ ${e.map(renderNftExpr).join(', ')} }`;
  if (!isObj(e)) return String(e);
  const entries = Object.entries(e);
  if (entries.length !== 1) return renderArgs(e);
  const [k, v] = entries[0];
  const a = isObj(v) ? v : undefined;
  switch (k) {
    case 'match': {
      const op = a?.op === '==' || a?.op === 'in' ? '' : ` ${String(a?.op)}`;
      return `${renderNftExpr(a?.left)}${op} ${renderNftExpr(a?.right)}`;
    }
    case 'payload':
      return a && 'protocol' in a ? `${String(a.protocol)} ${String(a.field)}` : `@${String(a?.base)},${String(a?.offset)},${String(a?.len)}`;
    case 'meta':
      return `meta ${String(a?.key)}`;
    case 'ct':
      return `ct ${a?.dir ? `${String(a.dir)} ` : ''}${String(a?.key)}`;
    case 'fib':
      return `fib ${Array.isArray(a?.flags) ? a.flags.join(' . ') : String(a?.flags ?? '')} ${String(a?.result)}`;
    case 'prefix':
      return `${String(a?.addr)}/${String(a?.len)}`;
    case 'range':
      return Array.isArray(v) ? `${renderNftExpr(v[0])}-${renderNftExpr(v[1])}` : renderArgs(e);
    case 'concat':
      return Array.isArray(v) ? v.map(renderNftExpr).join(' . ') : renderArgs(e);
    case 'set':
      return Array.isArray(v) ? renderNftExpr(v) : `{ ${renderNftExpr(v)} }`;
    case 'elem':
      return a ? renderNftExpr(a.val) : renderArgs(e);
    case 'map':
      return `${renderNftExpr(a?.key)} map ${renderNftExpr(a?.data)}`;
    case 'vmap':
      return `${renderNftExpr(a?.key)} vmap ${renderNftExpr(a?.data)}`;
    case 'counter':
      // Packet and byte counts change with traffic: a named counter keeps its name only.
      return typeof v === 'string' ? `counter name ${v}` : 'counter';
    case 'dnat':
    case 'snat': {
      const fam = a?.family ? ` ${String(a.family)}` : '';
      const port = a?.port !== undefined ? `:${renderNftExpr(a.port)}` : '';
      return `${k}${fam} to ${renderNftExpr(a?.addr)}${port}${a?.flags ? ` ${renderNftExpr(a.flags)}` : ''}`;
    }
    case 'masquerade':
    case 'redirect':
      return a?.port !== undefined ? `${k} to :${renderNftExpr(a.port)}` : k;
    default:
      if (v === null) return k;
      if (VERDICT_TARGETS.has(k) && a) return `${k} ${String(a.target)}`;
      if (BINOPS.has(k) && Array.isArray(v)) return `(${v.map(renderNftExpr).join(` ${k} `)})`;
      return `${k}${renderArgs(v)}`;
  }
}

/** Generic arguments: `(key=value, ...)` for an object, ` value` for anything else. */
function renderArgs(v: Json): string {
  if (isObj(v)) return `(${Object.entries(v).map(([k, x]) => `${k}=${renderNftExpr(x)}`).join(', ')})`;
  return ` ${renderNftExpr(v)}`;
}

/** A set's element (`key`) or a map's (`key : value`, nft's JSON `[key, value]`) in nft's words. */
function renderElement(el: Json, isMap: boolean): string {
  const inner = unwrap(el);
  if (isMap && Array.isArray(inner) && inner.length === 2) return `${renderNftExpr(unwrap(inner[0]))} : ${renderNftExpr(inner[1])}`;
  return renderNftExpr(inner);
}
/** An element with options (`{"elem": {"val": ..., "timeout"/"counter"/"comment"...}}`) → its value. */
const unwrap = (x: Json): Json => (isObj(x) && isObj(x.elem) ? x.elem.val : x);

/** The tables of a ruleset whose name matches `table` (netd's by default). */
export function nftTables(ruleset: unknown, table: RegExp = NETD_TABLE): { family: string; name: string }[] {
  return nftObjects(ruleset)
    .filter(([kind, b]) => kind === 'table' && table.test(String(b.name)))
    .map(([, b]) => ({ family: String(b.family), name: String(b.name) }));
}

/**
 * The tables of `ruleset` whose name matches `table` (netd's by default), one line per object, in the order nft
 * lists them except set/map elements (sorted within their set). No handles, no counters.
 */
export function renderNftRuleset(ruleset: unknown, table: RegExp = NETD_TABLE): string[] {
  const lines: string[] = [];
  for (const [kind, b] of nftObjects(ruleset)) {
    const tableName = kind === 'table' ? b.name : b.table;
    if (kind === 'metainfo' || typeof tableName !== 'string' || !table.test(tableName)) continue;
    const where = `${String(b.family)} ${tableName}`;
    if (kind === 'table') lines.push(`table ${where}`);
    else if (kind === 'chain') {
      const base = b.hook !== undefined ? ` { type ${String(b.type)} hook ${String(b.hook)} priority ${String(b.prio)}; policy ${String(b.policy ?? 'accept')}; }` : '';
      lines.push(`chain ${where} ${String(b.name)}${base}`);
    } else if (kind === 'rule') {
      const expr = Array.isArray(b.expr) ? b.expr.map(renderNftExpr).filter((s) => s !== '').join(' ') : '';
      lines.push(`rule ${where} ${String(b.chain)}: ${expr}${b.comment !== undefined ? ` comment ${JSON.stringify(b.comment)}` : ''}`);
    } else if (kind === 'set' || kind === 'map') {
      const type = Array.isArray(b.type) ? b.type.join(' . ') : String(b.type);
      const data = kind === 'map' ? ` : ${typeof b.map === 'string' ? b.map : renderNftExpr(b.map)}` : '';
      const flags = Array.isArray(b.flags) && b.flags.length > 0 ? `; flags ${b.flags.join(',')}` : '';
      lines.push(`${kind} ${where} ${String(b.name)} { type ${type}${data}${flags}; }`);
      const elems = Array.isArray(b.elem) ? b.elem.map((e) => renderElement(e, kind === 'map')).sort() : [];
      for (const e of elems) lines.push(`element ${where} ${String(b.name)}: ${e}`);
    } else {
      // flowtables, ct helpers, named counters and quotas...: kept, generically.
      const { family: _f, table: _t, handle: _h, ...rest } = b;
      lines.push(`${kind} ${where} ${String(b.name ?? '')} ${renderArgs(rest as Json)}`);
    }
  }
  return lines;
}

/** `nft -j list ruleset` in `ns`, parsed. Throws when nft fails (never "empty" because nft is missing). */
export async function nftRuleset(ns: TestNetns): Promise<unknown> {
  const res = await ns.exec(['nft', '-j', 'list', 'ruleset']);
  return JSON.parse(res.stdout) as unknown;
}

/** netd's nf_tables tables in `ns`, rendered (renderNftRuleset). */
export async function nftNetdState(ns: TestNetns): Promise<string[]> {
  return renderNftRuleset(await nftRuleset(ns));
}

// ------------------------------------------------------------------------------------------ both

/**
 * netd's firewall state in `ns` on `backend` (the suite's by default): iptables → iptablesNetdState; nftables →
 * nftNetdState followed by whatever netd line iptables-save shows, prefixed `iptables: ` (there should be none).
 */
export async function netdFirewallState(ns: TestNetns, backend: FirewallBackend = testFirewallBackend()): Promise<string[]> {
  if (backend === 'iptables') return iptablesNetdState(ns);
  return [...(await nftNetdState(ns)), ...(await iptablesNetdState(ns)).map((l) => `iptables: ${l}`)];
}

/** Whether `needle` appears in `line` as a whole token (not inside a longer address, number or name). */
export function mentionsToken(line: string, needle: string | number): boolean {
  const n = String(needle).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^0-9A-Za-z_.])${n}($|[^0-9A-Za-z_.])`).test(line);
}

/** The lines that mention every one of `needles` (as tokens: an address, a port, an id, a bridge name). */
export function mentioning(lines: readonly string[], ...needles: (string | number)[]): string[] {
  return lines.filter((l) => needles.every((n) => mentionsToken(l, n)));
}

/** netd's firewall lines in `ns` (suite's backend) that mention every one of `needles`. */
export async function netdRulesMentioning(ns: TestNetns, ...needles: (string | number)[]): Promise<string[]> {
  return mentioning(await netdFirewallState(ns), ...needles);
}

/** Whether netd has no firewall state at all in `ns` (no chain, rule, table of its own). */
export async function netdFirewallEmpty(ns: TestNetns, backend: FirewallBackend = testFirewallBackend()): Promise<boolean> {
  return (await netdFirewallState(ns, backend)).length === 0;
}

/** The base chains at the forward hook of netd's nf_tables tables: table, chain and policy. */
export function nftForwardChains(ruleset: unknown): { family: string; table: string; chain: string; policy: string }[] {
  return nftObjects(ruleset)
    .filter(([kind, b]) => kind === 'chain' && b.hook === 'forward' && typeof b.table === 'string' && NETD_TABLE.test(b.table))
    .map(([, b]) => ({ family: String(b.family), table: String(b.table), chain: String(b.name), policy: String(b.policy ?? 'accept') }));
}

/** The mark bit every netd accept in the forward hook sets (src/firewall/nftables-layout.ts ACCEPT_MARK). */
export const NFT_ACCEPT_MARK = 0x00200000;

/**
 * Whether a rendered rule line (renderNftRuleset) is netd's "FORWARD policy DROP" for `family`: in a forward base
 * chain of netd's table, `meta nfproto ipvF meta mark & MARK != MARK drop` (drop what no netd instance accepted).
 */
function isForwardDropRule(line: string, forwardChains: ReadonlySet<string>, family: IpFamily): boolean {
  const m = /^rule (\S+) (\S+) ([^:]+): (.*)$/.exec(line);
  if (!m || !forwardChains.has(`${m[1]} ${m[2]} ${m[3]}`)) return false;
  const mark = `(${NFT_ACCEPT_MARK}|0x${NFT_ACCEPT_MARK.toString(16).padStart(8, '0')})`;
  return new RegExp(`^meta nfproto ipv${family} \\(?meta mark & ${mark}\\)? != ${mark} drop( comment "[^"]*")?$`).test(m[4]);
}

/**
 * The forward policy that applies to netd's routing, `ACCEPT` or `DROP`: iptables → the filter table's FORWARD
 * policy of that family (`iptables -S FORWARD` / `ip6tables`); nftables → DROP iff a forward base chain of netd's
 * table covering that family has policy drop or holds netd's drop rule for it (`meta nfproto ipvF meta mark &
 * 0x00200000 != 0x00200000 drop`: the backend's `forward-drop` chain, which lets through what any netd instance
 * accepted). Throws when netd has no forward base chain on nftables (its table is missing: the check must not
 * pass by default).
 */
export async function forwardPolicy(ns: TestNetns, family: IpFamily, backend: FirewallBackend = testFirewallBackend()): Promise<'ACCEPT' | 'DROP'> {
  if (backend === 'iptables') {
    const first = (await ns.exec([family === 4 ? 'iptables' : 'ip6tables', '-w', '-S', 'FORWARD'])).stdout.split('\n')[0];
    const m = /^-P FORWARD (ACCEPT|DROP)$/.exec(first);
    if (!m) throw new Error(`unexpected first line of ${family === 4 ? 'iptables' : 'ip6tables'} -S FORWARD: ${first}`);
    return m[1] as 'ACCEPT' | 'DROP';
  }
  const fam = family === 4 ? 'ip' : 'ip6';
  const ruleset = await nftRuleset(ns);
  const chains = nftForwardChains(ruleset).filter((c) => c.family === 'inet' || c.family === fam);
  if (chains.length === 0) throw new Error(`netd has no forward base chain for IPv${family} in nftables`);
  if (chains.some((c) => c.policy === 'drop')) return 'DROP';
  const names = new Set(chains.map((c) => `${c.family} ${c.table} ${c.chain}`));
  return renderNftRuleset(ruleset).some((l) => isForwardDropRule(l, names, family)) ? 'DROP' : 'ACCEPT';
}

/**
 * What an administrator's reset of the forward policy looks like on `backend`: `iptables -P FORWARD ACCEPT`, or
 * netd's drop rule(s) for that family deleted from its forward base chains (`nft delete rule ... handle N`).
 * Returns what it removed on nftables (throws when there was nothing: the reset must not be a no-op).
 */
export async function resetForwardPolicy(ns: TestNetns, family: IpFamily, backend: FirewallBackend = testFirewallBackend()): Promise<string[]> {
  if (backend === 'iptables') {
    await ns.exec([family === 4 ? 'iptables' : 'ip6tables', '-w', '-P', 'FORWARD', 'ACCEPT']);
    return [];
  }
  const names = new Set(nftForwardChains(await nftRuleset(ns)).map((c) => `${c.family} ${c.table} ${c.chain}`));
  const deleted = await deleteNetdNftRules(ns, (l) => isForwardDropRule(l, names, family));
  if (deleted.length === 0) throw new Error(`netd has no forward drop rule for IPv${family} in nftables`);
  return deleted;
}

/**
 * Removes netd's firewall state the way someone else would, on `backend`: iptables → flushes (`-F`) the given
 * tables (filter and nat by default) of iptables; nftables → deletes netd's tables (`nft delete table`).
 * Returns the commands it ran (for messages).
 */
export async function wipeNetdFirewall(ns: TestNetns, backend: FirewallBackend = testFirewallBackend(), iptablesTables: readonly string[] = ['filter', 'nat']): Promise<string[][]> {
  const argvs: string[][] = [];
  if (backend === 'iptables') for (const t of iptablesTables) argvs.push(['iptables', '-w', '-t', t, '-F']);
  else for (const t of nftTables(await nftRuleset(ns))) argvs.push(['nft', 'delete', 'table', t.family, t.name]);
  if (argvs.length === 0) throw new Error('netd has no nftables table to delete');
  for (const argv of argvs) await ns.exec(argv);
  return argvs;
}

/**
 * The lines of netd's state (`lines`, from netdFirewallState) that take `action` (masquerade, dnat, drop,
 * accept, ...) on traffic named by every one of `needles`: an iptables rule (`-j MASQUERADE`), an nft rule, or an
 * element of a set/map that a rule taking that action looks up (`ip saddr @masq4 masquerade`, `dnat ... map
 * @ports`), or of a verdict map whose element carries the action itself (`netd0 : drop`).
 */
export function rulesThat(lines: readonly string[], action: string, ...needles: (string | number)[]): string[] {
  const acts = (l: string) => mentionsToken(l.toLowerCase(), action.toLowerCase());
  // Sets looked up by a rule that takes the action: `table-family table-name set-name`.
  const looked = new Set<string>();
  for (const l of lines) {
    const m = /^rule (\S+ \S+) /.exec(l);
    if (m && acts(l)) for (const ref of l.matchAll(/@([\w-]+)/g)) looked.add(`${m[1]} ${ref[1]}`);
  }
  return mentioning(lines, ...needles).filter((l) => {
    if (l.startsWith('element ')) {
      const m = /^element (\S+ \S+) ([\w-]+): /.exec(l);
      return (m !== null && looked.has(`${m[1]} ${m[2]}`)) || acts(l.slice(l.indexOf(': ') + 2));
    }
    if (l.startsWith('set ') || l.startsWith('map ') || l.startsWith('chain ') || l.startsWith('table ') || l.startsWith(':')) return false;
    return acts(l);
  });
}

/** netd's lines in `ns` (suite's backend) that take `action` on traffic named by every one of `needles`. */
export async function netdRulesThat(ns: TestNetns, action: string, ...needles: (string | number)[]): Promise<string[]> {
  return rulesThat(await netdFirewallState(ns), action, ...needles);
}

/**
 * Deletes the rules of netd's nf_tables tables whose rendered line (as renderNftRuleset prints it) `matches`, as
 * someone else would (`nft delete rule <family> <table> <chain> handle <n>`). Returns the lines deleted.
 */
export async function deleteNetdNftRules(ns: TestNetns, matches: (line: string) => boolean): Promise<string[]> {
  const deleted: string[] = [];
  for (const [kind, b] of nftObjects(await nftRuleset(ns))) {
    if (kind !== 'rule' || typeof b.table !== 'string' || !NETD_TABLE.test(b.table)) continue;
    const line = renderNftRuleset({ nftables: [{ rule: b }] }, NETD_TABLE)[0];
    if (!matches(line)) continue;
    await ns.exec(['nft', 'delete', 'rule', String(b.family), b.table, String(b.chain), 'handle', String(b.handle)]);
    deleted.push(line);
  }
  return deleted;
}
