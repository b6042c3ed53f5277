/**
 * The forwarder and responder against fake upstreams on loopback ports the kernel picks (plain sockets:
 * nothing in the machine's network configuration changes).
 */
import { test, after } from 'node:test';
import { Prefix } from '../../src/net/index.js';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import * as packet from 'dns-packet';
import { silentLogger } from '../../src/log.js';
import { Forwarder } from '../../src/dns/forwarder.js';
import { Responder } from '../../src/dns/responder.js';
import { NameDirectory } from '../../src/dns/directory.js';
import { namesOf } from '../../src/dns/records.js';
import type { Upstream } from '../../src/dns/resolv-conf.js';
import { isTruncated, tcpFrame } from '../../src/dns/wire.js';

const log = silentLogger();
const query = (name: string, id = 1000) => packet.encode({ id, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name }] });

type Behaviour = 'answer' | 'silent' | 'truncate' | 'garbage-then-answer';

interface Fake {
  upstream: Upstream;
  udpQueries: number;
  tcpQueries: number;
  close(): Promise<void>;
}

const fakes: Fake[] = [];
after(async () => {
  for (const f of fakes) await f.close();
});

function reply(buf: Buffer, count: number): Buffer {
  const q = packet.decode(buf);
  const answers: packet.Answer[] = [];
  for (let i = 0; i < count; i++) answers.push({ type: 'A', name: q.questions![0].name, ttl: 5, data: `198.18.0.${i + 1}` });
  return packet.encode({ id: q.id, type: 'response', flags: packet.RECURSION_AVAILABLE, questions: q.questions, answers });
}

async function fake(behaviour: Behaviour): Promise<Fake> {
  const udp: UdpSocket = createSocket('udp4');
  const f: Fake = { upstream: { address: '127.0.0.1', port: 0, family: 4 }, udpQueries: 0, tcpQueries: 0, close: async () => undefined };
  udp.on('message', (msg, rinfo) => {
    f.udpQueries++;
    if (behaviour === 'silent') return;
    if (behaviour === 'garbage-then-answer') {
      udp.send(Buffer.from('not dns at all'), rinfo.port, rinfo.address);
      const wrongId = reply(msg, 1);
      wrongId.writeUInt16BE((wrongId.readUInt16BE(0) + 1) & 0xffff, 0);
      udp.send(wrongId, rinfo.port, rinfo.address);
    }
    let out = reply(msg, 1);
    if (behaviour === 'truncate') {
      out = reply(msg, 0);
      out.writeUInt16BE(out.readUInt16BE(2) | packet.TRUNCATED_RESPONSE, 2);
    }
    udp.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  const port = (udp.address() as AddressInfo).port;
  // TCP on the same port number, as a real resolver.
  const tcp: Server = createServer((s) => {
    s.on('error', () => undefined);
    s.once('data', (d: Buffer) => {
      f.tcpQueries++;
      s.end(tcpFrame(reply(d.subarray(2), 30)));
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, '127.0.0.1', () => resolve());
  });
  f.upstream = { address: '127.0.0.1', port, family: 4 };
  f.close = async () => {
    udp.close();
    await new Promise((r) => tcp.close(r));
  };
  fakes.push(f);
  return f;
}

/** A loopback port where nothing listens: the kernel answers with ICMP port unreachable. */
async function deadPort(): Promise<Upstream> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  s.close();
  return { address: '127.0.0.1', port, family: 4 };
}

test('a query is relayed under a new id and the answer comes back under the client’s', async () => {
  const up = await fake('garbage-then-answer');
  const fwd = new Forwarder({ log, timeoutMs: 2000 });
  const r = await fwd.forward(query('x.example', 4321), [up.upstream], false);
  assert.ok(r.ok);
  const decoded = packet.decode(r.response);
  assert.equal(decoded.id, 4321);
  assert.equal((decoded.answers![0] as packet.StringAnswer).data, '198.18.0.1');
  assert.equal(fwd.pending, 0);
});

test('an unreachable upstream fails fast; the next one answers', async () => {
  const dead = await deadPort();
  const fwd = new Forwarder({ log, timeoutMs: 4000, attemptMs: 1000 });
  let t = Date.now();
  const fail = await fwd.forward(query('x.example'), [dead], false);
  assert.deepEqual(fail, { ok: false, reason: 'unreachable' });
  assert.ok(Date.now() - t < 500, `failed after ${Date.now() - t} ms`);
  const up = await fake('answer');
  t = Date.now();
  const ok = await fwd.forward(query('x.example'), [dead, up.upstream], false);
  assert.ok(ok.ok);
  assert.ok(Date.now() - t < 500, 'no wait for the dead one');
});

test('a silent upstream times out at the deadline; a second upstream is tried after attemptMs', async () => {
  const silent = await fake('silent');
  const fwd = new Forwarder({ log, timeoutMs: 800, attemptMs: 200 });
  const t = Date.now();
  assert.deepEqual(await fwd.forward(query('x.example'), [silent.upstream], false), { ok: false, reason: 'timeout' });
  const elapsed = Date.now() - t;
  assert.ok(elapsed >= 750 && elapsed < 1500, `${elapsed} ms`);
  assert.ok(silent.udpQueries >= 2, 'resent to the only upstream');
  const up = await fake('answer');
  const t2 = Date.now();
  const r = await fwd.forward(query('x.example'), [silent.upstream, up.upstream], false);
  assert.ok(r.ok);
  assert.ok(Date.now() - t2 >= 150, 'the first upstream had its chance');
  // The one that answered is tried first from now on.
  const before = silent.udpQueries;
  const t3 = Date.now();
  assert.ok((await fwd.forward(query('x.example'), [silent.upstream, up.upstream], false)).ok);
  assert.ok(Date.now() - t3 < 150);
  assert.equal(silent.udpQueries, before);
});

test('truncated over UDP: TCP clients get the full answer over TCP, UDP clients the truncated one', async () => {
  const up = await fake('truncate');
  const fwd = new Forwarder({ log });
  const viaTcp = await fwd.forward(query('big.example'), [up.upstream], true);
  assert.ok(viaTcp.ok);
  assert.equal(packet.decode(viaTcp.response).answers?.length, 30);
  assert.equal(up.tcpQueries, 1);
  const viaUdp = await fwd.forward(query('big.example'), [up.upstream], false);
  assert.ok(viaUdp.ok && isTruncated(viaUdp.response));
  assert.equal(up.tcpQueries, 1);
});

test('beyond maxInFlight a query fails at once', async () => {
  const silent = await fake('silent');
  const fwd = new Forwarder({ log, timeoutMs: 500, maxInFlight: 2 });
  const pending = [fwd.forward(query('a.example'), [silent.upstream], false), fwd.forward(query('b.example'), [silent.upstream], false)];
  assert.deepEqual(await fwd.forward(query('c.example'), [silent.upstream], false), { ok: false, reason: 'busy' });
  await Promise.all(pending);
  assert.deepEqual(await fwd.forward(query('d.example'), [], false), { ok: false, reason: 'no-upstream' });
});

test('the responder answers local names, forwards the rest, SERVFAILs failures, refuses internal-only clients', async () => {
  const up = await fake('answer');
  const directory = new NameDirectory();
  directory.addNetwork({ id: 'N', name: 'net', resolvesNames: true, internal: false, subnets: [Prefix.parse('192.0.2.0/24')] });
  directory.addNetwork({ id: 'I', name: 'int', resolvesNames: true, internal: true, subnets: [Prefix.parse('198.51.100.0/24')] });
  directory.join('N', { endpointId: 'e'.repeat(64), sandboxId: 's'.repeat(64), name: 'db', ipv4: '192.0.2.3', names: namesOf({ id: 'e'.repeat(64), name: 'db', sandboxId: 's'.repeat(64), aliases: [] }) });
  let upstreams = [up.upstream];
  const responder = new Responder({ directory, forwarder: new Forwarder({ log, timeoutMs: 500 }), upstreams: () => upstreams, log });
  const ask = async (network: string, name: string, client = '192.0.2.2') => {
    const out = await responder.respond(query(name, 77), { networkId: network, client, transport: 'udp' });
    return out && (packet.decode(out) as packet.DecodedPacket & { rcode: string });
  };
  const local = await ask('N', 'db');
  assert.equal(local?.rcode, 'NOERROR');
  assert.equal((local?.answers?.[0] as packet.StringAnswer).data, '192.0.2.3');
  assert.equal(responder.respond(query('db'), { networkId: 'N', client: '192.0.2.2', transport: 'udp' }) instanceof Promise, false, 'local answers are synchronous');
  const forwarded = await ask('N', 'www.example');
  assert.equal((forwarded?.answers?.[0] as packet.StringAnswer).data, '198.18.0.1');
  assert.equal(forwarded?.id, 77);
  assert.equal((await ask('I', 'www.example', '198.51.100.9'))?.rcode, 'REFUSED');
  upstreams = [await deadPort()];
  assert.equal((await ask('N', 'www.example'))?.rcode, 'SERVFAIL');
  assert.equal(await responder.respond(Buffer.alloc(3), { networkId: 'N', client: '192.0.2.2', transport: 'udp' }), undefined, 'garbage: no answer');
});
