/**
 * The `dns` item: netd's embedded DNS against aardvark-dns and dnsmasq, as measured by the DNS benchmark
 * (bench/dns/dns-bench.ts, run as a child process: it makes its own namespaces, daemon and peers). Its
 * markdown table is read back into figures: `dns|SERVER|KIND|qps` (peak QPS with 100 queries outstanding)
 * per server (netd, aardvark-dns, dnsmasq) and kind of name (local, forwarded).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { log, run } from './env.js';
import { Unavailable, type Ctr, type Impl, type Recorder } from './harness.js';
import { AARDVARK, DNSMASQ } from './dns/peers.js';

const DNS_BENCH_JS = join(__dirname, 'dns', 'dns-bench.js');

export interface DnsRow {
  server: string;
  kind: string;
  /** Peak QPS, NaN when the server had no figure (its "answers" cell says why). */
  qps: number;
  why?: string;
}

/**
 * Reads dns-bench's table: the header names the columns (server, names, the first column whose title
 * contains "qps", answers), so that added or moved columns do not matter.
 */
export function parseDnsTable(text: string): DnsRow[] {
  const lines = text.split('\n').filter((l) => l.trim().startsWith('|'));
  const cells = (l: string) => l.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
  const head = lines.findIndex((l) => /\|\s*server\s*\|/i.test(l));
  if (head < 0) return [];
  const cols = cells(lines[head]).map((c) => c.toLowerCase());
  const iServer = cols.indexOf('server');
  const iKind = cols.findIndex((c) => c === 'names' || c === 'kind');
  const iQps = cols.findIndex((c) => c.includes('qps'));
  const iWhy = cols.length - 1;
  if (iServer < 0 || iKind < 0 || iQps < 0) return [];
  const rows: DnsRow[] = [];
  for (const l of lines.slice(head + 1)) {
    const c = cells(l);
    if (c.every((x) => /^:?-+:?$/.test(x))) continue;
    const qps = Number(c[iQps]?.replace(/[, ]/g, ''));
    rows.push({ server: c[iServer], kind: c[iKind], qps: Number.isFinite(qps) && c[iQps] !== '' ? qps : NaN, why: Number.isFinite(qps) ? undefined : c[iWhy] });
  }
  return rows;
}

/** Why the DNS benchmark cannot run here (its programs are missing), or undefined. */
export function dnsMissing(): string | undefined {
  const missing = ['/usr/bin/dnsperf', AARDVARK, DNSMASQ].filter((b) => !existsSync(b));
  return missing.length ? `${missing.join(', ')} missing (apt-get install dnsperf aardvark-dns dnsmasq)` : undefined;
}

export async function dnsItem(rec: Recorder, opts: { seconds: number; names: number; firewallBackend?: string }): Promise<void> {
  const why = dnsMissing();
  if (why) throw new Unavailable(why);
  const env = { ...process.env, ...(opts.firewallBackend ? { NETD_TEST_FIREWALL_BACKEND: opts.firewallBackend } : {}) };
  log(`dns: dns-bench --seconds ${opts.seconds} --names ${opts.names}`);
  const r = await run([process.execPath, DNS_BENCH_JS, '--seconds', String(opts.seconds), '--names', String(opts.names)], { env, allowFail: true, timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`dns-bench exited with ${r.code}: ${(r.stderr.trim().split('\n').pop() ?? '').slice(0, 300)}`);
  const rows = parseDnsTable(r.stdout);
  if (rows.length === 0) throw new Error(`dns-bench printed no table: ${r.stdout.slice(0, 200)}`);
  for (const row of rows) {
    const key = `dns|${row.server}|${row.kind}|qps`;
    if (Number.isFinite(row.qps)) rec.set(key, row.qps);
    else rec.na(key, `n/a (${row.why ?? 'no figure'})`);
  }
  rec.note(`dns-bench: ${opts.names} local names, ${opts.seconds} s per dnsperf run`);
}

/** An item that needs nothing set up in the phase (dns-bench, the overlay cluster make their own namespaces). */
export class SelfContainedImpl implements Impl {
  readonly id = 'netd';
  constructor(private readonly what = 'the dns item') {}
  async setup(): Promise<void> {}
  async portSupport(): Promise<true | string> {
    return 'n/a';
  }
  makeContainer(): Promise<Ctr> {
    throw new Error(`${this.what} has no containers`);
  }
  async attach(): Promise<void> {}
  async detach(): Promise<void> {}
  async teardown(): Promise<void> {}
}
