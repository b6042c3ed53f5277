/**
 * The report's `dockerrun` section: `docker run` → network ready and `docker network connect`/`disconnect`
 * with dockerd's own bridge driver beside dockerd driving netd through its remote plugin, and where the
 * plugin's time goes (netd's own durationMs per call).
 */
import type { Summary } from './stats.js';
import { RUN_OPS, READY_PORT } from './docker-run.js';
import { fmt, ordinal, table } from './report-format.js';

export interface DockerRunContext {
  /** The summary of `key` in the dockerrun phase of `impl`. */
  summary(impl: 'docker' | 'docker-netd', key: string): Summary | undefined;
  /** Why `impl` has no figure for `key` (a cell's text: n/a [n], error [n], not run), or undefined. */
  missing(impl: 'docker' | 'docker-netd', key: string): string | undefined;
  /** Every key with a summary in the dockerrun phase of `impl`. */
  keys(impl: 'docker' | 'docker-netd'): string[];
  levels: number[];
  samples: number;
}

const ROWS: { key: string; label: string; plugin?: string }[] = [
  { key: 'run.start', label: '`docker run`: create + start returned', plugin: 'run' },
  { key: 'run.ready', label: '`docker run` → network ready' },
  { key: 'disconnect', label: '`docker network disconnect`', plugin: 'disconnect' },
  { key: 'connect', label: '`docker network connect`', plugin: 'connect' },
  { key: 'connect.ready', label: '`docker network connect` → network ready' },
  { key: 'rm', label: '`docker rm -f`', plugin: 'rm' },
];

const OP_TITLES: Record<(typeof RUN_OPS)[number], string> = { run: 'docker run', disconnect: 'network disconnect', connect: 'network connect', rm: 'rm -f' };

export function dockerRunSection(ctx: DockerRunContext): string[] {
  const has = (impl: 'docker' | 'docker-netd') => ctx.levels.some((l) => ctx.summary(impl, `run.start|${l}`));
  if (!has('docker') && !has('docker-netd') && ctx.missing('docker', 'run.start|1') === 'not run' && ctx.missing('docker-netd', 'run.start|1') === 'not run') return [];
  const cell = (impl: 'docker' | 'docker-netd', key: string) => {
    const s = ctx.summary(impl, key);
    return s ? `${fmt(s.median)} / ${fmt(s.p90)}` : (ctx.missing(impl, key) ?? '—');
  };
  const out: string[] = [];
  out.push('## dockerd: `docker run` → network ready, `docker network connect` (ms, median / p90)');
  out.push('');
  out.push(
    `The same dockerd (vfs, no userland proxy) in each phase, with its own \`bridge\` driver, or driving netd through its remote plugin (\`netd daemon --docker-plugin unix:///run/docker/plugins/netd.sock\` in the same namespaces, \`docker network create -d netd --ipam-driver netd\`). ` +
      `The Nth container on the network (N−1 running), ${ctx.samples} containers per level, one at a time, all through dockerd's API socket (no CLI start-up). ` +
      `\`docker run\` = POST /containers/create + /start. **Network ready** = the call returned, plus the time until a TCP connect from the host (dockerd's namespace, through the bridge) to the container's address, port ${READY_PORT}, is answered by the container's kernel (a refusal counts: no process has to listen); the host's neighbour cache is flushed before each container, and the address lookup (GET /containers/ID/json) between the two is not counted. ` +
      'Each container is then disconnected, connected again (same readiness check), and removed. "netd\'s share" is the sum of the `durationMs` netd logged for the plugin calls dockerd made during the operation (median).',
  );
  out.push('');
  const rows: string[][] = [];
  for (const r of ROWS) {
    for (const level of ctx.levels) {
      const key = `${r.key}|${level}`;
      const a = ctx.summary('docker', key)?.median;
      const b = ctx.summary('docker-netd', key)?.median;
      const share = r.plugin ? ctx.summary('docker-netd', `plugin|${r.plugin}|${level}|total`) : undefined;
      rows.push([
        r.label,
        ordinal(level),
        cell('docker', key),
        cell('docker-netd', key),
        a !== undefined && b !== undefined && a > 0 ? (b / a).toFixed(2) : '—',
        share ? fmt(share.median) : '—',
      ]);
    }
  }
  out.push(table(['operation', 'container', 'dockerd, bridge driver', 'dockerd + netd plugin', 'netd ÷ bridge', "netd's share (plugin calls)"], rows));
  out.push('');

  // Where the plugin's time goes, at the highest level measured.
  const top = Math.max(...ctx.levels);
  const calls = new Set<string>();
  for (const k of ctx.keys('docker-netd')) {
    const m = new RegExp(`^plugin\\|[a-z]+\\|${top}\\|(.+)$`).exec(k);
    if (m && m[1] !== 'total' && !m[1].endsWith('|count')) calls.add(m[1]);
  }
  const order = (c: string) => (KNOWN_CALLS.findIndex((k) => c.endsWith(k)) + KNOWN_CALLS.length + 1) % (KNOWN_CALLS.length + 1);
  if (calls.size > 0) {
    out.push(`netd's time per plugin call, ${ordinal(top)} container (ms, median of the per-operation sums; ×calls per operation):`);
    out.push('');
    const callRows = [...calls].sort((a, b) => order(a) - order(b)).map((c) => [
      c,
      ...RUN_OPS.map((op) => {
        const s = ctx.summary('docker-netd', `plugin|${op}|${top}|${c}`);
        const n = ctx.summary('docker-netd', `plugin|${op}|${top}|${c}|count`);
        return s && (n?.median ?? 0) > 0 ? `${fmt(s.median)}${n && n.median !== 1 ? ` (×${Number.isInteger(n.median) ? n.median : fmt(n.median)})` : ''}` : '—';
      }),
    ]);
    callRows.push(['**all plugin calls**', ...RUN_OPS.map((op) => { const s = ctx.summary('docker-netd', `plugin|${op}|${top}|total`); return s ? `**${fmt(s.median)}**` : '—'; })]);
    callRows.push(['the whole operation, through dockerd', ...RUN_OPS.map((op) => fmt(ctx.summary('docker-netd', `${op === 'run' ? 'run.start' : op}|${top}`)?.median ?? NaN))]);
    out.push(table(['call', ...RUN_OPS.map((op) => OP_TITLES[op])], callRows));
    out.push('');
  }
  return out;
}

/** The plugin calls dockerd makes (libnetwork's remote driver and IPAM protocols), in the order they occur. */
const KNOWN_CALLS = [
  'IpamDriver.RequestAddress',
  'NetworkDriver.CreateEndpoint',
  'NetworkDriver.Join',
  'NetworkDriver.ProgramExternalConnectivity',
  'NetworkDriver.EndpointOperInfo',
  'NetworkDriver.RevokeExternalConnectivity',
  'NetworkDriver.Leave',
  'NetworkDriver.DeleteEndpoint',
  'IpamDriver.ReleaseAddress',
  'NetworkDriver.DiscoverNew',
  'NetworkDriver.DiscoverDelete',
];
