import { test } from 'node:test';
import assert from 'node:assert/strict';
import { goalRows, middleLevel, type GoalsContext } from '../../bench/report-goals.js';
import { baseConfig, parseArgs, phaseConfig, plan } from '../../bench/options.js';
import { parseDnsTable } from '../../bench/dns-item.js';
import { renderReport, type RunInfo } from '../../bench/report.js';
import type { PhaseResult } from '../../bench/harness.js';

/** A context over plain maps: `impl:item@backend|key` → median or value. */
function ctx(medians: Record<string, number>, values: Record<string, number> = {}, extra: Partial<GoalsContext> = {}): GoalsContext {
  const k = (impl: string, item: string, key: string, backend?: string) => `${impl}:${item}${backend ? `@${backend}` : ''}|${key}`;
  return {
    backends: ['iptables', 'nftables'],
    levels: [1, 100, 1000],
    portLevels: [0, 1000, 10000],
    median: (i, it, key, b) => medians[k(i, it, key, b)] ?? NaN,
    value: (i, it, key, b) => values[k(i, it, key, b)] ?? NaN,
    missing: (i, it, key, b) => (b === 'nftables' ? 'n/a (backend not available: unknown firewall backend "nftables")' : i === 'netavark' ? 'n/a [1]' : undefined),
    concurrency: (impl) => (impl === 'docker' ? 25 : 100),
    quick: false,
    ...extra,
  };
}

test('bench goals (issue 12): each row per backend, the goal met or missed, × faster per peer', () => {
  const rows = goalRows(
    ctx(
      {
        'netd:attach@iptables|attach|port|100': 12,
        'netd:attach@iptables|attach|noport|100': 6,
        'cni:attach|attach|port|100': 240,
        'docker:attach|attach|port|100': 60,
        'netd:ports@iptables|portadd|port|10000': 11,
        'netd:ports@iptables|portadd|port|0': 10,
        'docker:ports|portadd|port|10000': 110,
        'netd:attach@iptables|detach|noport|100': 4,
        'netd:attach@iptables|converged|noport|100': 23.5,
        'cni:attach|detach|noport|100': 80,
        'netd:attach@iptables|detach|port|100': 7,
        'netd:attach@iptables|attach|noport|1': 5,
        'rtnl:attach|attach|noport|1': 4,
        'netd:attach@iptables|attach|noport|1000': 8,
        'rtnl:attach|attach|noport|1000': 5,
        'rtnl:attach|attach|noport|100': 5,
      },
      { 'netd:concurrency@iptables|conc.attach.wall': 200, 'cni:concurrency|conc.attach.wall': 9000, 'docker:concurrency|conc.attach.wall': 2500, 'netd:dns|dns|netd|local|qps': 40000, 'netd:dns|dns|aardvark-dns|local|qps': 50000 },
    ),
  );
  const row = (prefix: string, backend: string) => {
    const r = rows.find((x) => x.row.startsWith(prefix) && x.backend === backend);
    assert.ok(r, `row ${prefix} (${backend})`);
    return r;
  };
  // attach + 1 port ÷ without, 100th: 12 / 6 = 2.00, missed (≤ 1.3); × faster on the port attach: CNI 240/12, dockerd 60/12.
  const r1 = row('attach + 1 port ÷ attach without, 100th', 'iptables');
  assert.equal(r1.netd, '2.00');
  assert.equal(r1.outcome, 'missed');
  assert.deepEqual(r1.peers, { cni: '20.0×', netavark: 'n/a [1]', docker: '5.0×' });
  assert.equal(r1.peerOutcome, 'missed', 'dockerd is only 5× slower');
  // The backend that would not start: its reason in the cell, no outcome.
  const r1n = row('attach + 1 port ÷ attach without', 'nftables');
  assert.equal(r1n.netd, 'n/a (backend not available: unknown firewall backend "nftables")');
  assert.equal(r1n.outcome, 'n/a');
  // One more port at 10000 ÷ at 0: 1.10, met; dockerd 110 / 11 = 10×, the only peer with a figure: met.
  const r2 = row('attach + 1 port at 10000 existing ÷ at 0', 'iptables');
  assert.equal(r2.netd, '1.10');
  assert.equal(r2.outcome, 'met');
  assert.equal(r2.peers.docker, '10.0×');
  assert.equal(r2.peerOutcome, 'met');
  // Detach answered, with the kernel's convergence beside it.
  const r3 = row('detach answered, no port, 100th', 'iptables');
  assert.equal(r3.netd, '4.00 ms (kernel done: 23.5 ms)');
  assert.equal(r3.outcome, 'met');
  assert.equal(r3.peers.cni, '20.0×');
  const r4 = row('detach answered, 1 port, 100th', 'iptables');
  assert.equal(r4.netd, '7.00 ms');
  assert.equal(r4.outcome, 'missed');
  // API ÷ floor per level: 1.25 is met (≤), 1.60 missed.
  assert.equal(row('attach through the API ÷ kernel floor (Rtnl), 1st', 'iptables').netd, '1.25');
  assert.equal(row('attach through the API ÷ kernel floor (Rtnl), 1st', 'iptables').outcome, 'met');
  assert.equal(row('attach through the API ÷ kernel floor (Rtnl), 1000th', 'iptables').outcome, 'missed');
  assert.equal(rows.filter((r) => r.row.startsWith('attach through the API')).length, 6, 'three levels × two backends');
  // Concurrency: dockerd was given 25 at once, not comparable; CNI 9000 / 200 = 45×.
  const r8 = row('100 concurrent attaches, wall', 'iptables');
  assert.equal(r8.netd, '200 ms');
  assert.equal(r8.outcome, 'met');
  assert.equal(r8.peers.cni, '45.0×');
  assert.equal(r8.peers.docker, 'n/a (given 25 at once)');
  // DNS once, not per backend: 40000 / 50000.
  const dns = rows.filter((r) => r.row === 'DNS local QPS ÷ aardvark-dns');
  assert.equal(dns.length, 1);
  assert.equal(dns[0].backend, '—');
  assert.equal(dns[0].netd, '0.80 (40000 ÷ 50000 QPS)');
  assert.equal(dns[0].outcome, 'missed');
  assert.equal(dns[0].peers.netavark, '0.80× (aardvark-dns)');
});

test('bench goals: the per-container rows are about the 100th container in a full and a quick run', () => {
  assert.equal(middleLevel([1, 100, 1000]), 100);
  assert.equal(middleLevel([1, 10, 100]), 100);
  assert.equal(middleLevel([1, 10, 50]), 10);
});

test('bench options: --backends (default both), checked against the backends netd has', () => {
  assert.deepEqual(parseArgs([]).backends, ['iptables', 'nftables']);
  assert.deepEqual(parseArgs(['--backends', 'nftables']).backends, ['nftables']);
  assert.deepEqual(parseArgs(['--backends', 'iptables,iptables']).backends, ['iptables']);
  assert.throws(() => parseArgs(['--backends', 'ipfw']), /unknown backend "ipfw"/);
  assert.throws(() => parseArgs(['--backends', '']), /needs a list/);
});

test('bench plan: netd\'s firewall-dependent phases once per backend, the rest once', () => {
  const keys = plan({ only: [], skip: [], backends: ['iptables', 'nftables'] }).map((p) => p.key);
  for (const item of ['attach', 'networks', 'ports', 'concurrency']) {
    assert.ok(keys.includes(`netd:${item}@iptables`) && keys.includes(`netd:${item}@nftables`), item);
  }
  for (const k of ['netd:throughput', 'netd:dns', 'cni:attach', 'netavark:ports', 'rtnl:attach', 'netd-cni:attach', 'docker-netd:dockerrun']) assert.ok(keys.includes(k), k);
  assert.equal(keys.filter((k) => k.startsWith('netd:dns')).length, 1);
  // The phases run once but start netd use the first backend.
  const once = plan({ only: ['netd-cni', 'dns'], skip: [], backends: ['nftables', 'iptables'] });
  assert.deepEqual(once.map((p) => [p.key, p.backend]), [['netd-cni:attach', 'nftables'], ['netd:dns', 'nftables']]);
  assert.deepEqual(plan({ only: ['cni:attach'], skip: [], backends: ['iptables'] }).map((p) => p.backend), [undefined]);
});

test('bench dns: dns-bench\'s table read back by its header', () => {
  const text = [
    '## DNS: 20 local names',
    '',
    '| server | names | max qps (100 outstanding) | avg / max latency at max (ms) | lost at max | avg latency at 1000 qps (ms) | answers |',
    '|---|---|---:|---:|---:|---:|---|',
    '| netd | local | 34512 | 2.1 / 9.0 | 0 of 100 | 0.2 | NOERROR 100.0% |',
    '| aardvark-dns | local | 50700 | 1.1 / 5.0 | 0 of 100 | 0.1 | NOERROR 100.0% |',
    '| dnsmasq | forwarded | n/a | n/a | n/a | n/a | check.fwd.bench answered "", expected 203.0.113.99 |',
  ].join('\n');
  assert.deepEqual(parseDnsTable(text), [
    { server: 'netd', kind: 'local', qps: 34512, why: undefined },
    { server: 'aardvark-dns', kind: 'local', qps: 50700, why: undefined },
    { server: 'dnsmasq', kind: 'forwarded', qps: NaN, why: 'check.fwd.bench answered "", expected 203.0.113.99' },
  ]);
  assert.deepEqual(parseDnsTable('no table here'), []);
});

const INFO: RunInfo = { date: 'd', mode: 'full', repeat: 1, backends: ['iptables', 'nftables'], machine: 'm', versions: {}, loadStart: [0, 0, 0], loadEnd: [0, 0, 0], durationS: 1, dockerMax: 100, peerSamples: 20, dockerConcurrency: 100 };
const CFG = { levels: [1, 100, 1000], samples: 30, portSamples: 20, networkSamples: 20, cliSamples: 10, networkLevels: [1, 100], portLevels: [0, 1000, 10000], portsPerContainer: 100, fillBudgetS: 90, concurrency: 100, tputSeconds: 2, tputTrials: 5, runLevels: [1, 100] };

function result(phase: string, samples: Record<string, number[]> = {}, more: Partial<PhaseResult> = {}): PhaseResult {
  const [impl, rest] = phase.split(':');
  return { phase, impl, backend: rest.split('@')[1], loadavg: [0, 0, 0], durationS: 1, samples, values: {}, na: {}, notes: [], ...more };
}

test('bench report: a backend column on netd\'s rows, and an unavailable backend is n/a with its reason', () => {
  const report = renderReport(
    INFO,
    [
      result('netd:attach@iptables', { 'attach|noport|100': [6, 6, 6], 'attach|port|100': [9, 9, 9], 'detach|noport|100': [3, 3, 3], 'converged|noport|100': [24, 24, 24] }),
      result('netd:attach@nftables', {}, { unavailable: 'backend not available: unknown firewall backend "nftables" (netd has: iptables)' }),
      result('rtnl:attach', { 'attach|noport|100': [4, 4, 4] }),
      result('cni:attach', { 'attach|noport|100': [60, 60, 60], 'attach|port|100': [90, 90, 90] }),
      result('netd:concurrency@iptables', {}, { values: { 'conc.attach.wall': 300 } }),
      result('netd:concurrency@nftables', {}, { values: { 'conc.attach.wall': 200 } }),
      result('netd:dns', {}, { values: { 'dns|netd|local|qps': 51000, 'dns|aardvark-dns|local|qps': 50000, 'dns|dnsmasq|local|qps': 60000 } }),
    ],
    CFG,
  );
  // The attach table: one row per backend, the nftables one n/a with a footnote naming the backend.
  assert.match(report, /\| attach, no port \| 100th \| iptables \| 6\.00 \/ 6\.00 \| — \| — \| 60\.0 \/ 60\.0 \| 0\.10 \|/);
  assert.match(report, /\| attach, no port \| 100th \| nftables \| n\/a \[(\d+)\] \|/);
  assert.match(report, /\d+\. netd \(nftables\): backend not available: unknown firewall backend "nftables"/);
  assert.match(report, /\| detach, no port \| 100th \| iptables \| 3\.00 \/ 3\.00 \| — \| 24\.0 \/ 24\.0 \|/);
  // Concurrency: a netd column per backend.
  assert.match(report, /\|  \| netd \(iptables\) \| netd \(nftables\) \| floor: Rtnl \| CNI \| netavark \| docker \|/);
  assert.match(report, /\| attaches issued at once: wall time \| 300 ms \| 200 ms \|/);
  // The goals table.
  const goals = report.slice(report.indexOf('## Goals (issue 12)'), report.indexOf('## Goals (earlier'));
  assert.match(goals, /\| attach \+ 1 port ÷ attach without, 100th container \| iptables \| 1\.50 \| ≤ 1\.3 \| \*\*missed\*\* \| 10\.0× \|/);
  assert.match(goals, /\| attach \+ 1 port ÷ attach without, 100th container \| nftables \| n\/a \(backend not available: unknown firewall backend "nftables" \(netd has: iptables\)\) \| ≤ 1\.3 \| n\/a \|/);
  assert.match(goals, /\| detach answered, no port, 100th container \| iptables \| 3\.00 ms \(kernel done: 24\.0 ms\) \| ≤ 5 ms \| met \| — \|/);
  assert.match(goals, /\| attach through the API ÷ kernel floor \(Rtnl\), 100th container \| iptables \| 1\.50 \| ≤ 1\.25 \| \*\*missed\*\* \|/);
  assert.match(goals, /\| 100 concurrent attaches, wall \| nftables \| 200 ms \| ≤ 250 ms \| met \|/);
  assert.match(goals, /\| DNS local QPS ÷ aardvark-dns \| — \| 1\.02 \(51000 ÷ 50000 QPS\) \| ≥ 1\.0 \| met \|/);
  // The DNS section.
  assert.match(report, /\| local \| 51000 \| 50000 \| 60000 \| 1\.02 \| 0\.85 \|/);
});

test('bench report: results without a backend (older runs, one backend) still fill the netd columns', () => {
  const report = renderReport({ ...INFO, backends: undefined }, [result('netd:attach', { 'attach|noport|1': [5] })], CFG);
  assert.match(report, /\| attach, no port \| 1st \| iptables \| 5\.00 \/ 5\.00 \|/);
});

test('bench options: a full run gives the peers fewer cycles (to stay near 20 minutes), a quick run and --samples do not', () => {
  const full = baseConfig({ quick: false });
  const o = { quick: false, dockerMax: 100 };
  assert.equal(phaseConfig(o, 'netd', full, 'attach').samples, 30);
  assert.equal(phaseConfig(o, 'cni', full, 'attach').samples, 15);
  assert.equal(phaseConfig(o, 'cni', full, 'ports').fillBudgetS, 75);
  assert.equal(phaseConfig(o, 'netd', full, 'ports').fillBudgetS, 90);
  assert.equal(phaseConfig(o, 'docker', full, 'dockerrun').samples, 10);
  assert.equal(phaseConfig(o, 'docker', full, 'networks').networkSamples, 10);
  assert.equal(phaseConfig(o, 'netd-cni', full, 'attach').samples, 15);
  assert.equal(phaseConfig({ ...o, samples: 30 }, 'cni', baseConfig({ quick: false, samples: 30 }), 'attach').samples, 30);
  const quick = baseConfig({ quick: true });
  assert.equal(phaseConfig({ quick: true, dockerMax: 100 }, 'cni', quick, 'attach').samples, 10);
  assert.equal(phaseConfig({ quick: true, dockerMax: 100 }, 'docker', quick, 'concurrency').concurrency, 25);
});
