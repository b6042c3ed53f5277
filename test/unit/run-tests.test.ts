/**
 * scripts/run-tests.js, the README's test command: the unit suite once, the integration suite once per firewall
 * backend (NETD_TEST_FIREWALL_BACKEND set for each run, a header each), a summary with node --test's counts for
 * every run, and a non-zero exit when any run failed. Driven here with small stand-in test files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../helpers/daemon.js';

function withFiles(files: Record<string, string>, fn: (paths: string[]) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'netd-run-tests-'));
  try {
    const paths = Object.entries(files).map(([name, body]) => {
      writeFileSync(join(dir, name), `const { test } = require('node:test');\n${body}\n`);
      return join(dir, name);
    });
    fn(paths);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const runTests = (args: string[], env: NodeJS.ProcessEnv = {}) => {
  // (NODE_TEST_CONTEXT would make the inner node --test report to this runner instead of printing.)
  const { NETD_TEST_FIREWALL_BACKEND: _unset, NODE_TEST_CONTEXT: _context, ...base } = process.env;
  return spawnSync(process.execPath, [join(REPO, 'scripts/run-tests.js'), ...args], { encoding: 'utf8', env: { ...base, ...env } });
};

test('run-tests: a failing file fails the run (exit 1) and the summary keeps node --test’s counts', () => {
  withFiles({ 'good.test.js': "test('fine', () => {});", 'bad.test.js': "test('broken', () => { throw new Error('no'); });" }, ([good, bad]) => {
    const ok = runTests(['unit', good]);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /======== unit tests: 1 files ========/);
    assert.match(ok.stdout, /======== summary ========\nok {3}unit tests \(\d+ s\)\n {7}# tests 1\n(?: {7}.*\n)* {7}# pass 1\n {7}# fail 0/);
    const failed = runTests(['unit', good, bad]);
    assert.equal(failed.status, 1, failed.stdout);
    assert.match(failed.stdout, /FAIL unit tests \(\d+ s\)\n {7}# tests 2\n(?: {7}.*\n)* {7}# fail 1/);
    assert.equal(runTests(['integration', '--backend', 'pf', good]).status, 2, 'an unknown backend is refused');
  });
});

test('run-tests: integration runs once per firewall backend, each with its NETD_TEST_FIREWALL_BACKEND; --backend picks one', (t) => {
  if (process.getuid?.() !== 0) return t.skip('the integration suite needs root (run-tests.js refuses it otherwise)');
  const body = "test('backend ' + process.env.NETD_TEST_FIREWALL_BACKEND, () => { if (process.env.NETD_TEST_FIREWALL_BACKEND === process.env.FAIL_ON) throw new Error('fails on ' + process.env.FAIL_ON); });";
  withFiles({ 'which.test.js': body }, ([file]) => {
    const both = runTests(['integration', file], { FAIL_ON: 'nftables' });
    assert.equal(both.status, 1, 'the nftables run failed: the whole command fails');
    assert.match(both.stdout, /======== integration tests, firewall backend iptables \(NETD_TEST_FIREWALL_BACKEND=iptables\): 1 files ========[^]*ok \d+ - backend iptables[^]*======== integration tests, firewall backend nftables \(NETD_TEST_FIREWALL_BACKEND=nftables\): 1 files ========[^]*not ok \d+ - backend nftables/);
    assert.match(both.stdout, /ok {3}integration tests, firewall backend iptables .*\n {7}# tests 1\n[^]*FAIL integration tests, firewall backend nftables .*\n {7}# tests 1/);
    const one = runTests(['integration', '--backend', 'nftables', file], { FAIL_ON: 'iptables' });
    assert.equal(one.status, 0, one.stdout + one.stderr);
    assert.doesNotMatch(one.stdout, /backend iptables/);
    assert.match(one.stdout, /ok \d+ - backend nftables/);
  });
});
