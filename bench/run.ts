/**
 * `npm run bench`: netd against its peers, side by side, on this machine, in one run.
 *
 * For every phase (one implementation × one measurement) the runner makes a fresh network namespace
 * with TestNetns (verified new and holding only `lo`), runs `phase.js` inside it, collects its JSON
 * result and deletes the namespace. It installs nothing: peers that are not installed, or dockerd when
 * it does not start, are reported n/a. The table goes to stdout and to bench/results/latest.md.
 * Exit status: 0 unless something failed to work (thresholds never fail the run).
 *
 *   node dist/bench/run.js [--quick] [--repeat N] [--only LIST] [--skip LIST] [--backends LIST]
 *                          [--samples N] [--docker-max N] [--out FILE] [--install-peers] [--profile] [--trace]
 * (options.ts has the options and the plan of phases.)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../test/helpers/daemon.js';
import { TestNetns, requireRoot, run } from '../test/helpers/netns.js';
import { ENV_MACHINE_MNTNS, ENV_MACHINE_NETNS, ENV_PHASE_NETNS, killProcessesInNetns, nsInode, removeCgroup, sleep } from './env.js';
import type { PhaseResult } from './harness.js';
import type { ImplId, Item, PhaseConfig } from './phase.js';
import { USAGE, baseConfig, parseArgs, phaseConfig, plan, type Options } from './options.js';
import { dnsMissing } from './dns-item.js';
import { etcdMissing } from '../test/helpers/etcd.js';
import { installPeers } from './peers/install.js';
import { BackendUnavailable } from './netd.js';
import { cniPluginDir } from './peers/cni.js';
import { netavarkBinary } from './peers/netavark.js';
import { dockerPluginMissing, which } from './peers/docker.js';
import { pluginMissing } from './netd-cni.js';
import { renderReport, type RunInfo } from './report.js';

const PHASE_JS = join(__dirname, 'phase.js');

/** Why an implementation cannot run here at all (checked before a namespace is made), or undefined. */
function precheck(impl: ImplId, item: Item): string | undefined {
  if (item === 'dns') return dnsMissing();
  if (item === 'overlay') return etcdMissing();
  if (item === 'throughput' && !which('iperf3')) return 'iperf3 not installed (apt-get install iperf3)';
  if (impl === 'netd-cni' || impl === 'netd-cni-shim') return pluginMissing(impl === 'netd-cni' ? 'js' : 'shim');
  if (impl === 'cni' && !cniPluginDir()) return 'CNI plugins not installed (apt-get install containernetworking-plugins)';
  if (impl === 'netavark' && !netavarkBinary()) return 'netavark not installed (apt-get install netavark, or npm run bench -- --install-peers)';
  if ((impl === 'docker' || impl === 'docker-netd') && !(which('dockerd') && which('docker'))) return 'dockerd not installed (apt-get install docker.io)';
  if (impl === 'docker-netd') return dockerPluginMissing();
  return undefined;
}

let current: { ns: TestNetns; child: ReturnType<typeof spawn> } | undefined;

async function runPhase(impl: ImplId, item: Item, key: string, cfg: PhaseConfig, machineIno: number): Promise<PhaseResult> {
  const phase = `${impl}:${item}`;
  const ns = await TestNetns.create(`b${impl}${item.slice(0, 3)}${cfg.firewallBackend?.slice(0, 2) ?? ''}`);
  const nsIno = nsInode(ns.path);
  const cfgPath = join(cfg.work, 'config.json');
  writeFileSync(cfgPath, JSON.stringify(cfg));
  try {
    const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, PHASE_JS, phase, cfgPath], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, [ENV_MACHINE_NETNS]: String(machineIno), [ENV_MACHINE_MNTNS]: String(nsInode('/proc/self/ns/mnt')), [ENV_PHASE_NETNS]: String(nsInode(ns.path)) },
    });
    current = { ns, child };
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    current = undefined;
    if (existsSync(cfg.resultPath)) return { ...(JSON.parse(readFileSync(cfg.resultPath, 'utf8')) as PhaseResult), phase: key, backend: cfg.firewallBackend };
    return { phase: key, impl, backend: cfg.firewallBackend, loadavg: [], durationS: 0, samples: {}, values: {}, na: {}, notes: [], error: `phase exited with ${code} without a result` };
  } finally {
    const killed = killProcessesInNetns(nsIno) + (await removeCgroup(cfg.cgroupParent, (m) => process.stderr.write(`[bench] ${m}\n`)));
    if (killed > 0) process.stderr.write(`[bench] ${phase}: killed ${killed} leftover process(es)\n`);
    await ns.destroy();
  }
}

/**
 * Waits until the kernel has destroyed the namespaces released so far (a phase drops up to ~1000 with
 * their veths and rules; that work runs in the background and would disturb the next phase). Network
 * namespaces are cleaned up in the order they are released, so a barrier works: namespace A holding one
 * end of a veth whose peer is in B is released now, and when the peer vanishes from B, everything
 * released before A is gone too. Returns the seconds waited.
 */
async function waitForNetnsCleanup(timeoutS = 180): Promise<number> {
  const start = Date.now();
  const a = await TestNetns.create('barriera');
  const b = await TestNetns.create('barrierb');
  try {
    await a.exec(['ip', 'link', 'add', 'barrier0', 'type', 'veth', 'peer', 'name', 'barrier1', 'netns', b.name]);
    await a.destroy();
    while ((Date.now() - start) / 1000 < timeoutS) {
      const r = await b.exec(['ip', 'link', 'show', 'barrier1'], { allowFail: true });
      if (r.code !== 0) break;
      await sleep(200);
    }
  } finally {
    await a.destroy();
    await b.destroy();
  }
  return (Date.now() - start) / 1000;
}

async function gitDescribe(): Promise<string> {
  const head = await run(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD'], { allowFail: true });
  if (head.code !== 0) return 'unknown';
  const dirty = (await run(['git', '-C', REPO, 'status', '--porcelain', '--untracked-files=no'], { allowFail: true })).stdout.trim() !== '';
  return `${head.stdout.trim()}${dirty ? ' + uncommitted changes' : ''}`;
}

async function firstLine(argv: string[]): Promise<string | undefined> {
  try {
    const r = await run(argv, { allowFail: true, timeoutMs: 10_000 });
    return (r.stdout || r.stderr).trim().split('\n')[0] || undefined;
  } catch {
    return undefined;
  }
}

async function dpkgVersion(pkg: string): Promise<string | undefined> {
  const r = await run(['dpkg-query', '-W', '-f=${Status} ${Version}', pkg], { allowFail: true }).catch(() => undefined);
  const m = r && /install ok installed (\S+)/.exec(r.stdout);
  return m ? m[1] : undefined;
}

async function machineInfo(o: Options): Promise<RunInfo> {
  const osRelease = existsSync('/etc/os-release') ? /PRETTY_NAME="?([^"\n]+)/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] : undefined;
  const nv = netavarkBinary();
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
  return {
    date: new Date().toISOString(),
    mode: o.quick ? 'quick' : 'full',
    repeat: o.repeat,
    backends: o.backends,
    machine: `${osRelease ?? 'Linux'}, kernel ${release()}, ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`,
    versions: {
      node: process.version,
      netd: `${pkg.version} (${await gitDescribe()})`,
      iproute2: (await firstLine(['ip', '-V'])) ?? 'n/a',
      iptables: (await firstLine(['iptables', '-V'])) ?? 'n/a',
      'CNI plugins': cniPluginDir() ? ((await dpkgVersion('containernetworking-plugins')) ?? `in ${cniPluginDir()}`) : 'not installed',
      netavark: nv ? ((await firstLine([nv, '--version'])) ?? 'installed') : 'not installed',
      dockerd: which('dockerd') ? ((await firstLine(['dockerd', '--version'])) ?? 'installed') : 'not installed',
      iperf3: which('iperf3') ? ((await firstLine(['iperf3', '--version'])) ?? 'installed') : 'not installed',
    },
    loadStart: loadavg(),
    loadEnd: [],
    durationS: 0,
    dockerMax: o.dockerMax,
    peerSamples: 0,
    dockerConcurrency: 0,
  };
}

async function main(): Promise<number> {
  const o: Options = parseArgs(process.argv.slice(2));
  if (o.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  requireRoot();
  if (o.installPeers) await installPeers(plan(o).map((p) => p.impl), plan(o).map((p) => p.item), (m) => process.stderr.write(`[bench] ${m}\n`));
  if (!existsSync(PHASE_JS)) throw new Error(`${PHASE_JS} missing: run \`npm run build\` first`);
  const machineIno = nsInode('/proc/self/ns/net');
  const started = Date.now();
  const info = await machineInfo(o);
  const base = baseConfig(o);
  info.peerSamples = phaseConfig(o, 'cni', base).samples;
  info.dockerConcurrency = phaseConfig(o, 'docker', base).concurrency;
  info.dockerRunSamples = phaseConfig(o, 'docker', base, 'dockerrun').samples;
  const workRoot = mkdtempSync('/var/tmp/netd-bench-');
  const profileDir = o.profile ? join(REPO, 'bench/results/profiles') : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const results: PhaseResult[] = [];
  process.stderr.write(`[bench] ${info.mode} run, ${o.repeat} repetition(s); load average ${info.loadStart.map((l) => l.toFixed(2)).join(' ')}\n`);

  const stop = () => {
    if (current) current.child.kill('SIGTERM');
    process.stderr.write('[bench] interrupted\n');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const phases = plan(o);
  /** Backends found unavailable (the daemon would not start with them): their later phases are not started. */
  const noBackend = new Map<string, string>();
  try {
    for (let r = 0; r < o.repeat; r++) {
      for (const { impl, item, backend, key } of phases) {
        const why = precheck(impl, item) ?? (backend ? noBackend.get(backend) : undefined);
        if (why) {
          if (r === 0) process.stderr.write(`[bench] ${key}: n/a (${why})\n`);
          results.push({ phase: key, impl, backend, loadavg: loadavg(), durationS: 0, samples: {}, values: {}, na: {}, notes: [], unavailable: why });
          continue;
        }
        const work = join(workRoot, `${r}-${impl}-${item}-${backend ?? ''}`);
        mkdirSync(work, { recursive: true });
        const cgroupParent = `netd-bench-${workRoot.split('-').pop()}-${r}`;
        const per = phaseConfig(o, impl, base, item);
        // The CLI figure (node start-up) does not depend on the backend: only with the first.
        const cliSamples = backend && backend !== o.backends[0] ? 0 : per.cliSamples;
        const cfg: PhaseConfig = { ...per, cliSamples, work, resultPath: join(work, 'result.json'), profileDir, cgroupParent, trace: o.trace, firewallBackend: backend };
        process.stderr.write(`[bench] ${key} (run ${r + 1}/${o.repeat}), load ${loadavg()[0].toFixed(2)}\n`);
        const res = await runPhase(impl, item, key, cfg, machineIno);
        process.stderr.write(`[bench] ${key}: ${res.error ? `FAILED: ${res.error}` : res.unavailable ? `n/a: ${res.unavailable}` : 'done'} in ${res.durationS.toFixed(1)} s\n`);
        if (backend && res.unavailable?.startsWith(BackendUnavailable.PREFIX)) noBackend.set(backend, res.unavailable);
        results.push(res);
        rmSync(work, { recursive: true, force: true });
        // Namespaces just dropped are torn down by the kernel in the background: let that finish.
        const settled = await waitForNetnsCleanup();
        process.stderr.write(`[bench] kernel teardown of the phase's namespaces: ${settled.toFixed(1)} s\n`);
      }
    }
  } finally {
    rmSync(workRoot, { recursive: true, force: true });
  }

  info.loadEnd = loadavg();
  info.durationS = (Date.now() - started) / 1000;
  const report = renderReport(info, results, base);
  process.stdout.write(report);
  const out = o.out ?? join(REPO, 'bench/results', o.quick ? 'latest-quick.md' : 'latest.md');
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, report);
  process.stderr.write(`[bench] written to ${out} (${info.durationS.toFixed(0)} s)\n`);
  return results.some((r) => r.error) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
