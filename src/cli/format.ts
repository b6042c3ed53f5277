import type { DaemonInfo } from '../api/info-api.js';
import type { ClusterStatus } from '../cluster/cluster.js';

/** Plain-text tables for the CLI, `docker network ls` style. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** Labels as `k=v,k2=v2` (`-` when none). */
export function labelsText(labels: Record<string, string> | undefined): string {
  const parts = Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`);
  return parts.length > 0 ? parts.join(',') : '-';
}

/** `netd info`: one line per fact, then each firewall warning with its fix on the line below. */
export function infoText(info: DaemonInfo): string {
  const { backend, warnings } = info.firewall;
  const lines = [`Instance: ${info.instance}`, `Firewall backend: ${backend}`, `Firewall warnings: ${warnings.length === 0 ? 'none' : warnings.length}`];
  for (const w of warnings) lines.push(`  ${w.family} ${w.table} ${w.chain}: ${w.problem}`, `    fix: ${w.fix}`);
  return lines.join('\n');
}

/** `netd cluster`: this host, the store, then one row per host. */
export function clusterText(status: ClusterStatus): string {
  const head = [`This host: ${status.host.id.slice(0, 12)} (${status.host.advertise})`, `Cluster store: ${status.store.up ? 'reachable' : 'UNREACHABLE'}${status.store.pendingWrites > 0 ? `, ${status.store.pendingWrites} write(s) waiting` : ''}`];
  const rows = status.hosts.map((h) => [
    h.id.slice(0, 12) + (h.self ? ' *' : ''),
    h.name || '-',
    h.advertise || '-',
    h.alive ? 'alive' : 'gone',
    Object.entries(h.endpoints).map(([n, c]) => `${n}=${c}`).join(',') || '-',
  ]);
  return [...head, table(['HOST ID', 'NAME', 'ADVERTISE', 'STATUS', 'ENDPOINTS'], rows)].join('\n');
}
