#!/usr/bin/env node
// Runs netd's test suite with node's test runner: unit tests, then the integration tests (which need
// root and create throwaway network namespaces). Afterwards it checks that nothing of netd's appeared
// in the namespace the suite was started in (the machine's own), and that the suite left the machine's CNI
// directories, /run/netns and container runtimes' state as they were (scripts/machine-state.js); it fails
// loudly if not.
// Usage: node scripts/run-tests.js [unit|integration] [extra node --test args]
'use strict';
const { spawnSync } = require('node:child_process');
const { readdirSync, existsSync } = require('node:fs');
const { join } = require('node:path');
const { machineState, changes } = require('./machine-state.js');

const root = join(__dirname, '..');
const which = process.argv[2] === 'unit' || process.argv[2] === 'integration' ? process.argv[2] : undefined;
const extra = process.argv.slice(which ? 3 : 2);
const suites = which ? [which] : ['unit', 'integration'];

const files = [];
for (const suite of suites) {
  const dir = join(root, 'dist/test', suite);
  if (!existsSync(dir)) continue;
  for (const f of readdirSync(dir).sort()) if (f.endsWith('.test.js')) files.push(join(dir, f));
}
if (files.length === 0) {
  console.error('no test files found under dist/test: run `npm run build` first');
  process.exit(1);
}
if (suites.includes('integration') && process.getuid && process.getuid() !== 0) {
  console.error('the integration tests need root (they create network namespaces): run the suite as root');
  process.exit(1);
}

const snapshot = () => {
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout || '';
  const rules = spawnSync('iptables-save', [], { encoding: 'utf8' }).stdout || '';
  return {
    links: links.split('\n').filter((l) => /: (netd\d*|br-[0-9a-f]{12}|veth[0-9a-f]{7})[@:]/.test(l)),
    rules: rules.split('\n').filter((l) => /NETD|netd/.test(l)),
  };
};
const before = snapshot();
const machineBefore = machineState();

// One file at a time: integration tests move real traffic and the machine has two cores.
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...extra, ...files], { stdio: 'inherit', cwd: root });

const after = snapshot();
const leaked = [...after.links.filter((l) => !before.links.includes(l)), ...after.rules.filter((l) => !before.rules.includes(l))];
if (leaked.length > 0) {
  console.error('\nFAIL: the test run left netd objects in the namespace it started in (the machine’s own):');
  for (const l of leaked) console.error('  ' + l);
  process.exit(1);
}
const changed = changes(machineBefore, machineState());
if (changed.length > 0) {
  console.error('\nFAIL: the test run changed the machine outside its namespaces (CNI dirs, /run/netns, runtime state):');
  for (const l of changed) console.error('  ' + l);
  process.exit(1);
}
process.exit(res.status === null ? 1 : res.status);
