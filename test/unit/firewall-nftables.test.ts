/**
 * The nftables backend's pure parts: element rendering and its refusals, the layout of one network, the
 * reader of `nft -j list table`, the planner, and the coexistence findings.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { KernelError, InvalidArgumentError } from '../../src/errors.js';
import { IPAddress } from '../../src/net/index.js';
import { NftScriptElementWriter, elementText, renderElementChanges, type NftElement, type NftField } from '../../src/firewall/nft-elements.js';
import { forwardElements, networkLayout, tableModel, chainFingerprint, type NftTableModel } from '../../src/firewall/nftables-layout.js';
import { parseTable, type TableState } from '../../src/firewall/nftables-ruleset.js';
import { EVERYTHING, planTable } from '../../src/firewall/nftables-plan.js';
import { coexistenceFindings } from '../../src/firewall/nftables-coexistence.js';
import { normalizeNetwork } from '../../src/firewall/spec.js';
import { normalizeForward } from '../../src/firewall/port-forward.js';
import { forwardSpec, networkSpec } from '../helpers/firewall-spec.js';

const ip = (s: string) => IPAddress.parse(s);
const v4 = (s: string): NftField => ({ type: 'ipv4_addr', value: ip(s) });
const tcp: NftField = { type: 'inet_proto', value: 6 };
const svc = (n: number): NftField => ({ type: 'inet_service', value: n });

const N = normalizeNetwork(networkSpec({ id: '0123456789ab' + 'cdef'.repeat(13), bridge: 'br-t1', subnets: ['192.0.2.0/24'], internal: false, masquerade: true, icc: true }));
const F = normalizeForward(
  forwardSpec({
    endpointId: 'aa'.repeat(32),
    bridge: 'br-t1',
    containerV4: '192.0.2.2',
    ports: [
      { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 },
      { proto: 'udp', hostIp: '198.51.100.1', hostPort: 5000, hostPortEnd: 5001, containerPort: 6000 },
      { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 9000, hostPortEnd: 9100, containerPort: 9000 },
    ],
    routed: [4],
  }),
  [4, 6],
);

describe('nft elements', () => {
  test('one transaction, deletes before adds, as nft prints elements', () => {
    const text = renderElementChanges('netd-0a1b2c', [
      { set: 'pf4_any', add: [{ key: [tcp, svc(8080)], data: [v4('192.0.2.2'), svc(80)] }] },
      { set: 'routed4', delete: [{ key: [v4('192.0.2.2'), tcp, svc(80)], keyEnd: [v4('192.0.2.2'), tcp, svc(90)] }] },
    ]);
    assert.equal(
      text,
      'delete element inet netd-0a1b2c routed4 { 192.0.2.2 . tcp . 80-90 }\n' + 'add element inet netd-0a1b2c pf4_any { tcp . 8080 : 192.0.2.2 . 80 }\n',
    );
  });

  const hostile: [string, () => unknown][] = [
    ['a table name with a command', () => renderElementChanges('netd; flush ruleset', [])],
    ['another table', () => renderElementChanges('filter', [])],
    ['a table name with a newline', () => renderElementChanges('netd\nflush ruleset', [])],
    ['a set name not netd\'s', () => renderElementChanges('netd', [{ set: 'pf4_any } ; flush ruleset ; {', add: [] }])],
    ['a network vmap through the writer', () => renderElementChanges('netd', [{ set: 'fwd_out', add: [] }])],
    ['an IPv6 address in an ipv4_addr field', () => elementText({ key: [v4('2001:db8::1')] })],
    ['a string for an address', () => elementText({ key: [{ type: 'ipv4_addr', value: '1.2.3.4 } ; flush ruleset' as unknown as IPAddress }] })],
    ['port 65536', () => elementText({ key: [svc(65536)] })],
    ['port -1', () => elementText({ key: [svc(-1)] })],
    ['port 1.5', () => elementText({ key: [svc(1.5)] })],
    ['port as text', () => elementText({ key: [{ type: 'inet_service', value: '80 }' as unknown as number }] })],
    ['protocol 256', () => elementText({ key: [{ type: 'inet_proto', value: 256 }] })],
    ['an unknown field type', () => elementText({ key: [{ type: 'ifname', value: 'x' } as unknown as NftField] })],
    ['a key end of other fields', () => elementText({ key: [tcp, svc(1)], keyEnd: [svc(2)] })],
    ['a range ending before it starts', () => elementText({ key: [tcp, svc(10)], keyEnd: [tcp, svc(9)] })],
    ['an empty key', () => elementText({ key: [] })],
  ];
  for (const [what, fn] of hostile) test(`refuses ${what}`, () => assert.throws(fn, InvalidArgumentError));

  test('the script writer runs nft -f - with the transaction on stdin, errors as errno names', async () => {
    const calls: { argv: string[]; stdin?: string }[] = [];
    const w = new NftScriptElementWriter(async (argv, stdin) => {
      calls.push({ argv, stdin });
      return { code: 1, stdout: '', stderr: 'Error: Could not process rule: File exists\n' };
    });
    const e: NftElement = { key: [tcp, svc(1)], data: [v4('192.0.2.2'), svc(2)] };
    await assert.rejects(w.apply('netd', [{ set: 'pf4_any', add: [e] }]), (err: unknown) => err instanceof KernelError && err.errno === 'EEXIST');
    assert.deepEqual(calls[0].argv, ['nft', '-f', '-']);
    assert.equal(calls[0].stdin, 'add element inet netd pf4_any { tcp . 1 : 192.0.2.2 . 2 }\n');
  });
});

describe('nftables layout', () => {
  test("one network's chains, reached through vmap elements", () => {
    const l = networkLayout(N);
    assert.deepEqual(l.chains.map((c) => c.name), ['nw-0123456789ab-out', 'nw-0123456789ab-in', 'nw-0123456789ab-hairpin', 'nw-0123456789ab-masq']);
    assert.deepEqual(l.chains[0].rules, [
      'meta nfproto ipv6 return',
      'ct state established,related meta mark set meta mark | 0x00200000 accept',
      'ct status dnat meta mark set meta mark | 0x00200000 accept',
      'iifname != "br-t1" ip daddr . meta l4proto . th dport @routed4 meta mark set meta mark | 0x00200000 accept',
      'iifname != "br-t1" drop',
    ]);
    assert.deepEqual(l.elements.map((e) => e[2]), [
      '"br-t1" : jump nw-0123456789ab-out',
      '"br-t1" : jump nw-0123456789ab-in',
      '"br-t1" : jump nw-0123456789ab-hairpin',
      '192.0.2.0/24 : jump nw-0123456789ab-masq',
    ]);
  });

  test('a hostile bridge name never reaches a rule', () => {
    assert.throws(() => normalizeNetwork(networkSpec({ id: 'ab'.repeat(32), bridge: 'br" drop; flush ruleset', subnets: ['192.0.2.0/24'], internal: false, masquerade: true, icc: true })), InvalidArgumentError);
  });

  test('published ports: single, offset range expanded, equal range whole, routed', () => {
    const e = forwardElements(F);
    const texts = Object.fromEntries([...e].map(([set, list]) => [set, list.map(elementText)]));
    assert.deepEqual(texts, {
      pf4_any: ['tcp . 8080 : 192.0.2.2 . 80'],
      pf4_addr: ['198.51.100.1 . udp . 5000 : 192.0.2.2 . 6000', '198.51.100.1 . udp . 5001 : 192.0.2.2 . 6001'],
      pf4_any_range: ['tcp . 9000-9100 : 192.0.2.2'],
      routed4: ['192.0.2.2 . tcp . 80', '192.0.2.2 . udp . 6000-6001', '192.0.2.2 . tcp . 9000-9100'],
    });
  });
});

/** The state nft would show for a model (what the planner compares against). */
function stateOf(model: NftTableModel): TableState {
  return {
    chains: new Map(model.chains.map((c) => [c.name, { base: c.base ? { type: c.base.type, hook: c.base.hook, priority: c.base.priority, policy: 'accept' } : undefined, rules: c.rules.length, fingerprint: chainFingerprint(c) }])),
    sets: new Map(model.sets.map((s) => [s.name, { type: s.type, map: s.map, interval: s.interval, elements: new Map(model.elements.get(s.name)) }])),
  };
}

describe('nftables planner', () => {
  const model = tableModel([4, 6], [], [N], [F]);
  test('nothing to do when the table is as wanted; a missing table is built whole', () => {
    assert.equal(planTable('netd', stateOf(model), model, EVERYTHING).script, '');
    const built = planTable('netd', undefined, model, EVERYTHING);
    assert.ok(built.rebuilt);
    assert.match(built.script, /^add table inet netd\ndelete table inet netd\nadd table inet netd\n/);
  });

  test('strays go, what is missing comes back, out of scope stays', () => {
    const state = stateOf(model);
    state.sets.get('pf4_any')!.elements.set('tcp . 1', 'tcp . 1 : 192.0.2.9 . 1');
    state.sets.get('pf4_any')!.elements.delete('tcp . 8080');
    state.chains.set('nw-ffffffffffff-out', { rules: 1 });
    const plan = planTable('netd', state, model, EVERYTHING);
    assert.equal(
      plan.script,
      'delete element inet netd pf4_any { tcp . 1 }\n' +
        'flush chain inet netd nw-ffffffffffff-out\ndelete chain inet netd nw-ffffffffffff-out\n' +
        'add element inet netd pf4_any { tcp . 8080 : 192.0.2.2 . 80 }\n',
    );
    assert.equal(planTable('netd', state, model, { chain: (c) => c.startsWith('nw-0123'), element: () => false }).script, '');
  });

  test('reads nft -j list table back into the same element texts', () => {
    const json = JSON.stringify({
      nftables: [
        { map: { family: 'inet', name: 'pf4_addr', table: 'netd', type: ['ipv4_addr', 'inet_proto', 'inet_service'], map: 'ipv4_addr . inet_service', elem: [[{ concat: ['198.51.100.1', 'udp', 5000] }, { concat: ['192.0.2.2', 6000] }]] } },
        { map: { family: 'inet', name: 'fwd_out', table: 'netd', type: 'ifname', map: 'verdict', elem: [['br-t1', { jump: { target: 'nw-0123456789ab-out' } }]] } },
        { set: { family: 'inet', name: 'routed4', table: 'netd', type: ['ipv4_addr', 'inet_proto', 'inet_service'], flags: ['interval'], elem: [{ concat: ['192.0.2.2', 'tcp', { range: [9000, 9100] }] }] } },
        { map: { family: 'inet', name: 'post_src4', table: 'netd', type: 'ipv4_addr', map: 'verdict', flags: ['interval'], elem: [[{ prefix: { addr: '192.0.2.0', len: 24 } }, { jump: { target: 'nw-0123456789ab-masq' } }]] } },
        { chain: { family: 'inet', table: 'netd', name: 'pf', handle: 1 } },
        { rule: { family: 'inet', table: 'netd', chain: 'pf', handle: 2, comment: 'netd:x', expr: [] } },
        { rule: { family: 'inet', table: 'netd', chain: 'pf', handle: 3, expr: [] } },
      ],
    });
    const t = parseTable(json);
    assert.deepEqual([...t.sets.get('pf4_addr')!.elements.values()], ['198.51.100.1 . udp . 5000 : 192.0.2.2 . 6000']);
    assert.deepEqual([...t.sets.get('fwd_out')!.elements.values()], ['"br-t1" : jump nw-0123456789ab-out']);
    assert.deepEqual([...t.sets.get('routed4')!.elements.keys()], ['192.0.2.2 . tcp . 9000-9100']);
    assert.deepEqual([...t.sets.get('post_src4')!.elements.values()], ['192.0.2.0/24 : jump nw-0123456789ab-masq']);
    assert.deepEqual(t.chains.get('pf'), { base: undefined, rules: 2, fingerprint: 'netd:x' });
  });
});

describe('coexistence', () => {
  test("iptables-nft's FORWARD policy drop and a rule dropping a netd bridge are named, with the rule to add", () => {
    const json = JSON.stringify({
      nftables: [
        { chain: { family: 'ip', table: 'filter', name: 'FORWARD', type: 'filter', hook: 'forward', prio: 0, policy: 'drop' } },
        { chain: { family: 'inet', table: 'fw', name: 'fwd', type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } },
        { rule: { family: 'inet', table: 'fw', chain: 'fwd', handle: 7, expr: [{ match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'br-t1' } }, { drop: null }] } },
        { rule: { family: 'inet', table: 'fw', chain: 'fwd', handle: 8, expr: [{ match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'eth9' } }, { drop: null }] } },
        { chain: { family: 'inet', table: 'netd-0a1b2c', name: 'forward-drop', type: 'filter', hook: 'forward', prio: 10, policy: 'drop' } },
      ],
    });
    const f = coexistenceFindings(json, ['br-t1']);
    assert.deepEqual(f.map((x) => x.where), ['ip filter FORWARD', 'inet fw fwd']);
    assert.match(f[0].fix, /iptables -I FORWARD -m mark --mark 0x00200000\/0x00200000 -j ACCEPT/);
    assert.match(f[1].problem, /handle 7 .*br-t1/);
  });
});

describe('coexistence: the fix applied', () => {
  const MARK = { match: { op: '==', left: { '&': [{ meta: { key: 'mark' } }, 0x00200000] }, right: 0x00200000 } };
  const forward = (policy: string) => ({ chain: { family: 'ip', table: 'filter', name: 'FORWARD', type: 'filter', hook: 'forward', prio: 0, policy } });
  const rule = (chain: string, handle: number, expr: unknown[]) => ({ rule: { family: 'ip', table: 'filter', chain, handle, expr } });
  const findings = (...items: unknown[]) => coexistenceFindings(JSON.stringify({ nftables: items }), ['br-t1']);

  test('a policy drop is no finding once the chain accepts by netd\'s mark, itself or in a chain it jumps to (DOCKER-USER)', () => {
    assert.equal(findings(forward('drop')).length, 1);
    assert.deepEqual(findings(forward('drop'), rule('FORWARD', 5, [MARK, { counter: null }, { accept: null }])), []);
    const dockerUser = { chain: { family: 'ip', table: 'filter', name: 'DOCKER-USER' } };
    assert.deepEqual(findings(forward('drop'), dockerUser, rule('FORWARD', 3, [{ counter: null }, { jump: { target: 'DOCKER-USER' } }]), rule('DOCKER-USER', 4, [MARK, { accept: null }])), []);
    // The mark matched but not accepted, or another bit: still a finding.
    assert.equal(findings(forward('drop'), rule('FORWARD', 5, [MARK, { counter: null }])).length, 1);
    assert.equal(findings(forward('drop'), rule('FORWARD', 5, [{ match: { op: '==', left: { '&': [{ meta: { key: 'mark' } }, 1] }, right: 1 } }, { accept: null }])).length, 1);
  });

  test('a drop rule before the mark accept is still named; one after it is not', () => {
    const drop = (handle: number) => rule('FORWARD', handle, [{ match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'br-t1' } }, { drop: null }]);
    const f = findings(forward('accept'), drop(2), rule('FORWARD', 5, [MARK, { accept: null }]), drop(9));
    assert.deepEqual(f.map((x) => [x.family, x.table, x.chain, x.problem.slice(0, 13)]), [['ip', 'filter', 'FORWARD', 'rule handle 2']]);
  });
});
