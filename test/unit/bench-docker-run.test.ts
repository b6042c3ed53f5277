import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pluginShare, type OpWindow } from '../../bench/docker-run.js';
import { Recorder, type PhaseResult } from '../../bench/harness.js';
import { recordPluginShare } from '../../bench/docker-run.js';
import { renderReport, type RunInfo } from '../../bench/report.js';
import { summarise } from '../../bench/stats.js';

const line = (call: string, time: number, durationMs: number) => ({ op: 'docker-plugin', call, time, durationMs, outcome: 'ok' });

test('bench dockerrun: plugin log lines are summed per timed operation, by timestamp', () => {
  const windows: OpWindow[] = [
    { op: 'run', level: 1, from: 1000, to: 1100 },
    { op: 'disconnect', level: 1, from: 1200, to: 1250 },
    { op: 'connect', level: 1, from: 1250, to: 1300 },
  ];
  const lines = [
    line('IpamDriver.RequestAddress', 1010, 0.5),
    line('NetworkDriver.CreateEndpoint', 1020, 1.5),
    line('NetworkDriver.Join', 1090, 6),
    { op: 'attach', time: 1090, durationMs: 5, outcome: 'ok' }, // the controller's own line: not a plugin call
    line('NetworkDriver.EndpointOperInfo', 1100, 0.25),
    line('NetworkDriver.EndpointOperInfo', 1150, 0.25), // between operations
    { op: 'docker-plugin', msg: 'docker-plugin /NetworkDriver.Leave', time: 1210, durationMs: 0.75, outcome: 'ok' },
    line('NetworkDriver.Join', 1250, 4), // on the boundary: the earlier window
    line('NetworkDriver.Join', 1290, 5),
    line('NetworkDriver.Join', 5000, 9), // after the last window: not counted at all
  ];
  const { perWindow, outside } = pluginShare(lines, windows);
  assert.equal(outside, 1);
  assert.equal(perWindow[0].total, 8.25);
  assert.deepEqual(perWindow[0].calls.get('NetworkDriver.EndpointOperInfo'), { ms: 0.25, n: 1 });
  assert.equal(perWindow[0].calls.size, 4);
  assert.deepEqual([...perWindow[1].calls.keys()], ['NetworkDriver.Leave', 'NetworkDriver.Join']);
  assert.equal(perWindow[1].total, 4.75);
  assert.equal(perWindow[2].total, 5);

  const rec = new Recorder('docker-netd:dockerrun', 'docker-netd');
  recordPluginShare(rec, lines, [...windows, { op: 'run', level: 1, from: 2000, to: 2100 }]);
  const r = rec.done();
  assert.deepEqual(r.samples['plugin|run|1|total'], [8.25, 0]);
  assert.deepEqual(r.samples['plugin|run|1|NetworkDriver.Join'], [6, 0]);
  assert.deepEqual(r.samples['plugin|run|1|NetworkDriver.Join|count'], [1, 0]);
  assert.ok(r.notes.some((n) => n.startsWith('1 netd plugin call')));
});

test('bench stats: p90 is the nearest-rank 90th percentile', () => {
  const s = summarise([10, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(s.p90, 9);
  assert.equal(s.median, 5.5);
});

function phase(impl: string, samples: Record<string, number[]>): PhaseResult {
  return { phase: `${impl}:dockerrun`, impl, loadavg: [0, 0, 0], durationS: 1, samples, values: {}, na: {}, notes: [] };
}

const INFO: RunInfo = { date: 'd', mode: 'quick', repeat: 1, machine: 'm', versions: {}, loadStart: [0, 0, 0], loadEnd: [0, 0, 0], durationS: 1, dockerMax: 100, peerSamples: 10, dockerConcurrency: 25 };
const CFG = { levels: [1, 10, 100], samples: 10, portSamples: 10, networkSamples: 10, cliSamples: 5, networkLevels: [1, 10], portLevels: [0, 100, 1000], portsPerContainer: 100, fillBudgetS: 30, concurrency: 100, tputSeconds: 2, tputTrials: 1, runLevels: [1, 10] };

test('bench report: docker run → ready and network connect, bridge driver beside the netd plugin, with netd\'s share', () => {
  const ten = (base: number) => Array.from({ length: 10 }, (_, i) => base + i);
  const report = renderReport(INFO, [
    phase('docker', { 'run.start|1': ten(400), 'run.ready|1': ten(401), 'connect|10': ten(50), 'disconnect|10': ten(40) }),
    phase('docker-netd', { 'run.start|1': ten(300), 'run.ready|1': ten(302), 'connect|10': ten(25), 'plugin|connect|10|total': ten(10), 'plugin|connect|10|NetworkDriver.Join': ten(6), 'plugin|connect|10|NetworkDriver.Join|count': ten(1).map(() => 1) }),
  ], CFG);
  const section = report.slice(report.indexOf('## dockerd: `docker run` → network ready'));
  assert.ok(section.length < report.length, 'the section is there');
  // median / p90 of 400..409 and 300..309; ratio netd ÷ bridge of the medians.
  assert.match(section, /\| `docker run`: create \+ start returned \| 1st \| 405 \/ 408 \| 305 \/ 308 \| 0\.75 \| — \|/);
  assert.match(section, /\| `docker run` → network ready \| 1st \| 406 \/ 409 \| 307 \/ 310 \| 0\.76 \| — \|/);
  assert.match(section, /\| `docker network connect` \| 10th \| 54\.5 \/ 58\.0 \| 29\.5 \/ 33\.0 \| 0\.54 \| 14\.5 \|/);
  assert.match(section, /\| `docker network disconnect` \| 10th \| 44\.5 \/ 48\.0 \| — \| — \| — \|/);
  // The per-call breakdown at the highest level.
  assert.match(section, /\| NetworkDriver\.Join \| — \| — \| 10\.5 \| — \|/);
});

test('bench report: the dockerrun section says why the netd plugin column is empty', () => {
  const report = renderReport(INFO, [phase('docker', { 'run.start|1': [400] }), { ...phase('docker-netd', {}), unavailable: 'no plugin here' }], CFG);
  assert.match(report, /\| `docker run`: create \+ start returned \| 1st \| 400 \/ 400 \| n\/a \[\d+\] \|/);
  assert.match(report, /dockerd \+ netd plugin: no plugin here/);
});

test('bench report: when docker run fails with the plugin, its rows say why and the connect figures still show', () => {
  const failed: PhaseResult = { ...phase('docker-netd', { 'connect|1': [30, 40] }), na: { 'run.start|1': 'docker run fails: HTTP 500: Join: boom' }, error: 'docker run on the network failed: boom', errorPartial: true };
  const report = renderReport(INFO, [phase('docker', { 'run.start|1': [400], 'connect|1': [50] }), failed], CFG);
  assert.match(report, /\| `docker run`: create \+ start returned \| 1st \| 400 \/ 400 \| n\/a \[(\d+)\] \|/);
  assert.match(report, /dockerd \+ netd plugin: docker run fails: HTTP 500: Join: boom/);
  assert.match(report, /\| `docker network connect` \| 1st \| 50\.0 \/ 50\.0 \| 35\.0 \/ 40\.0 \| 0\.70 \|/);
  assert.match(report, /\*\*docker-netd:dockerrun failed\*\*: docker run on the network failed: boom/);
  // Without errorPartial a failed phase's figures are not reported (as for every other item).
  const whole = renderReport(INFO, [phase('docker', { 'connect|1': [50] }), { ...failed, errorPartial: undefined }], CFG);
  assert.doesNotMatch(whole, /35\.0 \/ 40\.0/);
});
