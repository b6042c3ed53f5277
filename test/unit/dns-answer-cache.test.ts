/**
 * The fast path of the embedded DNS (question.ts, local-answer.ts, answer-cache.ts through the Responder):
 * repeated questions are served from the cache, and a cached answer is exactly what a fresh one would be for
 * each asker: its id, flags, question spelling (DNS 0x20) and EDNS, its network's names, and the names as
 * they are now (every kind of change invalidates).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as packet from 'dns-packet';
import { Prefix } from '../../src/net/index.js';
import { silentLogger } from '../../src/log.js';
import { NameDirectory } from '../../src/dns/directory.js';
import { reverseName } from '../../src/dns/records.js';
import { Forwarder } from '../../src/dns/forwarder.js';
import { Responder, type QueryContext } from '../../src/dns/responder.js';
import { readQuestion } from '../../src/dns/question.js';
import { EP } from './dns-endpoints.js';

interface Setup {
  dir: NameDirectory;
  responder: Responder;
  /** Directory look-ups so far (a cache hit makes none). */
  lookups: () => number;
}

function setup(): Setup {
  const dir = new NameDirectory();
  dir.addNetwork({ id: 'A', name: 'neta', resolvesNames: true, internal: false, subnets: [Prefix.parse('192.0.2.0/24'), Prefix.parse('fd00:a::/64')] });
  dir.addNetwork({ id: 'B', name: 'netb', resolvesNames: true, internal: false, subnets: [Prefix.parse('198.51.100.0/24')] });
  dir.join('A', EP('a1', 'sa1', 'web', '192.0.2.2', 'fd00:a::2', ['www']));
  dir.join('A', EP('a2', 'sa2', 'client', '192.0.2.3'));
  dir.join('B', EP('b1', 'sb1', 'web', '198.51.100.2'));
  dir.join('B', EP('b2', 'sb2', 'only-b', '198.51.100.3'));
  dir.join('B', EP('b3', 'sb3', 'client-b', '198.51.100.4'));
  let lookups = 0;
  const resolve = dir.resolve.bind(dir);
  dir.resolve = (...args) => {
    lookups++;
    return resolve(...args);
  };
  const log = silentLogger();
  // No upstream: anything that is not local would be answered SERVFAIL/REFUSED, never a local answer.
  const responder = new Responder({ directory: dir, forwarder: new Forwarder({ log }), upstreams: () => [], log });
  return { dir, responder, lookups: () => lookups };
}

const ON_A: QueryContext = { networkId: 'A', client: '192.0.2.3', transport: 'udp' };
const ON_B: QueryContext = { networkId: 'B', client: '198.51.100.4', transport: 'udp' };

interface Ask {
  id?: number;
  type?: packet.RecordType | 'ANY';
  flags?: number;
  edns?: number;
}

function query(name: string, ask: Ask = {}): Buffer {
  return packet.encode({
    id: ask.id ?? 4242,
    type: 'query',
    flags: ask.flags ?? packet.RECURSION_DESIRED,
    questions: [{ type: (ask.type ?? 'A') as packet.RecordType, name, class: 'IN' }],
    additionals: ask.edns === undefined ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: ask.edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
  });
}

function respond(s: Setup, raw: Buffer, ctx: QueryContext): Buffer {
  const reply = s.responder.respond(raw, ctx);
  assert.ok(Buffer.isBuffer(reply), 'a local answer is given at once');
  return reply;
}

type Decoded = packet.DecodedPacket & { rcode?: string };

function ask(s: Setup, name: string, ctx: QueryContext = ON_A, a: Ask = {}): Decoded {
  return packet.decode(respond(s, query(name, a), ctx)) as Decoded;
}

const data = (p: packet.DecodedPacket): unknown[] => (p.answers ?? []).map((a) => (a as { data: unknown }).data);

test('the fast path reads ordinary queries only; anything unusual goes to the full decoder', () => {
  assert.ok(readQuestion(query('web')));
  assert.equal(readQuestion(query('web', { edns: 1232 }))?.udpPayloadSize, 1232);
  const two = packet.encode({ id: 1, type: 'query', questions: [{ type: 'A', name: 'a' }, { type: 'A', name: 'b' }] });
  const response = packet.encode({ id: 1, type: 'response', questions: [{ type: 'A', name: 'a' }] });
  const trailing = Buffer.concat([query('web'), Buffer.from([0])]);
  const odd = query('we b');
  for (const [what, raw] of [['two questions', two], ['a response', response], ['trailing bytes', trailing], ['a space in a label', odd], ['a header only', query('web').subarray(0, 12)]] as const) {
    assert.equal(readQuestion(raw), undefined, what);
  }
  const compressed = Buffer.from(query('web'));
  compressed[12] = 0xc0; // a pointer where a label should be
  assert.equal(readQuestion(compressed), undefined, 'a compressed question');
});

test('a repeated question is answered from the cache: no second look-up, the same answer', () => {
  const s = setup();
  const first = ask(s, 'web');
  assert.deepEqual(data(first), ['192.0.2.2']);
  const after = s.lookups();
  for (let i = 0; i < 5; i++) assert.deepEqual(ask(s, 'web'), first);
  assert.equal(s.lookups(), after, 'served from the cache');
});

test('each asker gets its own id and RD/CD flags', () => {
  const s = setup();
  ask(s, 'web', ON_A, { id: 1 });
  for (const [id, flags] of [[2, packet.RECURSION_DESIRED], [0xffff, 0], [77, packet.CHECKING_DISABLED], [9, packet.RECURSION_DESIRED | packet.CHECKING_DISABLED]]) {
    const raw = respond(s, query('web', { id, flags }), ON_A);
    assert.equal(raw.readUInt16BE(0), id);
    const f = raw.readUInt16BE(2);
    assert.equal(f & packet.RECURSION_DESIRED, flags & packet.RECURSION_DESIRED, `RD of id ${id}`);
    assert.equal(f & packet.CHECKING_DISABLED, flags & packet.CHECKING_DISABLED, `CD of id ${id}`);
    assert.equal(f & 0x8000, 0x8000, 'a response');
    assert.equal(f & packet.AUTHORITATIVE_ANSWER, packet.AUTHORITATIVE_ANSWER);
    assert.equal(f & packet.RECURSION_AVAILABLE, packet.RECURSION_AVAILABLE);
  }
});

test('DNS 0x20: the question and the answer names echo the asker’s letter case exactly', () => {
  const s = setup();
  for (const name of ['web', 'WEB', 'wEb', 'WeB.NetA', 'web.neta', 'Www']) {
    const p = ask(s, name);
    assert.equal(p.questions?.[0].name, name);
    assert.deepEqual((p.answers ?? []).map((a) => a.name), [name]);
    assert.deepEqual(data(p), ['192.0.2.2'], name);
  }
  const nx = ask(s, 'NoSuchName');
  assert.equal(nx.rcode, 'NXDOMAIN');
  assert.equal(nx.questions?.[0].name, 'NoSuchName');
});

test('EDNS and no EDNS are answered apart; the payload size decides truncation, per asker', () => {
  const s = setup();
  const plain = ask(s, 'web');
  const edns = ask(s, 'web', ON_A, { edns: 4096 });
  const again = ask(s, 'web');
  assert.equal((plain.additionals ?? []).length, 0);
  assert.equal(again.additionals?.length ?? 0, 0, 'the EDNS answer is not served to a plain query');
  const opt = edns.additionals?.find((a) => a.type === 'OPT') as packet.OptAnswer | undefined;
  assert.equal(opt?.udpPayloadSize, 1232, 'netd advertises its own size');
  assert.deepEqual(data(edns), ['192.0.2.2']);

  // 40 containers share an alias: 40 A records do not fit 512 bytes.
  for (let i = 0; i < 40; i++) s.dir.join('A', EP(`m${i}`, `sm${i}`, `member${i}`, `192.0.2.${100 + i}`, undefined, ['many']));
  for (let round = 0; round < 2; round++) {
    const small = ask(s, 'many');
    assert.ok(small.flags! & packet.TRUNCATED_RESPONSE, 'no EDNS: TC');
    assert.equal(small.answers?.length, 0);
    const big = ask(s, 'many', ON_A, { edns: 4096 });
    assert.equal(big.flags! & packet.TRUNCATED_RESPONSE, 0);
    assert.equal(big.answers?.length, 40);
    const tcp = ask(s, 'many', { ...ON_A, transport: 'tcp' });
    assert.equal(tcp.answers?.length, 40, 'TCP has no limit');
  }
});

test('scoping: the same name from two networks gets each network’s answer, cached or not', () => {
  const s = setup();
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(data(ask(s, 'web', ON_A)), ['192.0.2.2']);
    assert.deepEqual(data(ask(s, 'web', ON_B)), ['198.51.100.2']);
    assert.deepEqual(data(ask(s, 'only-b', ON_B)), ['198.51.100.3']);
    assert.equal(ask(s, 'only-b', ON_A).rcode, 'NXDOMAIN', 'a name of network B never reaches a container on A only');
  }
  // A container on both networks sees B's names too, through A's listener (A first).
  s.dir.join('B', EP('a2-on-b', 'sa2', 'client', '198.51.100.9'));
  assert.deepEqual(data(ask(s, 'only-b', ON_A)), ['198.51.100.3']);
  assert.deepEqual(data(ask(s, 'web', ON_A)), ['192.0.2.2']);
  assert.equal(ask(s, 'only-b', { ...ON_A, client: '192.0.2.2' }).rcode, 'NXDOMAIN', 'another container of A, not on B');
});

test('every kind of change invalidates cached answers', () => {
  const s = setup();
  const warm = (name: string, a: Ask = {}) => {
    ask(s, name, ON_A, a);
    ask(s, name, ON_A, a);
  };
  warm('db');
  s.dir.join('A', EP('a3', 'sa3', 'db', '192.0.2.7'));
  assert.deepEqual(data(ask(s, 'db')), ['192.0.2.7'], 'join');

  warm('db');
  s.dir.join('A', EP('a3', 'sa3', 'db', '192.0.2.8', undefined, ['cache']));
  assert.deepEqual(data(ask(s, 'db')), ['192.0.2.8'], 're-join with another address');
  assert.deepEqual(data(ask(s, 'cache')), ['192.0.2.8'], 'alias added');
  warm('cache');
  s.dir.join('A', EP('a3', 'sa3', 'db', '192.0.2.8'));
  assert.equal(ask(s, 'cache').rcode, 'NXDOMAIN', 'alias removed');

  warm('db', { type: 'AAAA' });
  warm('8.2.0.192.in-addr.arpa', { type: 'PTR' });
  s.dir.leave('A', 'a3');
  assert.equal(ask(s, 'db').rcode, 'NXDOMAIN', 'leave');
  assert.equal(ask(s, 'db', ON_A, { type: 'AAAA' }).rcode, 'NXDOMAIN', 'leave (AAAA)');
  assert.equal(ask(s, '8.2.0.192.in-addr.arpa', ON_A, { type: 'PTR' }).rcode, 'NXDOMAIN', 'leave (PTR)');

  warm('web.neta');
  s.dir.addNetwork({ id: 'A', name: 'renamed', resolvesNames: true, internal: false, subnets: [Prefix.parse('192.0.2.0/24')] });
  assert.ok(s.responder.respond(query('web.neta'), ON_A) instanceof Promise, 'network renamed: no longer netd’s name, forwarded');
  assert.deepEqual(data(ask(s, 'web.renamed')), ['192.0.2.2']);

  s.dir.join('B', EP('a2-on-b', 'sa2', 'client', '198.51.100.9'));
  warm('only-b');
  s.dir.removeNetwork('B');
  assert.equal(ask(s, 'only-b').rcode, 'NXDOMAIN', 'network removed');
});

test('answers by type: A, AAAA, ANY, PTR, NODATA and NXDOMAIN, as the full path gives them', () => {
  const s = setup();
  for (let round = 0; round < 2; round++) {
    assert.deepEqual(data(ask(s, 'web', ON_A, { type: 'AAAA' })), ['fd00:a::2']);
    assert.deepEqual(data(ask(s, 'web', ON_A, { type: 'ANY' })), ['192.0.2.2', 'fd00:a::2']);
    const ptr = ask(s, reverseName('192.0.2.2'), ON_A, { type: 'PTR' });
    assert.deepEqual(data(ptr), ['web.neta']);
    assert.deepEqual(data(ask(s, reverseName('fd00:a::2'), ON_A, { type: 'PTR' })), ['web.neta']);
    const nodata = ask(s, 'client', ON_A, { type: 'AAAA' });
    assert.equal(nodata.rcode, 'NOERROR');
    assert.equal(nodata.answers?.length, 0);
    const mx = ask(s, 'web', ON_A, { type: 'MX' });
    assert.equal(mx.rcode, 'NOERROR');
    assert.equal(mx.answers?.length, 0);
    assert.equal(ask(s, reverseName('192.0.2.200'), ON_A, { type: 'PTR' }).rcode, 'NXDOMAIN', 'an address of the subnet nobody holds');
    for (const a of ask(s, 'web', ON_A, { type: 'ANY' }).answers ?? []) assert.equal((a as { ttl: number }).ttl, 60);
  }
});

/** What a response says, independent of how it is compressed; records sorted (round robin shuffles them). */
function meaning(raw: Buffer | undefined): unknown {
  if (!raw) return raw;
  const p = packet.decode(raw) as Decoded;
  const records = (list: packet.Answer[] | undefined) => (list ?? []).map((a) => JSON.stringify(a)).sort();
  return { id: p.id, flags: p.flags, rcode: p.rcode, questions: p.questions, answers: records(p.answers), additionals: records(p.additionals) };
}

test('hostile and odd queries: the fast path never throws and answers exactly as the full decoder would', () => {
  const s = setup();
  for (let i = 0; i < 40; i++) s.dir.join('A', EP(`m${i}`, `sm${i}`, `member${i}`, `192.0.2.${100 + i}`, undefined, ['many']));
  const full = (raw: Buffer, ctx: QueryContext) => (s.responder as unknown as { respondDecoded(r: Buffer, c: QueryContext): unknown }).respondDecoded(raw, ctx);
  let seed = 12345;
  const rand = (n: number) => {
    // xorshift32: repeatable, so that a failure names a query that fails again.
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const names = ['web', 'WEB.neta', 'many', 'client', 'nothing', reverseName('192.0.2.2'), reverseName('fd00:a::2'), reverseName('192.0.2.99'), 'a.b.c', 'x'.repeat(63)];
  const types: (packet.RecordType | 'ANY')[] = ['A', 'AAAA', 'ANY', 'PTR', 'MX', 'TXT'];
  let fast = 0;
  const rounds = 8000;
  for (let i = 0; i < rounds; i++) {
    const edns = [undefined, 0, 512, 1232, 4096][rand(5)];
    const base = query(names[rand(names.length)], { id: rand(0x10000), type: types[rand(types.length)], flags: rand(2) ? packet.RECURSION_DESIRED : 0, edns });
    const raw = Buffer.from(base);
    // Mutate a few bytes (or none), sometimes cut or extend the message.
    for (let m = rand(4); m > 0; m--) raw[rand(raw.length)] = rand(256);
    const cut = rand(8) === 0 ? raw.subarray(0, rand(raw.length)) : rand(8) === 0 ? Buffer.concat([raw, Buffer.from([rand(256)])]) : raw;
    const ctx = rand(4) === 0 ? { ...ON_A, transport: 'tcp' as const } : rand(3) === 0 ? ON_B : ON_A;
    let reply: unknown;
    assert.doesNotThrow(() => (reply = s.responder.respond(cut, ctx)), `query ${cut.toString('hex')}`);
    if (!readQuestion(cut) || reply instanceof Promise || reply === undefined) continue;
    const expected = full(cut, ctx);
    if (expected instanceof Promise) assert.fail(`fast path answered a query the full path forwards: ${cut.toString('hex')}`);
    assert.deepEqual(meaning(reply as Buffer), meaning(expected as Buffer), `query ${cut.toString('hex')}`);
    fast++;
  }
  assert.ok(fast > rounds / 10, `${fast} of ${rounds} took the fast path`);
});
