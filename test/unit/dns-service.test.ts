/**
 * What the DNS service tells containers to use, per kind of network, without listening anywhere (the
 * listeners are exercised by test/integration/dns.test.ts in throwaway namespaces).
 */
import { test } from 'node:test';
import { IPAddress, Prefix } from '../../src/net/index.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/log.js';
import { DnsService, dnsName } from '../../src/dns/dns-service.js';
import type { EndpointRecord } from '../../src/cnm/endpoint.js';
import type { ObservedNetwork } from '../../src/cnm/observer.js';
import type { Capabilities } from '../../src/driverapi/driver.js';

/** What the drivers of these fixtures declare (see src/drivers). */
const CAPABILITIES: Record<string, Capabilities> = {
  bridge: { interface: true, dnsNames: true },
  host: { interface: false, hostNamespace: true, singleInstance: true },
  null: { interface: false, exclusive: true, singleInstance: true },
};

function network(name: string, driver: string, predefined: boolean, subnet?: string): ObservedNetwork {
  return {
    capabilities: CAPABILITIES[driver],
    id: name.padEnd(64, '0'),
    name,
    driver,
    created: '',
    internal: false,
    attachable: false,
    enableIPv6: false,
    ipv4: subnet ? [{ subnet: Prefix.parse(subnet), gateway: IPAddress.parse(subnet.replace(/0\/\d+$/, '1')) }] : [],
    ipv6: [],
    options: {},
    labels: {},
    predefined,
    driverState: {},
  };
}

function withResolvConf(text: string, fn: (path: string) => Promise<void> | void): Promise<void> | void {
  const dir = mkdtempSync(join(tmpdir(), 'netd-dns-svc-'));
  const path = join(dir, 'resolv.conf');
  writeFileSync(path, text);
  const done = () => rmSync(dir, { recursive: true, force: true });
  try {
    const r = fn(path);
    if (r instanceof Promise) return r.finally(done);
    done();
  } catch (err) {
    done();
    throw err;
  }
}

const HOST = 'nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n';

test('the default bridge: the host’s reachable nameservers, as Docker; host: its resolv.conf; none: nothing', () =>
  withResolvConf(HOST, (path) => {
    const dns = new DnsService({ log: silentLogger(), resolvConf: path });
    assert.deepEqual(dns.upstreams().map((u) => u.address), ['127.0.0.53', '192.0.2.53'], 'netd itself forwards to loopback resolvers');
    assert.deepEqual(dns.dnsConfig(network('bridge', 'bridge', true, '172.17.0.0/16')), { nameservers: ['192.0.2.53'], search: ['corp.example'], options: ['edns0'] });
    assert.deepEqual(dns.dnsConfig(network('host', 'host', true)), { nameservers: ['127.0.0.53', '192.0.2.53'], search: ['corp.example'], options: ['edns0'] });
    assert.equal(dns.dnsConfig(network('none', 'null', true)), undefined);
    // A user network whose listener is not up (here: never started) falls back to the upstreams too.
    assert.deepEqual(dns.dnsConfig(network('mynet', 'bridge', false, '192.0.2.0/24'))?.nameservers, ['192.0.2.53']);
  }));

test('--dns replaces the host’s nameservers (search and options stay the host’s); a bad --dns is refused', () =>
  withResolvConf(HOST, (path) => {
    const dns = new DnsService({ log: silentLogger(), resolvConf: path, servers: ['198.51.100.2', '198.51.100.3:5353'] });
    assert.deepEqual(dns.upstreams().map((u) => `${u.address}:${u.port}`), ['198.51.100.2:53', '198.51.100.3:5353']);
    // Containers can only be given port-53 servers in a resolv.conf.
    assert.deepEqual(dns.dnsConfig(network('bridge', 'bridge', true, '172.17.0.0/16')), { nameservers: ['198.51.100.2'], search: ['corp.example'], options: ['edns0'] });
    assert.throws(() => new DnsService({ log: silentLogger(), resolvConf: path, servers: ['dns.example'] }), /invalid DNS server/);
  }));

test('only loopback resolvers on the host: default-bridge containers get no unreachable nameserver', () =>
  withResolvConf('nameserver 127.0.0.53\n', (path) => {
    const dns = new DnsService({ log: silentLogger(), resolvConf: path });
    assert.deepEqual(dns.dnsConfig(network('bridge', 'bridge', true, '172.17.0.0/16'))?.nameservers, []);
  }));

test('a changed host resolv.conf is picked up', () =>
  withResolvConf('nameserver 192.0.2.53\n', async (path) => {
    const dns = new DnsService({ log: silentLogger(), resolvConf: path });
    assert.deepEqual(dns.upstreams().map((u) => u.address), ['192.0.2.53']);
    writeFileSync(path, 'nameserver 192.0.2.54\nnameserver 192.0.2.55\n');
    await new Promise((r) => setTimeout(r, 2100));
    assert.deepEqual(dns.upstreams().map((u) => u.address), ['192.0.2.54', '192.0.2.55']);
  }));

test('a container name DNS can carry is its DNS name (labels ≤ 63, ≤ 253 in all); a longer one answers as the short id', () => {
  const named = (name: string) => dnsName({ name, sandboxId: 'abcdef0123456789', id: 'e', networkId: 'n', ifname: 'eth0', aliases: [], created: '', gatewayEndpoint: true, driverState: {} } as unknown as EndpointRecord);
  for (const name of ['web', 'a'.repeat(63), 'a'.repeat(64).replace(/^(.{32})./, '$1.'), `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}`]) {
    assert.equal(named(name), name, `${name.length} characters`);
  }
  for (const name of ['a'.repeat(64), 'x'.repeat(1024), `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`]) {
    assert.equal(named(name), 'abcdef012345', `${name.length} characters`);
  }
});
