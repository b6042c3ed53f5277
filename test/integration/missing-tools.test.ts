/**
 * A kernel tool netd needs that is not installed: `netd daemon` fails at once with one line naming the
 * Debian package, not `spawn … ENOENT`; an optional one (conntrack) is a warning and the daemon runs.
 * The daemon runs with a PATH of its own that holds only the programs the test lets it find.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { TestNetns, run } from '../helpers/netns.js';
import { CLI, TestDaemon, firewallBackendArgs, testFirewallBackend } from '../helpers/daemon.js';
import { netdFirewallEmpty } from '../helpers/firewall-state.js';

/** A directory of symlinks to these programs (found in the test's own PATH). */
function binDir(root: string, programs: string[]): string {
  const dir = join(root, 'bin');
  mkdirSync(dir);
  for (const p of programs) {
    const found = spawnSync('sh', ['-c', `command -v "$1"`, 'sh', p], { encoding: 'utf8' }).stdout.trim();
    assert.ok(found, `${p} must be installed for this test`);
    symlinkSync(found, join(dir, p));
  }
  return dir;
}

async function startDaemon(ns: TestNetns, dir: string, path: string, timeoutMs: number) {
  const argv = ['ip', 'netns', 'exec', ns.name, 'node', CLI, '--host', `unix://${join(dir, 'netd.sock')}`, 'daemon', '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), ...firewallBackendArgs()];
  return run(argv, { env: { ...process.env, PATH: path }, allowFail: true, timeoutMs });
}

// The firewall tool the suite's backend needs (iptables: iptables-restore; nftables: nft) is the one missing.
const NFT = testFirewallBackend() === 'nftables';
const FIREWALL_TOOLS = ['iptables-save', 'iptables-restore', 'ip6tables-save', 'ip6tables-restore', ...(NFT ? ['nft'] : [])];

test(`netd daemon without ${NFT ? 'nft' : 'iptables-restore'}: exits 1 with one line naming the ${NFT ? 'nftables' : 'iptables'} package`, async () => {
  const ns = await TestNetns.create('tools');
  const dir = mkdtempSync(join(tmpdir(), 'netd-tools-'));
  try {
    const missing = NFT ? 'nft' : 'iptables-restore';
    const path = binDir(dir, ['ip', 'node', ...FIREWALL_TOOLS.filter((t) => t !== missing), 'conntrack']);
    const res = await startDaemon(ns, dir, path, 20_000);
    assert.equal(res.code, 1, `exit ${res.code}; stderr:\n${res.stderr}`);
    const last = res.stderr.trim().split('\n').at(-1) ?? '';
    if (!NFT) assert.equal(last, 'netd: iptables-restore is not installed (or not in PATH): install the Debian package iptables (apt-get install iptables)');
    else assert.equal(last, 'netd: nft is not installed (or not in PATH): install the Debian package nftables (apt-get install nftables)');
    assert.doesNotMatch(res.stderr, /ENOENT|spawn/);
    // Nothing was set up: the namespace holds no netd bridge and no netd rule.
    assert.doesNotMatch((await ns.exec(['ip', '-o', 'link', 'show'])).stdout, /netd0/);
    assert.doesNotMatch((await ns.exec(['iptables-save'])).stdout, /NETD/);
    assert.equal(await netdFirewallEmpty(ns), true, 'nothing of netd’s in the firewall');
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await ns.destroy();
  }
});

test('netd daemon without conntrack: starts, and its log says once which package to install', async () => {
  const ns = await TestNetns.create('toolc');
  const dir = mkdtempSync(join(tmpdir(), 'netd-toolc-'));
  const daemon = new TestDaemon(ns, dir);
  try {
    daemon.env = { PATH: binDir(dir, ['ip', 'node', ...FIREWALL_TOOLS]) };
    await daemon.launch();
    const warnings = daemon.logs.split('\n').filter((l) => l.includes('conntrack is not installed'));
    assert.equal(warnings.length, 1, daemon.logs);
    assert.match(warnings[0], /apt-get install conntrack\)/);
    assert.equal((await daemon.client.call<{ Name: string }[]>('GET', '/networks')).length, 3);
  } finally {
    await daemon.destroy();
    await ns.destroy();
  }
});
