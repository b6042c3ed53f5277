/**
 * Small statistics over latency samples (milliseconds). Percentiles use the nearest-rank method: the
 * p95 of 20 samples is the 19th smallest, an observed value, never an interpolation.
 */

export interface Summary {
  n: number;
  median: number;
  p90: number;
  p95: number;
  min: number;
  max: number;
}

function sorted(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** Nearest-rank percentile, p in (0, 100]. NaN for no samples. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  const rank = Math.max(1, Math.ceil((p / 100) * s.length));
  return s[Math.min(rank, s.length) - 1];
}

/** Median: the mean of the two middle values for an even count. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = sorted(xs);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function summarise(xs: readonly number[]): Summary {
  const s = sorted(xs);
  return { n: s.length, median: median(s), p90: percentile(s, 90), p95: percentile(s, 95), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN };
}

/**
 * Combines the summaries of repeated runs: the median of the per-run medians and the median of the
 * per-run p90s/p95s, so one disturbed run (the machine is shared) does not move the figure.
 */
export function combineRuns(runs: readonly Summary[]): Summary {
  return {
    n: runs.reduce((a, r) => a + r.n, 0),
    median: median(runs.map((r) => r.median)),
    p90: median(runs.map((r) => r.p90)),
    p95: median(runs.map((r) => r.p95)),
    min: Math.min(...runs.map((r) => r.min)),
    max: Math.max(...runs.map((r) => r.max)),
  };
}

/** Milliseconds elapsed since `start` (a process.hrtime.bigint() reading). */
export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Times one async call; returns its result and the elapsed milliseconds. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { value, ms: msSince(start) };
}
