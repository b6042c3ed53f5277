/**
 * The command line's client commands load no daemon code: not the daemon, the kernel layer and its
 * native addon, the netlink library, pino or the DNS server. Each command runs as its own process with a
 * preload (test/fixtures/record-modules.cjs) that lists every module file it loaded. No root, no daemon:
 * the commands talk to a socket that does not exist.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

// dist/test/unit -> the repository
const REPO = resolve(__dirname, '../../..');
const CLI = join(REPO, 'dist/src/cli/main.js');
const PRELOAD = join(REPO, 'test/fixtures/record-modules.cjs');
const NO_DAEMON = 'unix:///nonexistent/netd-test/netd.sock';

/** Module files the daemon side owns: a client command loading any of them is a regression. */
const DAEMON_ONLY: [string, RegExp][] = [
  ['the netlink library', /\/node_modules\/netlink\//],
  ['the native addon', /netd_native\.node$/],
  ['pino', /\/node_modules\/pino\//],
  ['the daemon', /\/dist\/src\/daemon\/daemon\.js$/],
  ['the kernel layer', /\/dist\/src\/kernel\/(native|rtnetlink|netns)\.js$/],
  ['the DNS server', /\/dist\/src\/dns\//],
  ['the firewall', /\/dist\/src\/firewall\//],
  ['the API server', /\/dist\/src\/api\/(server|http|docker-api|netd-api)\.js$/],
  ['the CNM core', /\/dist\/src\/cnm\//],
];

function loadedBy(args: string[], input = ''): { status: number | null; stderr: string; modules: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'netd-cli-modules-'));
  try {
    const log = join(dir, 'modules.txt');
    const res = spawnSync(process.execPath, ['-r', PRELOAD, CLI, ...args], {
      encoding: 'utf8',
      input,
      env: { ...process.env, NETD_HOST: '', NETD_MODULE_LOG: log },
      timeout: 20_000,
    });
    return { status: res.status, stderr: res.stderr, modules: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('client commands load no daemon code', () => {
  // What a runtime writes on an OCI hook's stdin (createRuntime: with the container's PID; here a live one, this test's).
  const ociState = JSON.stringify({ ociVersion: '1.0.2', id: 'c1', status: 'creating', pid: process.pid, bundle: '/b', annotations: { 'io.netd.publish': '8080:80' } });
  const commands: { args: string[]; status: number; input?: string }[] = [
    { args: ['--help'], status: 0 },
    { args: ['daemon', '--help'], status: 0 },
    { args: ['-H', NO_DAEMON, 'networks'], status: 1 },
    { args: ['-H', NO_DAEMON, 'attach', '1234', '-p', '127.0.0.1:8080:80/udp', '--alias', 'web'], status: 1 },
    { args: ['-H', NO_DAEMON, 'sandbox', 'ls'], status: 1 },
    { args: ['-H', NO_DAEMON, 'oci-hook', '--network', 'web', '-p', '127.0.0.1:8081:81', '--alias', 'a'], status: 1, input: ociState },
  ];
  for (const { args, status, input } of commands) {
    test(`netd ${args.join(' ')}`, () => {
      const run = loadedBy(args, input);
      assert.equal(run.status, status, run.stderr);
      if (status !== 0) assert.match(run.stderr, /^netd: cannot reach netd at unix:\/\/\/nonexistent\/netd-test\/netd\.sock \(ENOENT\); is the daemon running\?\n$/);
      // The preload saw the command itself: an empty list would pass the checks below for nothing.
      assert.ok(run.modules.some((m) => m.endsWith('/dist/src/cli/main.js')), run.modules.join('\n'));
      const offenders = DAEMON_ONLY.map(([what, pattern]) => [what, run.modules.filter((m) => pattern.test(m))] as const).filter(([, hits]) => hits.length > 0);
      assert.deepEqual(Object.fromEntries(offenders), {}, `netd ${args.join(' ')} loaded daemon code`);
    });
  }

  test('netd daemon loads the daemon (and reports its errors as one line)', () => {
    // An invalid bridge name fails in startDaemon before anything touches the system.
    const run = loadedBy(['-H', NO_DAEMON, 'daemon', '--bridge', 'a-name-too-long-for-linux', '--data-root', '/nonexistent/netd-test/data']);
    assert.equal(run.status, 1, run.stderr);
    assert.equal(run.stderr, 'netd: invalid interface name "a-name-too-long-for-linux": must be 1-15 bytes, is 25\n');
    assert.ok(run.modules.some((m) => m.endsWith('/dist/src/daemon/daemon.js')), run.modules.join('\n'));
    assert.ok(run.modules.some((m) => m.endsWith('netd_native.node')), run.modules.join('\n'));
  });
});
