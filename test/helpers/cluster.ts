/**
 * A cluster on one machine, every part in a throwaway namespace:
 *
 *              ┌── h1 (netd, 192.0.2.11) ── the "outside" o1 (198.51.100.2) behind h1
 *   sw: br0 ───┼── h2 (netd, 192.0.2.12)
 *   192.0.2/24 ├── h3 (netd, 192.0.2.13)
 *              └── etcd (192.0.2.2:2379)
 *
 * `sw` is the underlay's switch (a bridge in a namespace of its own); each host namespace has one leg on
 * it (`u0`, its advertise address) and runs its own netd daemon with its own data root and socket, in
 * cluster mode against the etcd. Containers are processes in network namespaces of their own, attached by
 * pid through a host's daemon.
 */
import assert from 'node:assert/strict';
import { TestDaemon } from './daemon.js';
import { TestContainer, TestNetns } from './netns.js';
import { TestEtcd, etcdMissing } from './etcd.js';

export const ETCD_IP = '192.0.2.2';
export const hostIp = (i: number) => `192.0.2.${11 + i}`;
export const OUTSIDE_HOST = '198.51.100.1';
export const OUTSIDE = '198.51.100.2';

export interface ClusterHost {
  ns: TestNetns;
  daemon: TestDaemon;
  ip: string;
}

export class TestCluster {
  readonly hosts: ClusterHost[] = [];
  readonly containers: TestContainer[] = [];
  private readonly namespaces: TestNetns[] = [];
  etcd!: TestEtcd;
  outside?: TestNetns;

  static async create(tag: string, opts: { hosts?: number; leaseTtl?: number; outside?: boolean; daemonArgs?: string[] } = {}): Promise<TestCluster> {
    const missing = etcdMissing();
    assert.equal(missing, undefined, `the cluster tests need etcd: ${missing}`);
    const c = new TestCluster();
    try {
      const sw = await c.netns(`${tag}sw`);
      await sw.exec(['ip', 'link', 'add', 'br0', 'type', 'bridge']);
      await sw.exec(['ip', 'link', 'set', 'br0', 'up']);
      const etcdNs = await c.netns(`${tag}e`);
      await c.leg(sw, etcdNs, 'e', `${ETCD_IP}/24`);
      c.etcd = await TestEtcd.start(etcdNs, ETCD_IP);
      for (let i = 0; i < (opts.hosts ?? 3); i++) {
        const ns = await c.netns(`${tag}h${i + 1}`);
        await c.leg(sw, ns, `h${i + 1}`, `${hostIp(i)}/24`);
        const daemon = await TestDaemon.start(ns, ['--cluster-store', `etcd://${ETCD_IP}:2379`, '--advertise-address', hostIp(i), '--cluster-lease-ttl', String(opts.leaseTtl ?? 3), ...(opts.daemonArgs ?? [])]);
        c.hosts.push({ ns, daemon, ip: hostIp(i) });
      }
      if (opts.outside) {
        const o = await c.netns(`${tag}o`);
        await c.hosts[0].ns.exec(['ip', 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'ext1', 'netns', o.name]);
        await c.hosts[0].ns.exec(['ip', 'addr', 'add', `${OUTSIDE_HOST}/24`, 'dev', 'ext0']);
        await c.hosts[0].ns.exec(['ip', 'link', 'set', 'ext0', 'up']);
        await o.exec(['ip', 'addr', 'add', `${OUTSIDE}/24`, 'dev', 'ext1']);
        await o.exec(['ip', 'link', 'set', 'ext1', 'up']);
        c.outside = o;
      }
      return c;
    } catch (err) {
      await c.destroy();
      throw err;
    }
  }

  private async netns(tag: string): Promise<TestNetns> {
    const ns = await TestNetns.create(tag);
    this.namespaces.push(ns);
    return ns;
  }

  /** A veth from `ns` (u0, with `cidr`) to the switch's bridge; made from inside `ns`, never in the machine's namespace. */
  private async leg(sw: TestNetns, ns: TestNetns, name: string, cidr: string): Promise<void> {
    await ns.exec(['ip', 'link', 'add', 'u0', 'type', 'veth', 'peer', 'name', `sw-${name}`, 'netns', sw.name]);
    await ns.exec(['ip', 'addr', 'add', cidr, 'dev', 'u0']);
    await ns.exec(['ip', 'link', 'set', 'u0', 'up']);
    await sw.exec(['ip', 'link', 'set', `sw-${name}`, 'master', 'br0', 'up']);
  }

  /** A container process, not attached (stopped with the cluster). */
  async spare(): Promise<TestContainer> {
    const c = await TestContainer.start();
    this.containers.push(c);
    return c;
  }

  /** A container process attached through host `i`'s daemon; returns it with its address on the network. */
  async attach(i: number, network: string, name: string, extra: string[] = []): Promise<{ c: TestContainer; ip: string }> {
    const c = await TestContainer.start();
    this.containers.push(c);
    const res = await this.hosts[i].daemon.cli(['attach', String(c.pid), '--network', network, '--name', name, ...extra]);
    const out = JSON.parse(res.stdout) as { ipv4?: string };
    assert.ok(out.ipv4, `attach on host ${i + 1} gave no address: ${res.stdout}`);
    return { c, ip: out.ipv4.split('/')[0] };
  }

  async destroy(): Promise<void> {
    for (const c of this.containers) await c.stop().catch(() => undefined);
    for (const h of this.hosts) await h.daemon.destroy().catch(() => undefined);
    await this.etcd?.remove().catch(() => undefined);
    for (const ns of this.namespaces.reverse()) await ns.destroy().catch(() => undefined);
  }
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the time it took (ms), or throws with `what`. */
export async function within(timeoutMs: number, what: string, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check().catch(() => false)) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One ping from a container; true when answered. */
export async function pings(c: TestContainer, ip: string, extra: string[] = []): Promise<boolean> {
  const res = await c.exec(['ping', '-c', '1', '-W', '1', ...extra, ip], { allowFail: true });
  return res.code === 0;
}
