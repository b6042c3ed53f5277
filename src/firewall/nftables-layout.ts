/**
 * The nftables layout: netd's table `inet netd[-<instance>]` as a model (chains with their rule texts, set
 * declarations, elements), built only from validated values (spec.ts, port-forward.ts, net values).
 *
 *   raw-prerouting   filter hook prerouting priority raw: `ip daddr 127.0.0.0/8 iifname != "lo" drop`
 *                    (martians for 127/8 arriving on a real interface; a loopback mapping stays loopback)
 *   nat-prerouting   nat hook prerouting priority dstnat: `fib daddr type local jump pf`
 *   nat-output       nat hook output priority -100: the same (IPv6: not ::1, which cannot be DNATed out)
 *   pf               DNAT through maps, per family: host address . proto . port (pfF_addr, hash), the
 *                    same with ranges kept whole when host and container ports are equal (pfF_addr_range,
 *                    concatenated intervals, data: the container address, the port is kept), and the
 *                    wildcard host address (pfF_any, pfF_any_range: proto . port). A range whose container
 *                    ports differ is one element per port (nft has no port offset).
 *   nat-postrouting  `oifname vmap @post_out` (hairpin and 127/8 masquerade into a bridge),
 *                    `ip saddr vmap @post_src4`, `ip6 saddr vmap @post_src6` (masquerade out of a subnet)
 *   filter-forward   filter hook forward priority filter - 1 (before iptables' FORWARD and other filter
 *                    chains, so they can accept by netd's mark): `oifname vmap @fwd_out`, `iifname vmap @fwd_in`
 *   forward-drop     filter hook forward priority 10, only when dropForwardByDefault asked for it:
 *                    `meta nfproto ipv4 meta mark & MARK != MARK drop` per family
 *   forward-unmark   filter hook forward priority 20: `meta mark set meta mark & ~MARK`, so that nothing after
 *                    netd's forward decision (policy routing, tc, other tables' postrouting) sees netd's bit
 * Per network (chains `nw-<id12>-out|in|hairpin|masq`, each reached through one vmap element keyed by its
 * bridge or subnet, so its removal is exact): out = what may reach the bridge (established, DNATed,
 * routed-mode published ports, nothing else from another interface; internal: only the subnet), in = what
 * may leave it (icc, internal). Every accept in the forward chains also sets the MARK bit: an accept in
 * one table does not stop another table's drop, so the forward-drop chain (of any netd instance, at a
 * later priority) lets through what any netd instance accepted.
 * Published ports are elements only (pf*, routed*): see forwardElements.
 */
import { createHash } from 'node:crypto';
import { IPAddress, Prefix, PROTO_NUMBER, type Family } from '../net/index.js';
import type { NftElement, NftElementSet, NftField } from './nft-elements.js';
import { elementKeyText, elementLines, elementText } from './nft-elements.js';
import type { FirewallNetwork } from './spec.js';
import { mappingSpan, type FirewallForward } from './port-forward.js';

/** The packet mark bit a netd accept in the forward hook sets (see the file comment). */
export const ACCEPT_MARK = '0x00200000';
/** Every bit but ACCEPT_MARK: forward-unmark clears netd's bit with it. */
export const UNMARK_MASK = '0xffdfffff';
const ACCEPT = `meta mark set meta mark | ${ACCEPT_MARK} accept`;

export interface NftBaseSpec {
  readonly type: 'filter' | 'nat';
  readonly hook: 'prerouting' | 'output' | 'postrouting' | 'forward';
  readonly priority: number;
}
export interface NftChain {
  readonly name: string;
  readonly base?: NftBaseSpec;
  /** Rule texts; never empty (the first carries the chain's fingerprint comment). */
  readonly rules: readonly string[];
}
export interface NftSetDecl {
  readonly name: string;
  readonly type: readonly string[];
  /** Maps: the data type (`verdict`, `ipv4_addr . inet_service`). */
  readonly map?: string;
  readonly interval: boolean;
}
/** set → element key text → element text (both as `nft list` prints them). */
export type ElementTable = Map<string, Map<string, string>>;
export interface NftTableModel {
  readonly chains: readonly NftChain[];
  readonly sets: readonly NftSetDecl[];
  readonly elements: ElementTable;
}

const ADDR: Record<Family, string> = { 4: 'ipv4_addr', 6: 'ipv6_addr' };
const IP: Record<Family, string> = { 4: 'ip', 6: 'ip6' };
const NFPROTO: Record<Family, string> = { 4: 'ipv4', 6: 'ipv6' };

/** The vmaps per-network chains are reached through. */
export const NETWORK_MAPS = ['fwd_out', 'fwd_in', 'post_out', 'post_src4', 'post_src6'] as const;

export function setDecls(families: readonly Family[]): NftSetDecl[] {
  const sets: NftSetDecl[] = [
    { name: 'fwd_out', type: ['ifname'], map: 'verdict', interval: false },
    { name: 'fwd_in', type: ['ifname'], map: 'verdict', interval: false },
    { name: 'post_out', type: ['ifname'], map: 'verdict', interval: false },
  ];
  for (const f of families) {
    const a = ADDR[f];
    sets.push(
      { name: `post_src${f}`, type: [a], map: 'verdict', interval: true },
      { name: `pf${f}_addr`, type: [a, 'inet_proto', 'inet_service'], map: `${a} . inet_service`, interval: false },
      { name: `pf${f}_any`, type: ['inet_proto', 'inet_service'], map: `${a} . inet_service`, interval: false },
      { name: `pf${f}_addr_range`, type: [a, 'inet_proto', 'inet_service'], map: a, interval: true },
      { name: `pf${f}_any_range`, type: ['inet_proto', 'inet_service'], map: a, interval: true },
      { name: `routed${f}`, type: [a, 'inet_proto', 'inet_service'], interval: true },
    );
  }
  return sets;
}

/** The base chains: fixed names, always netd's. */
export const BASE_CHAINS = ['raw-prerouting', 'nat-prerouting', 'nat-output', 'pf', 'nat-postrouting', 'filter-forward', 'forward-drop', 'forward-unmark'] as const;

export function baseChains(families: readonly Family[], forwardDrop: readonly Family[]): NftChain[] {
  const key = (f: Family) => `${IP[f]} daddr . meta l4proto . th dport`;
  const pf = families.flatMap((f) => [
    `meta nfproto ${NFPROTO[f]} dnat ${IP[f]} to ${key(f)} map @pf${f}_addr`,
    `meta nfproto ${NFPROTO[f]} dnat ${IP[f]} to ${key(f)} map @pf${f}_addr_range`,
    `meta nfproto ${NFPROTO[f]} dnat ${IP[f]} to meta l4proto . th dport map @pf${f}_any`,
    `meta nfproto ${NFPROTO[f]} dnat ${IP[f]} to meta l4proto . th dport map @pf${f}_any_range`,
  ]);
  const chains: NftChain[] = [
    { name: 'raw-prerouting', base: { type: 'filter', hook: 'prerouting', priority: -300 }, rules: ['ip daddr 127.0.0.0/8 iifname != "lo" drop'] },
    { name: 'nat-prerouting', base: { type: 'nat', hook: 'prerouting', priority: -100 }, rules: ['fib daddr type local jump pf'] },
    { name: 'nat-output', base: { type: 'nat', hook: 'output', priority: -100 }, rules: ['ip6 daddr ::1 return', 'fib daddr type local jump pf'] },
    { name: 'pf', rules: pf },
    {
      name: 'nat-postrouting',
      base: { type: 'nat', hook: 'postrouting', priority: 100 },
      rules: ['oifname vmap @post_out', ...families.map((f) => `${IP[f]} saddr vmap @post_src${f}`)],
    },
    { name: 'filter-forward', base: { type: 'filter', hook: 'forward', priority: -1 }, rules: ['oifname vmap @fwd_out', 'iifname vmap @fwd_in'] },
  ];
  const drop = families.filter((f) => forwardDrop.includes(f));
  if (drop.length > 0) {
    chains.push({
      name: 'forward-drop',
      base: { type: 'filter', hook: 'forward', priority: 10 },
      rules: drop.map((f) => `meta nfproto ${NFPROTO[f]} meta mark & ${ACCEPT_MARK} != ${ACCEPT_MARK} drop`),
    });
  }
  chains.push({ name: 'forward-unmark', base: { type: 'filter', hook: 'forward', priority: 20 }, rules: [`meta mark set meta mark & ${UNMARK_MASK}`] });
  return chains;
}

/** The chain-name prefix of a network: everything of it in the table starts with this. */
export function networkPrefix(id12: string): string {
  return `nw-${id12}-`;
}

/** One network's chains and the vmap elements that reach them. */
export function networkLayout(n: FirewallNetwork): { chains: NftChain[]; elements: [string, string, string][] } {
  const br = JSON.stringify(n.bridge); // parseFirewallIfName: [A-Za-z0-9_.@-] only, so this is "name"
  const p = networkPrefix(n.id12);
  const subnets = ([[4, n.v4], [6, n.v6]] as const).filter((x): x is readonly [Family, Prefix] => x[1] !== undefined);
  // A family the network has no subnet in is not netd's business on this bridge (as with ip6tables).
  const guard = subnets.length === 1 ? [`meta nfproto ${NFPROTO[subnets[0][0] === 4 ? 6 : 4]} return`] : [];
  const chains: NftChain[] = [];
  const elements: [string, string, string][] = [];
  const chain = (suffix: string, rules: string[], map: string, key: string) => {
    chains.push({ name: p + suffix, rules: [...guard, ...rules] });
    elements.push([map, key, `${key} : jump ${p}${suffix}`]);
  };
  if (n.internal) {
    chain('out', subnets.map(([f, s]) => `${IP[f]} saddr != ${s} drop`), 'fwd_out', br);
    chain('in', [...subnets.map(([f, s]) => `${IP[f]} daddr != ${s} drop`), `oifname ${br} ${n.icc ? ACCEPT : 'drop'}`], 'fwd_in', br);
    return { chains, elements };
  }
  chain(
    'out',
    [
      `ct state established,related ${ACCEPT}`,
      `ct status dnat ${ACCEPT}`,
      ...subnets.map(([f]) => `iifname != ${br} ${IP[f]} daddr . meta l4proto . th dport @routed${f} ${ACCEPT}`),
      `iifname != ${br} drop`,
    ],
    'fwd_out',
    br,
  );
  chain('in', n.icc ? [ACCEPT] : [`oifname ${br} drop`, ACCEPT], 'fwd_in', br);
  chain(
    'hairpin',
    [...subnets.map(([f, s]) => `${IP[f]} saddr ${s} ct status dnat masquerade`), ...(n.v4 ? ['ip saddr 127.0.0.0/8 masquerade'] : [])],
    'post_out',
    br,
  );
  if (n.masquerade) {
    chains.push({ name: `${p}masq`, rules: [`oifname != ${br} masquerade`] });
    for (const [f, s] of subnets) elements.push([`post_src${f}`, s.toString(), `${s} : jump ${p}masq`]);
  }
  return { chains, elements };
}

const addr = (a: IPAddress): NftField => (a.family === 4 ? { type: 'ipv4_addr', value: a } : { type: 'ipv6_addr', value: a });
const proto = (p: keyof typeof PROTO_NUMBER): NftField => ({ type: 'inet_proto', value: PROTO_NUMBER[p] });
const port = (value: number): NftField => ({ type: 'inet_service', value });

/** The elements of a forward's published ports, per set (see the file comment). */
export function forwardElements(f: FirewallForward): Map<NftElementSet, NftElement[]> {
  const out = new Map<NftElementSet, NftElement[]>();
  const push = (set: NftElementSet, e: NftElement) => out.set(set, [...(out.get(set) ?? []), e]);
  for (const [family, part] of [[4, f.v4], [6, f.v6]] as const) {
    if (!part) continue;
    const c = addr(part.container);
    for (const m of part.mappings) {
      const host = m.hostIp.isUnspecified ? [] : [addr(m.hostIp)];
      const kind = m.hostIp.isUnspecified ? 'any' : 'addr';
      const span = mappingSpan(m);
      if (span > 1 && m.hostPort === m.containerPort) {
        push(`pf${family}_${kind}_range`, { key: [...host, proto(m.proto), port(m.hostPort)], keyEnd: [...host, proto(m.proto), port(m.hostPort + span - 1)], data: [c] });
      } else {
        for (let i = 0; i < span; i++) push(`pf${family}_${kind}`, { key: [...host, proto(m.proto), port(m.hostPort + i)], data: [c, port(m.containerPort + i)] });
      }
    }
    if (part.routed) {
      const seen = new Set<string>();
      for (const m of part.mappings) {
        const e: NftElement = { key: [c, proto(m.proto), port(m.containerPort)], keyEnd: [c, proto(m.proto), port(m.containerPort + mappingSpan(m) - 1)] };
        const text = elementText(e);
        if (seen.has(text)) continue;
        seen.add(text);
        push(`routed${family}`, e);
      }
    }
  }
  return out;
}

/** Adds elements to a table of elements (by key). */
export function addElements(table: ElementTable, set: string, elements: Iterable<NftElement>): void {
  const m = table.get(set) ?? new Map<string, string>();
  for (const e of elements) m.set(elementKeyText(e), elementText(e));
  table.set(set, m);
}

/** The whole table netd wants: base, these networks, these forwards. */
export function tableModel(families: readonly Family[], forwardDrop: readonly Family[], networks: Iterable<FirewallNetwork>, forwards: Iterable<FirewallForward>): NftTableModel {
  const chains = baseChains(families, forwardDrop);
  const sets = setDecls(families);
  const elements: ElementTable = new Map(sets.map((s) => [s.name, new Map<string, string>()]));
  for (const n of networks) {
    const l = networkLayout(n);
    chains.push(...l.chains);
    for (const [set, key, text] of l.elements) elements.get(set)?.set(key, text);
  }
  for (const f of forwards) for (const [set, list] of forwardElements(f)) addElements(elements, set, list);
  return { chains, sets, elements };
}

/** The fingerprint comment on a chain's first rule: its definition and rules, hashed. */
export function chainFingerprint(c: NftChain): string {
  const h = createHash('sha256').update(JSON.stringify([c.base ?? null, c.rules])).digest('hex');
  return `netd:${h.slice(0, 16)}`;
}

/** `add chain` (with its hook for a base chain; policy accept). */
export function chainDecl(table: string, c: NftChain): string {
  if (!c.base) return `add chain inet ${table} ${c.name}`;
  return `add chain inet ${table} ${c.name} { type ${c.base.type} hook ${c.base.hook} priority ${c.base.priority}; policy accept; }`;
}

/** The chain's `add rule` lines, the first with the fingerprint comment. */
export function chainRules(table: string, c: NftChain): string[] {
  const fp = chainFingerprint(c);
  return c.rules.map((r, i) => `add rule inet ${table} ${c.name} ${r}${i === 0 ? ` comment "${fp}"` : ''}`);
}

export function setDecl(table: string, s: NftSetDecl): string {
  const kind = s.map ? 'map' : 'set';
  const type = s.type.join(' . ') + (s.map ? ` : ${s.map}` : '');
  return `add ${kind} inet ${table} ${s.name} { type ${type};${s.interval ? ' flags interval;' : ''} }`;
}

/**
 * The whole table in one transaction, replacing whatever is there: `add table` (so the delete cannot
 * fail), `delete table`, then everything. Chains are declared before the sets (nft 1.0.6 fails a verdict
 * element added in the same batch as its interval map when the chain is declared after the map).
 */
export function renderTable(table: string, model: NftTableModel): string {
  const lines = [`add table inet ${table}`, `delete table inet ${table}`, `add table inet ${table}`];
  lines.push(...model.chains.map((c) => chainDecl(table, c)));
  lines.push(...model.sets.map((s) => setDecl(table, s)));
  for (const c of model.chains) lines.push(...chainRules(table, c));
  for (const [set, m] of model.elements) if (m.size > 0) lines.push(...elementLines('add', table, set, [...m.values()]));
  return lines.join('\n') + '\n';
}
