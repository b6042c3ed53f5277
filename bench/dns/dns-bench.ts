/**
 * DNS benchmark: netd's embedded DNS against aardvark-dns and dnsmasq, measured with dnsperf from a
 * container, for local names (containers on the network) and forwarded names (answered by an upstream
 * dnsmasq in the "outside" namespace). Prints a markdown table.
 *
 * One topology for all three servers, so they are compared on the same path: netd creates the network
 * and attaches the containers, is measured, then stops (its kernel state stays: bridge, gateway
 * address, veths), and aardvark-dns and then dnsmasq take the gateway's port 53 in turn, configured
 * with the very names and addresses netd assigned. Everything lives in throwaway namespaces.
 *
 *   npm run build && node dist/bench/dns/dns-bench.js [--seconds N] [--names N]
 * Needs root and Debian's dnsperf, aardvark-dns and dnsmasq. Not part of the test suite.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

interface Options {
  seconds: number;
  names: number;
}

interface Row {
  server: string;
  kind: 'local' | 'forwarded';
  max?: DnsperfResult;
  light?: DnsperfResult;
  error?: string;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { seconds: 8, names: 50 };
  for (let i = 0; i < argv.length; i++) {
    const value = Number(argv[i + 1]);
    if (argv[i] === '--seconds' && value > 0) opts.seconds = value;
    else if (argv[i] === '--names' && value > 0 && value < 200) opts.names = value;
    else throw new Error(`usage: dns-bench.js [--seconds N] [--names N<200]; got ${argv[i]}`);
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
  const rows: Row[] = [];
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

    const localFile = join(dir, 'local.txt');
    const forwardedFile = join(dir, 'forwarded.txt');
    const named = records.filter((r) => r.names[0] !== 'client');
    writeFileSync(localFile, named.map((r) => `${r.names[0]} A\n`).join(''));
    // Distinct names, so that no cache on the way could answer (none is on, but it keeps it honest).
    writeFileSync(forwardedFile, Array.from({ length: 20_000 }, (_, i) => `q${i}.${FORWARDED_ZONE} A\n`).join(''));

    const measure = async (server: string): Promise<void> => {
      const check = async (name: string, expect: string): Promise<string | undefined> => {
        const out = (await client.exec(['dig', '+short', '+time=2', '+tries=1', `@${GATEWAY}`, name, 'A'], { allowFail: true })).stdout.trim();
        return out === expect ? undefined : `${name} answered ${JSON.stringify(out)}, expected ${expect}`;
      };
      const cases: [Row['kind'], string, string, string][] = [
        ['local', localFile, named[0].names[0], named[0].ipv4],
        ['forwarded', forwardedFile, `check.${FORWARDED_ZONE}`, FORWARDED_ANSWER],
      ];
      for (const [kind, file, name, expect] of cases) {
        const wrong = await check(name, expect);
        if (wrong) {
          rows.push({ server, kind, error: wrong });
          continue;
        }
        process.stderr.write(`dns-bench: ${server} ${kind}...\n`);
        const max = await dnsperf(client, { server: GATEWAY, file, seconds: opts.seconds, outstanding: 100 });
        const light = await dnsperf(client, { server: GATEWAY, file, seconds: Math.max(2, Math.round(opts.seconds / 2)), maxQps: LIGHT_QPS });
        rows.push({ server, kind, max, light });
      }
    };

    await measure('netd');
    versions.netd = (await daemon.cli(['--version'])).stdout.trim();
    // netd leaves its kernel state in place when it stops: the gateway stays on the bridge for the peers.
    await daemon.stop();

    const aardvark = await startAardvark(topo.host, dir, NETWORK, GATEWAY, records, Topology.OUTSIDE);
    versions['aardvark-dns'] = aardvark.version;
    try {
      await measure('aardvark-dns');
    } finally {
      await aardvark.stop();
    }

    const dnsmasq = await startDnsmasqFront(topo.host, dir, GATEWAY, records, Topology.OUTSIDE);
    try {
      await measure('dnsmasq');
    } finally {
      await dnsmasq.stop();
    }
  } finally {
    await upstream?.stop();
    for (const c of containers) await c.stop();
    await daemon?.destroy();
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(report(rows, opts, versions));
}

function report(rows: Row[], opts: Options, versions: Record<string, string>): string {
  const ms = (v: number) => v.toFixed(3);
  const lines = [
    `## DNS: ${opts.names} local names, forwarded names to an upstream dnsmasq (${FORWARDED_ZONE}), dnsperf, ${opts.seconds} s per run`,
    '',
    `Machine: ${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}. Versions: ${Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ')}. No cache in any server.`,
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
  return lines.join('\n') + '\n';
}

main().catch((err: Error) => {
  process.stderr.write(`dns-bench: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
