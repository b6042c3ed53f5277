/** Making the firewall: backends by name, iptables the default, an unknown name refused. No commands run. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createFirewall, FIREWALL_BACKENDS, type FirewallBackendName } from '../../src/firewall/factory.js';
import type { CommandRunner } from '../../src/firewall/firewall.js';

const exec: CommandRunner = async (argv) => assert.fail(`no command should run, got ${argv.join(' ')}`);

test('iptables is the default backend', () => {
  assert.deepEqual(FIREWALL_BACKENDS, ['iptables', 'nftables']);
  assert.equal(createFirewall({ logger: silentLogger(), exec }).backend, 'iptables');
  assert.equal(createFirewall({ logger: silentLogger(), exec, backend: 'iptables' }).backend, 'iptables');
});

test('nftables is a backend: its own table per instance, nft required', () => {
  const fw = createFirewall({ logger: silentLogger(), exec, backend: 'nftables', instance: { id: '0a1b2c' } });
  assert.equal(fw.backend, 'nftables');
  assert.deepEqual(fw.watchedTables, [{ family: 'inet', name: 'netd-0a1b2c' }]);
  assert.deepEqual(fw.tools, { required: ['nft'], optional: ['conntrack'] });
  assert.deepEqual(createFirewall({ logger: silentLogger(), exec, backend: 'nftables' }).watchedTables, [{ family: 'inet', name: 'netd' }]);
  assert.deepEqual(
    createFirewall({ logger: silentLogger(), exec }).watchedTables.map((t) => `${t.family} ${t.name}`),
    ['ip filter', 'ip nat', 'ip raw', 'ip6 filter', 'ip6 nat', 'ip6 raw'],
  );
});

test('an unknown backend is refused, naming the ones netd has', () => {
  for (const name of ['nft', 'toString', '']) {
    assert.throws(
      () => createFirewall({ logger: silentLogger(), exec, backend: name as FirewallBackendName }),
      (err: unknown) => err instanceof InvalidArgumentError && err.message === `unknown firewall backend ${JSON.stringify(name)} (netd has: iptables, nftables)`,
    );
  }
});
