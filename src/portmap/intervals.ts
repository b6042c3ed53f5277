/**
 * Finding a free block of ports among blocked intervals, in time that depends on the number of
 * intervals, never on the number of ports they or the block span.
 */
import type { PortRange } from '../net/index.js';

/** A closed interval of ports. */
export interface Interval {
  start: number;
  end: number;
}

/** The blocked intervals clipped to `range`, sorted and merged. */
export function mergeIntervals(range: PortRange, blocked: readonly Interval[]): Interval[] {
  const clipped = blocked
    .map((b) => ({ start: Math.max(b.start, range.start), end: Math.min(b.end, range.end) }))
    .filter((b) => b.start <= b.end)
    .sort((a, b) => a.start - b.start);
  const out: Interval[] = [];
  for (const b of clipped) {
    const last = out[out.length - 1];
    if (last && b.start <= last.end + 1) last.end = Math.max(last.end, b.end);
    else out.push({ ...b });
  }
  return out;
}

/**
 * The first port of `span` consecutive free ports of `range`, looking from `from` to the end of the range
 * first and then from its start (wrapping around), or undefined when no such block exists.
 */
export function freeBlock(range: PortRange, blocked: readonly Interval[], span: number, from = range.start): number | undefined {
  const merged = mergeIntervals(range, blocked);
  const gaps: Interval[] = [];
  let next = range.start;
  for (const b of merged) {
    if (b.start > next) gaps.push({ start: next, end: b.start - 1 });
    next = b.end + 1;
  }
  if (next <= range.end) gaps.push({ start: next, end: range.end });
  for (const g of gaps) {
    const start = Math.max(g.start, from);
    if (g.end - start + 1 >= span) return start;
  }
  for (const g of gaps) {
    if (g.start >= from) break;
    if (g.end - g.start + 1 >= span) return g.start;
  }
  return undefined;
}
