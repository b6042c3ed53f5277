/**
 * The `overlay` item (issue 15): a 3-host cluster with etcd, all in namespaces made inside the phase
 * (test/helpers/cluster.ts's TestCluster), and four measurements on it:
 *
 * - attach on an overlay network against attach on a bridge network, on the same host (host 1): fresh
 *   containers attached one at a time through `POST /netd/v1/attach` on the daemon's socket (keep-alive
 *   client, as the netd attach rows), alternating the two networks, warm-ups dropped; each is detached
 *   again (untimed). Also the daemon's own `durationMs` of each attach.
 * - cross-host convergence: a container on host 1 runs overlay-prober.js; for each sample a fresh
 *   container on host 2 runs a TCP server (probe.js, listening before the attach) and is attached on the
 *   overlay network; from the attach request until the prober's first TCP connect to it succeeds. The
 *   prober starts a connect every 2 ms; the client container's ARP retry time is 10 ms (the kernel's
 *   floor; default 1 s) and its neighbour cache is flushed before each sample, so the figure is netd's
 *   convergence, not the client kernel's retry timers. Beside it: until host 1's kernel has the neighbour
 *   entry netd writes for the new address (polled over netlink every ~1 ms once the address is known).
 * - TCP throughput (iperf3) from the host-1 container to the host-2 container across the overlay, from
 *   host 1's namespace to host 2's advertise address across the underlay, and across a bare kernel VXLAN
 *   device between the two host namespaces (the floor); trials alternate.
 * - etcd operations per attach and per detach: etcd's own counters (`/metrics`, over its unix socket)
 *   before and after N attaches (then N detaches) on host 2, minus what an idle window as long as each
 *   shows (lease keep-alives and the like).
 */
import type { ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { TestCluster, within, type ClusterHost } from '../test/helpers/cluster.js';
import { etcdMissing, type TestEtcd } from '../test/helpers/etcd.js';
import { TestContainer } from '../test/helpers/netns.js';
import { type Procs, inNs, log, sleep, stopChild, waitForOutput } from './env.js';
import { Unavailable, iperf, type Recorder } from './harness.js';
import { UnixHttp } from './http.js';
import { Netns } from '../src/kernel/netns.js';
import { Rtnl } from '../src/kernel/rtnetlink.js';
import { vxlanName } from '../src/drivers/overlay/vxlan-segment.js';
import { which } from './peers/docker.js';
import { msSince } from './stats.js';

export interface OverlayOptions {
  /** Timed attaches per network (overlay, bridge). */
  samples: number;
  warmups: number;
  /** Cross-host convergence samples. */
  convergence: number;
  /** Attaches (and detaches) counted in etcd. */
  etcdAttaches: number;
  tputSeconds: number;
  tputTrials: number;
  firewallBackend?: string;
  procs: Procs;
}

export const OVERLAY_NET = 'ovbench';
export const BRIDGE_NET = 'brbench';
const OVERLAY_SUBNET = '198.18.0.0/16';
const BRIDGE_SUBNET = '198.19.0.0/24';
const ECHO_PORT = 7000;
const IPERF_PORT = 5201;
/** The etcd RPCs reported per attach/detach (grpc_server_handled_total by grpc_method). */
export const ETCD_METHODS = ['Put', 'Txn', 'Range', 'DeleteRange', 'LeaseGrant'];
/** etcd's storage counters (etcd_mvcc_*_total): a Txn's puts count as puts here too. */
export const MVCC_COUNTERS = ['put', 'txn', 'range', 'delete'];

const PROBER_JS = join(__dirname, 'overlay-prober.js');
const PROBE_JS = join(__dirname, 'probe.js');

interface AttachReply {
  ipv4?: string;
}

class OverlayBench {
  private readonly apis: UnixHttp[];

  constructor(
    private readonly cl: TestCluster,
    private readonly rec: Recorder,
    private readonly opts: OverlayOptions,
  ) {
    this.apis = cl.hosts.map((h) => new UnixHttp(join(h.daemon.dir, 'netd.sock')));
  }

  close(): void {
    for (const a of this.apis) a.close();
  }

  async networks(): Promise<void> {
    await this.cl.hosts[0].daemon.cli(['create-network', '--driver', 'overlay', '--subnet', OVERLAY_SUBNET, OVERLAY_NET]);
    await this.cl.hosts[0].daemon.cli(['create-network', '--subnet', BRIDGE_SUBNET, BRIDGE_NET]);
    for (const h of this.cl.hosts) {
      await within(10_000, `${OVERLAY_NET} on ${h.ip}`, async () => (await h.daemon.cli(['networks'])).stdout.includes(OVERLAY_NET));
    }
  }

  private async container(): Promise<TestContainer> {
    const c = await TestContainer.start();
    this.cl.containers.push(c);
    return c;
  }

  /** The timed operation: the API round trip of one attach on host `i`; returns its address and the time. */
  private async attach(i: number, c: TestContainer, network: string, name: string): Promise<{ ip: string; ms: number }> {
    const start = process.hrtime.bigint();
    const reply = await this.apis[i].call<AttachReply>('POST', '/netd/v1/attach', { target: { pid: c.pid }, network, name });
    const ms = msSince(start);
    if (!reply.ipv4) throw new Error(`attach of ${name} on host ${i + 1} gave no address: ${JSON.stringify(reply)}`);
    return { ip: reply.ipv4.split('/')[0], ms };
  }

  private async detach(i: number, network: string, name: string): Promise<void> {
    await this.apis[i].call('POST', '/netd/v1/detach', { container: name, network });
  }

  /** Overlay against bridge on host 1, alternating (the first of each pair alternates too), warm-ups dropped. */
  async attachVsBridge(): Promise<void> {
    const logFrom = this.cl.hosts[0].daemon.logs.length;
    const keys: (string | undefined)[] = [];
    for (let i = 0; i < this.opts.warmups + this.opts.samples; i++) {
      const pair = i % 2 === 0 ? [OVERLAY_NET, BRIDGE_NET] : [BRIDGE_NET, OVERLAY_NET];
      for (const network of pair) {
        const kind = network === OVERLAY_NET ? 'overlay' : 'bridge';
        const c = await this.container();
        const name = `${kind}${i}`;
        const { ms } = await this.attach(0, c, network, name);
        const key = i >= this.opts.warmups ? `overlay|attach|${kind}` : undefined;
        if (key) this.rec.add(key, ms);
        keys.push(key);
        await this.detach(0, network, name);
        await c.stop();
      }
    }
    await sleep(100); // the last log lines
    const own = daemonAttachTimes(this.cl.hosts[0].daemon.logs.slice(logFrom));
    if (own.length !== keys.length) {
      this.rec.note(`overlay: host 1's log has ${own.length} attach lines for ${keys.length} attaches; daemon-side times not paired`);
    } else {
      keys.forEach((k, i) => k && this.rec.add(k.replace('|attach|', '|daemon|'), own[i]));
    }
    log(`overlay: ${this.opts.samples} attaches per network measured on host 1`);
  }

  private client?: { c: TestContainer; ip: string };
  private server?: { c: TestContainer; ip: string };

  /** Attach on host 2 → first TCP connect from the container on host 1. */
  async convergence(): Promise<void> {
    const a = await this.container();
    const { ip } = await this.attach(0, a, OVERLAY_NET, 'prober');
    this.client = { c: a, ip };
    // The client's ARP retries at the kernel's floor (10 ms) instead of every second: see the file's comment.
    await a.exec(['sysctl', '-q', '-w', 'net.ipv4.neigh.eth0.retrans_time_ms=10']);
    const entries = await this.neighbourWatch(0);
    const prober = this.opts.procs.spawn(['nsenter', '-t', String(a.pid), '-n', '--', process.execPath, PROBER_JS], { stdio: ['pipe', 'pipe', 'pipe'] });
    try {
      await waitForOutput(prober, /ready/);
      for (let i = 0; i < this.opts.convergence; i++) {
        const b = await this.container();
        const echo = this.opts.procs.spawn(['nsenter', '-t', String(b.pid), '-n', '--', process.execPath, PROBE_JS, 'serve', String(ECHO_PORT)]);
        try {
          await waitForOutput(echo, /listening/);
          await a.exec(['ip', 'neigh', 'flush', 'dev', 'eth0']);
          const start = process.hrtime.bigint();
          const answer = nextLine(prober);
          const att = await this.attach(1, b, OVERLAY_NET, `conv${i}`);
          prober.stdin?.write(`${att.ip} ${ECHO_PORT}\n`);
          const entry = entries.until(att.ip, start).catch(() => NaN);
          const [word, after, attempts] = (await answer).split(' ');
          const total = msSince(start);
          this.rec.add('overlay|converge.entry', await entry);
          if (word !== 'ok') throw new Error(`convergence: host 1 never reached ${att.ip} (conv${i}, host 2): ${word} after ${after} ms, ${attempts} attempts`);
          this.rec.add('overlay|converge', total);
          this.rec.add('overlay|converge.attach', att.ms);
          this.rec.add('overlay|converge.after', Number(after));
          this.server = { c: b, ip: att.ip };
        } finally {
          await stopChild(echo, 'SIGKILL');
        }
        await sleep(20);
      }
    } finally {
      entries.close();
      prober.stdin?.end();
      await stopChild(prober, 'SIGKILL');
    }
    log(`overlay: ${this.opts.convergence} convergence samples`);
  }

  /**
   * A netlink socket in host `i`'s namespace: `until(ip, start)` polls (every ~1 ms) the overlay network's
   * VXLAN device there until netd has written the permanent neighbour entry for `ip`; the time since `start`
   * (NaN after 5 s). Called once the address is known (the attach's answer): an entry already there then
   * counts as written at that moment.
   */
  private async neighbourWatch(i: number): Promise<{ until(ip: string, start: bigint): Promise<number>; close(): void }> {
    const nets = JSON.parse((await this.cl.hosts[i].daemon.cli(['networks', '--format', 'json'])).stdout) as { Id: string; Name: string }[];
    const id = nets.find((n) => n.Name === OVERLAY_NET)?.Id;
    if (!id) throw new Error(`${OVERLAY_NET} is not listed on host ${i + 1}`);
    const ns = Netns.open(this.cl.hosts[i].ns.path);
    let rtnl: Rtnl;
    try {
      rtnl = Rtnl.open(ns);
    } finally {
      ns.close();
    }
    const link = await rtnl.linkByName(vxlanName(id));
    if (!link) {
      rtnl.close();
      throw new Error(`no ${vxlanName(id)} on host ${i + 1}`);
    }
    return {
      until: async (ip, start) => {
        while (msSince(start) < 5000) {
          const found = (await rtnl.neighbours(4, link.index)).some((n) => n.permanent && n.address.toString() === ip);
          if (found) return msSince(start);
          await sleep(1);
        }
        return NaN;
      },
      close: () => rtnl.close(),
    };
  }

  /**
   * iperf3 across the overlay (host-1 container → host-2 container), across the underlay (host 1 → host 2's
   * advertise address), and across a bare kernel VXLAN device between the two host namespaces (VNI 4242,
   * UDP 4790, 203.0.113.0/24: no bridge, no veth, no netd), the floor of what VXLAN costs on this machine.
   */
  async throughput(): Promise<void> {
    const paths = ['overlay', 'underlay', 'vxlan'];
    if (!which('iperf3')) {
      for (const k of paths) this.rec.na(`overlay|tput|${k}`, 'n/a (iperf3 not installed)');
      return;
    }
    const [h1, h2] = this.cl.hosts;
    if (!this.client || !this.server) throw new Error('throughput: no containers from the convergence step');
    await bareVxlan([h1, h2]);
    const servers: ChildProcess[] = [
      this.opts.procs.spawn(inNs(`/proc/${this.server.c.pid}/ns/net`, ['iperf3', '-s', '--forceflush', '-p', String(IPERF_PORT)])),
      // Host 2's server answers on its advertise address and on the bare VXLAN device's.
      this.opts.procs.spawn(inNs(h2.ns.path, ['iperf3', '-s', '--forceflush', '-p', String(IPERF_PORT)])),
    ];
    try {
      for (const s of servers) await waitForOutput(s, /Server listening/);
      for (let t = 0; t < this.opts.tputTrials; t++) {
        this.rec.add('overlay|tput|overlay', await iperf(this.rec, `/proc/${this.client.c.pid}/ns/net`, this.server.ip, IPERF_PORT, this.opts.tputSeconds));
        this.rec.add('overlay|tput|underlay', await iperf(this.rec, h1.ns.path, h2.ip, IPERF_PORT, this.opts.tputSeconds));
        this.rec.add('overlay|tput|vxlan', await iperf(this.rec, h1.ns.path, BARE_VXLAN_IP(1), IPERF_PORT, this.opts.tputSeconds));
      }
    } finally {
      for (const s of servers) await stopChild(s, 'SIGKILL');
    }
    const [eth0] = await this.client.c.ipJson<{ mtu: number }[]>(['link', 'show', 'eth0']);
    this.rec.note(`overlay throughput: ${this.opts.tputTrials} trial(s) of ${this.opts.tputSeconds} s per path, alternating; container MTU ${eth0?.mtu ?? '?'}, underlay 1500`);
  }

  /** etcd's counters around N attaches and N detaches on host 2, less an idle window as long. */
  async etcdOps(): Promise<void> {
    const n = this.opts.etcdAttaches;
    const ctrs: TestContainer[] = [];
    for (let i = 0; i < n; i++) ctrs.push(await this.container());
    for (const op of ['attach', 'detach'] as const) {
      const before = await etcdCounters(this.cl.etcd);
      const start = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        if (op === 'attach') await this.attach(1, ctrs[i], OVERLAY_NET, `etcd${i}`);
        else await this.detach(1, OVERLAY_NET, `etcd${i}`);
      }
      await sleep(500); // the leased writes are queued: let them reach etcd (asking the daemon would read etcd)
      const windowMs = msSince(start);
      const after = await etcdCounters(this.cl.etcd);
      const idle0 = await etcdCounters(this.cl.etcd);
      await sleep(windowMs);
      const idle1 = await etcdCounters(this.cl.etcd);
      for (const k of new Set([...Object.keys(after), ...Object.keys(idle1)])) {
        const busy = (after[k] ?? 0) - (before[k] ?? 0);
        const idle = (idle1[k] ?? 0) - (idle0[k] ?? 0);
        this.rec.set(`overlay|etcd|${op}|${k}`, Math.max(0, busy - idle) / n);
        this.rec.set(`overlay|etcd|${op}|${k}|idle`, idle);
      }
    }
    this.rec.set('overlay|etcd|n', n);
    log(`overlay: etcd counters over ${n} attaches and detaches`);
  }
}

const BARE_VXLAN_IP = (i: number) => `203.0.113.${i + 1}`;

/** A VXLAN device `vxbare` in each of two host namespaces, pointing at the other: the kernel's VXLAN alone. */
async function bareVxlan(hosts: ClusterHost[]): Promise<void> {
  for (const [i, h] of hosts.entries()) {
    const peer = hosts[1 - i];
    await h.ns.exec(['ip', 'link', 'add', 'vxbare', 'type', 'vxlan', 'id', '4242', 'local', h.ip, 'remote', peer.ip, 'dstport', '4790', 'dev', 'u0']);
    await h.ns.exec(['ip', 'addr', 'add', `${BARE_VXLAN_IP(i)}/24`, 'dev', 'vxbare']);
    await h.ns.exec(['ip', 'link', 'set', 'vxbare', 'up']);
  }
}

/** The next line a child prints on stdout. */
function nextLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (d: Buffer) => {
      seen += d.toString();
      const nl = seen.indexOf('\n');
      if (nl >= 0) {
        child.stdout?.off('data', onData);
        child.off('exit', onExit);
        resolve(seen.slice(0, nl));
      }
    };
    const onExit = (code: number | null) => reject(new Error(`prober exited (${code})`));
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  });
}

/** The daemon's `durationMs` of each successful attach, in order, from its JSON log. */
export function daemonAttachTimes(logs: string): number[] {
  const out: number[] = [];
  for (const line of logs.split('\n')) {
    if (!line.includes('"attach"')) continue;
    try {
      const l = JSON.parse(line) as { op?: string; outcome?: string; durationMs?: number };
      if (l.op === 'attach' && l.outcome === 'ok' && typeof l.durationMs === 'number') out.push(l.durationMs);
    } catch {
      /* not a log line */
    }
  }
  return out;
}

/**
 * etcd's counters from its Prometheus text: `rpc.METHOD` (grpc_server_handled_total summed over codes, for
 * the methods of ETCD_METHODS) and `mvcc.NAME` (etcd_mvcc_NAME_total).
 */
export function parseEtcdMetrics(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const rpc = /^grpc_server_handled_total\{[^}]*grpc_method="(\w+)"[^}]*\}\s+(\S+)/.exec(line);
    if (rpc && ETCD_METHODS.includes(rpc[1])) out[`rpc.${rpc[1]}`] = (out[`rpc.${rpc[1]}`] ?? 0) + Number(rpc[2]);
    const mvcc = /^etcd_mvcc_(\w+)_total(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (mvcc && MVCC_COUNTERS.includes(mvcc[1])) out[`mvcc.${mvcc[1]}`] = (out[`mvcc.${mvcc[1]}`] ?? 0) + Number(mvcc[2]);
  }
  return out;
}

async function etcdCounters(etcd: TestEtcd): Promise<Record<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    const req = request({ socketPath: etcd.socketPath, path: '/metrics', timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`etcd /metrics: HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('etcd /metrics: no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
  const counters = parseEtcdMetrics(text);
  if (Object.keys(counters).length === 0) throw new Error('etcd /metrics has none of the counters looked for');
  return counters;
}

export async function overlayItem(rec: Recorder, opts: OverlayOptions): Promise<void> {
  const why = etcdMissing();
  if (why) throw new Unavailable(why);
  // TestDaemon starts each host's netd with the backend this names.
  if (opts.firewallBackend) process.env.NETD_TEST_FIREWALL_BACKEND = opts.firewallBackend;
  log('overlay: starting a 3-host cluster with etcd');
  const cl = await TestCluster.create('bov');
  const bench = new OverlayBench(cl, rec, opts);
  try {
    await bench.networks();
    await bench.attachVsBridge();
    await bench.convergence();
    await bench.throughput();
    await bench.etcdOps();
    rec.note(`overlay: 3 hosts, ${opts.samples} attaches per network after ${opts.warmups} warm-ups each, ${opts.convergence} convergence samples, ${opts.etcdAttaches} attaches counted in etcd; the hosts' daemons log at debug level (test/helpers' TestDaemon)`);
  } finally {
    bench.close();
    await cl.destroy();
  }
}
