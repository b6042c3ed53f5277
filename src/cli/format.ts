import type { DaemonInfo } from '../api/info-api.js';

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
