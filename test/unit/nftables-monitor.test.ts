/**
 * nf_tables notifications without a kernel: decoding (family, table, NEWGEN's generation, pid and process
 * name), which transactions call for a reload (deletes in a watched table, not by netd), and the debounced,
 * single-flight reload.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nla } from '../../src/kernel/nlattr.js';
import { decodeNftEvent, type NftTransaction } from '../../src/kernel/nftables-monitor.js';
import { NFT_MSG, nfgenmsg } from '../../src/kernel/nfnetlink.js';
import { harmfulChange } from '../../src/firewall/nft-netlink-watch.js';
import { debounced } from '../../src/cnm/monitors.js';
import { createLogger } from '../../src/log.js';

const type = (msg: number) => (10 << 8) | msg;
const be32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};

test('notifications decode to family and table; NEWGEN to generation, pid and process name', () => {
  assert.deepEqual(decodeNftEvent(type(NFT_MSG.DELRULE), Buffer.concat([nfgenmsg(2), nla.string(1, 'nat'), nla.string(2, 'POSTROUTING')])), {
    kind: 'change',
    change: { object: 'rule', deleted: true, family: 'ip', table: 'nat' },
  });
  assert.deepEqual(decodeNftEvent(type(NFT_MSG.NEWTABLE), Buffer.concat([nfgenmsg(1), nla.string(1, 'netd')])), { kind: 'change', change: { object: 'table', deleted: false, family: 'inet', table: 'netd' } });
  assert.deepEqual(decodeNftEvent(type(NFT_MSG.DELSETELEM), Buffer.concat([nfgenmsg(10), nla.string(1, 'filter')])), { kind: 'change', change: { object: 'element', deleted: true, family: 'ip6', table: 'filter' } });
  assert.deepEqual(decodeNftEvent(type(NFT_MSG.NEWGEN), Buffer.concat([nfgenmsg(0), nla.binary(1, be32(77)), nla.binary(2, be32(4242)), nla.string(3, 'nft')])), { kind: 'gen', genId: 77, pid: 4242, procName: 'nft' });
  // Not nf_tables, no table name, too short: ignored.
  assert.equal(decodeNftEvent((1 << 8) | 0, Buffer.concat([nfgenmsg(2), nla.string(1, 'x')])), undefined);
  assert.equal(decodeNftEvent(type(NFT_MSG.DELCHAIN), nfgenmsg(2)), undefined);
  assert.equal(decodeNftEvent(type(NFT_MSG.DELCHAIN), Buffer.from([2])), undefined);
  assert.throws(() => decodeNftEvent(type(NFT_MSG.DELCHAIN), Buffer.concat([nfgenmsg(2), Buffer.from([200, 0, 1, 0])])), RangeError);
});

test('a reload is called for by deletes in a watched table made by another process only', () => {
  const watched = [{ family: 'ip' as const, name: 'nat' }, { family: 'ip' as const, name: 'filter' }];
  const tx = (pid: number, ...changes: NftTransaction['changes']): NftTransaction => ({ genId: 1, pid, procName: 'x', changes });
  const own = (pid: number) => pid === 100;
  const del = { object: 'rule' as const, deleted: true, family: 'ip', table: 'nat' };
  assert.deepEqual(harmfulChange(tx(7, del), watched, own), del);
  assert.equal(harmfulChange(tx(100, del), watched, own), undefined, "netd's own");
  assert.equal(harmfulChange(tx(7, { ...del, deleted: false }), watched, own), undefined, 'only rules added');
  const chain = { object: 'chain' as const, deleted: false, family: 'ip', table: 'filter' };
  assert.deepEqual(harmfulChange(tx(7, chain), watched, own), chain, 'a chain updated (e.g. its policy reset)');
  assert.equal(harmfulChange(tx(7, { ...del, family: 'ip6' }), watched, own), undefined, 'another family');
  assert.equal(harmfulChange(tx(7, { ...del, table: 'mangle' }), watched, own), undefined, 'a table not watched');
  assert.deepEqual(harmfulChange(tx(0, del), watched, own), del, 'no pid given: not known to be netd');
});

test('the reload is debounced and never runs twice at once; a trigger during a run gives one more run', async () => {
  let running = 0;
  let most = 0;
  let runs = 0;
  const h = debounced(
    async () => {
      running++;
      most = Math.max(most, running);
      runs++;
      await new Promise((r) => setTimeout(r, 50));
      running--;
    },
    20,
    createLogger('silent'),
  );
  for (let i = 0; i < 10; i++) h.trigger();
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(runs, 1, 'ten triggers within the debounce: one run');
  h.trigger();
  h.trigger();
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(runs, 2, 'triggers during a run: one more run after it');
  assert.equal(most, 1);
  h.trigger();
  await h.stop();
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(runs, 2, 'stopped: a pending trigger does not run');
});
