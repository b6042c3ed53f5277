/**
 * The iptables layout: what netd wants in the kernel, per family, as chains and rules (model.ts values).
 * The iptables backend (iptables.ts) makes the kernel match it; the planner (iptables-plan.ts) works out how.
 * Laid out the way Docker 29 lays out its own rules, with NETD-* names.
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
 * (per endpoint's published ports); a daemon puts its instance id in the last two, `netd:<instance>:<id12>`
 * (marks.ts). The base chains and rules are shared by every netd instance on the host (each lays them
 * out identically and none removes them); everything else is one instance's.
 */
import type { Family, PlacedRule, Rule, Table } from './model.js';
import { Prefix } from '../net/index.js';
import type { FirewallNetwork } from './spec.js';
import { BASE_TAG } from './marks.js';
import { forwardLayout, type FirewallForward } from './port-forward.js';

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

export const EMPTY_LAYOUT: Layout = { chains: [], heads: [], rules: [] };

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
export function withForwards(layout: Layout, forwards: readonly FirewallForward[], family: Family): Layout {
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

/** A layout plus more rules. */
export function mergeLayouts(base: Layout, extra: readonly PlacedRule[]): Layout {
  return { chains: base.chains, heads: base.heads, rules: [...base.rules, ...extra] };
}
