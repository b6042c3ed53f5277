/**
 * The API path of the real daemon: `netd daemon` from this dist/, in a namespace made for the run, driven
 * by the bench's keep-alive client; each attach and detach is timed at the client and paired with the
 * daemon's own `durationMs` (its log line), so the difference is what the request and the answer cost
 * between the client and the controller (HTTP, JSON, validation, logging, the lock, scheduling).
 *
 *   ip netns add NAME && ip netns exec NAME node dist/bench/api-path-daemon.js [--cycles N]; ip netns del NAME
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Procs, newContainerNs, removeContainerNs, sleep } from './env.js';
import { NetdDaemon } from './netd.js';
import { NET } from './env.js';
import { median, percentile } from './stats.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

const CYCLES = Number(arg('--cycles', '200'));

function ms(t: bigint): number {
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function main(): Promise<void> {
  const work = mkdtempSync('/var/tmp/netd-api-path-');
  const procs = new Procs();
  // Temporary: hrtime marks along the daemon's API path (a preload), compared with the client's.
  const marksFile = join(work, 'marks.json');
  if (process.env.API_MARKS_PRELOAD) {
    process.env.NODE_OPTIONS = `--require ${process.env.API_MARKS_PRELOAD}`;
    process.env.NETD_API_MARKS = marksFile;
  }
  const d = await NetdDaemon.start(procs, { work });
  delete process.env.NODE_OPTIONS;
  const sent: { op: string; c0: number; c1: number }[] = [];
  const us = () => Number(process.hrtime.bigint()) / 1e3;
  const client: Record<'attach' | 'detach' | 'ping', number[]> = { attach: [], detach: [], ping: [] };
  const names: string[] = [];
  try {
    await d.http.call('POST', '/networks/create', {
      Name: 'bench',
      Driver: 'bridge',
      IPAM: { Driver: 'default', Config: [{ Subnet: NET.subnet, Gateway: NET.gateway }] },
      Options: { 'com.docker.network.bridge.name': 'netdbench0' },
    });
    for (let i = 0; i < CYCLES; i++) names.push(`apipath${i}`);
    const paths = names.map((n) => newContainerNs(n));
    for (let i = 0; i < CYCLES; i++) {
      let t = process.hrtime.bigint();
      let c0 = us();
      await d.http.call('POST', '/netd/v1/attach', { target: { path: paths[i] }, network: 'bench', name: names[i] });
      sent.push({ op: 'attach', c0, c1: us() });
      client.attach.push(ms(t));
      t = process.hrtime.bigint();
      c0 = us();
      await d.http.call('POST', '/netd/v1/detach', { container: names[i], network: 'bench' });
      sent.push({ op: 'detach', c0, c1: us() });
      client.detach.push(ms(t));
      t = process.hrtime.bigint();
      await d.http.call('GET', '/_ping');
      client.ping.push(ms(t));
    }
    await sleep(300); // the last log lines
  } finally {
    await d.stop();
    await procs.killAll();
    if (process.env.API_MARKS_PRELOAD) reportMarks(marksFile, sent);
    for (const n of names) removeContainerNs(join('/run/netns', n));
    rmSync(work, { recursive: true, force: true });
  }
  const rows: string[] = [`| ${CYCLES} cycles, ms | client median | daemon durationMs median | median of (client − daemon) | p90 of (client − daemon) |`, '| --- | --- | --- | --- | --- |'];
  for (const op of ['attach', 'detach'] as const) {
    const daemon = d.logLines.filter((l) => l.op === op && l.outcome === 'ok' && typeof l.durationMs === 'number').map((l) => l.durationMs as number);
    if (daemon.length !== client[op].length) throw new Error(`${daemon.length} ${op} log lines for ${client[op].length} calls`);
    const gap = client[op].map((c, i) => c - daemon[i]);
    rows.push(`| ${op} | ${median(client[op]).toFixed(3)} | ${median(daemon).toFixed(3)} | ${median(gap).toFixed(3)} | ${percentile(gap, 90).toFixed(3)} |`);
  }
  rows.push(`| GET /_ping | ${median(client.ping).toFixed(3)} | — | — | — |`);
  process.stdout.write(rows.join('\n') + '\n');
}

function reportMarks(file: string, sent: { op: string; c0: number; c1: number }[]): void {
  const marks = (JSON.parse(readFileSync(file, 'utf8')) as (Record<string, number> & { url: string })[]).filter((m) => m.url.startsWith('/netd/v1/'));
  const seg: Record<string, number[]> = {};
  const add = (k: string, v: number | undefined) => (v === undefined || Number.isNaN(v) ? undefined : (seg[k] ??= []).push(v));
  sent.forEach((c, i) => {
    const m = marks[i];
    if (!m) return;
    const p = `${c.op}: `;
    add(p + 'client send → server handle()', m.handle - c.c0);
    add(p + 'handle() → dispatch (URL, limits)', m.dispatch - m.handle);
    add(p + 'dispatch → controller call (body, JSON, validation)', m.ctl - m.dispatch);
    add(p + 'controller call → operation start (lock)', m.fnStart - m.ctl);
    add(p + 'operation (durationMs)', m.fnEnd - m.fnStart);
    add(p + 'operation end → exclusive resolved (log)', m.exclDone - m.fnEnd);
    add(p + 'exclusive resolved → res.end()', m.endStart - m.exclDone);
    add(p + 'res.end() itself', m.endDone - m.endStart);
    add(p + 'res.end() done → client has the answer', c.c1 - m.endDone);
  });
  process.stdout.write(['| segment (µs, median) | median | p90 |', '| --- | --- | --- |', ...Object.entries(seg).map(([k, v]) => `| ${k} | ${median(v).toFixed(0)} | ${percentile(v, 90).toFixed(0)} |`)].join('\n') + '\n');
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
