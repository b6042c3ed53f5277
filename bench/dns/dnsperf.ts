/**
 * Runs dnsperf (Debian's `dnsperf` package) inside a container's namespace and reads its summary.
 */
import type { TestContainer } from '../../test/helpers/netns.js';

export interface DnsperfResult {
  sent: number;
  completed: number;
  lost: number;
  qps: number;
  /** Milliseconds. */
  avgLatency: number;
  maxLatency: number;
  stddevLatency: number;
  /** Share of answers per rcode, e.g. { NOERROR: 1 }. */
  rcodes: Record<string, number>;
}

export interface DnsperfOptions {
  server: string;
  port?: number;
  /** Query file: "NAME TYPE" per line. */
  file: string;
  seconds: number;
  /** Queries outstanding at once (dnsperf -q). */
  outstanding?: number;
  /** Rate cap (dnsperf -Q), for latency at a fixed load. */
  maxQps?: number;
  /** Per-query timeout in seconds (dnsperf -t). */
  timeout?: number;
}

export async function dnsperf(client: TestContainer, opts: DnsperfOptions): Promise<DnsperfResult> {
  const argv = ['dnsperf', '-s', opts.server, '-d', opts.file, '-l', String(opts.seconds), '-q', String(opts.outstanding ?? 100), '-t', String(opts.timeout ?? 5)];
  if (opts.port !== undefined) argv.push('-p', String(opts.port));
  if (opts.maxQps !== undefined) argv.push('-Q', String(opts.maxQps));
  const res = await client.exec(argv, { timeoutMs: (opts.seconds + 30) * 1000, allowFail: true });
  if (res.code !== 0) throw new Error(`dnsperf failed (${res.code}): ${res.stderr.trim() || res.stdout.trim()}`);
  return parseDnsperf(res.stdout);
}

export function parseDnsperf(text: string): DnsperfResult {
  const num = (re: RegExp): number => {
    const m = re.exec(text);
    if (!m) throw new Error(`dnsperf output without ${re}:\n${text}`);
    return Number(m[1]);
  };
  const rcodes: Record<string, number> = {};
  const block = /Response codes:\s+(.*)/.exec(text)?.[1] ?? '';
  for (const m of block.matchAll(/([A-Z]+) (\d+) \(/g)) rcodes[m[1]] = Number(m[2]);
  const completed = num(/Queries completed:\s+(\d+)/);
  for (const k of Object.keys(rcodes)) rcodes[k] = completed > 0 ? rcodes[k] / completed : 0;
  return {
    sent: num(/Queries sent:\s+(\d+)/),
    completed,
    lost: num(/Queries lost:\s+(\d+)/),
    qps: num(/Queries per second:\s+([\d.]+)/),
    avgLatency: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    maxLatency: num(/Average Latency \(s\):\s+[\d.]+ \(min [\d.]+, max ([\d.]+)\)/) * 1000,
    stddevLatency: num(/Latency StdDev \(s\):\s+([\d.]+)/) * 1000,
    rcodes,
  };
}
