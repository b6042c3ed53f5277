import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseArgs, plan } from '../../bench/options.js';
import { daemonAttachTimes, parseEtcdMetrics } from '../../bench/overlay.js';
import { overlayGoals, type OverlayContext } from '../../bench/report-overlay.js';
import { renderReport, type RunInfo } from '../../bench/report.js';
import { summarise } from '../../bench/stats.js';
import type { PhaseResult } from '../../bench/harness.js';

test('bench overlay: `--only overlay` plans one phase, netd:overlay with the first backend; a plain run includes it', () => {
  assert.deepEqual(plan(parseArgs(['--only', 'overlay'])), [{ impl: 'netd', item: 'overlay', backend: 'iptables', key: 'netd:overlay' }]);
  assert.ok(plan(parseArgs([])).some((p) => p.key === 'netd:overlay'));
  assert.ok(!plan(parseArgs(['--skip', 'overlay'])).some((p) => p.item === 'overlay'));
});

test('bench overlay: etcd counters from its Prometheus text (summed over gRPC codes; other methods and metrics ignored)', () => {
  const text = [
    '# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.',
    '# TYPE grpc_server_handled_total counter',
    'grpc_server_handled_total{grpc_code="OK",grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 41',
    'grpc_server_handled_total{grpc_code="FailedPrecondition",grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 2',
    'grpc_server_handled_total{grpc_code="OK",grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"} 7',
    'grpc_server_handled_total{grpc_code="OK",grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 3',
    'grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 0',
    'grpc_server_started_total{grpc_method="Txn",grpc_service="etcdserverpb.KV",grpc_type="unary"} 99',
    'etcd_mvcc_put_total 40',
    'etcd_mvcc_range_total 12',
    'etcd_mvcc_db_total_size_in_bytes 20480',
  ].join('\n');
  assert.deepEqual(parseEtcdMetrics(text), { 'rpc.Txn': 43, 'rpc.Range': 7, 'rpc.Put': 0, 'mvcc.put': 40, 'mvcc.range': 12 });
});

test('bench overlay: the daemon\'s durationMs of each successful attach, in order', () => {
  const logs = [
    '{"level":30,"op":"attach","outcome":"ok","durationMs":4.5}',
    '{"level":30,"op":"detach","outcome":"ok","durationMs":2}',
    'not json "attach"',
    '{"level":50,"op":"attach","outcome":"error","durationMs":1}',
    '{"level":30,"op":"attach","outcome":"ok","durationMs":6.25}',
  ].join('\n');
  assert.deepEqual(daemonAttachTimes(logs), [4.5, 6.25]);
});

function ctx(samples: Record<string, number[]>, values: Record<string, number> = {}, missing?: string): OverlayContext {
  return {
    summary: (k) => (samples[k] ? summarise(samples[k]) : undefined),
    value: (k) => values[k] ?? NaN,
    missing: () => missing,
  };
}

test('bench overlay goals (issue 15): each row met, missed or n/a with the reason', () => {
  const rows = overlayGoals(
    ctx(
      {
        'overlay|attach|overlay': [12, 12, 12],
        'overlay|attach|bridge': [10, 10, 10],
        'overlay|converge': [...Array(19).fill(50), 250],
        'overlay|tput|overlay': [8.5],
        'overlay|tput|underlay': [10],
      },
      { 'overlay|etcd|attach|rpc.Txn': 1, 'overlay|etcd|attach|rpc.Put': 0, 'overlay|etcd|attach|rpc.DeleteRange': 0 },
    ),
  );
  assert.deepEqual(rows.map((r) => r[3]), ['met', 'met', '**missed**', 'met']);
  assert.match(rows[0][1], /^1\.20× \(12\.0 ÷ 10\.0 ms\)$/);
  assert.match(rows[1][1], /^50\.0 ms \(median 50\.0\)$/); // nearest-rank p95 of 20: the 19th
  assert.match(rows[2][1], /^85% \(8\.50 ÷ 10\.00 Gbit\/s\)$/);
  const slow = overlayGoals(ctx({ 'overlay|attach|overlay': [16], 'overlay|attach|bridge': [10], 'overlay|converge': [300] }, { 'overlay|etcd|attach|rpc.Txn': 2 }));
  assert.deepEqual(slow.map((r) => r[3]), ['**missed**', '**missed**', 'n/a', '**missed**']);
  const none = overlayGoals(ctx({}, {}, 'n/a [1]'));
  assert.deepEqual(none.map((r) => [r[1], r[3]]), Array(4).fill(['n/a [1]', 'n/a']));
});

const INFO: RunInfo = { date: 'd', mode: 'quick', repeat: 1, backends: ['iptables'], machine: 'm', versions: {}, loadStart: [0, 0, 0], loadEnd: [0, 0, 0], durationS: 1, dockerMax: 100, peerSamples: 10, dockerConcurrency: 25 };
const CFG = { levels: [1, 10, 100], samples: 10, portSamples: 10, networkSamples: 10, cliSamples: 5, networkLevels: [1, 10], portLevels: [0, 100, 1000], portsPerContainer: 100, fillBudgetS: 30, concurrency: 100, tputSeconds: 2, tputTrials: 1, runLevels: [1, 10] };

function result(more: Partial<PhaseResult>): PhaseResult {
  return { phase: 'netd:overlay', impl: 'netd', backend: 'iptables', loadavg: [0, 0, 0], durationS: 1, samples: {}, values: {}, na: {}, notes: [], ...more };
}

test('bench report: the overlay section has the issue 15 goals and figures; without etcd, n/a with the reason; not run, no section', () => {
  const report = renderReport(
    INFO,
    [result({ samples: { 'overlay|attach|overlay': [15], 'overlay|attach|bridge': [12], 'overlay|converge': [40], 'overlay|tput|overlay': [7], 'overlay|tput|underlay': [8], 'overlay|tput|vxlan': [7.5] }, values: { 'overlay|etcd|attach|rpc.Txn': 1, 'overlay|etcd|n': 10 } })],
    CFG,
  );
  assert.match(report, /### Goals \(issue 15\)/);
  assert.match(report, /\| attach on an overlay network ÷ on a bridge network[^|]*\| 1\.25× \(15\.0 ÷ 12\.0 ms\) \| ≤ 1\.5× \| met \|/);
  assert.match(report, /\| TCP throughput across the overlay[^|]*\| 88% \(7\.00 ÷ 8\.00 Gbit\/s\) \| ≥ 90% \| \*\*missed\*\* \|/);
  assert.match(report, /\| host 1 → host 2 \| 7\.00 \| 8\.00 \| 7\.50 \| 93% \|/);
  assert.match(report, /\| rpc\.Txn \| 1\.00 \| — \| — \|/);
  const na = renderReport(INFO, [result({ unavailable: 'etcd is not installed (no etcd in PATH)' })], CFG);
  assert.match(na, /\| cross-host convergence p95[^|]*\| n\/a \[\d\] \| ≤ 200 ms \| n\/a \|/);
  assert.match(na, /\d\. netd: etcd is not installed \(no etcd in PATH\)/);
  assert.doesNotMatch(renderReport(INFO, [], CFG), /issue 15/);
});
