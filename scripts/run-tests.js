#!/usr/bin/env node
// Runs netd's test suite with node's test runner: the unit tests once, then the integration tests (which need
// root and create throwaway network namespaces) once per firewall backend — iptables, then nftables — with
// NETD_TEST_FIREWALL_BACKEND set for the run (test/helpers/daemon.ts passes it to every daemon as
// --firewall-backend). After each integration run it checks that nothing of netd's appeared in the namespace the
// suite was started in (the machine's own: links, iptables rules, nf_tables tables named netd*), and that the
// run left the machine's CNI directories, /run/netns and container runtimes' state as they were
// (scripts/machine-state.js); it fails loudly if not. The exit status is non-zero when any run failed.
// Usage: node scripts/run-tests.js [unit|integration] [--backend iptables|nftables] [FILE.test.js...] [node --test args]
//   no suite: unit, then integration on both backends; `integration`: both backends, or the one of --backend
//   (or of NETD_TEST_FIREWALL_BACKEND when set); test files named run instead of all of the suite's.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { readdirSync, existsSync } = require('node:fs');
const { join, resolve } = require('node:path');
const { machineState, changes, netdNftTables } = require('./machine-state.js');

const BACKENDS = ['iptables', 'nftables'];
const root = join(__dirname, '..');

function parseArgs(argv) {
  const which = argv[0] === 'unit' || argv[0] === 'integration' ? argv[0] : undefined;
  const rest = argv.slice(which ? 1 : 0);
  const extra = [];
  const files = [];
  let backend;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === '--backend' || a.startsWith('--backend=')) {
      backend = a.includes('=') ? a.slice(a.indexOf('=') + 1) : rest[++i];
      if (!BACKENDS.includes(backend)) {
        console.error(`--backend ${backend ?? ''}: expected one of ${BACKENDS.join(', ')}`);
        process.exit(2);
      }
    } else if (a.endsWith('.test.js') && existsSync(a)) files.push(resolve(a));
    else extra.push(a);
  }
  if (backend === undefined && process.env.NETD_TEST_FIREWALL_BACKEND) {
    backend = process.env.NETD_TEST_FIREWALL_BACKEND;
    if (!BACKENDS.includes(backend)) {
      console.error(`NETD_TEST_FIREWALL_BACKEND=${backend}: expected one of ${BACKENDS.join(', ')}`);
      process.exit(2);
    }
  }
  const suites = which ? [which] : ['unit', 'integration'];
  const runs = [];
  if (suites.includes('unit')) runs.push({ suite: 'unit' });
  if (suites.includes('integration')) for (const b of backend ? [backend] : BACKENDS) runs.push({ suite: 'integration', backend: b });
  if (files.length > 0) for (const r of runs) r.files = files;
  return { runs, extra };
}

function testFiles(suite) {
  const dir = join(root, 'dist/test', suite);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .filter((f) => f.endsWith('.test.js'))
    .map((f) => join(dir, f));
}

/** What of netd's is in the namespace this script runs in (the machine's own). */
function snapshot() {
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout || '';
  const rules = (spawnSync('iptables-save', [], { encoding: 'utf8' }).stdout || '') + (spawnSync('ip6tables-save', [], { encoding: 'utf8' }).stdout || '');
  return [
    ...links.split('\n').filter((l) => /: (netd\d*|br-[0-9a-f]{12}|veth[0-9a-f]{7})[@:]/.test(l)),
    ...rules.split('\n').filter((l) => /NETD|netd/.test(l)),
    ...netdNftTables().map((t) => `nftables: table ${t}`),
  ];
}

/** node --test's closing counts (TAP `# pass 3` or spec `ℹ pass 3`). */
const SUMMARY = /^(?:# |ℹ )(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) /;

/** Runs one suite (one backend); resolves to {ok, summary, seconds, problems}. */
async function runOnce(run, extra) {
  const files = run.files ?? testFiles(run.suite);
  const title = run.backend ? `${run.suite} tests, firewall backend ${run.backend} (NETD_TEST_FIREWALL_BACKEND=${run.backend})` : `${run.suite} tests`;
  console.log(`\n======== ${title}: ${files.length} files ========\n`);
  if (files.length === 0) return { title, ok: false, summary: [], seconds: 0, problems: ['no test files under dist/test: run `npm run build` first'] };
  const problems = [];
  if (run.backend === 'nftables' && spawnSync('nft', ['--version'], { encoding: 'utf8' }).status !== 0) {
    return { title, ok: false, summary: [], seconds: 0, problems: ['nft is not installed (the nftables backend needs it): run scripts/install-deps.sh --test'] };
  }
  const before = run.suite === 'integration' ? snapshot() : [];
  const machineBefore = run.suite === 'integration' ? machineState() : undefined;
  const started = Date.now();
  // One file at a time: integration tests move real traffic and the machine has two cores. Output goes through
  // as it comes (the human reporter on a terminal); the closing counts are kept for the final summary.
  const reporter = process.stdout.isTTY && !extra.some((a) => a.startsWith('--test-reporter')) ? ['--test-reporter=spec'] : [];
  const env = { ...process.env };
  if (run.backend) env.NETD_TEST_FIREWALL_BACKEND = run.backend;
  const summary = [];
  const status = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...reporter, ...extra, ...files], { stdio: ['inherit', 'pipe', 'inherit'], cwd: root, env });
    let partial = '';
    child.stdout.on('data', (d) => {
      process.stdout.write(d);
      const lines = (partial + d.toString('utf8')).split('\n');
      partial = lines.pop();
      for (const l of lines) {
        // eslint-disable-next-line no-control-regex
        const plain = l.replace(/\x1b\[[0-9;]*m/g, '');
        if (SUMMARY.test(plain)) summary.push(plain);
      }
    });
    child.on('close', (code, signal) => resolve(code === null ? `signal ${signal}` : code));
  });
  const seconds = Math.round((Date.now() - started) / 1000);
  if (status !== 0) problems.push(`node --test exited with ${status}`);
  if (run.suite === 'integration') {
    const leaked = snapshot().filter((l) => !before.includes(l));
    if (leaked.length > 0) problems.push('the run left netd objects in the namespace it started in (the machine’s own):', ...leaked.map((l) => '  ' + l));
    const changed = changes(machineBefore, machineState());
    if (changed.length > 0) problems.push('the run changed the machine outside its namespaces (CNI dirs, /run/netns, runtime state):', ...changed.map((l) => '  ' + l));
  }
  for (const p of problems) console.error(p.startsWith('  ') ? p : `\nFAIL (${title}): ${p}`);
  return { title, ok: problems.length === 0, summary, seconds, problems };
}

async function main() {
  const { runs, extra } = parseArgs(process.argv.slice(2));
  if (runs.some((r) => r.suite === 'integration') && process.getuid && process.getuid() !== 0) {
    console.error('the integration tests need root (they create network namespaces): run the suite as root');
    process.exit(1);
  }
  const results = [];
  for (const run of runs) results.push(await runOnce(run, extra));
  console.log('\n======== summary ========');
  for (const r of results) {
    console.log(`${r.ok ? 'ok  ' : 'FAIL'} ${r.title} (${r.seconds} s)`);
    for (const s of r.summary) console.log(`       ${s}`);
    for (const p of r.problems) console.log(`       ${p}`);
  }
  process.exit(results.every((r) => r.ok) ? 0 : 1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
