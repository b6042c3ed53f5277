/**
 * Clients that give up: attach and detach requests whose connection is closed as soon as they are sent
 * (as the HTTP fuzzer's timeouts do) are still carried out, one after the other behind the controller's
 * lock, after the clients are gone. Once the daemon is idle (helpers/settle.ts) the kernel holds exactly
 * what the records say: a veth per endpoint, none without one. A check made while they are still queued
 * sees a veth whose attach has not recorded it yet — the http-fuzz failure this reproduces.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join } from 'node:path';
import { TestNetns, requireRoot } from '../helpers/netns.js';
import { TestDaemon } from '../helpers/daemon.js';
import { checkInvariants } from '../helpers/invariants.js';
import { settle } from '../helpers/settle.js';
import type { EndpointJson } from '../helpers/endpoints.js';

const SANDBOXES = 12;

/** Sends one request and closes the connection at once, without waiting for the answer. */
function sendAndHangUp(sock: string, method: string, path: string, body: unknown): Promise<void> {
  const text = JSON.stringify(body);
  const request = `${method} ${path} HTTP/1.1\r\nHost: netd\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`;
  return new Promise((resolve, reject) => {
    const socket = connect(sock, () => socket.end(request, () => (socket.destroy(), resolve())));
    socket.on('error', reject);
  });
}

test('attaches and detaches whose clients hung up are all carried out; once idle, every veth has a record', async () => {
  requireRoot();
  const ns = await TestNetns.create('abandon');
  const daemon = await TestDaemon.start(ns);
  try {
    await daemon.cli(['create-network', 'abnet', '--subnet', '192.0.2.0/24']);
    const names = Array.from({ length: SANDBOXES }, (_, i) => `ab${i}`);
    for (const name of names) await daemon.client.call('POST', '/netd/v1/sandboxes', { name });
    const sock = join(daemon.dir, 'netd.sock');
    const logged = daemon.logs.length;

    // Every attach is sent and its connection closed before the daemon could have done them all; then
    // half of them are detached the same way.
    await Promise.all(names.map((name) => sendAndHangUp(sock, 'POST', '/netd/v1/attach', { target: { sandbox: name }, network: 'abnet' })));
    await Promise.all(names.filter((_, i) => i % 2 === 0).map((name) => sendAndHangUp(sock, 'POST', '/netd/v1/detach', { container: name, network: 'abnet' })));

    await settle(daemon);
    const events = daemon.logs.slice(logged).split('\n');
    const attached = events.filter((l) => /"op":"attach".*"outcome":"ok"/.test(l)).length;
    const detached = events.filter((l) => /"op":"detach".*"outcome":"ok"/.test(l)).length;
    assert.equal(attached, SANDBOXES, 'every attach was carried out, though its client had gone');
    assert.equal(detached, SANDBOXES / 2, 'and every detach');

    const endpoints = await daemon.client.call<EndpointJson[]>('GET', '/netd/v1/endpoints');
    assert.deepEqual(endpoints.map((e) => e.name).sort(), names.filter((_, i) => i % 2 === 1).sort(), 'the sandboxes not detached are attached');
    await checkInvariants(daemon, ns);
    const links = (JSON.parse((await ns.exec(['ip', '-j', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => l.ifname).filter((l) => l.startsWith('veth'));
    assert.deepEqual(links.sort(), endpoints.map((e) => e.driverState.hostIfname).sort(), 'a veth per recorded endpoint, none without a record');
  } finally {
    await daemon.destroy();
    await ns.destroy();
  }
});
