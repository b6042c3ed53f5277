/**
 * The firewall rule model: validated values (chain, comment; addresses, prefixes, interface names, ports
 * and protocols are net values), a structured `Rule`, and its rendering to iptables-restore arguments.
 * Reading iptables-save output is in iptables-save.ts, writing restore scripts in restore-script.ts.
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
  /**
   * `-j DNAT --to-destination ADDRESS:PORT` (IPv6: `[ADDRESS]:PORT`); address without prefix. Without a
   * port, `ADDRESS` alone (the port is kept); with `portEnd` and `base`, the kernel's port-offset form
   * `ADDRESS:PORT-PORTEND/BASE` (iptables ≥ 1.8.6): a packet to port BASE+i goes to PORT+i.
   */
  | { readonly kind: 'dnat'; readonly address: IPAddress; readonly port?: number; readonly portEnd?: number; readonly base?: number };


/** `-p PROTO`, and with a port `-m PROTO --dport PORT` or a range `--dport PORT:END` (the forms iptables-save prints). */
export interface ProtocolMatch {
  readonly name: Proto;
  readonly dport?: number;
  /** Last port of a range (absent, or equal to dport, for a single port). */
  readonly dportEnd?: number;
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

/** `A` or, for a range, `A` SEP `B` (B > A). */
function portRangeToken(start: unknown, end: unknown, sep: string): string {
  if (end === undefined || end === start) return portToken(start);
  if (checkPort(end) < checkPort(start)) throw new InvalidArgumentError(`invalid port range ${describe(start)}-${describe(end)}`);
  return `${portToken(start)}${sep}${portToken(end)}`;
}

function renderProto(p: ProtocolMatch): string[] {
  if (!PROTOS.includes(p.name)) throw new InvalidArgumentError(`invalid protocol ${describe(p.name)}`);
  if (p.dport === undefined) {
    if (p.dportEnd !== undefined) throw new InvalidArgumentError('a port range needs its first port');
    return ['-p', p.name];
  }
  return ['-p', p.name, '-m', p.name, '--dport', portRangeToken(p.dport, p.dportEnd, ':')];
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
      if (t.port === undefined) {
        if (t.portEnd !== undefined || t.base !== undefined) throw new InvalidArgumentError('a DNAT port range needs its first port');
        return ['-j', 'DNAT', '--to-destination', a.toString()];
      }
      if (t.portEnd === undefined || t.portEnd === t.port) {
        if (t.base !== undefined) throw new InvalidArgumentError('a DNAT port offset needs a port range');
        return ['-j', 'DNAT', '--to-destination', `${a.toUrlHost()}:${portToken(t.port)}`];
      }
      return ['-j', 'DNAT', '--to-destination', `${a.toUrlHost()}:${portRangeToken(t.port, t.portEnd, '-')}/${portToken(t.base)}`];
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
