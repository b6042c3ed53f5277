/**
 * `npm run bench` options and the plan they make: which phases run (implementation × item × firewall
 * backend) and with what counts. Pure logic, unit-tested (test/unit/bench-goals.test.ts).
 */
import { FIREWALL_BACKEND_NAMES } from '../src/daemon/defaults.js';
import type { ImplId, Item, PhaseConfig } from './phase.js';

export const USAGE = `usage: npm run bench -- [options]
  --quick          smaller counts (1st/10th/100th container, 0/100/1000 ports): a few minutes
  --repeat N       run every phase N times and report medians of the per-run figures (default 1)
  --only LIST      only these implementations/items/phases, comma-separated
                   (netd, netd-cni, netd-cni-shim, ip, rtnl, cni, netavark, docker, docker-netd; attach,
                   networks, ports, concurrency, throughput, dockerrun, dns, overlay;
                   or IMPL:ITEM)
  --skip LIST      the same, to leave out
  --backends LIST  netd's firewall backends to measure, comma-separated (default: ${FIREWALL_BACKEND_NAMES.join(',')});
                   the items that depend on the firewall run once per backend, the others with the first
  --samples N      attach/detach cycles per level (default 30, quick 10)
  --docker-max N   most containers dockerd is given (default 100: 1000 containers cost ~13 GB of shims)
  --out FILE       where to write the table (default bench/results/latest.md, quick: latest-quick.md)
  --install-peers  apt-get install the Debian packages of the selected peers that are missing, first
  --profile        write a V8 CPU profile of netd's daemon during the attach phase to bench/results/profiles/
  --trace          time what netd's attach/detach spend their time on (netlink, execs, state files) and
                   add that breakdown to the report`;

export type Backend = (typeof FIREWALL_BACKEND_NAMES)[number];

export interface Options {
  quick: boolean;
  repeat: number;
  only: string[];
  skip: string[];
  backends: Backend[];
  samples?: number;
  dockerMax: number;
  out?: string;
  installPeers: boolean;
  profile: boolean;
  trace: boolean;
  help?: boolean;
}

export function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, repeat: 1, only: [], skip: [], backends: [...FIREWALL_BACKEND_NAMES], dockerMax: 100, installPeers: false, profile: false, trace: false };
  const num = (v: string | undefined, flag: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive integer`);
    return n;
  };
  const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--profile') o.profile = true;
    else if (a === '--trace') o.trace = true;
    else if (a === '--install-peers') o.installPeers = true;
    else if (a === '--repeat') o.repeat = num(argv[++i], a);
    else if (a === '--samples') o.samples = num(argv[++i], a);
    else if (a === '--docker-max') o.dockerMax = num(argv[++i], a);
    else if (a === '--only') o.only = list(argv[++i]);
    else if (a === '--skip') o.skip = list(argv[++i]);
    else if (a === '--backends') o.backends = parseBackends(argv[++i]);
    else if (a === '--out') o.out = argv[++i];
    else if (a === '--help' || a === '-h') o.help = true;
    else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  return o;
}

function parseBackends(v: string | undefined): Backend[] {
  const names = (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) throw new Error(`--backends needs a list (${FIREWALL_BACKEND_NAMES.join(',')})`);
  for (const n of names) {
    if (!(FIREWALL_BACKEND_NAMES as readonly string[]).includes(n)) throw new Error(`--backends: unknown backend ${JSON.stringify(n)} (netd has: ${FIREWALL_BACKEND_NAMES.join(', ')})`);
  }
  return [...new Set(names)] as Backend[];
}

export const ITEMS: Item[] = ['attach', 'networks', 'ports', 'concurrency', 'throughput', 'dockerrun', 'dns', 'overlay'];
export const IMPLS_BY_ITEM: Record<Item, ImplId[]> = {
  attach: ['netd', 'netd-cni', 'netd-cni-shim', 'rtnl', 'ip', 'cni', 'netavark', 'docker'],
  networks: ['netd', 'docker'],
  ports: ['netd', 'cni', 'netavark', 'docker'],
  // The Rtnl floor too: the same kernel requests issued at once in one process, no daemon (what the wall time can reach).
  concurrency: ['netd', 'rtnl', 'cni', 'netavark', 'docker'],
  throughput: ['netd', 'cni', 'netavark', 'docker'],
  // dockerd's own bridge driver beside dockerd driving netd through its remote plugin (issue 14).
  dockerrun: ['docker', 'docker-netd'],
  // netd's embedded DNS against aardvark-dns and dnsmasq, one phase (bench/dns/dns-bench.ts).
  dns: ['netd'],
  // Overlay networks across a 3-host cluster with etcd, in namespaces (bench/overlay.ts).
  overlay: ['netd'],
};

/**
 * The phases whose figures depend on netd's firewall backend, run once per backend: netd's own attach
 * and detach (with a published port: the port's rules), the cost of one more port, create/rm-network
 * (a network's chains and rules are most of it), and concurrent attaches. The others run once, with the
 * first backend: the peers (no netd), the floors, netd-cni (the same daemon behind a process per call: its
 * difference from netd is the process, not the firewall), throughput (the kernel forwards either way),
 * dockerrun and DNS.
 */
export function dependsOnBackend(impl: ImplId, item: Item): boolean {
  return impl === 'netd' && (item === 'attach' || item === 'ports' || item === 'networks' || item === 'concurrency');
}

export function selected(o: Pick<Options, 'only' | 'skip'>, impl: ImplId, item: Item): boolean {
  const names = [impl, item, `${impl}:${item}`];
  if (o.only.length > 0 && !names.some((n) => o.only.includes(n))) return false;
  return !names.some((n) => o.skip.includes(n));
}

export interface PlannedPhase {
  impl: ImplId;
  item: Item;
  /** netd's firewall backend for this phase (every phase that starts netd has one). */
  backend?: Backend;
  /** The result key: `IMPL:ITEM`, `@BACKEND` appended for the phases run once per backend. */
  key: string;
}

/** Every phase of one repetition, in order: per item, per implementation, per backend where it matters. */
export function plan(o: Pick<Options, 'only' | 'skip' | 'backends'>): PlannedPhase[] {
  const out: PlannedPhase[] = [];
  for (const item of ITEMS) {
    for (const impl of IMPLS_BY_ITEM[item]) {
      if (!selected(o, impl, item)) continue;
      if (dependsOnBackend(impl, item)) {
        for (const backend of o.backends) out.push({ impl, item, backend, key: phaseKey(impl, item, backend) });
      } else {
        const usesNetd = impl.startsWith('netd') || impl === 'docker-netd' || item === 'dns' || item === 'overlay';
        out.push({ impl, item, backend: usesNetd ? o.backends[0] : undefined, key: phaseKey(impl, item) });
      }
    }
  }
  return out;
}

export function phaseKey(impl: string, item: string, backend?: string): string {
  return `${impl}:${item}${backend ? `@${backend}` : ''}`;
}

export type BaseConfig = Omit<PhaseConfig, 'work' | 'resultPath' | 'cgroupParent'>;

export function baseConfig(o: Pick<Options, 'quick' | 'samples'>): BaseConfig {
  const samples = o.samples ?? (o.quick ? 10 : 30);
  const few = o.samples ?? (o.quick ? 10 : 20);
  return o.quick
    ? { levels: [1, 10, 100], samples, portSamples: few, networkSamples: few, cliSamples: 5, networkLevels: [1, 10], portLevels: [0, 100, 1000], portsPerContainer: 100, fillBudgetS: 30, concurrency: 100, tputSeconds: 2, tputTrials: 1, runLevels: [1, 10], dnsSeconds: 2, dnsNames: 20 }
    : { levels: [1, 100, 1000], samples, portSamples: few, networkSamples: few, cliSamples: 10, networkLevels: [1, 100], portLevels: [0, 1000, 10000], portsPerContainer: 100, fillBudgetS: 90, concurrency: 100, tputSeconds: 2, tputTrials: 3, runLevels: [1, 100], dnsSeconds: 4, dnsNames: 50 };
}

/**
 * Per-implementation adjustments, to keep a full run near 20 minutes with both backends, netavark and
 * DNS: unless --samples says otherwise, the peers (tens of ms per operation, seconds per phase) get 15
 * attach cycles per level and 75 s to fill ports, dockerd 10 create/rm-network cycles and 10 containers per
 * level in `dockerrun`, netd-cni 15 cycles (its rows are not goals); dockerd at most --docker-max containers.
 */
export function phaseConfig(o: Pick<Options, 'quick' | 'samples' | 'dockerMax'>, impl: ImplId, base: BaseConfig, item?: Item): BaseConfig {
  const docker = impl === 'docker' || impl === 'docker-netd';
  const peer = impl === 'cni' || impl === 'netavark' || docker;
  let cfg = base;
  if (o.samples === undefined && !o.quick) {
    if (peer) cfg = { ...cfg, samples: Math.min(cfg.samples, 15), fillBudgetS: Math.min(cfg.fillBudgetS, 75), networkSamples: Math.min(cfg.networkSamples, 10) };
    if (docker && item === 'dockerrun') cfg = { ...cfg, samples: Math.min(cfg.samples, 10) };
    if (impl === 'netd-cni' || impl === 'netd-cni-shim') cfg = { ...cfg, samples: Math.min(cfg.samples, 15) };
  }
  if (!docker) return cfg;
  // Every concurrent attach needs a running container (~0.5 s to make): a quick run gives dockerd 25.
  return { ...cfg, levels: cfg.levels.filter((l) => l <= o.dockerMax), runLevels: cfg.runLevels.filter((l) => l <= o.dockerMax), concurrency: Math.min(cfg.concurrency, o.dockerMax, o.quick ? 25 : Infinity) };
}
