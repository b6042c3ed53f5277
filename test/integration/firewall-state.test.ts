/**
 * test/helpers/firewall-state.ts against the kernel (no daemon): a netd-like nf_tables table loaded in a
 * throwaway namespace beside iptables-nft's tables is read, reset and deleted the way the integration tests
 * do it on the nftables backend, so that those tests ask the kernel what they mean to.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { TestNetns, requireRoot } from '../helpers/netns.js';
import { FIXTURES } from '../helpers/daemon.js';
import { deleteNetdNftRules, forwardPolicy, netdFirewallEmpty, netdFirewallState, resetForwardPolicy, rulesThat, wipeNetdFirewall } from '../helpers/firewall-state.js';

test('firewall-state on a real nf_tables table: state, forward policy and its reset, a rule deleted by handle, the table deleted', async () => {
  requireRoot();
  const ns = await TestNetns.create('fwst');
  try {
    // iptables-nft's own tables beside: not netd's, on either view.
    await ns.exec(['iptables', '-w', '-t', 'nat', '-A', 'POSTROUTING', '-s', '198.51.100.0/24', '-j', 'MASQUERADE']);
    assert.equal(await netdFirewallEmpty(ns, 'nftables'), true);
    assert.equal(await forwardPolicy(ns, 4, 'iptables'), 'ACCEPT');
    await assert.rejects(forwardPolicy(ns, 4, 'nftables'), /no forward base chain/, 'no table: no policy (never a default)');
    await ns.exec(['nft', '-f', '-'], { input: readFileSync(join(FIXTURES, 'nft-netd-like.nft'), 'utf8') });

    const state = await netdFirewallState(ns, 'nftables');
    assert.equal(state[0], 'table inet netd-0123abcd');
    assert.ok(!state.some((l) => l.includes('198.51.100.0/24')), 'iptables-nft tables are left out');
    assert.notDeepEqual(rulesThat(state, 'masquerade', '172.17.0.0/16'), []);
    assert.notDeepEqual(rulesThat(state, 'dnat', 8080, '172.17.0.2', 80), []);
    assert.equal(await forwardPolicy(ns, 4, 'nftables'), 'DROP');
    assert.equal(await forwardPolicy(ns, 6, 'nftables'), 'DROP', 'the drop rule of each family counts');

    assert.equal((await resetForwardPolicy(ns, 4, 'nftables')).length, 1, 'the IPv4 drop rule deleted');
    assert.equal(await forwardPolicy(ns, 4, 'nftables'), 'ACCEPT');
    assert.equal(await forwardPolicy(ns, 6, 'nftables'), 'DROP', 'the IPv6 drop rule stays');
    await assert.rejects(resetForwardPolicy(ns, 4, 'nftables'), /no forward drop rule/, 'a reset with nothing to reset is an error');
    assert.equal(await forwardPolicy(ns, 4, 'iptables'), 'ACCEPT', 'iptables’ FORWARD untouched throughout');

    const gone = await deleteNetdNftRules(ns, (l) => rulesThat([l], 'drop', '127.0.0.0/8', 'lo').length > 0);
    assert.deepEqual(gone, ['rule inet netd-0123abcd raw: meta iifname != lo ip daddr 127.0.0.0/8 drop']);
    assert.deepEqual(rulesThat(await netdFirewallState(ns, 'nftables'), 'drop', '127.0.0.0/8'), []);

    assert.deepEqual(await wipeNetdFirewall(ns, 'nftables'), [['nft', 'delete', 'table', 'inet', 'netd-0123abcd']]);
    assert.equal(await netdFirewallEmpty(ns, 'nftables'), true);
    assert.match((await ns.exec(['iptables-save', '-t', 'nat'])).stdout, /198\.51\.100\.0\/24 -j MASQUERADE/, 'the other tables stay');
  } finally {
    await ns.destroy();
  }
});
