/**
 * NftablesMonitor against the kernel, in a throwaway namespace: a transaction made by `nft` arrives as its
 * changes plus that process's pid and name; one made in-process (the element writer) carries this
 * process's pid, which is how netd tells its own changes from others'.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Netns } from '../../src/kernel/netns.js';
import { NftablesMonitor, type NftTransaction } from '../../src/kernel/nftables-monitor.js';
import { NfnetlinkElementWriter } from '../../src/firewall/nft-netlink-elements.js';
import { requireRoot, TestNetns } from '../helpers/netns.js';

requireRoot();

let ns: TestNetns | undefined;
after(async () => ns?.destroy());

test('transactions arrive grouped, with the pid and name of the process that made them', async () => {
  ns = await TestNetns.create('nftmon');
  const seen: NftTransaction[] = [];
  let lost = 0;
  const handle = Netns.open(ns.path);
  const [monitor, writer] = handle.run(() => [new NftablesMonitor({ transaction: (tx) => seen.push(tx), lost: () => lost++ }), new NfnetlinkElementWriter()] as const);
  handle.close();
  try {
    const waitFor = async (pred: (tx: NftTransaction) => boolean) => {
      for (let i = 0; i < 300 && !seen.some(pred); i++) await new Promise((r) => setTimeout(r, 10));
      const tx = seen.find(pred);
      assert.ok(tx, `transaction seen among ${JSON.stringify(seen)}`);
      return tx;
    };
    await ns.exec(['nft', '-f', '-'], { input: 'table inet t {\n set s { type inet_service; }\n chain c { type filter hook input priority 0; tcp dport @s accept; }\n}\n' });
    const made = await waitFor((tx) => tx.changes.some((c) => c.object === 'table' && !c.deleted && c.table === 't'));
    assert.equal(made.procName, 'nft');
    assert.notEqual(made.pid, process.pid);
    assert.ok(made.changes.some((c) => c.object === 'rule' && c.family === 'inet'));
    await writer.apply('t', [{ set: 's', add: [{ key: [{ type: 'inet_service', value: 80 }] }] }]);
    await writer.apply('t', [{ set: 's', delete: [{ key: [{ type: 'inet_service', value: 80 }] }] }]);
    const ours = await waitFor((tx) => tx.changes.some((c) => c.object === 'element' && c.deleted));
    assert.equal(ours.pid, process.pid, 'an in-process change carries our pid');
    await ns.exec(['nft', 'flush', 'ruleset']);
    const flush = await waitFor((tx) => tx.changes.some((c) => c.object === 'table' && c.deleted));
    assert.deepEqual(new Set(flush.changes.map((c) => `${c.deleted ? 'del' : 'new'} ${c.object} ${c.family} ${c.table}`)), new Set(['del rule inet t', 'del chain inet t', 'del set inet t', 'del table inet t']));
    assert.equal(lost, 0);
  } finally {
    monitor.close();
    writer.close();
  }
});

test('an overrun receive queue is reported as lost notifications, and the monitor keeps working after it', async () => {
  const lossNs = await TestNetns.create('nftlost');
  try {
    const seen: NftTransaction[] = [];
    const lost: string[] = [];
    const handle = Netns.open(lossNs.path);
    const monitor = handle.run(() => new NftablesMonitor({ transaction: (tx) => seen.push(tx), lost: (why) => lost.push(why) }, 1024));
    handle.close();
    try {
      // One transaction of 3000 rules: far more notifications than a 1 KiB queue holds.
      const rules = Array.from({ length: 3000 }, (_, i) => `add rule inet big c tcp dport ${i + 1} accept`).join('\n');
      await lossNs.exec(['nft', '-f', '-'], { input: `add table inet big\nadd chain inet big c\n${rules}\n` });
      for (let i = 0; i < 500 && lost.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.match(lost[0] ?? 'nothing reported', /receive queue overrun/);
      await new Promise((r) => setTimeout(r, 100));
      seen.length = 0;
      await lossNs.exec(['nft', 'add', 'table', 'inet', 'after']);
      for (let i = 0; i < 300 && !seen.some((tx) => tx.changes.some((c) => c.table === 'after')); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(seen.some((tx) => tx.changes.some((c) => c.table === 'after' && c.object === 'table')), 'a change after the overrun is seen');
    } finally {
      monitor.close();
    }
  } finally {
    await lossNs.destroy();
  }
});
