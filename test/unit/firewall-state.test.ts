/**
 * test/helpers/firewall-state.ts, the backend-aware view of netd's firewall state the integration tests read:
 * nft's JSON (nft 1.0.6, captured from a real ruleset holding iptables-nft's tables beside a netd-like one)
 * rendered one line per object, only netd's tables, stable across readings; iptables-save filtered to netd's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from '../helpers/daemon.js';
import { mentioning, mentionsToken, netdIptablesLines, nftForwardChains, nftTables, renderNftExpr, renderNftRuleset, rulesThat } from '../helpers/firewall-state.js';

const ruleset = JSON.parse(readFileSync(join(FIXTURES, 'nft-ruleset-1.0.6.json'), 'utf8')) as { nftables: Record<string, unknown>[] };

test('nft ruleset: only netd tables, rules in nft words, map and set elements, no handles or counts', () => {
  const lines = renderNftRuleset(ruleset);
  assert.equal(lines[0], 'table inet netd-abc');
  assert.ok(!lines.some((l) => / ip (filter|nat)\b/.test(l)), 'iptables-nft tables are not netd’s');
  assert.ok(!lines.some((l) => /handle|packets|bytes/.test(l)), lines.join('\n'));
  const has = (line: string) => assert.ok(lines.includes(line), `${line}\n  not in\n${lines.join('\n')}`);
  has('chain inet netd-abc forward { type filter hook forward priority 0; policy drop; }');
  has('rule inet netd-abc postrouting: ip saddr 172.17.0.0/16 meta oifname != netd0 masquerade');
  has('rule inet netd-abc forward: meta iifname netd0 meta oifname != netd0 counter accept comment "netd:abc:0123456789ab"');
  has('rule inet netd-abc forward: ct state { established, related } accept');
  has('rule inet netd-abc prerouting: fib daddr type local dnat ip to meta l4proto . ip daddr . th dport map @pf4');
  has('element inet netd-abc pf4: tcp . 0.0.0.0 . 8080 : 172.17.0.2 . 80');
  has('element inet netd-abc ports4: 172.17.0.2 . 20000-20009');
  has('element inet netd-abc br: netd0 : jump fwd-net0');
  assert.deepEqual(nftTables(ruleset), [{ family: 'inet', name: 'netd-abc' }]);
  assert.deepEqual(nftTables(ruleset, /^nat$/), [{ family: 'ip', name: 'nat' }]);
  assert.deepEqual(nftForwardChains(ruleset), [{ family: 'inet', table: 'netd-abc', chain: 'forward', policy: 'drop' }]);
});

test('nft ruleset: elements sorted whatever order the kernel lists them in, counters and element options ignored', () => {
  const copy = JSON.parse(JSON.stringify(ruleset)) as { nftables: Record<string, { name?: string; elem?: unknown[]; expr?: unknown[] }>[] };
  const pf4 = copy.nftables.find((o) => o.map?.name === 'pf4')!.map;
  pf4.elem!.reverse();
  // Elements with options come wrapped ({"elem": {"val": ..., "counter": ...}}); counters count.
  pf4.elem = pf4.elem!.map((e) => ({ elem: { val: e, counter: { packets: 7, bytes: 420 } } }));
  for (const o of copy.nftables) for (const x of o.rule?.expr ?? []) if (typeof x === 'object' && x && 'counter' in x) (x as { counter: unknown }).counter = { packets: 3, bytes: 99 };
  // A map's element with options is [{"elem": {...}}, value] in some nft versions: the same line.
  const br = copy.nftables.find((o) => o.map?.name === 'br')!.map;
  br.elem = (br.elem as [unknown, unknown][]).map(([k, v]) => [{ elem: { val: k, timeout: 30 } }, v]);
  assert.deepEqual(renderNftRuleset(copy), renderNftRuleset(ruleset));
});

test('nft expressions this view does not know are rendered with their arguments, never dropped', () => {
  assert.equal(renderNftExpr({ tproxy: { family: 'ip', addr: '192.0.2.1', port: 80 } }), 'tproxy(family=ip, addr=192.0.2.1, port=80)');
  assert.equal(renderNftExpr({ reject: { type: 'icmpx', expr: 'admin-prohibited' } }), 'reject(type=icmpx, expr=admin-prohibited)');
  assert.equal(renderNftExpr({ '&': [{ meta: { key: 'mark' } }, 255] }), '(meta mark & 255)');
  assert.equal(renderNftExpr({ notrack: null }), 'notrack');
  assert.equal(renderNftExpr({ jump: { target: 'netd-fwd' } }), 'jump netd-fwd');
  assert.equal(renderNftExpr({ dnat: { family: 'ip6', addr: '2001:db8::2', port: 80 } }), 'dnat ip6 to 2001:db8::2:80');
  assert.equal(renderNftExpr({ vmap: { key: { meta: { key: 'oifname' } }, data: '@fwd' } }), 'meta oifname vmap @fwd');
  assert.equal(renderNftExpr({ match: { op: '!=', left: { payload: { base: 'nh', offset: 96, len: 32 } }, right: 1 } }), '@nh,96,32 != 1');
});

test('mentions: whole tokens only (an address is not part of a longer one, a port not part of an address)', () => {
  const line = 'element inet netd-abc pf4: tcp . 0.0.0.0 . 8080 : 172.17.0.20 . 80';
  assert.ok(mentionsToken(line, 8080));
  assert.ok(mentionsToken(line, '172.17.0.20'));
  assert.ok(!mentionsToken(line, '172.17.0.2'), 'a longer address');
  assert.ok(!mentionsToken(line, 17), 'inside an address');
  assert.ok(!mentionsToken(line, 808));
  assert.ok(mentionsToken('-A NETD-PF -d 172.17.0.2/32 -j DNAT --to-destination 172.17.0.2:80', '172.17.0.2'));
  assert.ok(mentionsToken('comment "netd:abc:0123456789ab"', '0123456789ab'));
  assert.deepEqual(mentioning(['a 8080 172.17.0.2', 'b 8080', 'c 172.17.0.2'], 8080, '172.17.0.2'), ['a 8080 172.17.0.2']);
});

test('iptables-save: netd’s chains and rules only, counters zeroed', () => {
  const save = [
    '# Generated by iptables-save',
    '*filter',
    ':INPUT ACCEPT [12:345]',
    ':FORWARD DROP [3:4]',
    ':NETD-FORWARD - [7:8]',
    '-A FORWARD -j NETD-FORWARD',
    '-A FORWARD -s 10.0.0.0/8 -j ACCEPT',
    '-A NETD-FORWARD -o netd0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    'COMMIT',
  ].join('\n');
  assert.deepEqual(netdIptablesLines(save), [':NETD-FORWARD - [0:0]', '-A FORWARD -j NETD-FORWARD', '-A NETD-FORWARD -o netd0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT']);
});

test('rulesThat: a rule taking the action, or an element of a set such a rule looks up, or a verdict map’s element', () => {
  const lines = renderNftRuleset(ruleset);
  assert.deepEqual(rulesThat(lines, 'masquerade', '172.17.0.0/16'), ['rule inet netd-abc postrouting: ip saddr 172.17.0.0/16 meta oifname != netd0 masquerade']);
  assert.deepEqual(rulesThat(lines, 'masquerade', '192.0.2.0/24'), []);
  assert.deepEqual(rulesThat(lines, 'dnat', 8080, '172.17.0.2', 80), ['element inet netd-abc pf4: tcp . 0.0.0.0 . 8080 : 172.17.0.2 . 80']);
  assert.deepEqual(rulesThat(lines, 'dnat', 8081, '172.17.0.2'), [], 'another container');
  assert.deepEqual(rulesThat(lines, 'masquerade', '172.17.0.2'), [], 'the DNAT map is not looked up by a masquerade');
  assert.deepEqual(rulesThat(lines, 'jump', 'netd0'), ['element inet netd-abc br: netd0 : jump fwd-net0']);
  assert.deepEqual(rulesThat(lines, 'drop', '127.0.0.0/8', 'lo'), ['rule inet netd-abc raw: meta iifname != lo ip daddr 127.0.0.0/8 drop']);
  const ipt = ['-A NETD-POSTROUTING -s 172.17.0.0/16 ! -o netd0 -m comment --comment "netd:x:y" -j MASQUERADE', '-A NETD-PF -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80'];
  assert.deepEqual(rulesThat(ipt, 'masquerade', '172.17.0.0/16'), [ipt[0]]);
  assert.deepEqual(rulesThat(ipt, 'dnat', 8080, '172.17.0.2', 80), [ipt[1]]);
});
