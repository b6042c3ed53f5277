/** The default IPv6 pool: a random ULA /48 per data root, kept across restarts, handed out in /64s. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../src/errors.js';
import { Ipam } from '../../src/ipam/ipam.js';
import { ULA_FILE, defaultIpv6Pool, hostUlaPrefix, randomUlaPrefix } from '../../src/ipam/ula.js';
import { IPAddress, Prefix } from '../../src/net/index.js';

test('a random ULA prefix is a /48 in fd00::/8 with 40 random bits', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 64; i++) {
    const p = randomUlaPrefix();
    assert.equal(p.length, 48);
    assert.ok(Prefix.parse('fd00::/8').containsPrefix(p), p.toString());
    seen.add(p.toString());
  }
  assert.equal(seen.size, 64, 'no two draws alike');
});

test('the data root keeps its ULA /48: drawn once, the same when read again, a corrupt file refused', () => {
  const a = mkdtempSync(join(tmpdir(), 'netd-ula-'));
  const b = mkdtempSync(join(tmpdir(), 'netd-ula-'));
  try {
    const first = hostUlaPrefix(a);
    assert.equal(readFileSync(join(a, ULA_FILE), 'utf8'), `${first}\n`);
    assert.ok(hostUlaPrefix(a).equals(first));
    assert.ok(!hostUlaPrefix(b).equals(first), 'another data root draws its own');
    for (const bad of ['2001:db8::/48', 'fd12:3456:789a::/56', 'junk']) {
      writeFileSync(join(b, ULA_FILE), bad);
      assert.throws(() => hostUlaPrefix(b), InvalidArgumentError);
    }
  } finally {
    rmSync(a, { recursive: true, force: true });
    rmSync(b, { recursive: true, force: true });
  }
});

test('IPv6 networks without a subnet get consecutive /64s of the ULA /48, skipping what the host uses', () => {
  const dir = mkdtempSync(join(tmpdir(), 'netd-ula-'));
  try {
    const pool = defaultIpv6Pool(dir);
    const ipam = new Ipam([pool]);
    const nth = (n: bigint) => Prefix.of(IPAddress.fromBigInt(6, pool.base.firstValue + (n << 64n)), 64);
    const first = ipam.addPool({ family: 6 });
    const second = ipam.addPool({ family: 6 }, [nth(1n)]);
    assert.equal(pool.size, 64);
    assert.ok(first.subnet.equals(nth(0n)), first.subnet.toString());
    assert.equal(first.gateway.toBigInt(), pool.base.firstValue + 1n);
    assert.ok(second.subnet.equals(nth(2n)), second.subnet.toString());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
