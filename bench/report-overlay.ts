/**
 * The report's overlay section (the `overlay` item, bench/overlay.ts): issue 15's goals with what was
 * measured against them, then the figures behind them.
 */
import type { Summary } from './stats.js';
import { fmt, table } from './report-format.js';
import { ETCD_METHODS, MVCC_COUNTERS } from './overlay.js';

export interface OverlayContext {
  summary(key: string): Summary | undefined;
  /** A value of the overlay phase, NaN if none. */
  value(key: string): number;
  /** Why the overlay phase has no figure for `key` (a cell), or undefined; "not run" when the item was not run. */
  missing(key: string): string | undefined;
}

/** Goal rows: what each compares, the figure, the goal and whether it is met. Pure, unit-tested. */
export function overlayGoals(ctx: OverlayContext): string[][] {
  const med = (k: string) => ctx.summary(k)?.median ?? NaN;
  const rows: string[][] = [];
  const goal = (name: string, key: string, v: number, target: string, ok: (v: number) => boolean, show: (v: number) => string) => {
    const cell = Number.isFinite(v) ? show(v) : (ctx.missing(key) ?? 'n/a');
    rows.push([name, cell, target, Number.isFinite(v) ? (ok(v) ? 'met' : '**missed**') : 'n/a']);
  };
  const ov = med('overlay|attach|overlay');
  const br = med('overlay|attach|bridge');
  goal('attach on an overlay network ÷ on a bridge network, same host (API round trip, medians)', 'overlay|attach|overlay', ov / br, '≤ 1.5×', (v) => v <= 1.5, (v) => `${v.toFixed(2)}× (${fmt(ov)} ÷ ${fmt(br)} ms)`);
  const conv = ctx.summary('overlay|converge');
  goal('cross-host convergence p95 (attach on host 2 → first TCP connect from host 1)', 'overlay|converge', conv?.p95 ?? NaN, '≤ 200 ms', (v) => v <= 200, (v) => `${fmt(v)} ms (median ${fmt(conv?.median ?? NaN)})`);
  const to = med('overlay|tput|overlay');
  const tu = med('overlay|tput|underlay');
  goal('TCP throughput across the overlay ÷ across the underlay (iperf3, medians)', 'overlay|tput|overlay', to / tu, '≥ 90%', (v) => v >= 0.9, (v) => `${(v * 100).toFixed(0)}% (${to.toFixed(2)} ÷ ${tu.toFixed(2)} Gbit/s)`);
  // A counter etcd did not report counts 0, as long as one of them is there.
  const counts = ['rpc.Put', 'rpc.Txn', 'rpc.DeleteRange'].map((k) => ctx.value(`overlay|etcd|attach|${k}`));
  const writes = counts.some(Number.isFinite) ? counts.reduce((a, v) => a + (Number.isFinite(v) ? v : 0), 0) : NaN;
  goal('etcd writes (Put + Txn + DeleteRange RPCs) per attach', 'overlay|etcd|attach|rpc.Put', writes, '≈ 1 leased put (+ 1/64 block claim)', (v) => v <= 1 + 1 / 64 + 0.05, (v) => v.toFixed(2));
  return rows;
}

export function overlaySection(ctx: OverlayContext): string[] {
  if (ctx.missing('overlay|attach|overlay') === 'not run') return [];
  const lat = (key: string) => {
    const s = ctx.summary(key);
    return s ? `${fmt(s.median)} / ${fmt(s.p95)}` : (ctx.missing(key) ?? '—');
  };
  const gbit = (key: string) => {
    const s = ctx.summary(key);
    return s ? s.median.toFixed(2) : (ctx.missing(key) ?? '—');
  };
  const per = (op: string, k: string) => {
    const v = ctx.value(`overlay|etcd|${op}|${k}`);
    return Number.isFinite(v) ? v.toFixed(2) : (ctx.missing(`overlay|etcd|${op}|${k}`) ?? '—');
  };
  const idle = (k: string) => {
    const v = ctx.value(`overlay|etcd|attach|${k}|idle`);
    return Number.isFinite(v) ? String(v) : '—';
  };
  const pct = (a: number, b: number) => (Number.isFinite(a / b) ? `${((a / b) * 100).toFixed(0)}%` : '—');
  const n = ctx.value('overlay|etcd|n');
  const counters = [...ETCD_METHODS.map((m) => `rpc.${m}`), ...MVCC_COUNTERS.map((m) => `mvcc.${m}`)];
  return [
    '## Overlay networks (issue 15)',
    '',
    'A 3-host cluster with etcd, every part in namespaces made in the phase (test/helpers/cluster.ts): netd on each host in cluster mode, an underlay switch (192.0.2.0/24), containers attached by pid. See [bench/README.md](../README.md#overlay-networks-issue-15) for how each figure is made.',
    '',
    '### Goals (issue 15)',
    '',
    table(['row', 'netd', 'goal', ''], overlayGoals(ctx)),
    '',
    table(
      ['ms, median / p95', 'API round trip', 'netd daemon'],
      [
        ['attach, overlay network (host 1)', lat('overlay|attach|overlay'), lat('overlay|daemon|overlay')],
        ['attach, bridge network (host 1)', lat('overlay|attach|bridge'), lat('overlay|daemon|bridge')],
        ['attach on host 2 (convergence samples)', lat('overlay|converge.attach'), '—'],
        ['attach on host 2 → first TCP connect from host 1', lat('overlay|converge'), '—'],
        ['attach on host 2 → its neighbour entry on host 1\'s VXLAN device (netd\'s part)', lat('overlay|converge.entry'), '—'],
        ['… of which after the attach answered (prober\'s clock)', lat('overlay|converge.after'), '—'],
      ],
    ),
    '',
    table(
      ['Gbit/s (iperf3, median)', 'across the overlay', 'across the underlay', 'bare kernel VXLAN (no netd)', 'overlay ÷ bare VXLAN'],
      [['host 1 → host 2', gbit('overlay|tput|overlay'), gbit('overlay|tput|underlay'), gbit('overlay|tput|vxlan'), pct(ctx.summary('overlay|tput|overlay')?.median ?? NaN, ctx.summary('overlay|tput|vxlan')?.median ?? NaN)]],
    ),
    '',
    `etcd's own counters (\`/metrics\`) around ${Number.isFinite(n) ? n : 'N'} attaches, then as many detaches, on host 2; per operation, less an idle window as long (its raw count beside):`,
    '',
    table(['counter', 'per attach', 'per detach', 'idle window'], counters.map((k) => [k, per('attach', k), per('detach', k), idle(k)])),
    '',
  ];
}
