/**
 * Two "hosts" joined by an underlay, for the overlay's tests (vxlan.test.ts, overlay-peers.test.ts): every
 * namespace is made here and torn down by Lab.destroy, also on failure.
 *
 *   host 1 (u0 192.0.2.1/24) ══veth══ host 2 (u0 192.0.2.2/24)
 *
 * plus "containers" (namespaces with eth0 on a host's bridge), traffic helpers and iproute2's JSON as the
 * oracle.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { IPAddress, MAC } from '../../src/net/index.js';
import { Netns } from '../../src/kernel/netns.js';
import { Rtnl, type Link } from '../../src/kernel/rtnetlink.js';
import { MACHINE_NETNS_INODE, TestNetns } from './netns.js';

export const FIXTURES = join(__dirname, '../../../test/fixtures');

export async function json<T>(ns: TestNetns, argv: string[]): Promise<T> {
  return JSON.parse((await ns.exec(argv)).stdout) as T;
}

/** An Rtnl in a test namespace, never the machine's own. */
export function openRtnl(ns: TestNetns): Rtnl {
  const h = Netns.open(ns.path);
  try {
    assert.notEqual(h.ino, MACHINE_NETNS_INODE);
    return Rtnl.open(h);
  } finally {
    h.close();
  }
}

/** Everything a test made, torn down in reverse whatever happened. */
export class Lab {
  readonly namespaces: TestNetns[] = [];
  readonly rtnls: Rtnl[] = [];
  readonly processes: ChildProcess[] = [];

  async ns(tag: string): Promise<TestNetns> {
    const ns = await TestNetns.create(tag);
    this.namespaces.push(ns);
    return ns;
  }

  rtnl(ns: TestNetns): Rtnl {
    const r = openRtnl(ns);
    this.rtnls.push(r);
    return r;
  }

  async destroy(): Promise<void> {
    for (const p of this.processes) p.kill('SIGKILL');
    for (const r of this.rtnls) r.close();
    for (const ns of this.namespaces.reverse()) await ns.destroy();
  }
}

export interface UnderlayHost {
  ns: TestNetns;
  rtnl: Rtnl;
  /** u0, with 192.0.2.<n>/24 (n = 1, 2), up. */
  underlay: Link;
}

/** Two host namespaces joined by a veth pair named u0 on both sides, MTU `mtu`, 192.0.2.1/24 and 192.0.2.2/24. */
export async function underlayHosts(lab: Lab, tag: string, mtu = 1500): Promise<[UnderlayHost, UnderlayHost]> {
  const h1 = await lab.ns(`${tag}h1`);
  const h2 = await lab.ns(`${tag}h2`);
  await h1.exec(['ip', 'link', 'add', 'u0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'u0', 'mtu', String(mtu), 'netns', h2.name]);
  const hosts: UnderlayHost[] = [];
  for (const [i, ns] of [h1, h2].entries()) {
    await ns.exec(['ip', 'addr', 'add', `192.0.2.${i + 1}/24`, 'dev', 'u0']);
    await ns.exec(['ip', 'link', 'set', 'u0', 'up']);
    const rtnl = lab.rtnl(ns);
    const underlay = await rtnl.linkByName('u0');
    assert.ok(underlay);
    hosts.push({ ns, rtnl, underlay });
  }
  return hosts as [UnderlayHost, UnderlayHost];
}

/** One host namespace with an underlay veth u0 (192.0.2.1/24, down; its peer u1 beside it) of MTU `mtu`. */
export async function oneHost(lab: Lab, tag: string, mtu: number): Promise<UnderlayHost> {
  const ns = await lab.ns(tag);
  const rtnl = lab.rtnl(ns);
  await ns.exec(['ip', 'link', 'add', 'u0', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'u1']);
  await ns.exec(['ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'u0']);
  const underlay = await rtnl.linkByName('u0');
  assert.ok(underlay);
  return { ns, rtnl, underlay };
}

export interface ContainerSpec {
  tag: string;
  /** Host end's name. */
  veth: string;
  /** ifindex of the host's bridge. */
  bridge: number;
  mtu: number;
  mac: MAC;
  /** eth0's address, `A.B.C.D/LEN`. */
  cidr: string;
}

/** A "container" namespace with eth0 (MAC, MTU, address, up), its veth's host end up on the host's bridge. */
export async function addContainer(lab: Lab, host: { rtnl: Rtnl }, spec: ContainerSpec): Promise<TestNetns> {
  const container = await lab.ns(spec.tag);
  const peerNs = Netns.open(container.path);
  try {
    assert.notEqual(peerNs.ino, MACHINE_NETNS_INODE);
    await host.rtnl.createVeth({ name: spec.veth, mtu: spec.mtu, master: spec.bridge, up: true, peer: { name: 'eth0', netns: peerNs, mac: spec.mac, mtu: spec.mtu } });
  } finally {
    peerNs.close();
  }
  await container.exec(['ip', 'addr', 'add', spec.cidr, 'dev', 'eth0']);
  await container.exec(['ip', 'link', 'set', 'eth0', 'up']);
  return container;
}

export async function ping(from: TestNetns, to: IPAddress, extra: string[] = []): Promise<boolean> {
  const r = await from.exec(['ping', '-c', '1', '-W', '2', ...extra, String(to)], { allowFail: true });
  return r.code === 0;
}

/** Connects to a tcp-whoami server and returns what it answered (the client's address as the server saw it). */
export async function tcpGet(from: TestNetns, to: IPAddress, port: number): Promise<string> {
  return (await from.exec(['node', join(FIXTURES, 'tcp-get.cjs'), String(to), String(port), '3000'])).stdout.trim();
}
