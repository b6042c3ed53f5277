/**
 * What the API costs on top of the controller: netd's real API server (router, limits, logger) and
 * controller, in-process, with an in-memory driver and namespaces (no kernel work, no root), driven by the
 * bench's keep-alive client on a unix socket. Each round times the same calls made directly on the
 * controller and through the API, alternately, so the difference is HTTP, JSON, validation and logging.
 *
 *   node dist/bench/api-path.js [--rounds N] [--per-round N] [--log FILE]
 *
 * The log goes to a file (pino, as the daemon writes it), /dev/null with `--log /dev/null`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { Prefix } from '../src/net/index.js';
import { Controller } from '../src/cnm/controller.js';
import { Ipam } from '../src/ipam/ipam.js';
import { DEFAULT_ADDRESS_POOLS, parseAddressPool } from '../src/ipam/default-pools.js';
import { Store } from '../src/store/store.js';
import { createLogger } from '../src/log.js';
import { startApiServer } from '../src/api/server.js';
import { FakeNamespaces, RecordingDriver } from '../test/helpers/fake-core.js';
import { UnixHttp } from './http.js';
import { median, percentile } from './stats.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

const ROUNDS = Number(arg('--rounds', '10'));
const PER_ROUND = Number(arg('--per-round', '200'));

type Op = () => Promise<unknown>;

/** The controller's own time during the current sample (what the daemon logs as durationMs, plus the lock). */
let inner = 0;

/** CPU time (user + system) per call, one figure per round: robust to a loaded machine, unlike wall time. */
const cpu: Record<string, number[]> = {};

async function timeEach(samples: number[], n: number, op: (i: number) => Op, innerSamples?: number[], cpuKey?: string): Promise<void> {
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const fn = op(i);
    inner = 0;
    const t = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - t) / 1e3);
    innerSamples?.push(inner);
  }
  const c = process.cpuUsage(c0);
  if (cpuKey) (cpu[cpuKey] ??= []).push((c.user + c.system) / n);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'netd-api-path-'));
  const logFile = arg('--log', join(dir, 'netd.log'));
  process.env.NETD_LOG_LEVEL = 'info';
  // The daemon's logger writes to fd 2; here it writes to a file, with the same options.
  const log = createLogger('info', logFile);
  const controller = new Controller({
    store: new Store(join(dir, 'data')),
    ipam: new Ipam(DEFAULT_ADDRESS_POOLS.map(parseAddressPool)),
    drivers: [new RecordingDriver(), new RecordingDriver('null', { interface: false, exclusive: true, singleInstance: true })],
    resolver: new FakeNamespaces(),
    log,
    hostSubnets: async () => [],
    predefined: [{ name: 'bridge', driver: 'bridge', options: { 'com.docker.network.bridge.name': 'netd0' } }, { name: 'none', driver: 'null' }],
  });
  await controller.start();
  await controller.createNetwork({ name: 'bench', driver: 'bridge', subnet: Prefix.parse('198.18.0.0/16') });
  const socket = join(dir, 'netd.sock');
  const server: Server = await startApiServer({ host: `unix://${socket}`, controller, log });
  const http = new UnixHttp(socket);

  const s: Record<string, number[]> = { 'direct attach+detach': [], 'api attach+detach': [], 'direct list sandboxes': [], 'api GET /netd/v1/sandboxes': [], 'api GET /_ping': [], 'direct detach unknown': [], 'api POST detach unknown (404)': [], 'api POST bad JSON (400)': [], 'controller time, direct pairs': [], 'controller time, api pairs': [] };
  let k = 0;
  for (const m of ['attach', 'detach'] as const) {
    const orig = controller[m].bind(controller) as (...a: unknown[]) => Promise<unknown>;
    (controller as unknown as Record<string, unknown>)[m] = async (...a: unknown[]) => {
      const t = process.hrtime.bigint();
      try {
        return await orig(...a);
      } finally {
        inner += Number(process.hrtime.bigint() - t) / 1e3;
      }
    };
  }
  const body = (name: string) => ({ target: { path: `/run/bench/${name}` }, network: 'bench', name });
  // A warm-up round, not counted.
  for (let round = -1; round < ROUNDS; round++) {
    const keep = round >= 0;
    const sink = (key: string) => (keep ? s[key] : []);
    const ck = (key: string) => (keep ? key : undefined);
    await timeEach(sink('direct attach+detach'), PER_ROUND, () => {
      const name = `c${k++}`;
      return async () => {
        await controller.attach({ target: { path: `/run/bench/${name}` }, network: 'bench', name });
        await controller.detach(name, 'bench');
      };
    }, sink('controller time, direct pairs'), ck('direct attach+detach'));
    await timeEach(sink('api attach+detach'), PER_ROUND, () => {
      const name = `c${k++}`;
      return async () => {
        await http.call('POST', '/netd/v1/attach', body(name));
        await http.call('POST', '/netd/v1/detach', { container: name, network: 'bench' });
      };
    }, sink('controller time, api pairs'), ck('api attach+detach'));
    await timeEach(sink('direct list sandboxes'), PER_ROUND, () => async () => JSON.parse(JSON.stringify(controller.sandboxes())), undefined, ck('direct list sandboxes'));
    await timeEach(sink('api GET /netd/v1/sandboxes'), PER_ROUND, () => () => http.call('GET', '/netd/v1/sandboxes'), undefined, ck('api GET /netd/v1/sandboxes'));
    await timeEach(sink('api GET /_ping'), PER_ROUND, () => () => http.call('GET', '/_ping'), undefined, ck('api GET /_ping'));
    await timeEach(sink('direct detach unknown'), PER_ROUND, () => () => controller.detach('nosuch', 'bench').catch(() => undefined), undefined, ck('direct detach unknown'));
    await timeEach(sink('api POST detach unknown (404)'), PER_ROUND, () => () => http.request('POST', '/netd/v1/detach', { container: 'nosuch', network: 'bench' }), undefined, ck('api POST detach unknown (404)'));
    await timeEach(sink('api POST bad JSON (400)'), PER_ROUND, () => () => http.request('POST', '/netd/v1/detach', { container: 'nosuch', network: 'bench', bad: 1 }), undefined, ck('api POST bad JSON (400)'));
  }
  http.close();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });

  const rows = Object.entries(s).map(([name, xs]) => `| ${name} | ${median(xs).toFixed(0)} | ${percentile(xs, 90).toFixed(0)} | ${cpu[name] ? median(cpu[name]).toFixed(0) : '—'} |`);
  const overhead = median(s['api attach+detach'].map((x, i) => x - s['controller time, api pairs'][i]));
  process.stdout.write(
    [`| call (${ROUNDS}×${PER_ROUND}, µs) | wall median | wall p90 | CPU per call (median of rounds) |`, '| --- | --- | --- | --- |', ...rows, '', `API path outside the controller per attach+detach pair (median of the differences): ${overhead.toFixed(0)} µs wall; CPU ${(median(cpu['api attach+detach']) - median(cpu['direct attach+detach'])).toFixed(0)} µs`, ''].join('\n'),
  );
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
