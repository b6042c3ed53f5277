/**
 * Reading nftables state: `nft -j list table inet <netd's table>` into what the planner compares
 * (nftables-plan.ts): chains (hook, rule count, the first rule's fingerprint comment), sets (declaration,
 * elements as `nft list` prints them). Reading `nft -j list ruleset` for coexistence is in
 * nftables-coexistence.ts.
 */
import { InvalidArgumentError } from '../errors.js';
import { commandError, type CommandRunner } from './exec.js';
import { checkTableName } from './nft-elements.js';

export interface ChainState {
  readonly base?: { readonly type: string; readonly hook: string; readonly priority: number; readonly policy: string };
  readonly rules: number;
  readonly fingerprint?: string;
}
export interface SetState {
  readonly type: readonly string[];
  readonly map?: string;
  readonly interval: boolean;
  /** key text → element text. */
  readonly elements: Map<string, string>;
}
export interface TableState {
  readonly chains: Map<string, ChainState>;
  readonly sets: Map<string, SetState>;
}

type Json = unknown;
const obj = (v: Json): Record<string, Json> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, Json>) : {});

/** One value of an element as nft prints it; `type` is the field's declared type. */
function valueText(v: Json, type: string | undefined): string {
  if (typeof v === 'string') return type === 'ifname' ? JSON.stringify(v) : v;
  if (typeof v === 'number') return String(v);
  const o = obj(v);
  if (Array.isArray(o.range)) {
    const [a, b] = o.range.map((x) => valueText(x, type));
    return a === b ? a : `${a}-${b}`;
  }
  if (o.prefix) return `${valueText(obj(o.prefix).addr, type)}/${String(obj(o.prefix).len)}`;
  if (o.elem) return valueText(obj(o.elem).val, type);
  for (const verdict of ['jump', 'goto']) if (o[verdict]) return `${verdict} ${String(obj(o[verdict]).target)}`;
  for (const verdict of ['accept', 'drop', 'continue', 'return']) if (verdict in o) return verdict;
  throw new InvalidArgumentError(`unexpected nft element value ${JSON.stringify(v)}`);
}

function fieldsText(v: Json, types: readonly string[]): string {
  const o = obj(v);
  if (o.elem) return fieldsText(obj(o.elem).val, types);
  if (Array.isArray(o.concat)) return o.concat.map((x, i) => valueText(x, types[i])).join(' . ');
  return valueText(v, types[0]);
}

function parseSet(o: Record<string, Json>): SetState {
  const type = (Array.isArray(o.type) ? o.type : [o.type]).map(String);
  const map = typeof o.map === 'string' ? o.map : undefined;
  const mapTypes = map?.split(' . ') ?? [];
  const elements = new Map<string, string>();
  for (const e of Array.isArray(o.elem) ? o.elem : []) {
    if (map !== undefined && Array.isArray(e)) {
      const key = fieldsText(e[0], type);
      elements.set(key, `${key} : ${fieldsText(e[1], mapTypes)}`);
    } else {
      const key = fieldsText(e, type);
      elements.set(key, key);
    }
  }
  return { type, map, interval: Array.isArray(o.flags) && o.flags.includes('interval'), elements };
}

/** Parses `nft -j list table` output. */
export function parseTable(json: string): TableState {
  const chains = new Map<string, { base?: ChainState['base']; rules: number; fingerprint?: string }>();
  const sets = new Map<string, SetState>();
  const list = obj(JSON.parse(json)).nftables;
  for (const item of Array.isArray(list) ? list : []) {
    const o = obj(item);
    if (o.chain) {
      const c = obj(o.chain);
      const base = typeof c.hook === 'string' ? { type: String(c.type), hook: c.hook, priority: Number(c.prio), policy: String(c.policy) } : undefined;
      chains.set(String(c.name), { base, rules: 0 });
    } else if (o.set || o.map) {
      const s = obj(o.set ?? o.map);
      sets.set(String(s.name), parseSet(s));
    } else if (o.rule) {
      const r = obj(o.rule);
      const c = chains.get(String(r.chain));
      if (!c) continue;
      if (c.rules === 0 && typeof r.comment === 'string') c.fingerprint = r.comment;
      c.rules++;
    }
  }
  return { chains, sets };
}

/** The table's state, or undefined when it does not exist. */
export async function readTable(exec: CommandRunner, table: string): Promise<TableState | undefined> {
  const argv = ['nft', '-j', 'list', 'table', 'inet', checkTableName(table)];
  const res = await exec(argv);
  if (res.code !== 0 && !res.missing && /No such file or directory/.test(res.stderr)) return undefined;
  if (res.code !== 0) throw commandError(argv, res);
  return parseTable(res.stdout);
}
