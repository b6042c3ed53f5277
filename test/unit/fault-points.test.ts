/**
 * The fault points the crash test iterates over are collected from the code: every operation declares
 * its steps (src/transaction/fault.ts) and Transaction runs only declared steps. Checked here: loading the
 * daemon's modules fills the registry with every operation's points; every step name written in src/
 * is declared; nothing injects a fault outside a declaration; an undeclared step is refused at run time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import '../../src/daemon/daemon.js';
import { declaredFaultPoints, operation } from '../../src/transaction/fault.js';
import { Transaction } from '../../src/transaction/transaction.js';
import { createLogger } from '../../src/log.js';

const SRC = join(resolve(__dirname, '../../..'), 'src');

function sources(dir = SRC): { file: string; text: string }[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const file = join(dir, e.name);
    if (e.isDirectory()) return sources(file);
    return e.name.endsWith('.ts') ? [{ file, text: readFileSync(file, 'utf8') }] : [];
  });
}

test('fault points: the registry holds every operation of the daemon, with both points of each step and the inner ones', () => {
  const points = declaredFaultPoints();
  for (const op of ['create-network', 'rm-network', 'attach', 'detach', 'restore', 'sandbox-create', 'sandbox-rm', 'join-shared', 'leave-shared', 'promote']) {
    assert.ok(points[op]?.length, `operation ${op} is declared`);
  }
  for (const [op, list] of Object.entries(points)) {
    for (const p of list) {
      assert.match(p, /^(before|after):\S/, `${op}:${p} names a side of a step`);
      const [side, step] = [p.slice(0, p.indexOf(':')), p.slice(p.indexOf(':') + 1)];
      if (side === 'before' && !list.includes(`after:${step}`)) assert.fail(`${op}: before:${step} without after:${step}`);
    }
  }
  assert.ok(points['sandbox-create'].includes('after:create mount point') && points['sandbox-create'].includes('after:bind mount'));
  assert.ok(points['sandbox-create'].includes('before:persist sandbox'));
  assert.ok(points.attach.includes('after:create veth'));
  assert.ok(points['create-network'].includes('before:add gateway address IPv6'));
});

test('fault points: every step name written in src/ is declared, and no fault is injected outside a declaration', () => {
  const declared = new Set(Object.values(declaredFaultPoints()).flat());
  let steps = 0;
  for (const { file, text } of sources()) {
    if (file.includes(`${join('src', 'transaction')}`)) continue;
    for (const m of text.matchAll(/\.step\(\s*(['"`])([^'"`$]+)\1/g)) {
      steps++;
      assert.ok(declared.has(`before:${m[2]}`), `${file}: step "${m[2]}" is declared`);
    }
    for (const m of text.matchAll(/\.reach\(\s*(['"])([^'"]+)\1/g)) assert.ok(declared.has(m[2]), `${file}: point "${m[2]}" is declared`);
    assert.doesNotMatch(text, /\bfaultPoint\(|NETD_FAULT_AT/, `${file}: faults are injected only through declared operations`);
    assert.doesNotMatch(text, /new Transaction\(\s*['"`]/, `${file}: a transaction takes a declared operation, not a name`);
  }
  assert.ok(steps >= 20, `the scan found the steps (${steps})`);
});

test('fault points: a step that was not declared is refused at run time too', async () => {
  const op = operation('unit-test-op', ['declared']);
  const tx = new Transaction(op, createLogger('silent'));
  assert.equal(await tx.step('declared', () => 1), 1);
  await assert.rejects(() => tx.step('undeclared' as 'declared', () => 2), /step "undeclared" is not declared/);
  assert.deepEqual(declaredFaultPoints()['unit-test-op'], ['before:declared', 'after:declared']);
});
