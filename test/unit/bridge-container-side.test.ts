/** The bridge driver's CHECK of the container side releases what it opened when opening netlink fails. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkContainerSide } from '../../src/drivers/bridge/container-side.js';
import { Netns } from '../../src/kernel/netns.js';
import { Rtnl } from '../../src/kernel/rtnetlink.js';
import type { DriverEndpoint, DriverSandbox } from '../../src/driverapi/model.js';

test('checkContainerSide closes the namespace fd when Rtnl.open throws', async (t) => {
  let closed = 0;
  const fake = { close: () => void closed++ } as unknown as Netns;
  t.mock.method(Netns, 'open', () => fake);
  t.mock.method(Rtnl, 'open', () => {
    throw Object.assign(new Error('socket: EMFILE'), { code: 'EMFILE' });
  });
  const endpoint = { ifname: 'eth0' } as unknown as DriverEndpoint;
  const sandbox = { key: '/proc/1/ns/net' } as unknown as DriverSandbox;
  await assert.rejects(checkContainerSide(endpoint, sandbox), /EMFILE/);
  assert.equal(closed, 1, 'the netns fd is closed');
});
