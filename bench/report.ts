/**
 * The markdown report: machine and versions, one table per measurement, the project's goals with what
 * was measured against them, and notes (n/a reasons, failures, how each row was made).
 */
import { combineRuns, median, summarise, type Summary } from './stats.js';
import type { PhaseResult } from './harness.js';
import type { ImplId, PhaseConfig } from './phase.js';
import { Notes, fmt, ordinal, table } from './report-format.js';
import { dockerRunSection } from './report-docker.js';
import { goalsSection } from './report-goals.js';
import { dnsSection } from './report-dns.js';
import { overlaySection } from './report-overlay.js';
import { phaseKey } from './options.js';
import { FIREWALL_BACKEND_NAMES } from '../src/daemon/defaults.js';

const DEFAULT_BACKEND: string = FIREWALL_BACKEND_NAMES[0];

export interface RunInfo {
  date: string;
  mode: 'full' | 'quick';
  repeat: number;
  /** netd's firewall backends measured (--backends), the first also used by the phases run once. */
  backends?: string[];
  machine: string;
  versions: Record<string, string>;
  loadStart: number[];
  loadEnd: number[];
  durationS: number;
  dockerMax: number;
  /** Attach cycles per level given to the peers (fewer than netd's in a full run, to save time). */
  peerSamples: number;
  /** Containers per level in the dockerrun item (default: peerSamples). */
  dockerRunSamples?: number;
  /** Concurrent attaches given to dockerd (each needs a container). */
  dockerConcurrency: number;
}

/** One phase's figures over all repetitions. */
interface Agg {
  runs: PhaseResult[];
  summaries: Map<string, Summary>;
  values: Map<string, number>;
  na: Map<string, string>;
  error?: string;
  unavailable?: string;
}

function aggregate(results: PhaseResult[]): Map<string, Agg> {
  const byPhase = new Map<string, PhaseResult[]>();
  for (const r of results) byPhase.set(r.phase, [...(byPhase.get(r.phase) ?? []), r]);
  const out = new Map<string, Agg>();
  for (const [phase, runs] of byPhase) {
    const ok = runs.filter((r) => (!r.error || r.errorPartial) && !r.unavailable);
    const summaries = new Map<string, Summary>();
    const keys = new Set(ok.flatMap((r) => Object.keys(r.samples)));
    for (const k of keys) {
      const per = ok.filter((r) => r.samples[k]?.length).map((r) => summarise(r.samples[k]));
      if (per.length > 0) summaries.set(k, per.length === 1 ? per[0] : combineRuns(per));
    }
    const values = new Map<string, number>();
    for (const k of new Set(ok.flatMap((r) => Object.keys(r.values)))) {
      values.set(k, median(ok.map((r) => r.values[k]).filter((v): v is number => typeof v === 'number')));
    }
    const na = new Map<string, string>();
    for (const r of runs) for (const [k, v] of Object.entries(r.na)) na.set(k, v);
    out.set(phase, {
      runs,
      summaries,
      values,
      na,
      error: runs.find((r) => r.error)?.error,
      unavailable: runs.find((r) => r.unavailable)?.unavailable,
    });
  }
  return out;
}

const NAMES: Record<ImplId, string> = {
  netd: 'netd',
  'netd-cni': 'netd-cni (JS)',
  'netd-cni-shim': 'netd-cni shim',
  cni: 'CNI',
  netavark: 'netavark',
  docker: 'docker',
  'docker-netd': 'dockerd + netd plugin',
  ip: 'floor: ip -batch',
  rtnl: 'floor: Rtnl',
};

export function renderReport(info: RunInfo, results: PhaseResult[], cfg: Omit<PhaseConfig, 'work' | 'resultPath' | 'cgroupParent'>): string {
  const agg = aggregate(results);
  const notes = new Notes();
  const backends = info.backends?.length ? info.backends : [DEFAULT_BACKEND];
  /** A phase's figures: netd's per-backend phases by backend (default: the first), the others run once. */
  const phase = (impl: ImplId, item: string, backend = backends[0]) => agg.get(phaseKey(impl, item, backend)) ?? agg.get(phaseKey(impl, item));
  const nameOf = (impl: ImplId, a: Agg) => `${NAMES[impl]}${a.runs[0]?.phase.includes('@') ? ` (${a.runs[0].backend})` : ''}`;

  /** Why a phase has no figure for `key` (as a footnote ref), or undefined when it has one. */
  const missing = (impl: ImplId, item: string, key: string, backend?: string): string | undefined => {
    const a = phase(impl, item, backend);
    if (!a) return 'not run';
    if (a.unavailable) return `n/a ${notes.ref(`${nameOf(impl, a)}: ${a.unavailable}`)}`;
    const reason = a.na.get(key);
    // Short reasons ("n/a (not implemented)") go in the cell, long ones in a footnote.
    if (reason !== undefined) return /^n\/a \(.{1,25}\)$/.test(reason) ? reason : `n/a ${notes.ref(`${NAMES[impl]}: ${reason.replace(/^n\/a \((.*)\)$/, '$1')}`)}`;
    if (a.error && !a.summaries.has(key) && !a.values.has(key)) return `error ${notes.ref(`${NAMES[impl]} ${item}: ${a.error}`)}`;
    return undefined;
  };
  const lat = (impl: ImplId, item: string, key: string, backend?: string): string => {
    const s = phase(impl, item, backend)?.summaries.get(key);
    if (s) return `${fmt(s.median)} / ${fmt(s.p95)}`;
    if (impl === 'docker' && item === 'attach') {
      const level = Number(key.split('|')[2]);
      if (level > info.dockerMax) return `not run ${notes.ref(`docker was given at most ${info.dockerMax} containers (--docker-max): each is a containerd shim (~13 MB) and takes ~0.3 s to start`)}`;
    }
    return missing(impl, item, key, backend) ?? '—';
  };
  const med = (impl: ImplId, item: string, key: string, backend?: string): number => phase(impl, item, backend)?.summaries.get(key)?.median ?? NaN;
  const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : '—');
  const val = (impl: ImplId, item: string, key: string, f: (v: number) => string, backend?: string): string => {
    const v = phase(impl, item, backend)?.values.get(key);
    return v !== undefined && Number.isFinite(v) ? f(v) : (missing(impl, item, key, backend) ?? '—');
  };

  const out: string[] = [];
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
  out.push('# netd benchmarks');
  out.push('');
  out.push(`- **run**: ${info.date}, ${info.mode} mode, ${info.repeat} repetition(s)${info.repeat > 1 ? ' (figures are medians of the per-run medians and p95s)' : ''}, ${Math.round(info.durationS)} s in all`);
  out.push(`- **machine**: ${info.machine}`);
  out.push(`- **load average** (1/5/15 min): ${load(info.loadStart)} at the start, ${load(info.loadEnd)} at the end — the machine is shared, figures are noisy`);
  out.push(`- **versions**: ${Object.entries(info.versions).map(([k, v]) => `${k} ${v}`).join('; ')}`);
  out.push(
    `- **firewall backends** (\`netd daemon --firewall-backend\`): ${backends.join(', ')}. Run once per backend: netd's attach/detach (with and without a published port), the cost of one more port, create/rm-network and the concurrent attaches (the "backend" column). ` +
      `Run once, with ${backends[0]}: the peers and floors (no netd), netd-cni (the same daemon behind a process per call), throughput (the kernel forwards either way), dockerd + netd and DNS (the firewall plays no part in answering).` +
      (info.mode === 'full' ? ' To keep a full run near 20 minutes: the peers get 15 attach cycles per level and 75 s to fill ports, dockerd 10 create/rm-network cycles and 10 containers per dockerrun level, netd-cni 15 cycles, throughput 3 trials, the CLI figure is taken with the first backend only, DNS runs 4 s per dnsperf run.' : ''),
  );
  out.push('');

  // ---- 1–3: attach/detach latency
  out.push('## Attach and detach latency (ms, median / p95)');
  out.push('');
  out.push(
    `The Nth container on one network: N−1 containers are attached, then ${cfg.samples} probe containers${info.peerSamples !== cfg.samples ? ` (${info.peerSamples} for the peers)` : ''} are attached and detached one at a time. ` +
      'netd through its API on the unix socket (keep-alive HTTP client, as a runtime calls it); "netd daemon" is the daemon\'s own `durationMs` for the same operations (controller time, no HTTP). ' +
      'Ratios are netd median ÷ peer median (below 1: netd is faster). "backend" is netd\'s firewall backend (the other columns ran once and repeat on each backend\'s row). ' +
      '"netd: kernel done" (detach rows): from the detach request until the container\'s interface is gone (the veth deleted), polled every ~1 ms; the next probe starts after it.',
  );
  out.push('');
  const attachRows: string[][] = [];
  for (const op of ['attach', 'detach']) {
    for (const variant of ['noport', 'port']) {
      for (const level of cfg.levels) {
       for (const b of backends) {
        const key = `${op}|${variant}|${level}`;
        const n = med('netd', 'attach', key, b);
        const conv = `converged|${variant}|${level}`;
        attachRows.push([
          `${op}, ${variant === 'port' ? '1 published port' : 'no port'}`,
          ordinal(level),
          b,
          lat('netd', 'attach', key, b),
          phase('netd', 'attach', b)?.summaries.has(`daemon.${key}`) ? lat('netd', 'attach', `daemon.${key}`, b) : '—',
          op === 'detach' && phase('netd', 'attach', b)?.summaries.has(conv) ? lat('netd', 'attach', conv, b) : '—',
          lat('cni', 'attach', key),
          ratio(n, med('cni', 'attach', key)),
          lat('netd-cni', 'attach', key),
          lat('netd-cni-shim', 'attach', key),
          ratio(med('netd-cni-shim', 'attach', key), med('cni', 'attach', key)),
          lat('netavark', 'attach', key),
          ratio(n, med('netavark', 'attach', key)),
          lat('docker', 'attach', key),
          ratio(n, med('docker', 'attach', key)),
          variant === 'port' ? '—' : lat('ip', 'attach', key),
          variant === 'port' ? '—' : lat('rtnl', 'attach', key),
        ]);
       }
      }
    }
  }
  attachRows.push([
    'attach, every filler container',
    `1st–${ordinal(Math.max(...cfg.levels) - 1)}`,
    backends[0],
    lat('netd', 'attach', 'fill.attach'),
    phase('netd', 'attach')?.summaries.has('daemon.fill.attach') ? lat('netd', 'attach', 'daemon.fill.attach') : '—',
    '—',
    lat('cni', 'attach', 'fill.attach'),
    ratio(med('netd', 'attach', 'fill.attach'), med('cni', 'attach', 'fill.attach')),
    `— ${notes.ref('netd-cni: filler containers are attached through the API; only the probes go through the plugin')}`,
    '—',
    '—',
    lat('netavark', 'attach', 'fill.attach'),
    ratio(med('netd', 'attach', 'fill.attach'), med('netavark', 'attach', 'fill.attach')),
    `— ${notes.ref('docker: filler containers are created on the network (POST /containers/create with NetworkMode), their attach is not a separate call')}`,
    '—',
    lat('ip', 'attach', 'fill.attach'),
    lat('rtnl', 'attach', 'fill.attach'),
  ]);
  out.push(table(['operation', 'container', 'backend', 'netd', 'netd daemon', 'netd: kernel done', 'CNI', 'netd/CNI', 'netd-cni (JS)', 'netd-cni shim', 'shim/CNI', 'netavark', 'netd/netavark', 'docker', 'netd/docker', 'floor: ip -batch', 'floor: Rtnl'], attachRows));
  out.push('');
  if (phase('netd-cni', 'attach') || phase('netd-cni-shim', 'attach')) {
    out.push(
      'netd-cni: ADD and DEL through the plugin executable against the same daemon, one process per operation as a runtime runs it (the mapping in `runtimeConfig.portMappings` with a port), beside the stock `bridge` (+`portmap`) plugins in the CNI column; "shim/CNI" is the native shim\'s median ÷ the stock plugins\' median.',
    );
    out.push('');
  }
  if (phase('netd-cni', 'attach')?.summaries.has('startup.js')) {
    const st = (key: string) => lat('netd-cni', 'attach', key);
    out.push(
      `Start-up alone (ms, median / p95 of 30 runs, interleaved): \`node -e 0\` ${st('startup.node')} (with this machine's environment), ${st('startup.node-noca')} without NODE_EXTRA_CA_CERTS; \`netd-cni\` VERSION ${st('startup.js')}; \`netd-cni-shim\` VERSION ${st('startup.shim')}; \`/bin/true\` ${st('startup.true')} (what spawning any process from the runner costs, included in each).`,
    );
    out.push('');
  }
  if (phase('netd', 'attach')?.summaries.has('cli.attach|noport|1')) {
    out.push(
      `netd CLI (\`netd attach PATH --network bench\` / \`netd detach NAME\` as processes, node start-up included), 1st container: attach ${lat('netd', 'attach', 'cli.attach|noport|1')}, detach ${lat('netd', 'attach', 'cli.detach|noport|1')} ms.`,
    );
    out.push('');
  }

  // ---- where netd's time goes (--trace)
  const traceCols: { item: string; key: string; title: string }[] = [];
  const topLevel = Math.max(...cfg.levels);
  for (const [op, variant] of [['attach', 'noport'], ['attach', 'port'], ['detach', 'noport'], ['detach', 'port']]) {
    traceCols.push({ item: 'attach', key: `${op}|${variant}|${topLevel}`, title: `${op}, ${variant === 'port' ? '1 port' : 'no port'}, ${ordinal(topLevel)}` });
  }
  const topPorts = cfg.portLevels[cfg.portLevels.length - 1];
  traceCols.push({ item: 'ports', key: `portadd|port|${topPorts}`, title: `attach + 1 port, ${topPorts} ports existing` });
  const present = traceCols.filter((c) => phase('netd', c.item)?.summaries.has(`trace|${c.key}|total`));
  if (present.length > 0) {
    out.push("### Where netd's time goes (--trace)");
    out.push('');
    out.push('Median ms per operation (×count per operation) of what the daemon waited on inside attach/detach, timed by wrapping its kernel layer, state store and child processes. Medians of parts do not add up exactly to the median total.');
    out.push('');
    const labels = new Set<string>();
    for (const c of present) {
      for (const k of phase('netd', c.item)!.summaries.keys()) {
        const m = new RegExp(`^trace\\|${c.key.replace(/\|/g, '\\|')}\\|(.+)$`).exec(k);
        if (m && m[1] !== 'total' && !m[1].endsWith('|count')) labels.add(m[1]);
      }
    }
    const cell = (c: (typeof present)[number], l: string) => {
      const s = phase('netd', c.item)!.summaries.get(`trace|${c.key}|${l}`);
      const n = phase('netd', c.item)!.summaries.get(`trace|${c.key}|${l}|count`);
      return s ? `${fmt(s.median)}${n && n.median !== 1 ? ` (×${fmt(n.median)})` : ''}` : '—';
    };
    const weight = (l: string) => present.reduce((a, c) => a + (phase('netd', c.item)!.summaries.get(`trace|${c.key}|${l}`)?.median ?? 0), 0);
    // Parts that were (almost) never inside these operations (the daemon's periodic iptables-save) are left out.
    const rows = [...labels]
      .filter((l) => weight(l) >= 0.005)
      .sort((a, b) => weight(b) - weight(a))
      .map((l) => [l, ...present.map((c) => cell(c, l))]);
    const total = (c: (typeof present)[number]) => phase('netd', c.item)!.summaries.get(`trace|${c.key}|total`)!.median;
    const parts = (c: (typeof present)[number]) => [...labels].reduce((a, l) => a + (phase('netd', c.item)!.summaries.get(`trace|${c.key}|${l}`)?.median ?? 0), 0);
    rows.push(['rest: JavaScript, event loop, waits between requests', ...present.map((c) => fmt(Math.max(0, total(c) - parts(c))))]);
    rows.push(['**controller total** (inside the daemon)', ...present.map((c) => `**${fmt(total(c))}**`)]);
    rows.push(['client-observed, over HTTP', ...present.map((c) => fmt(med('netd', c.item, c.key)))]);
    out.push(table(['', ...present.map((c) => c.title)], rows));
    out.push('');
  }

  // ---- 4: networks
  out.push('## Create and remove a network (ms, median / p95)');
  out.push('');
  const netRows: string[][] = [];
  for (const op of ['netcreate', 'netrm']) {
    for (const level of cfg.networkLevels) {
      for (const b of backends) {
        const key = `${op}|${level}`;
        netRows.push([op === 'netcreate' ? 'create-network' : 'rm-network', String(level), b, lat('netd', 'networks', key, b), lat('docker', 'networks', key), ratio(med('netd', 'networks', key, b), med('docker', 'networks', key))]);
      }
    }
  }
  out.push(table(['operation', 'bridge networks existing', 'backend', 'netd', 'docker', 'netd/docker'], netRows));
  out.push('');
  out.push(`CNI and netavark have no network objects (a network is a configuration file; the bridge appears at the first attach): ${notes.ref('CNI, netavark: no create/rm-network operation to measure')}.`);
  out.push('');

  // ---- 5: ports
  out.push('## Cost of one more published port (ms, median / p95)');
  out.push('');
  out.push(`Attach of a container publishing one port, with N ports already published by filler containers (${cfg.portsPerContainer} each), next to an attach without a port at the same N.`);
  out.push('');
  const portImpls: ImplId[] = ['netd', 'cni', 'netavark', 'docker'];
  const portRows: string[][] = cfg.portLevels.flatMap((level) =>
    backends.map((b) => [String(level), b, ...portImpls.flatMap((impl) => [lat(impl, 'ports', `portadd|port|${level}`, b), lat(impl, 'ports', `portadd|noport|${level}`, b)])]),
  );
  const lo = cfg.portLevels[0];
  const hi = cfg.portLevels[cfg.portLevels.length - 1];
  for (const b of backends) {
    portRows.push([
      `median at ${hi} ÷ at ${lo}`,
      b,
      ...portImpls.flatMap((impl) => [ratio(med(impl, 'ports', `portadd|port|${hi}`, b), med(impl, 'ports', `portadd|port|${lo}`, b)), ratio(med(impl, 'ports', `portadd|noport|${hi}`, b), med(impl, 'ports', `portadd|noport|${lo}`, b))]),
    ]);
  }
  out.push(table(['ports existing', 'backend', ...portImpls.flatMap((i) => [`${NAMES[i]}: attach + 1 port`, `${NAMES[i]}: attach, no port`])], portRows));
  out.push('');

  // ---- 6: concurrency
  out.push(`## ${cfg.concurrency} concurrent attaches`);
  out.push('');
  const concCols: { impl: ImplId; backend?: string; title: string }[] = [
    ...backends.map((b) => ({ impl: 'netd' as ImplId, backend: b, title: `netd (${b})` })),
    ...(['rtnl', 'cni', 'netavark', 'docker'] as ImplId[]).map((impl) => ({ impl, title: NAMES[impl] })),
  ];
  const noDaemon = (impl: ImplId) => impl === 'cni' || impl === 'netavark' || impl === 'rtnl';
  const kib = (v: number) => `${(v / 1024).toFixed(1)} MiB`;
  const msv = (v: number) => `${fmt(v)} ms`;
  const concCount = (impl: ImplId) => (impl === 'docker' ? info.dockerConcurrency : cfg.concurrency);
  out.push(
    table(
      ['', ...concCols.map((c) => c.title)],
      [
        ['attaches issued at once: wall time', ...concCols.map((c) => val(c.impl, 'concurrency', 'conc.attach.wall', msv, c.backend))],
        ['wall time ÷ attaches', ...concCols.map((c) => val(c.impl, 'concurrency', 'conc.attach.wall', (v) => msv(v / concCount(c.impl)), c.backend))],
        ['detaches issued at once: wall time', ...concCols.map((c) => val(c.impl, 'concurrency', 'conc.detach.wall', msv, c.backend))],
        ['daemon RSS before', ...concCols.map((c) => (noDaemon(c.impl) ? '— (no daemon)' : val(c.impl, 'concurrency', 'conc.rss.before', kib, c.backend)))],
        ['daemon peak RSS during the attaches (VmHWM)', ...concCols.map((c) => (noDaemon(c.impl) ? '— (no daemon)' : val(c.impl, 'concurrency', 'conc.rss.peak', kib, c.backend)))],
      ],
    ),
  );
  out.push('');
  if (info.dockerConcurrency !== cfg.concurrency) out.push(`dockerd was given ${info.dockerConcurrency} attaches at once (each needs a running container).`, '');
  out.push('Each burst gave distinct addresses to every container (checked), and the last one reached its gateway. Docker\'s figure is dockerd alone (containerd and the shims are separate processes). "floor: Rtnl" issues the kernel requests of the same attaches at once from one process, on one rtnetlink socket per container namespace, with no daemon, IPAM, state or firewall: the least the wall time can be with rtnetlink on this kernel.');
  out.push('');

  // ---- 7: throughput
  out.push('## Published-port TCP throughput (iperf3, Gbit/s)');
  out.push('');
  out.push(`iperf3 client in the outside namespace, server in a container; ${cfg.tputTrials} trial(s) of ${cfg.tputSeconds} s per path, alternating, median. "Direct" is routed to the container's address through the same host, accepted for this test in the administrator's chain (NETD-USER, DOCKER-USER, else FORWARD) and ahead of raw-table drops.`);
  out.push('');
  const tpImpls: ImplId[] = ['netd', 'cni', 'netavark', 'docker'];
  const gbit = (impl: ImplId, key: string) => {
    const s = phase(impl, 'throughput')?.summaries.get(key);
    return s ? s.median.toFixed(2) : (missing(impl, 'throughput', key) ?? '—');
  };
  out.push(
    table(
      ['', ...tpImpls.map((i) => (i === 'netd' ? `netd (${backends[0]})` : NAMES[i]))],
      [
        ['direct to the container', ...tpImpls.map((i) => gbit(i, 'tput.direct'))],
        ['through the published port', ...tpImpls.map((i) => gbit(i, 'tput.published'))],
        ['published ÷ direct', ...tpImpls.map((i) => { const r = ratio(med(i, 'throughput', 'tput.published'), med(i, 'throughput', 'tput.direct')); return r === '—' ? r : `${(Number(r) * 100).toFixed(0)}%`; })],
      ],
    ),
  );
  out.push('');

  // ---- dockerd: docker run → network ready, network connect (bridge driver beside the netd plugin)
  out.push(
    ...dockerRunSection({
      summary: (impl, key) => phase(impl, 'dockerrun')?.summaries.get(key),
      missing: (impl, key) => missing(impl, 'dockerrun', key),
      keys: (impl) => [...(phase(impl, 'dockerrun')?.summaries.keys() ?? [])],
      levels: cfg.runLevels,
      samples: info.dockerRunSamples ?? info.peerSamples,
    }),
  );

  // ---- DNS (bench/dns/dns-bench.ts)
  out.push(...dnsSection({ value: (key) => phase('netd', 'dns')?.values.get(key) ?? NaN, missing: (key) => missing('netd', 'dns', key) }));

  // ---- overlay networks across a cluster (bench/overlay.ts)
  out.push(
    ...overlaySection({
      summary: (key) => phase('netd', 'overlay')?.summaries.get(key),
      value: (key) => phase('netd', 'overlay')?.values.get(key) ?? NaN,
      missing: (key) => missing('netd', 'overlay', key),
    }),
  );

  // ---- issue 12's goals, per backend
  out.push(
    ...goalsSection({
      backends,
      levels: cfg.levels,
      portLevels: cfg.portLevels,
      median: (impl, item, key, backend) => med(impl as ImplId, item, key, backend),
      value: (impl, item, key, backend) => phase(impl as ImplId, item, backend)?.values.get(key) ?? NaN,
      missing: (impl, item, key, backend) => {
        const a = phase(impl as ImplId, item, backend);
        // A backend the daemon would not start with: said in the cell, as the goal rows are read alone.
        if (a?.unavailable && a.runs[0]?.backend) return `n/a (${a.unavailable})`;
        return missing(impl as ImplId, item, key, backend);
      },
      concurrency: (impl) => concCount(impl as ImplId),
      quick: info.mode === 'quick',
    }),
  );

  // ---- goals
  out.push(`## Goals (earlier issues; netd with ${backends[0]})`);
  out.push('');
  const top = Math.max(...cfg.levels);
  const first = Math.min(...cfg.levels);
  const topLabel = `${ordinal(top)} container${info.mode === 'quick' ? ' (quick run: the goals are for the 1000th)' : ''}`;
  const goalRows: string[][] = [];
  const goal = (name: string, target: string, measured: number, ok: (v: number) => boolean, show: (v: number) => string) => {
    goalRows.push([name, target, Number.isFinite(measured) ? show(measured) : 'n/a', Number.isFinite(measured) ? (ok(measured) ? 'met' : '**missed**') : 'n/a']);
  };
  const nd = (key: string) => phase('netd', 'attach')?.summaries.get(key);
  goal(`attach median, no port, ${topLabel}`, '≤ 5 ms', nd(`attach|noport|${top}`)?.median ?? NaN, (v) => v <= 5, (v) => `${fmt(v)} ms`);
  goal(`attach p95, no port, ${topLabel}`, '≤ 10 ms', nd(`attach|noport|${top}`)?.p95 ?? NaN, (v) => v <= 10, (v) => `${fmt(v)} ms`);
  goal(`attach median, 1 published port, ${topLabel}`, '≤ 8 ms', nd(`attach|port|${top}`)?.median ?? NaN, (v) => v <= 8, (v) => `${fmt(v)} ms`);
  goal(`flat: attach median ${ordinal(top)} ÷ ${ordinal(first)}, no port`, '≤ 1.3', (nd(`attach|noport|${top}`)?.median ?? NaN) / (nd(`attach|noport|${first}`)?.median ?? NaN), (v) => v <= 1.3, (v) => v.toFixed(2));
  for (const peer of ['cni', 'netavark'] as const) {
    // The worst (smallest) speed-up over all attach rows that both have.
    const speedups = cfg.levels.flatMap((l) => ['noport', 'port'].map((v) => med(peer, 'attach', `attach|${v}|${l}`) / med('netd', 'attach', `attach|${v}|${l}`))).filter(Number.isFinite);
    goal(`attach ≥ 5× faster than ${NAMES[peer]} (worst row)`, '≥ 5×', speedups.length ? Math.min(...speedups) : NaN, (v) => v >= 5, (v) => `${v.toFixed(1)}×`);
  }
  goal(`one more port at ${hi} existing ÷ at ${lo}`, '≤ 2×', med('netd', 'ports', `portadd|port|${hi}`) / med('netd', 'ports', `portadd|port|${lo}`), (v) => v <= 2, (v) => `${v.toFixed(2)}×`);
  goal('published-port throughput ÷ direct', '≥ 95%', med('netd', 'throughput', 'tput.published') / med('netd', 'throughput', 'tput.direct'), (v) => v >= 0.95, (v) => `${(v * 100).toFixed(0)}%`);
  out.push(table(['goal', 'target', 'measured', ''], goalRows));
  out.push('');

  // ---- notes
  out.push('## How each row is made');
  out.push('');
  out.push('- Every phase runs in a fresh network namespace made for it (and a private /run), with its own "outside" namespace (198.51.100.2) behind a veth; containers are network namespaces bind-mounted under the phase\'s /run/netns (docker: its own containers). Nothing runs in the machine\'s namespace.');
  out.push('- **netd**: the daemon from dist/ with its data root on disk, network `bench` 198.18.0.0/20; `POST /netd/v1/attach {target:{path}, network, name}` and `POST /netd/v1/detach`.');
  out.push('- **CNI**: `bridge` (ipMasq, hairpin, host-local IPAM on disk) ADD/DEL, plus `portmap` ADD/DEL when a port is published, executed as a runtime does (env + JSON on stdin, prevResult).');
  out.push('- **netavark**: `netavark setup/teardown` with podman\'s JSON (static IP given: podman does the IPAM, not measured here), DNS off.');
  out.push('- **docker**: dockerd (vfs, no userland proxy, no default bridge) in the phase namespace; `POST /networks/bench/connect|disconnect` of a running container that has no other network; a "port" probe was created with `-p`, programmed at connect.');
  out.push('- **floor: ip -batch**: the same kernel work as a netd attach with iproute2: `ip -batch` (veth with its peer created in the container as eth0, enslaved, up; alias and no IPv6 link-local on the host end) and `ip -n NS -batch` (lo up, address, no IPv6 link-local, eth0 up, default route): two processes per container, as a batch cannot switch namespaces. **floor: Rtnl**: the same requests through netd\'s kernel layer, in-process, pipelined as netd sends them.');
  out.push('');
  out.push('## Notes');
  out.push('');
  const extra: string[] = [];
  for (const [name, a] of agg) {
    for (const r of a.runs) for (const n of r.notes) extra.push(`${name}: ${n}`);
    if (a.error) extra.push(`**${name} failed**: ${a.error}`);
  }
  const footnotes = notes.render();
  if (footnotes) out.push(footnotes, '');
  for (const e of [...new Set(extra)]) out.push(`- ${e}`);
  if (extra.length) out.push('');
  out.push('<details><summary>phases</summary>');
  out.push('');
  out.push(table(['phase', 'run', 'duration', 'load at start', 'outcome'], results.map((r, i) => [r.phase, String(results.slice(0, i).filter((x) => x.phase === r.phase).length + 1), `${r.durationS.toFixed(1)} s`, r.loadavg.map((l) => l.toFixed(2)).join(' '), r.error ? 'failed' : r.unavailable ? 'n/a' : 'ok'])));
  out.push('');
  out.push('</details>');
  out.push('');
  return out.join('\n');
}
