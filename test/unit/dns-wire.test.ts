import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as packet from 'dns-packet';
import { RCODE, TcpFrameReader, decodeQuery, encodeAnswer, encodeError, encodeTruncated, isTruncated, messageId, tcpFrame, udpLimit, withId } from '../../src/dns/wire.js';

const query = (name: string, type: packet.RecordType = 'A', extra: Partial<packet.Packet> = {}) =>
  packet.encode({ id: 4242, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ type, name }], ...extra });

test('a plain query decodes; its answer echoes id, question and RD, with RA and AA', () => {
  const d = decodeQuery(query('db'));
  assert.ok(d.ok);
  assert.equal(d.query.id, 4242);
  assert.equal(d.query.edns, false);
  assert.equal(udpLimit(d.query), 512);
  const out = packet.decode(encodeAnswer(d.query, { rcode: RCODE.NOERROR, authoritative: true, answers: [{ type: 'A', name: 'db', ttl: 60, data: '192.0.2.7' }] }));
  assert.equal(out.id, 4242);
  assert.equal(out.type, 'response');
  assert.ok(out.flag_aa && out.flag_rd && out.flag_ra && !out.flag_tc);
  assert.deepEqual(out.questions, [{ name: 'db', type: 'A', class: 'IN' }]);
  assert.equal((out.answers![0] as packet.StringAnswer).data, '192.0.2.7');
});

test('EDNS: the client’s buffer size is honoured, and the answer carries an OPT record', () => {
  const raw = query('db', 'A', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] });
  const d = decodeQuery(raw);
  assert.ok(d.ok);
  assert.equal(udpLimit(d.query), 4096);
  const out = packet.decode(encodeAnswer(d.query, { rcode: RCODE.NXDOMAIN }));
  assert.equal((out as unknown as { rcode: string }).rcode, 'NXDOMAIN');
  assert.equal(out.additionals?.[0].type, 'OPT');
});

test('an answer too big for the client’s UDP buffer is replaced by an empty truncated one', () => {
  const d = decodeQuery(query('many'));
  assert.ok(d.ok);
  const answers: packet.Answer[] = [];
  for (let i = 0; i < 60; i++) answers.push({ type: 'A', name: 'many', ttl: 60, data: `198.18.0.${i}` });
  const full = encodeAnswer(d.query, { rcode: RCODE.NOERROR, answers });
  assert.ok(full.length > 512 && !isTruncated(full));
  const udp = encodeAnswer(d.query, { rcode: RCODE.NOERROR, answers, limit: udpLimit(d.query) });
  assert.ok(udp.length <= 512);
  assert.ok(isTruncated(udp));
  assert.equal(packet.decode(udp).answers?.length, 0);
  assert.ok(isTruncated(encodeTruncated(d.query)));
});

test('what is not a well-formed single-question query is dropped or refused, never thrown', () => {
  assert.deepEqual(decodeQuery(Buffer.alloc(5)), { ok: false, reason: 'shorter than a DNS header' });
  const response = query('db');
  response.writeUInt16BE(0x8180, 2);
  assert.equal(decodeQuery(response).ok, false);
  assert.equal((decodeQuery(response) as { id?: number }).id, undefined, 'responses are dropped, not answered');
  const update = query('db');
  update.writeUInt16BE(0x2800, 2);
  assert.equal((decodeQuery(update) as { rcode: number }).rcode, RCODE.NOTIMP);
  const two = packet.encode({ id: 1, type: 'query', questions: [{ type: 'A', name: 'a' }, { type: 'A', name: 'b' }] });
  assert.equal((decodeQuery(two) as { rcode: number }).rcode, RCODE.FORMERR);
  const huge = Buffer.concat([query('db'), Buffer.alloc(10_000)]);
  assert.equal((decodeQuery(huge) as { rcode: number }).rcode, RCODE.FORMERR);
  const loop = Buffer.concat([Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
  assert.equal((decodeQuery(loop) as { rcode: number }).rcode, RCODE.FORMERR, 'a compression loop');
  const err = packet.decode(encodeError(77, RCODE.FORMERR));
  assert.equal(err.id, 77);
  assert.equal((err as unknown as { rcode: string }).rcode, 'FORMERR');
});

// A packet that made the decoder loop (a compression cycle) would hang the test: the runner's timeout fails
// it. A bound that catches a hang, not a speed goal (those are the benchmarks' business).
test('fuzz: random and mutated packets never throw, and every answer encodes', { timeout: 60_000 }, () => {
  const seeds = [query('db'), query('x.example', 'AAAA'), query('4.3.2.1.in-addr.arpa', 'PTR')];
  for (let i = 0; i < 20_000; i++) {
    let buf: Buffer;
    if (i % 2 === 0) {
      buf = randomBytes(Math.floor(Math.random() * 100));
    } else {
      buf = Buffer.from(seeds[i % seeds.length]);
      for (let k = 0; k < 3; k++) buf[Math.floor(Math.random() * buf.length)] = Math.floor(Math.random() * 256);
    }
    const d = decodeQuery(buf);
    if (d.ok) encodeAnswer(d.query, { rcode: RCODE.NOERROR, limit: 512 });
    else if (d.id !== undefined) encodeError(d.id, d.rcode);
  }
});

test('ids are rewritten on a copy; TCP frames split and join', () => {
  const q = query('db');
  const copy = withId(q, 7);
  assert.equal(messageId(copy), 7);
  assert.equal(messageId(q), 4242);
  const reader = new TcpFrameReader(4096);
  const stream = Buffer.concat([tcpFrame(q), tcpFrame(copy)]);
  assert.deepEqual(reader.push(stream.subarray(0, 5)), []);
  const frames = reader.push(stream.subarray(5));
  assert.deepEqual(frames.map(messageId), [4242, 7]);
  assert.throws(() => new TcpFrameReader(4096).push(Buffer.from([0xff, 0xff])), /65535 bytes/);
  assert.throws(() => new TcpFrameReader(4096).push(Buffer.from([0, 0])), /0 bytes/);
});
