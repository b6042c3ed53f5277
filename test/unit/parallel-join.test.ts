/**
 * Attaches whose driver join runs outside the controller's lock (src/cnm/joins.ts, lock.ts): joins of
 * different containers overlap; what an attach in flight holds (its namespace, its name) makes another
 * attach wait; every other operation waits until no attach is in flight; a failed join rolls back as
 * before. A driver without `parallelJoin` still joins under the lock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Prefix, type InterfaceAddress } from '../../src/net/index.js';
import { ConflictError } from '../../src/errors.js';
import { RecordingDriver, att, controllerWith, withDir } from '../helpers/fake-core.js';

/** A driver whose joins wait for `open()` while closed; records when each starts and ends. */
class GatedJoinDriver extends RecordingDriver {
  private gate: Promise<void> = Promise.resolve();
  private release: () => void = () => undefined;
  constructor(parallel: boolean) {
    super('bridge', { interface: true, dnsNames: true, parallelJoin: parallel });
  }
  close(): void {
    this.gate = new Promise<void>((r) => (this.release = r));
  }
  open(): void {
    this.release();
  }
  override async join(n: unknown, e: { ifname: string; ipv4?: InterfaceAddress }) {
    this.calls.push(`start ${e.ipv4}`);
    await this.gate;
    return super.join(n, e);
  }
}

const setup = controllerWith;

const tick = () => new Promise((r) => setTimeout(r, 20));
const intents = (dir: string) => readdirSync(join(dir, 'intents'));

/** Tracks whether a promise has settled. */
function watch<T>(p: Promise<T>): { p: Promise<T>; settled: () => boolean } {
  let done = false;
  const q = p.finally(() => (done = true));
  return { p: q, settled: () => done };
}

test('joins of different containers run at once; each is committed when its join ends', withDir(async (dir) => {
  const driver = new GatedJoinDriver(true);
  const controller = setup(dir, driver);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.80.0.0/24') });
  driver.close();
  const one = watch(att(controller, { target: { pid: 100 }, network: 'a', name: 'c1' }));
  const two = watch(att(controller, { target: { pid: 200 }, network: 'a', name: 'c2' }));
  await tick();
  assert.deepEqual(driver.calls.filter((c) => c.startsWith('start')), ['start 10.80.0.2/24', 'start 10.80.0.3/24'], 'both joins started before either ended');
  assert.deepEqual(controller.endpoints(), [], 'nothing is committed while the joins run');
  assert.equal(intents(dir).length, 2, 'both intents are journaled');
  driver.open();
  const [r1, r2] = await Promise.all([one.p, two.p]);
  assert.notEqual(r1.ipv4, r2.ipv4);
  assert.equal(controller.endpoints().length, 2);
  assert.deepEqual(intents(dir), []);
  await controller.stop();
}));

test('an attach of a container with a join in flight waits for it (same namespace, same name)', withDir(async (dir) => {
  const driver = new GatedJoinDriver(true);
  const controller = setup(dir, driver);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.81.0.0/24') });
  await controller.createNetwork({ name: 'b', subnet: Prefix.parse('10.81.1.0/24') });
  driver.close();
  const first = watch(att(controller, { target: { pid: 100 }, network: 'a', name: 'c1' }));
  const second = watch(att(controller, { target: { pid: 100 }, network: 'b' }));
  const sameName = watch(att(controller, { target: { pid: 300 }, network: 'a', name: 'c1' }));
  await tick();
  assert.deepEqual(driver.calls.filter((c) => c.startsWith('start')), ['start 10.81.0.2/24'], 'only the first join runs');
  driver.open();
  const r1 = await first.p;
  const r2 = await second.p;
  assert.equal(r2.sandboxId, r1.sandboxId, 'the same container, one sandbox');
  const eps = controller.endpoints().filter((e) => e.sandboxId === r1.sandboxId).map((e) => e.ifname).sort();
  assert.deepEqual(eps, ['eth0', 'eth1'], 'its second interface got the next name');
  await assert.rejects(sameName.p, (err: unknown) => err instanceof ConflictError && /c1/.test((err as Error).message));
  await controller.stop();
}));

test('detach, rm-network and stop wait until no attach is in flight', withDir(async (dir) => {
  const driver = new GatedJoinDriver(true);
  const controller = setup(dir, driver);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.82.0.0/24') });
  await controller.createNetwork({ name: 'spare', subnet: Prefix.parse('10.82.1.0/24') });
  await att(controller, { target: { pid: 100 }, network: 'a', name: 'old' });
  driver.close();
  const joining = watch(att(controller, { target: { pid: 200 }, network: 'a', name: 'new' }));
  await tick();
  const detach = watch(controller.detach('old'));
  const rm = watch(controller.deleteNetwork('spare'));
  await tick();
  assert.equal(detach.settled() || rm.settled(), false, 'both wait for the join in flight');
  driver.open();
  await joining.p;
  await detach.p;
  await rm.p;
  assert.deepEqual(controller.endpoints().map((e) => e.name), ['new']);
  driver.close();
  const late = watch(att(controller, { target: { pid: 300 }, network: 'a' }));
  await tick();
  const stop = watch(controller.stop());
  await tick();
  assert.equal(stop.settled(), false, 'stop waits for the join in flight');
  driver.open();
  await late.p;
  await stop.p;
}));

test('a failed join outside the lock rolls back: no record, no intent, its address free again', withDir(async (dir) => {
  const driver = new GatedJoinDriver(true);
  const controller = setup(dir, driver);
  await controller.start();
  // A /29: the gateway and five addresses.
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.83.0.0/29') });
  driver.failJoin = true;
  await assert.rejects(att(controller, { target: { pid: 100 }, network: 'a' }), /veth creation failed/);
  driver.failJoin = false;
  assert.deepEqual(controller.endpoints(), []);
  assert.deepEqual(intents(dir), []);
  const got = await Promise.all([100, 101, 102, 103, 104].map((pid) => att(controller, { target: { pid }, network: 'a' })));
  assert.equal(new Set(got.map((r) => r.ipv4)).size, 5, 'all five addresses, the failed join\'s among them, are handed out');
  await controller.stop();
}));

test('a driver without parallelJoin joins under the lock, one attach after the other', withDir(async (dir) => {
  const driver = new GatedJoinDriver(false);
  const controller = setup(dir, driver);
  await controller.start();
  await controller.createNetwork({ name: 'a', subnet: Prefix.parse('10.84.0.0/24') });
  driver.close();
  const one = watch(att(controller, { target: { pid: 100 }, network: 'a' }));
  const two = watch(att(controller, { target: { pid: 200 }, network: 'a' }));
  await tick();
  assert.deepEqual(driver.calls.filter((c) => c.startsWith('start')), ['start 10.84.0.2/24'], 'the second waits for the lock');
  driver.open();
  await Promise.all([one.p, two.p]);
  await controller.stop();
}));
