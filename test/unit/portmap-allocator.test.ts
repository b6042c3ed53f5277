/** Host port allocation and conflicts, against a fake host. No kernel, no root. */
import { test, describe } from 'node:test';
import { PortRange } from '../../src/net/index.js';
import assert from 'node:assert/strict';
import { ConflictError, InvalidArgumentError } from '../../src/errors.js';
import { PortAllocator, type AllocationContext } from '../../src/portmap/allocator.js';
import { parsePublishSpec } from '../../src/portmap/parse.js';
import { freeBlock } from '../../src/portmap/intervals.js';
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
    hostConflicts: async (proto, ip, range) =>
      [...busy]
        .map((b) => b.split('/'))
        .filter(([bp, bip, port]) => bp === proto && bip === ip && range.contains(Number(port)))
        .map(([, , port]) => ({ port: Number(port), why: `listening on ${port}/${proto}` }))
        .sort((x, y) => x.port - y.port),
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

  test('ranges are one binding each, checked and chosen as intervals', async () => {
    const a = new PortAllocator();
    const wide = ctx({ ephemeral: PortRange.of(1024, 65535), families: [4, 6] });
    assert.deepEqual(await a.allocate(A, p('1-65535:1-65535/udp'), wide), [
      { proto: 'udp', hostIp: '0.0.0.0', hostPort: 1, hostPortEnd: 65535, containerPort: 1, containerPortEnd: 65535 },
      { proto: 'udp', hostIp: '::', hostPort: 1, hostPortEnd: 65535, containerPort: 1, containerPortEnd: 65535 },
    ]);
    await refused(a.allocate(B, p('127.0.0.1:53:53/udp'), wide), ConflictError, /^host port 53\/udp on 127\.0\.0\.1 is already published by container web \(1-65535\/udp -> 0\.0\.0\.0:1-65535\)$/);
    await refused(a.allocate(B, p('40000-40100:80-180/udp'), wide), ConflictError, /^host port 40000\/udp on 0\.0\.0\.0 and \[::\] is already published by container web/);
    // Another protocol is free; a shifted range is one binding too.
    assert.deepEqual(await a.allocate(B, p('20000-20009:30000-30009'), wide), [
      { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 20000, hostPortEnd: 20009, containerPort: 30000, containerPortEnd: 30009 },
      { proto: 'tcp', hostIp: '::', hostPort: 20000, hostPortEnd: 20009, containerPort: 30000, containerPortEnd: 30009 },
    ]);
    await refused(a.allocate(C, p('20005:80'), wide), ConflictError, /20005\/tcp on 0\.0\.0\.0 and \[::\] is already published by container db \(30000-30009\/tcp -> 0\.0\.0\.0:20000-20009\)/);
    await refused(a.allocate(C, p('8000-8100:8000-8100', '8050:80'), wide), ConflictError, /host port 8050\/tcp on 0\.0\.0\.0 and \[::\] is published twice in this request/);
    a.release(A.endpointId);
    await a.allocate(C, p('127.0.0.1:53:53/udp'), wide);
  });

  test('a range a host process holds part of names the first port held', async () => {
    const a = new PortAllocator();
    await refused(a.allocate(A, p('9000-9100:9000-9100/udp'), ctx({ busy: ['udp/0.0.0.0/9050', 'udp/0.0.0.0/9070'] })), ConflictError, /^host port 9050\/udp on 0\.0\.0\.0 is already in use by a process on the host \(listening on 9050\/udp\)$/);
  });

  test('a container range without host ports: a contiguous block of ephemeral ports, past busy and held ones', async () => {
    const a = new PortAllocator();
    const eph = ctx({ ephemeral: PortRange.of(40000, 40009), busy: ['tcp/0.0.0.0/40004'] });
    assert.deepEqual(await a.allocate(A, p('80-82'), eph), [{ proto: 'tcp', hostIp: '0.0.0.0', hostPort: 40000, hostPortEnd: 40002, containerPort: 80, containerPortEnd: 82 }]);
    // 40003 is free but 40004 is busy: the next block of three starts at 40005.
    assert.deepEqual((await a.allocate(B, p('90-92'), eph)).map((b) => b.hostPort), [40005]);
    await refused(a.allocate(C, p('90-92'), eph), ConflictError, /^no 3 contiguous free host ports for 90-92\/tcp in 40000-40009$/);
    assert.deepEqual((await a.allocate(C, p('90'), eph)).map((b) => b.hostPort), [40008]);
  });

  test('checking a full range against many held ports costs per binding, not per port', async () => {
    const a = new PortAllocator();
    const wide = ctx({ ephemeral: PortRange.of(1024, 65535) });
    for (let i = 0; i < 2000; i++) await a.allocate({ endpointId: i.toString(16).padStart(64, '0'), name: `c${i}` }, p(`${10000 + i}:80/udp`), wide);
    const started = performance.now();
    await refused(a.allocate(A, p('1-65535:1-65535/udp'), wide), ConflictError, /host port 10000\/udp on 0\.0\.0\.0 is already published by container c0/);
    await a.allocate(A, p('1-65535:1-65535'), wide);
    assert.ok(performance.now() - started < 200, `took ${performance.now() - started} ms`);
  });
});


describe('free blocks among intervals', () => {
  test('first fit from a cursor, wrapping around; none when no gap is long enough', () => {
    const r = PortRange.of(100, 199);
    assert.equal(freeBlock(r, [], 100), 100);
    assert.equal(freeBlock(r, [], 101), undefined);
    assert.equal(freeBlock(r, [{ start: 100, end: 109 }, { start: 105, end: 120 }], 5), 121);
    assert.equal(freeBlock(r, [{ start: 150, end: 160 }], 10, 145), 161, 'the gap at the cursor is too short');
    assert.equal(freeBlock(r, [{ start: 150, end: 199 }], 10, 160), 100, 'wraps around');
    assert.equal(freeBlock(r, [{ start: 0, end: 120 }, { start: 130, end: 65535 }], 9), 121, 'clipped to the range');
    assert.equal(freeBlock(r, [{ start: 0, end: 120 }, { start: 130, end: 65535 }], 10), undefined);
  });
});
