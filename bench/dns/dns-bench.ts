/**
 * DNS benchmark: netd's embedded DNS against aardvark-dns and dnsmasq, measured with dnsperf from a
 * container, for local names (containers on the network) and forwarded names (answered by an upstream
 * dnsmasq in the "outside" namespace). Prints a markdown table.
 *
 * One topology for all three servers, so they are compared on the same path: netd creates the network
 * and attaches the containers, and serves on the gateway's port 53; aardvark-dns and dnsmasq listen on
 * the same gateway address (ports 5301 and 5302), configured with the very names and addresses netd
 * assigned. All three run at once and the local-name runs are interleaved, round after round with the
 * order rotated, so that the machine's noise (2 shared cores) falls on all of them alike; the table gives
 * each server's median round, and the netd ÷ aardvark-dns ratio is the median of the per-round ratios.
 * Everything lives in throwaway namespaces.
 *
 *   npm run build && node dist/bench/dns/dns-bench.js [--seconds N] [--names N] [--rounds N]
 * Needs root and Debian's dnsperf, aardvark-dns and dnsmasq. Not part of the test suite.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestContainer, requireRoot, run } from '../../test/helpers/netns.js';
import { TestDaemon, Topology } from '../../test/helpers/daemon.js';
import { dnsperf, type DnsperfResult } from './dnsperf.js';
import { AARDVARK, DNSMASQ, startAardvark, startDnsmasq, startDnsmasqFront, type NameRecord, type Peer } from './peers.js';

const NETWORK = 'benchnet';
const SUBNET = '192.0.2.0/24';
const GATEWAY = '192.0.2.1';
const FORWARDED_ZONE = 'fwd.bench';
const FORWARDED_ANSWER = '203.0.113.99';
/** The light load at which latency is also measured. */
const LIGHT_QPS = 1000;

/** Where each server listens on the gateway. */
const SERVERS = [
  { server: 'netd', port: 53 },
  { server: 'aardvark-dns', port: 5301 },
  { server: 'dnsmasq', port: 5302 },
] as const;
type ServerName = (typeof SERVERS)[number]['server'];

interface Options {
  seconds: number;
  names: number;
  rounds: number;
}

interface Row {
  server: string;
  kind: 'local' | 'forwarded';
  max?: DnsperfResult;
  light?: DnsperfResult;
  error?: string;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { seconds: 8, names: 50, rounds: 3 };
  for (let i = 0; i < argv.length; i++) {
    const value = Number(argv[i + 1]);
    if (argv[i] === '--seconds' && value > 0) opts.seconds = value;
    else if (argv[i] === '--names' && value > 0 && value < 200) opts.names = value;
    else if (argv[i] === '--rounds' && Number.isInteger(value) && value > 0) opts.rounds = value;
    else throw new Error(`usage: dns-bench.js [--seconds N] [--names N<200] [--rounds N]; got ${argv[i]}`);
    i++;
  }
  return opts;
}

async function main(): Promise<void> {
  requireRoot();
  const opts = parseArgs(process.argv.slice(2));
  for (const bin of ['/usr/bin/dnsperf', AARDVARK, DNSMASQ]) {
    if ((await run(['test', '-x', bin], { allowFail: true })).code !== 0) throw new Error(`${bin} is missing: apt-get install dnsperf aardvark-dns dnsmasq`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'netd-dnsbench-'));
  const topo = await Topology.create('dnsbench');
  const containers: TestContainer[] = [];
  let daemon: TestDaemon | undefined;
  let upstream: Peer | undefined;
  const peers: Peer[] = [];
  const rows: Row[] = [];
  const rounds = new Map<ServerName, DnsperfResult[]>(SERVERS.map((s) => [s.server, []]));
  const cpu = new Map<ServerName, number[]>(SERVERS.map((s) => [s.server, []]));
  const pids = new Map<ServerName, number | undefined>();
  const versions: Record<string, string> = {};
  try {
    upstream = await startDnsmasq(topo.outside, Topology.OUTSIDE, [`--address=/${FORWARDED_ZONE}/${FORWARDED_ANSWER}`, '--cache-size=0']);
    versions.dnsmasq = upstream.version;

    // The network, the named containers and the client, all made by netd.
    daemon = await TestDaemon.start(topo.host, ['--dns', Topology.OUTSIDE]);
    await daemon.cli(['create-network', NETWORK, '--subnet', SUBNET, '--gateway', GATEWAY]);
    const records: NameRecord[] = [];
    for (let i = 1; i <= opts.names; i++) {
      const c = await TestContainer.start();
      containers.push(c);
      const name = `c${String(i).padStart(3, '0')}`;
      const r = JSON.parse((await daemon.cli(['attach', String(c.pid), '--network', NETWORK, '--name', name])).stdout) as { endpointId: string; ipv4: string };
      records.push({ id: r.endpointId, ipv4: r.ipv4.split('/')[0], names: [name] });
    }
    const client = await TestContainer.start();
    containers.push(client);
    const rc = JSON.parse((await daemon.cli(['attach', String(client.pid), '--network', NETWORK, '--name', 'client'])).stdout) as { endpointId: string; ipv4: string };
    records.push({ id: rc.endpointId, ipv4: rc.ipv4.split('/')[0], names: ['client'] });
    versions.netd = (await daemon.cli(['--version'])).stdout.trim();

    // The peers beside netd, on the same gateway address, other ports.
    const aardvark = await startAardvark(topo.host, dir, NETWORK, GATEWAY, records, Topology.OUTSIDE, portOf('aardvark-dns'));
    peers.push(aardvark);
    pids.set('netd', daemon.pid);
    pids.set('aardvark-dns', aardvark.pid);
    versions['aardvark-dns'] = aardvark.version;
    const front = await startDnsmasqFront(topo.host, dir, GATEWAY, records, Topology.OUTSIDE, portOf('dnsmasq'));
    peers.push(front);
    pids.set('dnsmasq', front.pid);
    const tick = 1e6 / Number((await run(['getconf', 'CLK_TCK'])).stdout.trim() || 100);

    const localFile = join(dir, 'local.txt');
    const forwardedFile = join(dir, 'forwarded.txt');
    const named = records.filter((r) => r.names[0] !== 'client');
    writeFileSync(localFile, named.map((r) => `${r.names[0]} A\n`).join(''));
    // Distinct names, so that no cache on the way could answer (none is on, but it keeps it honest).
    writeFileSync(forwardedFile, Array.from({ length: 20_000 }, (_, i) => `q${i}.${FORWARDED_ZONE} A\n`).join(''));

    const check = async (port: number, name: string, expect: string): Promise<string | undefined> => {
      const out = (await client.exec(['dig', '+short', '+time=2', '+tries=1', '-p', String(port), `@${GATEWAY}`, name, 'A'], { allowFail: true })).stdout.trim();
      return out === expect ? undefined : `${name} answered ${JSON.stringify(out)}, expected ${expect}`;
    };
    const cases: [Row['kind'], string, string, string][] = [
      ['local', localFile, named[0].names[0], named[0].ipv4],
      ['forwarded', forwardedFile, `check.${FORWARDED_ZONE}`, FORWARDED_ANSWER],
    ];
    const failed = new Set<string>();
    for (const { server, port } of SERVERS) {
      for (const [kind, , name, expect] of cases) {
        const wrong = await check(port, name, expect);
        if (wrong) {
          rows.push({ server, kind, error: wrong });
          failed.add(`${server} ${kind}`);
        }
      }
    }

    // Local names at full speed, interleaved: round r starts with server r (mod 3).
    for (let r = 0; r < opts.rounds; r++) {
      for (let k = 0; k < SERVERS.length; k++) {
        const { server, port } = SERVERS[(r + k) % SERVERS.length];
        if (failed.has(`${server} local`)) continue;
        process.stderr.write(`dns-bench: round ${r + 1}/${opts.rounds}: ${server} local...\n`);
        const before = cpuTicks(pids.get(server));
        const result = await dnsperf(client, { server: GATEWAY, port, file: localFile, seconds: opts.seconds, outstanding: 100 });
        const after = cpuTicks(pids.get(server));
        rounds.get(server)!.push(result);
        if (before !== undefined && after !== undefined && result.completed > 0) cpu.get(server)!.push(((after - before) * tick) / result.completed);
      }
    }
    // Then per server: forwarded names at full speed once, and both kinds at light load.
    for (const { server, port } of SERVERS) {
      for (const [kind, file] of cases) {
        if (failed.has(`${server} ${kind}`)) continue;
        process.stderr.write(`dns-bench: ${server} ${kind}...\n`);
        const max = kind === 'local' ? median(rounds.get(server)!) : await dnsperf(client, { server: GATEWAY, port, file, seconds: opts.seconds, outstanding: 100 });
        const light = await dnsperf(client, { server: GATEWAY, port, file, seconds: Math.max(2, Math.round(opts.seconds / 2)), maxQps: LIGHT_QPS });
        rows.push({ server, kind, max, light });
      }
    }
  } finally {
    for (const p of peers) await p.stop();
    await upstream?.stop();
    for (const c of containers) await c.stop();
    await daemon?.destroy();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(report(rows, opts, versions, rounds, cpu));
}

/** A process's CPU time so far (user + system, clock ticks), or undefined when it cannot be read. */
function cpuTicks(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the command: state is field 3, utime 14 and stime 15 (proc(5)).
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

function portOf(server: ServerName): number {
  return SERVERS.find((s) => s.server === server)!.port;
}

/** The run with the median QPS (the lower middle one for an even count). */
function median(results: DnsperfResult[]): DnsperfResult {
  const sorted = [...results].sort((a, b) => a.qps - b.qps);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return sorted.length % 2 === 1 ? sorted[Math.floor(mid)] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function report(rows: Row[], opts: Options, versions: Record<string, string>, rounds: Map<ServerName, DnsperfResult[]>, cpu: Map<ServerName, number[]>): string {
  const ms = (v: number) => v.toFixed(3);
  const lines = [
    `## DNS: ${opts.names} local names, forwarded names to an upstream dnsmasq (${FORWARDED_ZONE}), dnsperf, ${opts.seconds} s per run`,
    '',
    `Machine: ${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}. Versions: ${Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ')}. No cache of forwarded answers in any server (netd keeps its own encoded local answers, dropped on any name change).`,
    '',
    '| server | names | max qps (100 outstanding) | avg / max latency at max (ms) | lost at max | avg latency at 1000 qps (ms) | answers |',
    '|---|---|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    if (!r.max || !r.light) {
      lines.push(`| ${r.server} | ${r.kind} | n/a | n/a | n/a | n/a | ${r.error ?? 'failed'} |`);
      continue;
    }
    const codes = Object.entries(r.max.rcodes).map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`).join(', ');
    lines.push(
      `| ${r.server} | ${r.kind} | ${Math.round(r.max.qps)} | ${ms(r.max.avgLatency)} / ${ms(r.max.maxLatency)} | ${r.max.lost} of ${r.max.sent} | ${ms(r.light.avgLatency)} | ${codes} |`,
    );
  }
  const qps = (server: ServerName): number[] => (rounds.get(server) ?? []).map((r) => r.qps);
  lines.push('', `Local names at full speed, ${opts.rounds} interleaved rounds (QPS per round; the table shows the median round):`);
  for (const { server } of SERVERS) lines.push(`- ${server}: ${qps(server).map(Math.round).join(', ')}`);
  const netd = qps('netd');
  const aardvark = qps('aardvark-dns');
  if (netd.length > 0 && netd.length === aardvark.length) {
    const ratios = netd.map((q, i) => q / aardvark[i]);
    lines.push(`- netd ÷ aardvark-dns per round: ${ratios.map((r) => r.toFixed(2)).join(', ')}; median ${medianOf(ratios).toFixed(2)}`);
  }
  // CPU time per answer hardly depends on how the 2 cores are shared at the moment: the steadier comparison.
  const perQuery = SERVERS.filter(({ server }) => (cpu.get(server) ?? []).length > 0).map(({ server }) => `${server} ${medianOf(cpu.get(server)!).toFixed(1)} µs`);
  if (perQuery.length > 0) lines.push(`- server CPU per answered query (user + system, median of rounds): ${perQuery.join(', ')}`);
  return lines.join('\n') + '\n';
}

main().catch((err: Error) => {
  process.stderr.write(`dns-bench: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
