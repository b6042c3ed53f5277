/**
 * The report's "Goals (issue 12)" table: each goal row of issue 12, per firewall backend where the
 * backend matters, with netd's figure, the goal and whether it is met, and netd against CNI, netavark and
 * dockerd as "× faster" (the peer's median ÷ netd's median of the operation behind the row; for a
 * ratio row, its numerator), against the peers' goal.
 */
import { fmt, ordinal, table } from './report-format.js';

export type GoalPeer = 'cni' | 'netavark' | 'docker';
export const GOAL_PEERS: GoalPeer[] = ['cni', 'netavark', 'docker'];
const PEER_TITLES: Record<GoalPeer, string> = { cni: 'CNI', netavark: 'netavark', docker: 'dockerd' };
/** The peers' goal: every row this much faster than each peer. */
export const PEER_GOAL = 8;

/** What the table reads from the run (report.ts gives it over the phases' results). */
export interface GoalsContext {
  backends: string[];
  /** Attach levels (the Nth container), port levels (ports existing). */
  levels: number[];
  portLevels: number[];
  /** Median of latency samples `key` of impl's item phase (with `backend` for netd's per-backend phases); NaN if none. */
  median(impl: string, item: string, key: string, backend?: string): number;
  /** A single value (wall time, QPS); NaN if none. */
  value(impl: string, item: string, key: string, backend?: string): number;
  /** Why there is no figure (a cell: "n/a [2]", "not run"), or undefined. */
  missing(impl: string, item: string, key: string, backend?: string): string | undefined;
  /** Concurrent attaches issued to each implementation (dockerd may be given fewer). */
  concurrency(impl: string): number;
  quick: boolean;
}

export interface GoalRow {
  row: string;
  /** The backend, or "—" for a row that does not depend on it. */
  backend: string;
  netd: string;
  goal: string;
  outcome: 'met' | 'missed' | 'n/a';
  /** Per peer: "12.3×" or why not. */
  peers: Record<GoalPeer, string>;
  peerOutcome: 'met' | 'missed' | 'n/a';
}

/** The Nth container the per-container rows are about: the 100th (in a full and a quick run alike). */
export function middleLevel(levels: number[]): number {
  return levels.includes(100) ? 100 : [...levels].sort((a, b) => a - b)[Math.floor(levels.length / 2)];
}

interface Op {
  item: string;
  key: string;
  /** netd's figure is a value (wall time), not a latency median. */
  value?: boolean;
}

export function goalRows(ctx: GoalsContext): GoalRow[] {
  const rows: GoalRow[] = [];
  const mid = middleLevel(ctx.levels);
  const lo = ctx.portLevels[0];
  const hi = ctx.portLevels[ctx.portLevels.length - 1];
  const fig = (impl: string, op: Op, backend?: string) => (op.value ? ctx.value(impl, op.item, op.key, backend) : ctx.median(impl, op.item, op.key, backend));

  /** "× faster" per peer on the operation `op`, and the peers' outcome. */
  const peers = (op: Op, backend: string | undefined, netd: number): Pick<GoalRow, 'peers' | 'peerOutcome'> => {
    const cells = {} as Record<GoalPeer, string>;
    const ratios: number[] = [];
    for (const p of GOAL_PEERS) {
      if (op.value && ctx.concurrency(p) !== ctx.concurrency('netd') && Number.isFinite(ctx.value(p, op.item, op.key))) {
        cells[p] = `n/a (given ${ctx.concurrency(p)} at once)`;
        continue;
      }
      const v = fig(p, op);
      if (Number.isFinite(v) && Number.isFinite(netd) && netd > 0) {
        ratios.push(v / netd);
        cells[p] = `${(v / netd).toFixed(1)}×`;
      } else {
        cells[p] = Number.isFinite(v) ? '—' : (ctx.missing(p, op.item, op.key) ?? '—');
      }
    }
    return { peers: cells, peerOutcome: ratios.length === 0 ? 'n/a' : ratios.every((r) => r >= PEER_GOAL) ? 'met' : 'missed' };
  };

  /** A row for netd on `backend` (undefined: the row does not depend on it). */
  const add = (o: { row: string; backend?: string; measured: number; show: (v: number) => string; goal: string; ok: (v: number) => boolean; why: string | undefined; op: Op; extra?: string }) => {
    const has = Number.isFinite(o.measured);
    rows.push({
      row: o.row,
      backend: o.backend ?? '—',
      netd: has ? `${o.show(o.measured)}${o.extra ?? ''}` : (o.why ?? 'n/a'),
      goal: o.goal,
      outcome: has ? (o.ok(o.measured) ? 'met' : 'missed') : 'n/a',
      ...peers(o.op, o.backend, fig('netd', o.op, o.backend)),
    });
  };
  const ratio = (v: number) => v.toFixed(2);
  const ms = (v: number) => `${fmt(v)} ms`;
  /** Why netd has no figure for either key (the first reason found). */
  const why = (item: string, keys: string[], backend?: string, impl = 'netd') => keys.map((k) => ctx.missing(impl, item, k, backend)).find((w) => w !== undefined);

  for (const b of ctx.backends) {
    const port = `attach|port|${mid}`;
    const noport = `attach|noport|${mid}`;
    add({ row: `attach + 1 port ÷ attach without, ${ordinal(mid)} container`, backend: b, measured: ctx.median('netd', 'attach', port, b) / ctx.median('netd', 'attach', noport, b), show: ratio, goal: '≤ 1.3', ok: (v) => v <= 1.3, why: why('attach', [port, noport], b), op: { item: 'attach', key: port } });
  }
  for (const b of ctx.backends) {
    const h = `portadd|port|${hi}`;
    const l = `portadd|port|${lo}`;
    add({ row: `attach + 1 port at ${hi} existing ÷ at ${lo}`, backend: b, measured: ctx.median('netd', 'ports', h, b) / ctx.median('netd', 'ports', l, b), show: ratio, goal: '≤ 1.2', ok: (v) => v <= 1.2, why: why('ports', [h, l], b), op: { item: 'ports', key: h } });
  }
  for (const [variant, title, limit] of [['noport', 'no port', 5], ['port', '1 port', 6]] as const) {
    for (const b of ctx.backends) {
      const key = `detach|${variant}|${mid}`;
      const conv = ctx.median('netd', 'attach', `converged|${variant}|${mid}`, b);
      add({ row: `detach answered, ${title}, ${ordinal(mid)} container`, backend: b, measured: ctx.median('netd', 'attach', key, b), show: ms, goal: `≤ ${limit} ms`, ok: (v) => v <= limit, why: why('attach', [key], b), op: { item: 'attach', key }, extra: Number.isFinite(conv) ? ` (kernel done: ${fmt(conv)} ms)` : '' });
    }
  }
  for (const level of ctx.levels) {
    for (const b of ctx.backends) {
      const key = `attach|noport|${level}`;
      add({ row: `attach through the API ÷ kernel floor (Rtnl), ${ordinal(level)} container`, backend: b, measured: ctx.median('netd', 'attach', key, b) / ctx.median('rtnl', 'attach', key), show: ratio, goal: '≤ 1.25', ok: (v) => v <= 1.25, why: why('attach', [key], b) ?? why('attach', [key], undefined, 'rtnl'), op: { item: 'attach', key } });
    }
  }
  for (const b of ctx.backends) {
    const key = 'conc.attach.wall';
    add({ row: `${ctx.concurrency('netd')} concurrent attaches, wall`, backend: b, measured: ctx.value('netd', 'concurrency', key, b), show: ms, goal: '≤ 250 ms', ok: (v) => v <= 250, why: why('concurrency', [key], b), op: { item: 'concurrency', key, value: true } });
  }
  // DNS: once (the firewall plays no part); the peers: aardvark-dns is netavark's DNS server, CNI has none,
  // dockerd's embedded DNS is not in the DNS benchmark.
  const qps = (server: string) => ctx.value('netd', 'dns', `dns|${server}|local|qps`);
  const dns = qps('netd') / qps('aardvark-dns');
  const dnsWhy = why('dns', ['dns|netd|local|qps', 'dns|aardvark-dns|local|qps']);
  rows.push({
    row: 'DNS local QPS ÷ aardvark-dns',
    backend: '—',
    netd: Number.isFinite(dns) ? `${dns.toFixed(2)} (${Math.round(qps('netd'))} ÷ ${Math.round(qps('aardvark-dns'))} QPS)` : (dnsWhy ?? 'n/a'),
    goal: '≥ 1.0',
    outcome: Number.isFinite(dns) ? (dns >= 1 ? 'met' : 'missed') : 'n/a',
    peers: { cni: 'n/a (no DNS server)', netavark: Number.isFinite(dns) ? `${dns.toFixed(2)}× (aardvark-dns)` : (dnsWhy ?? 'n/a'), docker: 'n/a (not in the DNS bench)' },
    peerOutcome: Number.isFinite(dns) ? (dns >= PEER_GOAL ? 'met' : 'missed') : 'n/a',
  });
  return rows;
}

const mark = (o: GoalRow['outcome']) => (o === 'missed' ? '**missed**' : o);

export function goalsSection(ctx: GoalsContext): string[] {
  const rows = goalRows(ctx);
  const out: string[] = [];
  out.push('## Goals (issue 12)');
  out.push('');
  out.push(
    `Medians, this run${ctx.quick ? ' (quick run: fewer samples and containers; the goals are for a full run)' : ''}. "Backend" is netd's \`--firewall-backend\` (— : the row does not depend on it). ` +
      `"× faster" is the peer's median ÷ netd's median of the operation behind the row (for a ratio row, its numerator; for the DNS row, netd's QPS ÷ aardvark-dns's); the peers' goal is ≥ ${PEER_GOAL}× against every peer that has a figure. ` +
      '"detach answered" is the client\'s round trip; "kernel done" is the time from the request until the container\'s interface is gone (the veth deleted).',
  );
  out.push('');
  out.push(
    table(
      ['row', 'backend', 'netd', 'goal', '', ...GOAL_PEERS.map((p) => `vs ${PEER_TITLES[p]}`), `≥ ${PEER_GOAL}× faster`],
      rows.map((r) => [r.row, r.backend, r.netd, r.goal, mark(r.outcome), ...GOAL_PEERS.map((p) => r.peers[p]), mark(r.peerOutcome)]),
    ),
  );
  out.push('');
  return out;
}
