/** Host port allocation and conflicts, against a fake host. No kernel, no root. */
import { test, describe } from 'node:test';
import { PortRange } from '../../src/net/index.js';
import assert from 'node:assert/strict';
import { ConflictError, InvalidArgumentError } from '../../src/errors.js';
import { PortAllocator, type AllocationContext } from '../../src/portmap/allocator.js';
import { parsePublishSpec } from '../../src/portmap/parse.js';
import type { PortRequest } from '../../src/portmap/types.js';

const A = { endpointId: 'a'.repeat(64), name: 'web' };
const B = { endpointId: 'b'.repeat(64), name: 'db' };
const C = { endpointId: 'c'.repeat(64), name: 'other' };

/** A host with these addresses, these busy ports ("tcp/0.0.0.0/9090"), and a tiny ephemeral range. */
function ctx(over: Partial<AllocationContext> & { busy?: string[]; local?: string[] } = {}): AllocationContext {
  const busy = new Set(over.busy ?? []);
  const local = new Set(over.local ?? ['127.0.0.1', '198.51.100.1', '2001:db8::1']);
  return {
    families: [4],
    hostConflict: async (proto, ip, port) => (busy.has(`${proto}/${ip}/${port}`) ? `listening on ${port}/${proto}` : undefined),
    isLocalAddress: (a) => local.has(a),
    ephemeral: PortRange.of(40000, 40003),
    ...over,
  };
}

const p = (...specs: string[]): PortRequest[] => specs.flatMap(parsePublishSpec);

async function refused(promise: Promise<unknown>, type: typeof ConflictError | typeof InvalidArgumentError, message: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => e instanceof type && message.test((e as Error).message));
}

describe('allocator', () => {
  test('a given port, on every family the container has', async () => {
    const a = new PortAllocator();
    assert.deepEqual(await a.allocate(A, p('8080:80', '8080:80/udp'), ctx({ families: [4, 6] })), [
      { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 },
      { proto: 'tcp', hostIp: '::', hostPort: 8080, containerPort: 80 },
      { proto: 'udp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 },
      { proto: 'udp', hostIp: '::', hostPort: 8080, containerPort: 80 },
    ]);
    assert.equal(a.bindingsOf(A.endpointId).length, 4);
  });

  test('conflicts: same port and protocol on overlapping addresses, across containers', async () => {
    const a = new PortAllocator();
    await a.allocate(A, p('8080:80', '127.0.0.1:9000:80'), ctx());
    await refused(a.allocate(B, p('8080:81'), ctx()), ConflictError, /^host port 8080\/tcp on 0\.0\.0\.0 is already published by container web \(80\/tcp -> 0\.0\.0\.0:8080\)$/);
    await refused(a.allocate(B, p('127.0.0.1:8080:81'), ctx()), ConflictError, /on 127\.0\.0\.1 is already published by container web/);
    await refused(a.allocate(B, p('9000:81'), ctx()), ConflictError, /9000\/tcp on 0\.0\.0\.0 is already published by container web \(80\/tcp -> 127\.0\.0\.1:9000\)/);
    // Different protocol, different address of the same family, or another family: no conflict.
    await a.allocate(B, p('8080:80/udp', '198.51.100.1:9000:80'), ctx());
    await a.allocate(C, p('[::]:8080:80'), ctx({ families: [4, 6] }));
  });

  test('the same port twice in one request is refused', async () => {
    const a = new PortAllocator();
    await refused(a.allocate(A, p('8080:80', '8080:81'), ctx()), ConflictError, /8080\/tcp on 0\.0\.0\.0 is published twice in this request/);
    await refused(a.allocate(A, p('8080:80', '127.0.0.1:8080:81'), ctx()), ConflictError, /published twice/);
    assert.deepEqual(a.bindingsOf(A.endpointId), []);
  });

  test('a port a host process holds is refused, with what holds it', async () => {
    const a = new PortAllocator();
    await refused(a.allocate(A, p('9090:80'), ctx({ busy: ['tcp/0.0.0.0/9090'] })), ConflictError, /^host port 9090\/tcp on 0\.0\.0\.0 is already in use by a process on the host \(listening on 9090\/tcp\)$/);
  });

  test('all or nothing: a refusal registers nothing', async () => {
    const a = new PortAllocator();
    await a.allocate(B, p('9000:80'), ctx());
    await refused(a.allocate(A, p('8080:80', '9000:80'), ctx()), ConflictError, /already published by container db/);
    assert.deepEqual(a.bindingsOf(A.endpointId), []);
    await a.allocate(C, p('8080:80'), ctx()); // 8080 was not left held
  });

  test('no host port: the ephemeral range, moving on past ports just used, skipping busy ones', async () => {
    const a = new PortAllocator();
    const busy = ['tcp/0.0.0.0/40001'];
    assert.equal((await a.allocate(A, p('80'), ctx({ busy })))[0].hostPort, 40000);
    assert.equal((await a.allocate(B, p('80'), ctx({ busy })))[0].hostPort, 40002, '40001 is held on the host');
    a.release(A.endpointId);
    // Freed ports are not handed out again at once: the cursor moves on, then wraps.
    assert.equal((await a.allocate(C, p('80'), ctx({ busy })))[0].hostPort, 40003);
    assert.equal((await a.allocate({ endpointId: 'd'.repeat(64), name: 'd' }, p('80'), ctx({ busy })))[0].hostPort, 40000);
    await refused(a.allocate({ endpointId: 'e'.repeat(64), name: 'e' }, p('80'), ctx({ busy })), ConflictError, /no free host port for 80\/tcp in 40000-40003/);
    // Other protocols have their own ports.
    assert.equal((await a.allocate({ endpointId: 'f'.repeat(64), name: 'f' }, p('80/udp'), ctx({ busy })))[0].hostPort, 40000);
  });

  test('a host range: the first free port of it, for every family at once', async () => {
    const a = new PortAllocator();
    await a.allocate(A, p('[::]:9100:80'), ctx({ families: [4, 6] }));
    const [v4, v6] = await a.allocate(B, p('9100-9102:80'), ctx({ families: [4, 6] }));
    assert.deepEqual([v4.hostPort, v6.hostPort], [9101, 9101], 'the same port on both families; 9100 is taken on IPv6');
    assert.equal((await a.allocate(C, p('9100-9102:80'), ctx({ families: [4] })))[0].hostPort, 9100, 'IPv4 9100 is still free');
    await refused(a.allocate({ endpointId: 'd'.repeat(64), name: 'd' }, p('9100-9101:80'), ctx()), ConflictError, /no free host port for 80\/tcp in 9100-9101/);
  });

  test('host addresses: must be the host’s, of a family the container has; ::1 is not supported', async () => {
    const a = new PortAllocator();
    await refused(a.allocate(A, p('192.0.2.99:80:80'), ctx()), InvalidArgumentError, /cannot publish on 192\.0\.2\.99: it is not an address of this host/);
    await refused(a.allocate(A, p('[2001:db8::1]:80:80'), ctx()), InvalidArgumentError, /the container has no IPv6 address on this network/);
    await refused(a.allocate(A, p('[::1]:80:80'), ctx({ families: [4, 6] })), InvalidArgumentError, /::1 is not supported \(it would need a userland proxy\)/);
    await refused(a.allocate(A, p('80'), ctx({ families: [] })), InvalidArgumentError, /no IP address on this network/);
    assert.equal((await a.allocate(A, p('[2001:db8::1]:80:80'), ctx({ families: [4, 6] })))[0].hostIp, '2001:db8::1');
  });

  test('the network’s default binding address applies to requests without one', async () => {
    const a = new PortAllocator();
    const [b] = await a.allocate(A, p('8080:80'), ctx({ families: [4, 6], defaultHostIp: '198.51.100.1', local: ['198.51.100.1'] }));
    assert.deepEqual(b, { proto: 'tcp', hostIp: '198.51.100.1', hostPort: 8080, containerPort: 80 });
    assert.equal(a.bindingsOf(A.endpointId).length, 1, 'only that address');
  });

  test('restore registers persisted bindings without asking the host; release frees them', async () => {
    const a = new PortAllocator();
    a.restore(A, [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 }]);
    await refused(a.allocate(B, p('8080:80'), ctx()), ConflictError, /already published by container web/);
    await refused(a.allocate(A, p('8081:80'), ctx()), ConflictError, /already has published ports/);
    a.release(A.endpointId);
    await a.allocate(B, p('8080:80'), ctx());
  });
});
