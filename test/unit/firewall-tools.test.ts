/**
 * A program the firewall needs that is not installed: one line naming the Debian package, never a bare
 * `spawn … ENOENT`, whether it is found missing at start (requireTools) or when it is run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { MissingToolError } from '../../src/errors.js';
import { runChecked, spawnRunner } from '../../src/firewall/exec.js';
import { deleteConntrack } from '../../src/firewall/conntrack.js';
import { findTool, requireTools } from '../../src/firewall/tools.js';

const EMPTY_PATH = '/nonexistent-netd-test-dir';

test('running a missing iptables-restore throws MissingToolError naming the iptables package', async () => {
  const exec = (argv: string[], stdin?: string) => spawnRunner(argv.map((a, i) => (i === 0 ? `/nonexistent-netd-test-dir/${a}` : a)), stdin);
  await assert.rejects(runChecked(exec, ['iptables-restore', '-w', '--noflush'], '*filter\nCOMMIT\n'), (err: unknown) => {
    assert.ok(err instanceof MissingToolError, `got ${String(err)}`);
    assert.equal(err.pkg, 'iptables');
    assert.doesNotMatch(err.message, /ENOENT|spawn/);
    assert.doesNotMatch(err.message, /\n/);
    assert.match(err.message, /^iptables-restore is not installed .*apt-get install iptables\)$/);
    return true;
  });
});

test('requireTools checks PATH at start: the first missing program, with its package', () => {
  assert.equal(findTool('iptables-save', EMPTY_PATH), undefined);
  assert.ok(findTool('sh', '/usr/bin:/bin'));
  assert.doesNotThrow(() => requireTools(['sh'], '/usr/bin:/bin'));
  assert.throws(() => requireTools(['sh', 'conntrack'], `${EMPTY_PATH}:/bin`), (err: unknown) => err instanceof MissingToolError && err.tool === 'conntrack' && /apt-get install conntrack\)$/.test(err.message));
  assert.throws(() => requireTools(['ip6tables-save'], EMPTY_PATH), (err: unknown) => err instanceof MissingToolError && err.pkg === 'iptables');
});

test('a missing conntrack is one warning naming the package, and the cleanup is not retried per command', async () => {
  const lines: { msg: string }[] = [];
  const sink = new Writable({ write: (chunk, _enc, cb) => (lines.push(JSON.parse(String(chunk))), cb()) });
  const log = pino({ level: 'warn' }, sink);
  let runs = 0;
  const exec = (argv: string[]) => (runs++, spawnRunner([`${EMPTY_PATH}/${argv[0]}`, ...argv.slice(1)]));
  await deleteConntrack(exec, log, [['conntrack', '-D', '-p', 'udp'], ['conntrack', '-D', '-p', 'sctp']]);
  await new Promise((r) => setImmediate(r));
  assert.equal(runs, 1);
  assert.equal(lines.length, 1);
  assert.match(lines[0].msg, /is not installed .*apt-get install conntrack\)$/);
  assert.doesNotMatch(lines[0].msg, /ENOENT/);
});
