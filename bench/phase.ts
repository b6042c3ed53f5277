/**
 * One benchmark phase: one implementation × one measurement, run by run.ts inside a fresh network
 * namespace (`ip netns exec`). Usage (internal): node phase.js IMPL:ITEM CONFIG.json
 * It writes a PhaseResult as JSON to the config's resultPath and exits 0; failures are in the result.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Procs, createOutside, enterPhaseNamespace, log, memoryOf, resetPeakRss } from './env.js';
import { Recorder, Unavailable, attachLevels, concurrentAttaches, networkLevels, portCost, throughput, type Impl, type NetworkOps } from './harness.js';
import { NetdImpl, cliCycles } from './netd.js';
import { IpBatchFloor, RtnlFloor } from './floor.js';
import { CniImpl } from './peers/cni.js';
import { NetavarkImpl } from './peers/netavark.js';
import { DockerImpl } from './peers/docker.js';
import { NetdCniImpl, pluginStartup } from './netd-cni.js';
import { dockerRunLevels } from './docker-run.js';
import { SelfContainedImpl, dnsItem } from './dns-item.js';
import { overlayItem } from './overlay.js';

/** What run.ts passes to every phase. */
export interface PhaseConfig {
  /** A directory on disk for this phase (data roots, IPAM files, images). */
  work: string;
  resultPath: string;
  levels: number[];
  /** Attach/detach cycles per level. */
  samples: number;
  /** Cycles per level of the ports and networks items. */
  portSamples: number;
  networkSamples: number;
  cliSamples: number;
  networkLevels: number[];
  portLevels: number[];
  portsPerContainer: number;
  fillBudgetS: number;
  concurrency: number;
  tputSeconds: number;
  tputTrials: number;
  /** dockerrun: the Nth containers measured (1st, 100th). */
  runLevels: number[];
  /** dns: seconds per dnsperf run and local names (bench/dns/dns-bench.ts's --seconds, --names). */
  dnsSeconds?: number;
  dnsNames?: number;
  /** netd's `--firewall-backend` (phases that start netd). */
  firewallBackend?: string;
  profileDir?: string;
  /** Trace netd's daemon (trace-preload) in the attach and ports phases. */
  trace?: boolean;
  /** cgroup (name) dockerd puts its containers under. */
  cgroupParent: string;
}

export type ImplId = 'netd' | 'netd-cni' | 'netd-cni-shim' | 'ip' | 'rtnl' | 'cni' | 'netavark' | 'docker' | 'docker-netd';
export type Item = 'attach' | 'networks' | 'ports' | 'concurrency' | 'throughput' | 'dockerrun' | 'dns' | 'overlay';

/** Runs of each executable for the start-up figures (hyperfine's habit: median of 30). */
const STARTUP_SAMPLES = 30;

function makeImpl(id: ImplId, item: Item, cfg: PhaseConfig, procs: Procs, outsideNs: string): Impl {
  const withNetwork = item !== 'networks';
  // The DNS item starts its own daemon and peers (bench/dns/dns-bench.ts): nothing to set up here.
  if (item === 'dns') return new SelfContainedImpl('the dns item');
  // So does the overlay item (bench/overlay.ts: a cluster of namespaces with etcd).
  if (item === 'overlay') return new SelfContainedImpl('the overlay item');
  switch (id) {
    case 'netd':
      return new NetdImpl(procs, {
        work: cfg.work,
        outsideNs,
        network: withNetwork,
        firewallBackend: cfg.firewallBackend,
        profileDir: item === 'attach' ? cfg.profileDir : undefined,
        traceFile: cfg.trace && (item === 'attach' || item === 'ports') ? `${cfg.work}/trace.json` : undefined,
      });
    case 'netd-cni':
    case 'netd-cni-shim':
      return new NetdCniImpl(id === 'netd-cni' ? 'js' : 'shim', procs, { work: cfg.work, outsideNs, firewallBackend: cfg.firewallBackend });
    case 'ip':
      return new IpBatchFloor();
    case 'rtnl':
      return new RtnlFloor();
    case 'cni':
      return new CniImpl(cfg.work);
    case 'netavark':
      return new NetavarkImpl(cfg.work);
    case 'docker':
    case 'docker-netd':
      return new DockerImpl(procs, cfg.work, cfg.cgroupParent, { network: withNetwork, netdPlugin: id === 'docker-netd', firewallBackend: cfg.firewallBackend });
  }
}

function networkOpsOf(impl: Impl): NetworkOps | undefined {
  if (impl instanceof NetdImpl) {
    return {
      existing: 1, // the predefined `bridge` network
      create: async (name, subnet) => (await impl.http.call<{ Id: string }>('POST', '/networks/create', { Name: name, Driver: 'bridge', IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] } })).Id,
      remove: async (id) => void (await impl.http.call('DELETE', `/networks/${id}`)),
    };
  }
  if (impl instanceof DockerImpl) return impl.networkOps();
  return undefined;
}

async function runItem(impl: Impl, item: Item, cfg: PhaseConfig, rec: Recorder, procs: Procs, outsideNs: string): Promise<void> {
  switch (item) {
    case 'attach': {
      if (impl instanceof NetdImpl && cfg.cliSamples > 0) await cliCycles(impl, rec, cfg.cliSamples);
      if (impl instanceof NetdCniImpl && impl.kind === 'js') pluginStartup(rec, STARTUP_SAMPLES);
      const ports = await impl.portSupport();
      await attachLevels(impl, rec, { levels: cfg.levels, samples: cfg.samples, ports, outsideNs, procs });
      return;
    }
    case 'networks': {
      const ops = networkOpsOf(impl);
      if (!ops) throw new Error(`${impl.id} has no network objects`);
      await networkLevels(ops, rec, cfg.networkLevels, cfg.networkSamples);
      return;
    }
    case 'ports': {
      const ports = await impl.portSupport();
      if (ports !== true) {
        for (const l of cfg.portLevels) for (const v of ['port', 'noport']) rec.na(`portadd|${v}|${l}`, ports);
        return;
      }
      await portCost(impl, rec, { levels: cfg.portLevels, perContainer: cfg.portsPerContainer, samples: cfg.portSamples, fillBudgetS: cfg.fillBudgetS });
      return;
    }
    case 'concurrency':
      await concurrentAttaches(impl, rec, cfg.concurrency, resetPeakRss, memoryOf);
      return;
    case 'throughput':
      await throughput(impl, rec, await impl.portSupport(), { seconds: cfg.tputSeconds, trials: cfg.tputTrials, outsideNs, procs });
      return;
    case 'dockerrun':
      if (!(impl instanceof DockerImpl)) throw new Error(`${impl.id} is not dockerd`);
      await dockerRunLevels(impl, rec, { levels: cfg.runLevels, samples: cfg.samples });
      return;
    case 'dns':
      await dnsItem(rec, { seconds: cfg.dnsSeconds ?? 4, names: cfg.dnsNames ?? 50, firewallBackend: cfg.firewallBackend });
      return;
    case 'overlay':
      // Warm-ups: the first attaches on a host make the overlay network's bridge and VXLAN device. At least
      // 3 iperf3 trials, quick or not: one 2 s trial swung from 79 to 102 % on this shared VM.
      await overlayItem(rec, { samples: cfg.samples, warmups: cfg.samples >= 20 ? 3 : 2, convergence: Math.min(cfg.samples, 20), etcdAttaches: cfg.samples, tputSeconds: cfg.tputSeconds, tputTrials: Math.max(cfg.tputTrials, 3), firewallBackend: cfg.firewallBackend, procs });
      return;
  }
}

async function main(): Promise<void> {
  const [phase, configPath] = process.argv.slice(2);
  const [implId, item] = (phase ?? '').split(':') as [ImplId, Item];
  const cfg = JSON.parse(readFileSync(configPath, 'utf8')) as PhaseConfig;
  const rec = new Recorder(phase, implId);
  const procs = new Procs();
  let impl: Impl | undefined;
  try {
    await enterPhaseNamespace(phase);
    const outsideNs = await createOutside();
    impl = makeImpl(implId, item, cfg, procs, outsideNs);
    await impl.setup();
    await runItem(impl, item, cfg, rec, procs, outsideNs);
    await impl.finish?.(rec);
  } catch (err) {
    if (err instanceof Unavailable) {
      rec.result.unavailable = err.message;
      log(`unavailable: ${err.message}`);
    } else {
      rec.result.error = err instanceof Error ? err.message : String(err);
      log(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  } finally {
    try {
      await impl?.teardown();
    } catch (err) {
      rec.result.error ??= `teardown: ${(err as Error).message}`;
    }
    await procs.killAll();
  }
  writeFileSync(cfg.resultPath, JSON.stringify(rec.done()));
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`phase crashed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(2);
  },
);
