/** The Docker API's network JSON: every endpoint shows, also a container's second one on the same network. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { networkJson } from '../../src/api/docker-api.js';
import type { Controller } from '../../src/cnm/controller.js';
import type { NetworkRecord } from '../../src/cnm/network.js';

test('networkJson keys Containers by container; a second endpoint of one container shows under its endpoint id', () => {
  const eps = [
    { id: 'ep1', name: 'web', sandboxId: 'sb1', ifname: 'eth0' },
    { id: 'ep2', name: 'web', sandboxId: 'sb1', ifname: 'net1' },
    { id: 'ep3', name: 'db', sandboxId: 'sb2', ifname: 'eth0' },
  ];
  const controller = { endpointsOf: () => eps } as unknown as Controller;
  const network = { id: 'n1', name: 'shared', driver: 'bridge', ipv4: [], ipv6: [], options: {}, labels: {}, created: '' } as unknown as NetworkRecord;
  const containers = networkJson(controller, network).Containers as Record<string, { EndpointID: string }>;
  assert.deepEqual(Object.fromEntries(Object.entries(containers).map(([k, v]) => [k, v.EndpointID])), { sb1: 'ep1', ep2: 'ep2', sb2: 'ep3' });
});
