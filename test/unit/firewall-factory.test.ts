/** Making the firewall: backends by name, iptables the default, an unknown name refused. No commands run. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { createFirewall, FIREWALL_BACKENDS, type FirewallBackendName } from '../../src/firewall/factory.js';
import type { CommandRunner } from '../../src/firewall/firewall.js';

const exec: CommandRunner = async (argv) => assert.fail(`no command should run, got ${argv.join(' ')}`);

test('iptables is the default backend', () => {
  assert.deepEqual(FIREWALL_BACKENDS, ['iptables']);
  assert.equal(createFirewall({ logger: silentLogger(), exec }).backend, 'iptables');
  assert.equal(createFirewall({ logger: silentLogger(), exec, backend: 'iptables' }).backend, 'iptables');
});

test('an unknown backend is refused, naming the ones netd has', () => {
  for (const name of ['nftables', 'toString', '']) {
    assert.throws(
      () => createFirewall({ logger: silentLogger(), exec, backend: name as FirewallBackendName }),
      (err: unknown) => err instanceof InvalidArgumentError && err.message === `unknown firewall backend ${JSON.stringify(name)} (netd has: iptables)`,
    );
  }
});
