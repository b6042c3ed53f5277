/**
 * Orphan-namespace cleanup at start touches only namespaces netd made: a file in the same directory that
 * is not netd's (iproute2's, with `--exec-root /run`) survives a restart, and so does the namespace of a
 * sandbox whose record could not be read and was set aside.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Controller } from '../../src/cnm/controller.js';
import { Ipam } from '../../src/ipam/ipam.js';
import { DEFAULT_ADDRESS_POOLS, parseAddressPool } from '../../src/ipam/default-pools.js';
import { Store } from '../../src/store/store.js';
import { silentLogger } from '../../src/log.js';
import { ConflictError } from '../../src/errors.js';
import { FakeNamespaces, RecordingDriver, withDir } from '../helpers/fake-core.js';

function start(dir: string, ns: FakeNamespaces): Promise<Controller> {
  const controller = new Controller({
    store: new Store(dir),
    ipam: new Ipam(DEFAULT_ADDRESS_POOLS.map(parseAddressPool)),
    drivers: [new RecordingDriver()],
    resolver: ns,
    log: silentLogger(),
    hostSubnets: async () => [],
    predefined: [{ name: 'bridge', driver: 'bridge', options: { 'com.docker.network.bridge.name': 'netd0' } }],
  });
  return controller.start().then(() => controller);
}

const FOREIGN = '/run/test/made-by-ip-netns';

test('a file netd did not make survives a restart; a create over it is refused; netd\'s own orphan goes', withDir(async (dir) => {
  const ns = new FakeNamespaces();
  ns.files.add(FOREIGN);
  const first = await start(dir, ns);
  await first.createSandbox('pod1');
  await first.createSandbox('pod2');
  await assert.rejects(first.createSandbox('made-by-ip-netns'), ConflictError);
  assert.deepEqual(readdirSync(join(dir, 'intents')), [], 'the refused create journaled nothing');
  ns.dead.add('ns:pod1'); // its mount did not survive (a reboot): the record is released, the file is netd's
  await start(dir, ns);
  assert.deepEqual([...ns.files].sort(), [FOREIGN, '/run/test/pod2']);
}));

test('a sandbox whose record was set aside as unreadable keeps its namespace', withDir(async (dir) => {
  const ns = new FakeNamespaces();
  const first = await start(dir, ns);
  const pod1 = await first.createSandbox('pod1');
  await first.createSandbox('pod2');
  const gone = await first.createSandbox('gone');
  ns.dead.add(gone.nsId);
  writeFileSync(join(dir, 'sandboxes', `${pod1.id}.json`), '{"id": "trunc');
  const again = await start(dir, ns);
  assert.ok(readdirSync(join(dir, 'sandboxes')).includes(`${pod1.id}.json.corrupt`), 'set aside');
  assert.equal(again.findSandbox('pod1'), undefined);
  assert.ok(ns.files.has('/run/test/pod1'), 'the set-aside sandbox keeps its namespace');
  assert.ok(ns.files.has('/run/test/pod2'));
  assert.ok(!ns.files.has('/run/test/gone'), 'netd\'s own orphan (its mount gone) is still removed');
}));

test('an interrupted sandbox create whose record was set aside is not rolled back', withDir(async (dir) => {
  const ns = new FakeNamespaces();
  const first = await start(dir, ns);
  const pod = await first.createSandbox('pod');
  // A crash after the record was written, before the journal entry was done; then the record is unreadable.
  new Store(dir).put('intents', pod.id, { op: 'sandbox-create', sandboxId: pod.id, key: pod.key });
  writeFileSync(join(dir, 'sandboxes', `${pod.id}.json`), 'garbage');
  await start(dir, ns);
  assert.ok(ns.files.has(pod.key), 'its namespace is kept');
  assert.deepEqual(readdirSync(join(dir, 'intents')), [`${pod.id}.json`], 'the intent stays journaled');
}));
