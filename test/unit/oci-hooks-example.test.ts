/**
 * The shipped hooks.d file (examples/oci-hooks.d/netd.json) is one podman 4.3 / CRI-O load (containers/common's
 * hook schema 1.0.0: version, hook.path absolute, a `when` condition, known stages), calls `netd oci-hook` with
 * argv[0] first, and is the file the README shows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const REPO = resolve(__dirname, '../../..');
const FILE = join(REPO, 'examples/oci-hooks.d/netd.json');

interface HookFile {
  version: string;
  hook: { path: string; args?: string[]; env?: string[]; timeout?: number };
  when: { always?: boolean; annotations?: Record<string, string>; commands?: string[]; hasBindMounts?: boolean };
  stages: string[];
}

test('examples/oci-hooks.d/netd.json follows the hooks.d 1.0.0 schema and runs netd oci-hook', () => {
  const text = readFileSync(FILE, 'utf8');
  const file = JSON.parse(text) as HookFile;
  assert.deepEqual(Object.keys(file).sort(), ['hook', 'stages', 'version', 'when']);
  assert.equal(file.version, '1.0.0');
  assert.ok(file.hook.path.startsWith('/'), 'hook.path must be absolute');
  // args is the whole argv: argv[0] names the program, then the script and the command.
  assert.deepEqual(file.hook.args?.slice(0, 1), ['node']);
  assert.match(file.hook.args![1], /^\/.*\/dist\/src\/cli\/main\.js$/);
  assert.equal(file.hook.args![2], 'oci-hook');
  assert.ok(file.hook.timeout === undefined || (Number.isInteger(file.hook.timeout) && file.hook.timeout > 0));
  // containers/common refuses a hook without any condition, and stages outside the OCI list.
  assert.ok(file.when.always === true || Object.keys(file.when.annotations ?? {}).length > 0, 'a when condition');
  for (const [key, value] of Object.entries(file.when.annotations ?? {})) {
    assert.ok(new RegExp(key).test('io.netd.network') && !new RegExp(key).test('io.netd.networkx'), `annotation key pattern ${key}`);
    assert.ok(new RegExp(value).test('web') && !new RegExp(value).test(''), `annotation value pattern ${value}`);
  }
  const known = ['createContainer', 'createRuntime', 'prestart', 'poststart', 'poststop', 'startContainer'];
  for (const stage of file.stages) assert.ok(known.includes(stage), stage);
  assert.ok(file.stages.includes('poststop'));
  assert.ok(file.stages.includes('createRuntime') || file.stages.includes('prestart'));

  const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
  assert.ok(readme.includes('```json\n' + text + '```\n'), 'README shows the file exactly');
});
