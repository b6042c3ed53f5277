/**
 * The invariants a daemon's state and the kernel must satisfy at rest, whatever happened before:
 * every bridge and veth netd could have made has a record and every record has them; firewall rules
 * exist exactly for the recorded networks; no address is allocated twice.
 */
import assert from 'node:assert/strict';
import type { TestDaemon } from './daemon.js';
import { testFirewallBackend } from './backend.js';
import { iptablesNetdState, mentioning, nftNetdState, rulesThat } from './firewall-state.js';
import type { TestNetns } from './netns.js';
import type { EndpointJson } from './endpoints.js';
import { converged } from './settle.js';

interface NetworkJson {
  Id: string;
  Name: string;
  Driver: string;
  Options: Record<string, string>;
}

interface LinkJson {
  ifname: string;
  master?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string };
}

export async function checkInvariants(daemon: TestDaemon, host: TestNetns): Promise<void> {
  await converged(daemon); // detaches' deferred teardowns done
  const networks = await daemon.client.call<NetworkJson[]>('GET', '/networks');
  const endpoints = await daemon.client.call<EndpointJson[]>('GET', '/netd/v1/endpoints');
  const links = JSON.parse((await host.exec(['ip', '-j', '-d', 'link', 'show'])).stdout) as LinkJson[];
  const mark = `netd:${daemon.instance}:`;

  const bridgeNets = networks.filter((n) => n.Driver === 'bridge');
  const bridgeOf = new Map(bridgeNets.map((n) => [n.Id, n.Options['com.docker.network.bridge.name'] ?? `br-${n.Id.slice(0, 12)}`]));
  const kernelBridges = links.filter((l) => l.linkinfo?.info_kind === 'bridge').map((l) => l.ifname).sort();
  assert.deepEqual(kernelBridges, [...bridgeOf.values()].sort(), 'bridges in the kernel = bridges of recorded networks');

  const kernelVeths = links.filter((l) => l.linkinfo?.info_kind === 'veth' && /^veth[0-9a-f]{7}$/.test(l.ifname));
  const bridgeEndpoints = endpoints.filter((e) => bridgeOf.has(e.networkId));
  assert.deepEqual(kernelVeths.map((l) => l.ifname).sort(), bridgeEndpoints.map((e) => e.driverState.hostIfname).sort(), 'veths in the kernel = recorded endpoints');
  for (const e of bridgeEndpoints) {
    const link = kernelVeths.find((l) => l.ifname === e.driverState.hostIfname)!;
    assert.equal(link.master, bridgeOf.get(e.networkId), `${link.ifname} is on its network's bridge`);
    assert.equal(link.ifalias, `${mark}${e.id.slice(0, 12)}`, `${link.ifname} carries its owner mark`);
  }

  if (testFirewallBackend() === 'nftables') await checkNftInvariants(host, mark, bridgeOf, endpoints);
  else await checkIptablesInvariants(host, mark, bridgeNets, endpoints);

  for (const family of ['ipv4', 'ipv6'] as const) {
    const used = endpoints.map((e) => e[family]).filter((a): a is string => Boolean(a));
    assert.equal(new Set(used).size, used.length, `no ${family} address allocated twice`);
  }
}

/** iptables: rules tagged with the instance's mark exist exactly for the recorded networks and endpoints. */
async function checkIptablesInvariants(host: TestNetns, mark: string, bridgeNets: NetworkJson[], endpoints: EndpointJson[]): Promise<void> {
  const rules = (await host.exec(['iptables-save'])).stdout + (await host.exec(['ip6tables-save'])).stdout;
  const tags = new Set([...rules.matchAll(new RegExp(`${mark}([0-9a-f]{12})`, 'g'))].map((m) => m[1]));
  const endpointIds = new Set(endpoints.map((e) => e.id.slice(0, 12)));
  for (const m of rules.matchAll(new RegExp(`${mark}pf:([0-9a-f]{12})`, 'g'))) assert.ok(endpointIds.has(m[1]), `port-forward rules ${mark}pf:${m[1]} belong to a recorded endpoint`);
  assert.deepEqual([...rules.matchAll(/netd:(?:pf:)?[0-9a-f]{12}/g)].map((m) => m[0]), [], 'no rule carries a mark without an instance');
  const ids = new Set(bridgeNets.map((n) => n.Id.slice(0, 12)));
  for (const t of tags) assert.ok(ids.has(t), `rules tagged ${mark}${t} belong to a recorded network`);
  for (const id of ids) assert.ok(tags.has(id), `network ${id} has its rules`);
}

/**
 * nftables: netd's table names every recorded bridge and no `br-<id>` bridge of a network not recorded; every
 * DNAT element/rule goes to a recorded endpoint's address; marks in comments (if any) are recorded networks' or
 * endpoints'; iptables holds nothing of netd's.
 */
async function checkNftInvariants(host: TestNetns, mark: string, bridgeOf: Map<string, string>, endpoints: EndpointJson[]): Promise<void> {
  const state = await nftNetdState(host);
  assert.ok(state.some((l) => l.startsWith('table ')), 'netd’s nftables table is there');
  for (const [id, bridge] of bridgeOf) assert.notDeepEqual(mentioning(state, bridge), [], `network ${id.slice(0, 12)} has its rules (bridge ${bridge})`);
  const bridges = new Set(bridgeOf.values());
  for (const m of state.join('\n').matchAll(/\bbr-[0-9a-f]{12}\b/g)) assert.ok(bridges.has(m[0]), `${m[0]} in netd's table belongs to a recorded network`);
  const addresses = endpoints.flatMap((e) => [e.ipv4, e.ipv6]).filter((a): a is string => Boolean(a)).map((a) => a.split('/')[0]);
  for (const l of rulesThat(state, 'dnat')) {
    if (!l.startsWith('element ')) continue;
    assert.ok(addresses.some((a) => mentioning([l], a).length > 0), `port forward ${l} goes to a recorded endpoint`);
  }
  const known = new Set([...bridgeOf.keys(), ...endpoints.map((e) => e.id)].map((id) => id.slice(0, 12)));
  for (const m of state.join('\n').matchAll(new RegExp(`${mark}(?:pf:)?([0-9a-f]{12})`, 'g'))) assert.ok(known.has(m[1]), `mark ${m[0]} belongs to a recorded network or endpoint`);
  assert.deepEqual(await iptablesNetdState(host), [], 'nothing of netd’s in iptables');
}
