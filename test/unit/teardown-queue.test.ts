/**
 * Detach answered at once, the slow work after (src/cnm/teardown-queue.ts): the driver cuts the endpoint
 * off before the answer and leaves after it; what the pending teardown holds (namespace, address, host
 * ports, network) is not handed out, and operations that need it wait; a failure stays journaled and the
 * next start completes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { IPAddress, Prefix } from '../../src/net/index.js';
import { PORT_MAP } from '../../src/driverapi/labels.js';
import { RecordingDriver, att, controllerWith, withDir } from '../helpers/fake-core.js';

/** A driver whose leave waits for `open()` (or fails while `fail` is set). */
class GatedDriver extends RecordingDriver {
  fail = false;
  private gate: Promise<void> = Promise.resolve();
  private release: () => void = () => undefined;
  constructor() {
    super('bridge', { interface: true, dnsNames: true, endpointOptions: [PORT_MAP] });
  }
  close(): void {
    this.gate = new Promise<void>((r) => (this.release = r));
  }
  open(): void {
    this.release();
  }
  async cutOff(_n: unknown, e: { ifname: string }) {
    this.calls.push(`cut off ${e.ifname}`);
  }
  override async leave(n: unknown, e: { ifname: string }) {
    await this.gate;
    if (this.fail) throw new Error('the kernel said no');
    await super.leave(n, e);
  }
}

const setup = controllerWith;

const intents = (dir: string) => readdirSync(join(dir, 'intents')).map((f) => f.replace(/\.json$/, ''));
const tick = () => new Promise((r) => setTimeout(r, 20));

test('detach answers once the endpoint is cut off; leave, then the address release, come after', withDir(async (dir) => {
  const driver = new GatedDriver();
  const controller = setup(dir, driver);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.70.0.0/24') });
  const first = await att(controller, { target: { pid: 100 }, network: 'a', name: 'c1' });
  driver.close();
  assert.deepEqual(await controller.detach('c1'), [first.endpointId]);
  assert.ok(driver.calls.includes('cut off eth0'), 'cut off before the answer');
  await tick();
  assert.ok(!driver.calls.includes('leave eth0'), 'leave still pending');
  assert.deepEqual(controller.endpoints(), [], 'the record is gone at once');
  assert.deepEqual(intents(dir), [first.endpointId], 'the teardown stays journaled until done');

  // Another container gets another address: the pending one is still held.
  const other = await att(controller, { target: { pid: 200 }, network: 'a', name: 'c2' });
  assert.notEqual(other.ipv4, first.ipv4);

  // The same container, with the same address: waits for the teardown, then gets it.
  let attached = false;
  const again = att(controller, { target: { pid: 100 }, network: 'a', name: 'c1', ip: IPAddress.parse(first.ipv4!.split('/')[0]) }).then((r) => {
    attached = true;
    return r;
  });
  await tick();
  assert.equal(attached, false, 'the re-attach waits for the pending teardown');
  driver.open();
  const r = await again;
  assert.equal(r.ipv4, first.ipv4);
  const calls = driver.calls.slice(driver.calls.indexOf('cut off eth0'));
  assert.ok(calls.indexOf('leave eth0') < calls.lastIndexOf(`join eth0 ${first.ipv4}`), 'torn down before joined again');
  await controller.stop();
  assert.deepEqual(intents(dir), []);
}));

test('rm-network and stop wait for the network\'s pending teardowns', withDir(async (dir) => {
  const driver = new GatedDriver();
  const controller = setup(dir, driver);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.71.0.0/24') });
  await att(controller, { target: { pid: 100 }, network: 'a' });
  driver.close();
  await controller.detach('100');
  let removed = false;
  const rm = controller.deleteNetwork('a').then(() => (removed = true));
  await tick();
  assert.equal(removed, false, 'rm-network waits');
  driver.open();
  await rm;
  assert.ok(driver.calls.indexOf('leave eth0') < driver.calls.indexOf('delete a'));
  await att(controller, { target: { pid: 300 } });
  driver.close();
  await controller.detach('300');
  let stopped = false;
  const stop = controller.stop().then(() => (stopped = true));
  await tick();
  assert.equal(stopped, false, 'stop waits for the queue');
  driver.open();
  await stop;
  assert.deepEqual(intents(dir), []);
}));

test('a failed teardown is kept: its address stays held, and the next start completes it', withDir(async (dir) => {
  const driver = new GatedDriver();
  const controller = setup(dir, driver);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.72.0.0/29') });
  const first = await att(controller, { target: { pid: 100 }, network: 'a' });
  driver.fail = true;
  await controller.detach('100');
  await controller.stop();
  assert.ok(!driver.calls.includes('leave eth0'));
  assert.deepEqual(intents(dir), [first.endpointId], 'journaled for the next start');
  // 10.72.0.0/29: gateway .1, first .2; the failed one's address is never handed out meanwhile.
  const got: string[] = [];
  for (const pid of [201, 202, 203, 204]) got.push((await att(controller, { target: { pid }, network: 'a' })).ipv4!);
  assert.ok(!got.includes(first.ipv4!), `${first.ipv4} not handed out again: ${got}`);

  const next = new GatedDriver();
  const restarted = setup(dir, next);
  await restarted.start();
  assert.ok(next.calls.includes('leave eth0'), 'the start completed the teardown');
  assert.deepEqual(intents(dir), []);
}));

/** The GatedDriver, reporting the host ports its endpoints asked for as the ports they hold. */
class PortsDriver extends GatedDriver {
  endpointInfo(_n: unknown, e: { options?: Record<string, unknown> }): Record<string, unknown> {
    const asked = (e.options?.[PORT_MAP] ?? []) as { proto: string; hostPort: number }[];
    return { ports: asked.map((p) => ({ proto: p.proto, hostIp: '0.0.0.0', hostPort: p.hostPort, containerPort: 80 })) };
  }
}

const publish = (hostPort: number, proto = 'tcp') => ({ [PORT_MAP]: [{ proto, containerPort: 80, hostPort, hostPortEnd: 0 }] });

test('a pending teardown holds its host ports only: an attach asking for another port, or any free one, does not wait', withDir(async (dir) => {
  const driver = new PortsDriver();
  const controller = setup(dir, driver);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.73.0.0/24') });
  await att(controller, { target: { pid: 100 }, network: 'a', name: 'c1', options: publish(8080) });
  driver.close();
  await controller.detach('c1');

  // Not held by the pending teardown: another host port, the same port of another protocol, any free port.
  await att(controller, { target: { pid: 200 }, network: 'a', name: 'c2', options: publish(8081) });
  await att(controller, { target: { pid: 201 }, network: 'a', name: 'c3', options: publish(8080, 'udp') });
  await att(controller, { target: { pid: 202 }, network: 'a', name: 'c4', options: publish(0) });
  assert.ok(!driver.calls.includes('leave eth0'), 'none of them waited for the teardown');

  // The same host port: waits until the old endpoint is torn down.
  let attached = false;
  const again = att(controller, { target: { pid: 300 }, network: 'a', name: 'c5', options: publish(8080) }).then(() => (attached = true));
  await tick();
  assert.equal(attached, false, 'an attach asking for a held host port waits');
  driver.open();
  await again;
  const calls = driver.calls;
  assert.ok(calls.indexOf('leave eth0') < calls.lastIndexOf('join eth0 10.73.0.6/24'), `torn down before the port was published again: ${calls.join(', ')}`);
  await controller.stop();
}));

test('an IPAM client asking for an address a pending teardown holds (the Docker plugin\'s RequestAddress) waits, then gets it', withDir(async (dir) => {
  const driver = new GatedDriver();
  const controller = setup(dir, driver);
  await controller.start();
  const subnet = Prefix.parse('10.74.0.0/24');
  await controller.createNetwork({ name: 'a', subnet });
  const first = await att(controller, { target: { pid: 100 }, network: 'a', name: 'c1' });
  const address = IPAddress.parse(first.ipv4!.split('/')[0]);
  driver.close();
  await controller.detach('c1');

  // Another address is held at once, the teardown still pending.
  const other = await controller.held.holdAddress(subnet, IPAddress.parse('10.74.0.200'));
  assert.equal(other.toString(), '10.74.0.200/24');
  assert.ok(!driver.calls.includes('leave eth0'), 'holding another address did not wait');

  let held: string | undefined;
  const pending = controller.held.holdAddress(subnet, address).then((a) => (held = a.toString()));
  await tick();
  assert.equal(held, undefined, 'the request for the address being torn down waits');
  driver.open();
  await pending;
  assert.equal(held, first.ipv4, 'held once the teardown released it');
  assert.ok(controller.held.addressHeld(subnet, address));
  await controller.stop();
}));
