import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ipam, type PoolInfo, type PoolRequest } from '../../src/ipam/ipam.js';
import { DEFAULT_ADDRESS_POOLS, parseAddressPool, candidateSubnets } from '../../src/ipam/default-pools.js';
import { IPAddress, InterfaceAddress, Prefix, type Family } from '../../src/net/index.js';
import type { AddressPool } from '../../src/ipam/default-pools.js';

const Subnet = Prefix;

/** A pool request from text, each value parsed with the name the API gives it. */
function poolRequest(family: Family, text: { subnet?: string; gateway?: string; ipRange?: string }): PoolRequest {
  return {
    family,
    subnet: text.subnet === undefined ? undefined : Prefix.parse(text.subnet, 'subnet'),
    gateway: text.gateway === undefined ? undefined : IPAddress.parse(text.gateway, 'gateway'),
    ipRange: text.ipRange === undefined ? undefined : Prefix.parse(text.ipRange, 'ip-range'),
  };
}

/** Ipam through text, as the API and records give it: parsed at the call, results printed. */
class TextIpam {
  private readonly ipam: Ipam;
  constructor(pools: readonly AddressPool[]) {
    this.ipam = new Ipam(pools);
  }
  addPool(req: { family: Family; subnet?: string; gateway?: string; ipRange?: string }, avoid?: Prefix[]): Record<keyof PoolInfo, unknown> {
    const p = this.ipam.addPool(poolRequest(req.family, req), avoid);
    return { subnet: p.subnet.toString(), family: p.family, gateway: p.gateway.toString(), ipRange: p.ipRange?.toString(), prefix: p.prefix };
  }
  allocate(subnet: unknown, preferred?: string): string {
    return this.ipam.allocate(Prefix.parse(subnet), preferred === undefined ? undefined : IPAddress.parse(preferred)).toString();
  }
  reserve(subnet: unknown, address: string): void {
    this.ipam.reserve(Prefix.parse(subnet), address.includes('/') ? InterfaceAddress.parse(address) : IPAddress.parse(address));
  }
  release(subnet: unknown, address: string): void {
    this.ipam.release(Prefix.parse(subnet), InterfaceAddress.parse(address));
  }
  allocatedCount(subnet: unknown): number {
    return this.ipam.allocatedCount(Prefix.parse(subnet));
  }
}
import { ConflictError, InvalidArgumentError } from '../../src/errors.js';

const pools = () => DEFAULT_ADDRESS_POOLS.map(parseAddressPool);

test('default pools are Docker’s: 15 /16s from 172.17 then 16 /20s of 192.168', () => {
  const all = [...candidateSubnets(pools())].map(String);
  assert.equal(all.length, 31);
  assert.equal(all[0], '172.17.0.0/16');
  assert.equal(all[14], '172.31.0.0/16');
  assert.equal(all[15], '192.168.0.0/20');
  assert.equal(all[30], '192.168.240.0/20');
});

test('networks get the next free default subnet, skipping host subnets', () => {
  const ipam = new TextIpam(pools());
  assert.deepEqual(ipam.addPool({ family: 4 }), { subnet: '172.17.0.0/16', family: 4, gateway: '172.17.0.1', ipRange: undefined, prefix: 16 });
  const avoid = [Subnet.parse('172.18.5.0/24'), Subnet.parse('172.19.0.10/32')];
  assert.equal(ipam.addPool({ family: 4 }, avoid).subnet, '172.20.0.0/16');
  assert.equal(ipam.addPool({ family: 4 }).subnet, '172.18.0.0/16', 'the avoid list applies per request');
});

test('pools run out with a clear error', () => {
  const ipam = new TextIpam([parseAddressPool('base=10.9.0.0/23,size=24')]);
  ipam.addPool({ family: 4 });
  ipam.addPool({ family: 4 });
  assert.throws(() => ipam.addPool({ family: 4 }), ConflictError);
});

test('explicit subnets: overlap, host bits, too small, gateway and ip-range checks', () => {
  const ipam = new TextIpam(pools());
  ipam.addPool({ family: 4, subnet: '10.1.0.0/16' });
  assert.throws(() => ipam.addPool({ family: 4, subnet: '10.1.2.0/24' }), ConflictError);
  assert.throws(() => ipam.addPool({ family: 4, subnet: '10.2.0.1/16' }), /host bits/);
  assert.throws(() => ipam.addPool({ family: 4, subnet: '10.3.0.0/31' }), /too small/);
  assert.throws(() => ipam.addPool({ family: 4, subnet: '10.4.0.0/24', gateway: '10.5.0.1' }), /not inside/);
  assert.throws(() => ipam.addPool({ family: 4, subnet: '10.4.0.0/24', gateway: '10.4.0.255' }), /broadcast/);
  assert.throws(() => ipam.addPool({ family: 4, subnet: '10.4.0.0/24', ipRange: '10.5.0.0/25' }), /not inside/);
  assert.throws(() => ipam.addPool({ family: 4, subnet: 'banana' }), InvalidArgumentError);
  assert.throws(() => ipam.addPool({ family: 4, subnet: '10.0.0.999/24' }), InvalidArgumentError);
  assert.throws(() => ipam.addPool({ family: 4, subnet: 'fd00::/64' }), /not an IPv4/);
  assert.equal(ipam.addPool({ family: 4, subnet: '10.4.0.0/24', gateway: '10.4.0.254' }).gateway, '10.4.0.254');
});

test('addresses are sequential, skip the gateway, honour a preferred one, refuse a taken one', () => {
  const ipam = new TextIpam(pools());
  const p = ipam.addPool({ family: 4, subnet: '192.0.2.0/29', gateway: '192.0.2.3' });
  assert.equal(ipam.allocate(p.subnet), '192.0.2.1/29');
  assert.equal(ipam.allocate(p.subnet), '192.0.2.2/29');
  assert.equal(ipam.allocate(p.subnet), '192.0.2.4/29', 'gateway skipped');
  assert.equal(ipam.allocate(p.subnet, '192.0.2.6'), '192.0.2.6/29');
  assert.throws(() => ipam.allocate(p.subnet, '192.0.2.6'), ConflictError);
  assert.throws(() => ipam.allocate(p.subnet, '192.0.2.3'), /gateway/);
  assert.throws(() => ipam.allocate(p.subnet, '192.0.2.7'), /broadcast/);
  assert.throws(() => ipam.allocate(p.subnet, '192.0.2.9'), /not inside/);
  assert.equal(ipam.allocate(p.subnet), '192.0.2.5/29');
  assert.throws(() => ipam.allocate(p.subnet), /no free address/);
  ipam.release(p.subnet, '192.0.2.2/29');
  assert.equal(ipam.allocate(p.subnet), '192.0.2.2/29', 'a released address is reused once the range wraps');
});

test('a released address is not handed out again before the range wraps', () => {
  const ipam = new TextIpam(pools());
  const p = ipam.addPool({ family: 4, subnet: '198.51.100.0/24' });
  const a = ipam.allocate(p.subnet);
  ipam.release(p.subnet, a);
  assert.notEqual(ipam.allocate(p.subnet), a);
});

test('ip-range limits allocation; reserve replays state', () => {
  const ipam = new TextIpam(pools());
  const p = ipam.addPool({ family: 4, subnet: '10.10.0.0/16', ipRange: '10.10.5.0/30' });
  assert.equal(p.ipRange, '10.10.5.0/30');
  ipam.reserve(p.subnet, '10.10.5.0/16');
  assert.equal(ipam.allocate(p.subnet), '10.10.5.1/16');
  const q = ipam.addPool({ family: 4, subnet: '10.11.0.0/24' });
  ipam.reserve(q.subnet, '10.11.0.7');
  assert.equal(ipam.allocate(q.subnet), '10.11.0.8/24', 'replayed state: allocation continues after the highest address in use');
  assert.equal(ipam.allocate(p.subnet), '10.10.5.2/16');
  assert.equal(ipam.allocate(p.subnet), '10.10.5.3/16');
  assert.throws(() => ipam.allocate(p.subnet), /no free address/);
});

test('IPv6 pools and addresses', () => {
  const ipam = new TextIpam([...pools(), parseAddressPool('base=fd00:dead::/48,size=64')]);
  const p = ipam.addPool({ family: 6 });
  assert.equal(p.subnet, 'fd00:dead::/64');
  assert.equal(p.gateway, 'fd00:dead::1');
  assert.equal(ipam.allocate(p.subnet), 'fd00:dead::2/64');
  assert.equal(ipam.allocate(p.subnet, 'fd00:dead::ffff'), 'fd00:dead::ffff/64');
  const q = ipam.addPool({ family: 6, subnet: '2001:db8::/64' });
  assert.equal(ipam.allocate(q.subnet), '2001:db8::2/64');
  assert.throws(() => ipam.allocate(q.subnet, '192.0.2.1'), /not inside/);
});

test('allocation cost stays flat: 50,000 addresses in a /16', () => {
  const ipam = new TextIpam(pools());
  const p = ipam.addPool({ family: 4, subnet: '10.20.0.0/16' });
  const seen = new Set<string>();
  for (let i = 0; i < 50_000; i++) seen.add(ipam.allocate(p.subnet));
  assert.equal(seen.size, 50_000);
  assert.equal(ipam.allocatedCount(p.subnet), 50_000);
});

test('address pool syntax', () => {
  assert.deepEqual(String(parseAddressPool('base=10.0.0.0/8,size=24').base), '10.0.0.0/8');
  assert.throws(() => parseAddressPool('base=10.0.0.0/8'), /required/);
  assert.throws(() => parseAddressPool('base=10.0.0.0/8,size=4'), /size must be/);
  assert.throws(() => parseAddressPool('base=10.0.0.0/8,size=24,x=1'), /unknown field/);
  assert.throws(() => parseAddressPool('nonsense'), /expected/);
});

test('hasFreeAddress: a /30 has one address besides its gateway; an ip-range counts only its own; hasFreePool: until the default pools are used up', () => {
  const ipam = new Ipam([parseAddressPool('base=10.9.0.0/23,size=24')]);
  const tiny = ipam.addPool(poolRequest(4, { subnet: '192.0.2.252/30' })).subnet;
  assert.equal(ipam.hasFreeAddress(tiny), true);
  assert.equal(ipam.subnetFree(Prefix.parse('192.0.2.0/24', 'subnet')), false, 'overlaps the /30');
  assert.equal(ipam.subnetFree(Prefix.parse('192.0.2.0/25', 'subnet')), true);
  const one = ipam.allocate(tiny);
  assert.equal(ipam.hasFreeAddress(tiny), false, 'the /30 is full');
  assert.throws(() => ipam.allocate(tiny), /no free address/, 'and allocate agrees');
  ipam.release(tiny, one);
  assert.equal(ipam.hasFreeAddress(tiny), true);

  const ranged = ipam.addPool(poolRequest(4, { subnet: '198.51.100.0/24', ipRange: '198.51.100.128/31' })).subnet;
  ipam.allocate(ranged, IPAddress.parse('198.51.100.7', 'ip')); // outside the range: does not use it up
  assert.equal(ipam.hasFreeAddress(ranged), true);
  ipam.allocate(ranged);
  ipam.allocate(ranged);
  assert.equal(ipam.hasFreeAddress(ranged), false, 'both addresses of the range taken');

  assert.equal(ipam.hasFreePool(4), true);
  ipam.addPool(poolRequest(4, {}));
  assert.equal(ipam.hasFreePool(4), true);
  assert.equal(ipam.hasFreePool(4, [Prefix.parse('10.9.1.0/24', 'subnet')]), false, 'the last default subnet is the host\'s');
  ipam.addPool(poolRequest(4, {}));
  assert.equal(ipam.hasFreePool(4), false, 'both default subnets taken');
  assert.throws(() => ipam.addPool(poolRequest(4, {})), /fully subnetted/);
});

test('held pools and addresses (an outside IPAM client): taken for everyone else, adopted by a network, free only when released and unused', () => {
  const ipam = new Ipam([parseAddressPool('base=10.90.0.0/16,size=24')]);
  const held = ipam.holdPool({ family: 4 });
  assert.equal(held.subnet.toString(), '10.90.0.0/24', 'the first free default subnet');
  assert.equal(ipam.holdPool({ family: 4, subnet: held.subnet }).subnet.toString(), '10.90.0.0/24', 'the same subnet again: the client counts');
  assert.throws(() => ipam.addPool({ family: 4, subnet: Prefix.parse('10.90.0.0/25') }), /overlaps/, 'a held pool is taken for other networks');
  assert.equal(ipam.addPool({ family: 4 }).subnet.toString(), '10.90.1.0/24', 'and skipped by default picks');

  // Gateway and an aux address held before the network exists; the gateway can be moved while no network uses the pool.
  assert.equal(ipam.hold(held.subnet, IPAddress.parse('10.90.0.254'), { gateway: true }).toString(), '10.90.0.254/24');
  assert.equal(ipam.hold(held.subnet, IPAddress.parse('10.90.0.9')).toString(), '10.90.0.9/24');
  assert.throws(() => ipam.hold(held.subnet, IPAddress.parse('10.90.0.9')), /already in use/);
  const adopted = ipam.addPool({ family: 4, subnet: held.subnet, gateway: IPAddress.parse('10.90.0.254') }, [], { adopt: true });
  assert.equal(adopted.gateway.toString(), '10.90.0.254');
  assert.throws(() => ipam.addPool({ family: 4, subnet: held.subnet }, [], { adopt: true }), /overlaps/, 'adopted once only');
  assert.throws(() => ipam.hold(held.subnet, IPAddress.parse('10.90.0.1'), { gateway: true }), /gateway of 10.90.0.0\/24 is 10.90.0.254/, 'no moving the gateway of a network');

  // Container addresses: the client holds, the endpoint claims; a plain allocation never gets a held one.
  const a = ipam.hold(held.subnet);
  assert.equal(a.toString(), '10.90.0.1/24');
  assert.throws(() => ipam.allocate(held.subnet, a.address), /already in use/);
  assert.equal(ipam.allocate(held.subnet, a.address, { claimHeld: true }).toString(), '10.90.0.1/24');
  assert.equal(ipam.allocate(held.subnet).toString(), '10.90.0.2/24', 'next free skips held 10.90.0.1 and .9');
  ipam.release(held.subnet, a);
  assert.ok(ipam.isHeld(held.subnet, a.address), 'still held after the endpoint goes');
  assert.throws(() => ipam.allocate(held.subnet, a.address), /already in use/);
  ipam.unhold(held.subnet, a);
  assert.equal(ipam.allocate(held.subnet, a.address).toString(), '10.90.0.1/24', 'free once released and unused');
  ipam.unhold(held.subnet, a);
  assert.throws(() => ipam.allocate(held.subnet, a.address), /already in use/, 'a hold released while an endpoint uses the address frees nothing');

  // The network goes: the pool stays held (with its holds) until the client releases it.
  ipam.removePool(held.subnet);
  assert.throws(() => ipam.addPool({ family: 4, subnet: held.subnet }), /overlaps/);
  ipam.releaseHeldPool(held.subnet);
  ipam.releaseHeldPool(held.subnet);
  assert.equal(ipam.addPool({ family: 4, subnet: held.subnet }).subnet.toString(), '10.90.0.0/24', 'free once released');
  assert.throws(() => ipam.holdPool({ family: 4, subnet: held.subnet }), /subnet of another network/, 'a network netd made is not the client\'s');
});

test('held state re-applied after a restart: pools (the adopting network replayed first) and addresses an endpoint already uses', () => {
  const ipam = new Ipam([parseAddressPool('base=10.91.0.0/16,size=24')]);
  const subnet = Prefix.parse('10.91.4.0/24');
  ipam.addPool({ family: 4, subnet });
  ipam.reserve(subnet, IPAddress.parse('10.91.4.7'));
  ipam.restoreHeldPool({ family: 4, subnet });
  ipam.restoreHeld(subnet, IPAddress.parse('10.91.4.7'));
  ipam.restoreHeld(subnet, IPAddress.parse('10.91.4.8'));
  assert.equal(ipam.allocate(subnet).toString(), '10.91.4.9/24');
  ipam.removePool(subnet);
  assert.throws(() => ipam.addPool({ family: 4, subnet: Prefix.parse('10.91.4.0/25') }), /overlaps/, 'still held once its network is gone');
  const lone = Prefix.parse('10.91.9.0/24');
  ipam.restoreHeldPool({ family: 4, subnet: lone, gateway: IPAddress.parse('10.91.9.254') });
  assert.equal(ipam.addPool({ family: 4, subnet: lone }, [], { adopt: true }).gateway.toString(), '10.91.9.254');
});
