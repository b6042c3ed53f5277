/** The report's DNS section: peak QPS of netd's embedded DNS, aardvark-dns and dnsmasq (the `dns` item). */
import { table } from './report-format.js';

export interface DnsContext {
  /** A value of the dns phase (`dns|SERVER|KIND|qps`), NaN if none. */
  value(key: string): number;
  /** Why the dns phase has no figure for `key` (a cell), or undefined; "not run" when the item was not run. */
  missing(key: string): string | undefined;
}

const SERVERS = ['netd', 'aardvark-dns', 'dnsmasq'];
const KINDS = ['local', 'forwarded'];

export function dnsSection(ctx: DnsContext): string[] {
  if (ctx.missing('dns|netd|local|qps') === 'not run') return [];
  const cell = (server: string, kind: string) => {
    const key = `dns|${server}|${kind}|qps`;
    const v = ctx.value(key);
    return Number.isFinite(v) ? String(Math.round(v)) : (ctx.missing(key) ?? '—');
  };
  const ratio = (kind: string, peer: string) => {
    const r = ctx.value(`dns|netd|${kind}|qps`) / ctx.value(`dns|${peer}|${kind}|qps`);
    return Number.isFinite(r) ? r.toFixed(2) : '—';
  };
  return [
    '## Embedded DNS (peak QPS, dnsperf, 100 queries outstanding)',
    '',
    'From the DNS benchmark ([bench/dns](../dns/README.md)), run as one phase: the same client container queries netd\'s embedded DNS, then aardvark-dns, then dnsmasq on the same gateway address, for names of containers on the network (local) and names answered by an upstream (forwarded). No server caches.',
    '',
    table(
      ['names', ...SERVERS, 'netd ÷ aardvark-dns', 'netd ÷ dnsmasq'],
      KINDS.map((k) => [k, ...SERVERS.map((s) => cell(s, k)), ratio(k, 'aardvark-dns'), ratio(k, 'dnsmasq')]),
    ),
    '',
  ];
}
