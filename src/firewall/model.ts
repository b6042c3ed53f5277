/**
 * The firewall rule model: validated values (chain, comment; addresses, prefixes, interface names, ports
 * and protocols are net values), a structured `Rule`, its rendering to iptables-restore lines, and a
 * parser for iptables-save output.
 *
 * Safety: every value that reaches iptables is validated twice — when it enters (net's parsers, the
 * validate helpers here) and again when a line is rendered (addresses must be real net values, interface
 * names pass net's firewall-safe rule, and each token must match SAFE_TOKEN). A token can therefore never carry
 * whitespace, a quote, a newline or a leading '-', so no value can add arguments, options or lines.
 *
 * Canonical form: rules are rendered in the exact token order iptables-save (nft variant, 1.8.x) prints
 * them — `-s -d -i -o`, then match modules, then `-m comment`, then `-j` — with addresses in the form
 * glibc's inet_ntop gives. So a rendered rule and the same rule read back from iptables-save compare equal
 * token for token, which is how the backend decides what exists. (IPAddress.toString is that form.)
 */
import { InvalidArgumentError } from '../errors.js';
import { IPAddress, PROTOS, Prefix, bitsOf, checkPort, describeValue as describe, parseFirewallIfName, type Family, type Proto } from '../net/index.js';

export type { Family } from '../net/index.js';
export type Table = 'filter' | 'nat' | 'raw';
export const TABLES: readonly Table[] = ['filter', 'nat', 'raw'];

// ---------------------------------------------------------------------------------------------------
// Validated values
// ---------------------------------------------------------------------------------------------------

const CHAIN_RE = /^[A-Za-z0-9_-]{1,28}$/; // iptables: chain names are at most 28 characters
const COMMENT_RE = /^[A-Za-z0-9_.:-]{1,255}$/; // xt_comment holds 255 characters
/**
 * Anything rendered into a restore line is one of these. '!' only ever stands alone (negation); brackets
 * only appear in an IPv6 DNAT destination ("[2001:db8::2]:80").
 */
const SAFE_TOKEN_RE = /^(?:!|[A-Za-z0-9_.:/,[][A-Za-z0-9_.:/,[\]-]*|-{1,2}[A-Za-z][A-Za-z-]*)$/;


/** A user-defined chain name: 1–28 of [A-Za-z0-9_-], not starting with '-'. */
export function validateChainName(name: unknown): string {
  if (typeof name !== 'string' || !CHAIN_RE.test(name) || name.startsWith('-')) {
    throw new InvalidArgumentError(`invalid chain name ${describe(name)}: expected 1-28 characters of [A-Za-z0-9_-]`);
  }
  return name;
}

/** A rule comment: 1–255 of [A-Za-z0-9_.:-], not starting with '-'. */
export function validateComment(comment: unknown): string {
  if (typeof comment !== 'string' || !COMMENT_RE.test(comment) || comment.startsWith('-')) {
    throw new InvalidArgumentError(`invalid rule comment ${describe(comment)}: expected 1-255 characters of [A-Za-z0-9_.:-]`);
  }
  return comment;
}

/**
 * A network prefix as a rule matches it (`-s`, `-d`): at least /1, since iptables drops a /0 match
 * entirely, so it could never be found again in iptables-save. Host bits are cleared (what iptables
 * itself does with `-s 10.1.2.3/8`). The text is exactly what iptables-save prints for it.
 */
export function parseCidr(input: unknown, what = 'CIDR'): Prefix {
  return checkMatchable(Prefix.parse(input, { what, lenient: true }), what);
}

/** Refuses a /0 prefix (see parseCidr). */
export function checkMatchable(p: Prefix, what = 'CIDR'): Prefix {
  if (p.length < 1) throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(p.toString())}: the prefix length must be between 1 and ${bitsOf(p.family)}`);
  return p;
}

// ---------------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------------

export interface AddressMatch {
  readonly cidr: Prefix;
  readonly negate?: boolean;
}
export interface InterfaceMatch {
  readonly name: string;
  readonly negate?: boolean;
}

/** Conntrack states in the order iptables-save prints them. */
export const CT_STATES = ['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED', 'SNAT', 'DNAT'] as const;
export type CtState = (typeof CT_STATES)[number];
export const ADDR_TYPES = ['UNSPEC', 'UNICAST', 'LOCAL', 'BROADCAST', 'ANYCAST', 'MULTICAST', 'BLACKHOLE', 'UNREACHABLE', 'PROHIBIT'] as const;
export type AddrType = (typeof ADDR_TYPES)[number];

/** Match modules (`-m ...`). Extend this union (and renderMatch) for new modules. */
export type Match =
  | { readonly module: 'conntrack'; readonly ctstate: readonly CtState[] }
  | { readonly module: 'addrtype'; readonly dstType: AddrType };

export type Verdict = 'ACCEPT' | 'DROP' | 'RETURN';
/** Targets (`-j ...`). Extend this union (and renderTarget) for targets with options. */
export type Target =
  | { readonly kind: 'verdict'; readonly verdict: Verdict }
  | { readonly kind: 'jump'; readonly chain: string }
  | { readonly kind: 'masquerade' }
  /** `-j DNAT --to-destination ADDRESS:PORT` (IPv6: `[ADDRESS]:PORT`); address without prefix. */
  | { readonly kind: 'dnat'; readonly address: IPAddress; readonly port: number };


/** `-p PROTO`, and with a port `-m PROTO --dport PORT` (the form iptables-save prints). */
export interface ProtocolMatch {
  readonly name: Proto;
  readonly dport?: number;
}

/** One iptables rule, independent of the operation (-A/-I/-D) applied with it. */
export interface Rule {
  readonly table: Table;
  /** A built-in chain or a user chain name (validated). */
  readonly chain: string;
  readonly src?: AddressMatch;
  readonly dst?: AddressMatch;
  readonly in?: InterfaceMatch;
  readonly out?: InterfaceMatch;
  readonly proto?: ProtocolMatch;
  readonly matches?: readonly Match[];
  readonly comment?: string;
  readonly target: Target;
}

/** A wanted rule; `top` rules are inserted at position 1 when missing, others appended. */
export interface PlacedRule {
  readonly rule: Rule;
  readonly top?: boolean;
}

function checkCidr(c: Prefix, family: Family): string {
  // Only a real Prefix (parsed, immutable) gets through, not a hand-made object.
  if (!(c instanceof Prefix) || c.family !== family) {
    throw new InvalidArgumentError(`address ${describe(c instanceof Prefix ? c.toString() : c)} is not an IPv${family} prefix`);
  }
  return checkMatchable(c).toString();
}

function renderMatch(m: Match): string[] {
  switch (m.module) {
    case 'conntrack': {
      if (m.ctstate.length === 0 || m.ctstate.some((s) => !CT_STATES.includes(s))) {
        throw new InvalidArgumentError(`invalid conntrack states ${describe(m.ctstate.join(','))}`);
      }
      const states = CT_STATES.filter((s) => m.ctstate.includes(s));
      return ['-m', 'conntrack', '--ctstate', states.join(',')];
    }
    case 'addrtype':
      if (!ADDR_TYPES.includes(m.dstType)) throw new InvalidArgumentError(`invalid address type ${describe(m.dstType)}`);
      return ['-m', 'addrtype', '--dst-type', m.dstType];
  }
}

function portToken(port: unknown): string {
  return String(checkPort(port));
}

function renderProto(p: ProtocolMatch): string[] {
  if (!PROTOS.includes(p.name)) throw new InvalidArgumentError(`invalid protocol ${describe(p.name)}`);
  return p.dport === undefined ? ['-p', p.name] : ['-p', p.name, '-m', p.name, '--dport', portToken(p.dport)];
}

/** A single address of the batch's family: a real IPAddress, printed canonically. */
function checkAddress(address: unknown, family: Family): IPAddress {
  if (!(address instanceof IPAddress) || address.family !== family) {
    throw new InvalidArgumentError(`address ${describe(address instanceof IPAddress ? address.toString() : address)} is not an IPv${family} address`);
  }
  return address;
}

function renderTarget(t: Target, family: Family): string[] {
  switch (t.kind) {
    case 'verdict':
      if (!['ACCEPT', 'DROP', 'RETURN'].includes(t.verdict)) throw new InvalidArgumentError(`invalid verdict ${describe(t.verdict)}`);
      return ['-j', t.verdict];
    case 'jump':
      return ['-j', validateChainName(t.chain)];
    case 'masquerade':
      return ['-j', 'MASQUERADE'];
    case 'dnat': {
      const a = checkAddress(t.address, family);
      return ['-j', 'DNAT', '--to-destination', `${a.toUrlHost()}:${portToken(t.port)}`];
    }
  }
}

/**
 * The argument tokens of a rule (everything after `-A CHAIN`), validated, in iptables-save's order.
 * `family` is the address family of the batch the rule goes into: addresses of the other family are refused.
 */
export function ruleArgs(rule: Rule, family: Family): string[] {
  const out: string[] = [];
  const neg = (n?: boolean) => (n ? ['!'] : []);
  if (rule.src) out.push(...neg(rule.src.negate), '-s', checkCidr(rule.src.cidr, family));
  if (rule.dst) out.push(...neg(rule.dst.negate), '-d', checkCidr(rule.dst.cidr, family));
  if (rule.in) out.push(...neg(rule.in.negate), '-i', parseFirewallIfName(rule.in.name));
  if (rule.out) out.push(...neg(rule.out.negate), '-o', parseFirewallIfName(rule.out.name));
  if (rule.proto) out.push(...renderProto(rule.proto));
  for (const m of rule.matches ?? []) out.push(...renderMatch(m));
  // iptables-nft prints the comment after all other matches, whatever the order it was given in.
  if (rule.comment !== undefined) out.push('-m', 'comment', '--comment', validateComment(rule.comment));
  out.push(...renderTarget(rule.target, family));
  for (const t of out) {
    if (!SAFE_TOKEN_RE.test(t)) throw new InvalidArgumentError(`refusing to render unsafe token ${describe(t)}`);
  }
  return out;
}

/** Built-in chains per table; any other chain name is validated as a user chain. */
const BUILTIN_CHAINS: Record<Table, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
  raw: ['PREROUTING', 'OUTPUT'],
};

export function checkChain(table: Table, chain: string): string {
  if (!TABLES.includes(table)) throw new InvalidArgumentError(`invalid table ${describe(table)}`);
  return BUILTIN_CHAINS[table].includes(chain) ? chain : validateChainName(chain);
}

/** Identity of a rule's argument list, as compared against iptables-save (addresses canonicalised). */
export function argsKey(tokens: readonly string[]): string {
  const norm = tokens.map((t, i) => {
    const prev = tokens[i - 1];
    if ((prev === '-s' || prev === '-d') && t.includes('/')) {
      try {
        return Prefix.parse(t, { lenient: true }).toString();
      } catch {
        return t;
      }
    }
    return t;
  });
  return norm.join('\u001f');
}

export function ruleKey(rule: Rule, family: Family): string {
  return argsKey(ruleArgs(rule, family));
}

// ---------------------------------------------------------------------------------------------------
// iptables-save parsing
// ---------------------------------------------------------------------------------------------------

export interface SavedRule {
  readonly table: string;
  readonly chain: string;
  /** 1-based position within its chain at the time of the read. */
  readonly index: number;
  /** The text after `-A CHAIN `, exactly as printed (valid restore syntax, used verbatim for -D/-I). */
  readonly raw: string;
  readonly tokens: readonly string[];
  readonly key: string;
  /** The first `-m comment --comment` value, unquoted. */
  readonly comment?: string;
}

export interface SavedTable {
  readonly chains: Set<string>;
  /** Rules per chain, in order. */
  readonly rules: Map<string, SavedRule[]>;
}

export type SavedState = Map<string, SavedTable>;

/** Splits a saved rule into tokens, undoing iptables-save's double-quoting ("a b", \" and \\ escapes). */
export function tokenizeSaved(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === ' ' || text[i] === '\t') {
      i++;
      continue;
    }
    let tok = '';
    while (i < text.length && text[i] !== ' ' && text[i] !== '\t') {
      if (text[i] === '"') {
        i++;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < text.length) i++;
          tok += text[i++];
        }
        i++; // closing quote
      } else {
        tok += text[i++];
      }
    }
    out.push(tok);
  }
  return out;
}

/** Parses iptables-save / ip6tables-save output. Comment lines and anything unrecognised are ignored. */
export function parseSave(text: string): SavedState {
  const state: SavedState = new Map();
  let current: SavedTable | undefined;
  let tableName = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      tableName = line.slice(1).trim();
      current = state.get(tableName) ?? { chains: new Set(), rules: new Map() };
      state.set(tableName, current);
    } else if (!current) {
      continue;
    } else if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ')[0];
      current.chains.add(chain);
    } else if (line.startsWith('-A ')) {
      const rest = line.slice(3);
      const sp = rest.indexOf(' ');
      const chain = sp < 0 ? rest : rest.slice(0, sp);
      const raw = sp < 0 ? '' : rest.slice(sp + 1);
      const tokens = tokenizeSaved(raw);
      const ci = tokens.indexOf('--comment');
      const list = current.rules.get(chain) ?? [];
      current.rules.set(chain, list);
      list.push({
        table: tableName,
        chain,
        index: list.length + 1,
        raw,
        tokens,
        key: argsKey(tokens),
        comment: ci >= 0 ? tokens[ci + 1] : undefined,
      });
    } else if (line.startsWith('COMMIT')) {
      current = undefined;
    }
  }
  return state;
}

/** iptables-save text normalised for comparison: no '#' lines, chain counters zeroed. */
export function normalizeSave(text: string): string {
  return text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => (l.startsWith(':') ? l.replace(/\[\d+:\d+\]$/, '[0:0]') : l))
    .join('\n');
}

// ---------------------------------------------------------------------------------------------------
// iptables-restore scripts
// ---------------------------------------------------------------------------------------------------

/** One operation in a restore script. Every op knows its inverse, so a committed table can be undone. */
export type RestoreOp =
  | { readonly kind: 'new-chain'; readonly chain: string }
  | { readonly kind: 'add'; readonly rule: Rule; readonly top: boolean }
  | { readonly kind: 'delete-saved'; readonly saved: SavedRule }
  /** `-D` by specification; `top` says where the inverse puts it back. */
  | { readonly kind: 'delete-rule'; readonly rule: Rule; readonly top?: boolean }
  | { readonly kind: 'insert-saved'; readonly saved: SavedRule; readonly position: number }
  /**
   * `-F CHAIN`. Its contents, for the inverse: `rules` (known, in order) or `saved` (as read, with their
   * positions).
   */
  | { readonly kind: 'flush-chain'; readonly chain: string; readonly rules?: readonly Rule[]; readonly saved?: readonly SavedRule[] }
  | { readonly kind: 'delete-chain'; readonly chain: string };

/** Saved text is kernel output, but it is spliced into a line: refuse anything that could end the line. */
function checkRaw(raw: string): string {
  if (/[\n\r\0]/.test(raw)) throw new InvalidArgumentError('refusing a saved rule containing a line break');
  return raw;
}

/**
 * An iptables-restore script for one address family, built op by op, one section per table.
 * iptables-restore commits each table at its COMMIT line: a script is atomic per table, not as a whole,
 * which is why sections stay separate and can be inverted.
 */
export class RestoreScript {
  private readonly sections = new Map<Table, RestoreOp[]>();

  constructor(readonly family: Family) {}

  push(table: Table, op: RestoreOp): void {
    const ops = this.sections.get(table) ?? [];
    this.sections.set(table, ops);
    ops.push(op);
  }

  get isEmpty(): boolean {
    return [...this.sections.values()].every((ops) => ops.length === 0);
  }

  get tables(): Table[] {
    return TABLES.filter((t) => (this.sections.get(t)?.length ?? 0) > 0);
  }

  ops(table: Table): readonly RestoreOp[] {
    return this.sections.get(table) ?? [];
  }

  /** Counts of rules added and deleted, for logs. */
  summary(): { added: number; deleted: number; chains: number } {
    let added = 0;
    let deleted = 0;
    let chains = 0;
    for (const ops of this.sections.values()) {
      for (const op of ops) {
        if (op.kind === 'add' || op.kind === 'insert-saved') added++;
        else if (op.kind === 'delete-saved' || op.kind === 'delete-rule') deleted++;
        else if (op.kind === 'flush-chain') deleted += (op.rules?.length ?? 0) + (op.saved?.length ?? 0);
        else chains++;
      }
    }
    return { added, deleted, chains };
  }

  /**
   * The text fed to `iptables-restore --noflush`, and the line number of each table's COMMIT (to tell,
   * after a failure at line N, which tables were already committed). Chain declarations come first in
   * each section: with --noflush, `:CHAIN` creates a missing chain but FLUSHES an existing one, so the
   * planner only ever declares chains it saw missing.
   */
  render(): { text: string; commits: { table: Table; line: number }[] } {
    const lines: string[] = [];
    const commits: { table: Table; line: number }[] = [];
    for (const table of this.tables) {
      const ops = this.ops(table);
      lines.push(`*${table}`);
      for (const op of ops) if (op.kind === 'new-chain') lines.push(`:${checkChain(table, op.chain)} - [0:0]`);
      for (const op of ops) {
        switch (op.kind) {
          case 'new-chain':
            break;
          case 'add':
            lines.push(this.ruleLine(op.top ? 'I' : 'A', op.rule, table, op.top ? 1 : undefined));
            break;
          case 'delete-rule':
            lines.push(this.ruleLine('D', op.rule, table));
            break;
          case 'delete-saved':
            lines.push(`-D ${checkChain(table, op.saved.chain)} ${checkRaw(op.saved.raw)}`.trimEnd());
            break;
          case 'insert-saved':
            lines.push(`-I ${checkChain(table, op.saved.chain)} ${op.position} ${checkRaw(op.saved.raw)}`.trimEnd());
            break;
          case 'flush-chain':
            lines.push(`-F ${validateChainName(op.chain)}`);
            break;
          case 'delete-chain':
            lines.push(`-X ${validateChainName(op.chain)}`);
            break;
        }
      }
      lines.push('COMMIT');
      commits.push({ table, line: lines.length });
    }
    return { text: lines.length ? lines.join('\n') + '\n' : '', commits };
  }

  private ruleLine(op: 'A' | 'I' | 'D', rule: Rule, table: Table, position?: number): string {
    if (rule.table !== table) throw new InvalidArgumentError(`rule for table ${rule.table} placed in section ${table}`);
    const chain = checkChain(table, rule.chain);
    const pos = position === undefined ? [] : [String(position)];
    return [`-${op}`, chain, ...pos, ...ruleArgs(rule, this.family)].join(' ');
  }

  /**
   * The script that undoes the given tables of this one, assuming nothing else changed them meanwhile:
   * recreate deleted chains (declarations render first), delete what was added, put deleted rules back —
   * saved ones at their original positions (ascending, so each position is right once the additions are
   * gone), flushed contents and rules deleted by specification appended in their order (`top` ones
   * inserted first) — then remove chains that were created.
   */
  inverse(tables: readonly Table[]): RestoreScript {
    const inv = new RestoreScript(this.family);
    for (const table of tables) {
      const ops = this.ops(table);
      for (const op of ops) if (op.kind === 'delete-chain') inv.push(table, { kind: 'new-chain', chain: op.chain });
      for (const op of ops) if (op.kind === 'add') inv.push(table, { kind: 'delete-rule', rule: op.rule });
      const deleted = ops.flatMap((op) => (op.kind === 'delete-saved' ? [op.saved] : op.kind === 'flush-chain' ? (op.saved ?? []) : []));
      const byChain = new Map<string, SavedRule[]>();
      for (const s of deleted) byChain.set(s.chain, [...(byChain.get(s.chain) ?? []), s]);
      for (const list of byChain.values()) {
        for (const s of [...list].sort((a, b) => a.index - b.index)) {
          inv.push(table, { kind: 'insert-saved', saved: s, position: s.index });
        }
      }
      for (const op of ops) {
        if (op.kind === 'flush-chain') for (const rule of op.rules ?? []) inv.push(table, { kind: 'add', rule, top: false });
      }
      // Rules deleted by specification: appended back in order; those that stood at the top are inserted
      // at position 1 in reverse order, which restores their relative order.
      const bySpec = ops.flatMap((op) => (op.kind === 'delete-rule' ? [op] : []));
      for (const op of bySpec) if (!op.top) inv.push(table, { kind: 'add', rule: op.rule, top: false });
      for (const op of [...bySpec].reverse()) if (op.top) inv.push(table, { kind: 'add', rule: op.rule, top: true });
      for (const op of ops) if (op.kind === 'new-chain') inv.push(table, { kind: 'delete-chain', chain: op.chain });
    }
    return inv;
  }
}
