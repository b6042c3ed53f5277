import { test } from 'node:test';
import assert from 'node:assert/strict';
import { effectiveCapabilities, missingCapabilities, requireDaemonPrivileges } from '../../src/daemon/privileges.js';

const status = (capEff: string) => `Name:\tnode\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t${capEff}\n`;

test('capabilities come from CapEff, not from the uid', () => {
  assert.equal(effectiveCapabilities(status('000001ffffffffff')), 0x1ffffffffffn);
  assert.deepEqual(missingCapabilities(0x1ffffffffffn), []);
  assert.deepEqual(missingCapabilities(0n), ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN']);
  assert.deepEqual(missingCapabilities((1n << 12n) | (1n << 21n)), []);
  assert.deepEqual(missingCapabilities(0x1ffffffffffn & ~(1n << 21n)), ['CAP_SYS_ADMIN']);
  assert.doesNotThrow(() => requireDaemonPrivileges(status('0000000000201000')));
  // uid 0 in the status, but no CAP_NET_ADMIN in effect.
  assert.throws(() => requireDaemonPrivileges(status('000001ffffffefff')), /needs root \(or CAP_NET_ADMIN and CAP_SYS_ADMIN\); this process lacks CAP_NET_ADMIN$/);
  assert.throws(() => effectiveCapabilities('Name: x\n'), /CapEff/);
});
