/**
 * The kernel layer against the real kernel. Every test works in namespaces it creates (TestNetns,
 * TestContainer) and checks the result with iproute2 run inside them; nothing is ever created in the
 * namespace the test process started in. Needs root: it fails (never skips) without it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, KernelError } from '../../src/errors.js';
import { constants as nc, umount2, withNetns } from '../../src/kernel/native.js';
import { IPAddress, InterfaceAddress, MAC, Prefix } from '../../src/net/index.js';
import { createPersistentNetns, deletePersistentNetns, Netns, netnsPathOfPid } from '../../src/kernel/netns.js';
import { Rtnl, type Link } from '../../src/kernel/rtnetlink.js';
import { readSysctl, writeSysctl } from '../../src/kernel/sysctl.js';
import { MACHINE_NETNS_INODE, requireRoot, run, TestContainer, TestNetns, type RunResult } from '../helpers/netns.js';

requireRoot();

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  address?: string;
  master?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string; info_slave_kind?: string; info_slave_data?: { hairpin?: boolean } };
}

type Exec = (argv: string[]) => Promise<RunResult>;

async function ipJson<T>(exec: Exec, args: string[]): Promise<T> {
  return JSON.parse((await exec(['ip', '-j', ...args])).stdout) as T;
}

const ipLinks = (exec: Exec) => ipJson<IpLink[]>(exec, ['-d', 'link', 'show']);

function threadNetnsIno(): number {
  return statSync('/proc/thread-self/ns/net').ino;
}

/** Opens a namespace handle, refusing the machine's own namespace. */
function openNs(nsPath: string): Netns {
  const ns = Netns.open(nsPath);
  if (ns.ino === MACHINE_NETNS_INODE) {
    ns.close();
    throw new Error(`refusing to work in the machine's own network namespace (${nsPath})`);
  }
  return ns;
}

/** An Rtnl bound to a test namespace (never the machine's). */
function openRtnl(nsPath: string): Rtnl {
  const ns = openNs(nsPath);
  try {
    const rtnl = Rtnl.open(ns);
    assert.notEqual(rtnl.namespace.ino, MACHINE_NETNS_INODE);
    return rtnl;
  } finally {
    ns.close(); // the Rtnl keeps its own handle
  }
}

async function rejectsWith(p: Promise<unknown>, errno: string, op?: string | RegExp): Promise<KernelError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof KernelError, `expected KernelError(${errno}), got ${String(err)}`);
    assert.equal(err.errno, errno, err.message);
    if (typeof op === 'string') assert.equal(err.op, op);
    else if (op) assert.match(err.op, op);
    return err;
  }
  assert.fail(`expected KernelError(${errno}), but it resolved`);
}

const BRIDGE = 'br-0123456789ab';

test('bridge: created with MTU, MAC, alias and up; read back; deleted', async () => {
  const host = await TestNetns.create('bridge');
  const rtnl = openRtnl(host.path);
  try {
    const mac = MAC.random().toString();
    const br = await rtnl.createBridge({ name: BRIDGE, mtu: 1400, mac: MAC.parse(mac), alias: 'netd:net1', up: true });
    assert.deepEqual(br, { index: br.index, name: BRIDGE, kind: 'bridge', up: true, mtu: 1400, mac, alias: 'netd:net1' });

    const seen = (await ipLinks(host.exec.bind(host))).find((l) => l.ifname === BRIDGE);
    assert.ok(seen, 'bridge visible to ip link');
    assert.equal(seen.linkinfo?.info_kind, 'bridge');
    assert.equal(seen.mtu, 1400);
    assert.equal(seen.address, mac);
    assert.equal(seen.ifalias, 'netd:net1');
    assert.ok(seen.flags.includes('UP'));

    assert.deepEqual(await rtnl.linkByName(BRIDGE), br);
    assert.deepEqual(await rtnl.linkByIndex(br.index), br);
    assert.deepEqual(
      (await rtnl.links()).map((l) => l.name),
      ['lo', BRIDGE],
    );

    await rtnl.setLink(br.index, { up: false, mtu: 1300, alias: 'renamed' });
    const changed = await rtnl.linkByIndex(br.index);
    assert.equal(changed?.up, false);
    assert.equal(changed?.mtu, 1300);
    assert.equal(changed?.alias, 'renamed');

    await rtnl.deleteLink(br.index);
    assert.equal(await rtnl.linkByName(BRIDGE), undefined);
    assert.equal(await rtnl.linkByIndex(br.index), undefined);
    assert.deepEqual(
      (await ipLinks(host.exec.bind(host))).map((l) => l.ifname),
      ['lo'],
    );
  } finally {
    rtnl.close();
    await host.destroy();
  }
});

test('veth: one request creates the pair, peer already eth0 in the container with MAC and MTU, host end enslaved and up', async () => {
  const host = await TestNetns.create('veth');
  const container = await TestContainer.start();
  const rtnl = openRtnl(host.path);
  const peerNs = openNs(netnsPathOfPid(container.pid));
  try {
    const br = await rtnl.createBridge({ name: BRIDGE, up: true });
    const mac = MAC.random().toString();
    const veth = await rtnl.createVeth({
      name: 'veth0123abc',
      mtu: 1450,
      master: br.index,
      up: true,
      alias: 'netd:ep1',
      peer: { name: 'eth0', netns: peerNs, mac: MAC.parse(mac) },
    });
    assert.equal(veth.kind, 'veth');
    assert.equal(veth.master, br.index);
    assert.equal(veth.up, true);
    assert.equal(veth.mtu, 1450);
    assert.equal(veth.alias, 'netd:ep1');

    const hostLinks = await ipLinks(host.exec.bind(host));
    const hostEnd = hostLinks.find((l) => l.ifname === 'veth0123abc');
    assert.ok(hostEnd);
    assert.equal(hostEnd.master, BRIDGE);
    assert.equal(hostEnd.linkinfo?.info_slave_kind, 'bridge');
    assert.ok(hostEnd.flags.includes('UP'));
    assert.equal(hostEnd.mtu, 1450);
    assert.ok(!hostLinks.some((l) => l.ifname === 'eth0'), 'the peer must not appear in the host namespace');

    const inside = await container.ipJson<IpLink[]>(['-d', 'link', 'show']);
    assert.deepEqual(
      inside.map((l) => l.ifname),
      ['lo', 'eth0'],
    );
    const eth0 = inside[1];
    assert.equal(eth0.address, mac);
    assert.equal(eth0.mtu, 1450, 'peer MTU defaults to the host end MTU');
    assert.equal(eth0.linkinfo?.info_kind, 'veth');

    // Atomic: if any part is refused (here: enslaving to a bridge that does not exist), the kernel
    // creates nothing at all, in either namespace.
    await assert.rejects(
      rtnl.createVeth({ name: 'veth0123abd', master: 999_999, up: true, peer: { name: 'eth1', netns: peerNs } }),
      (err: unknown) => err instanceof KernelError && err.op === 'create veth veth0123abd',
    );
    assert.equal(await rtnl.linkByName('veth0123abd'), undefined);
    assert.ok(!(await container.ipJson<IpLink[]>(['link', 'show'])).some((l) => l.ifname === 'eth1'));

    // A peer name already taken in the container: EEXIST, and the host end is not left behind.
    await rejectsWith(rtnl.createVeth({ name: 'veth0123abe', peer: { name: 'eth0', netns: peerNs } }), 'EEXIST', 'create veth veth0123abe');
    assert.equal(await rtnl.linkByName('veth0123abe'), undefined);

    // Deleting the host end removes the peer too.
    await rtnl.deleteLink(veth.index);
    assert.deepEqual(
      (await container.ipJson<IpLink[]>(['link', 'show'])).map((l) => l.ifname),
      ['lo'],
    );
  } finally {
    peerNs.close();
    rtnl.close();
    await container.stop();
    await host.destroy();
  }
});

test('hairpin mode on a bridge port is set and cleared', async () => {
  const host = await TestNetns.create('hairpin');
  const peer = await TestNetns.create('hairpinpeer');
  const rtnl = openRtnl(host.path);
  const peerNs = openNs(peer.path);
  try {
    const br = await rtnl.createBridge({ name: BRIDGE, up: true });
    const veth = await rtnl.createVeth({ name: 'veth0000001', master: br.index, up: true, peer: { name: 'eth0', netns: peerNs } });
    const hairpin = async () =>
      (await ipLinks(host.exec.bind(host))).find((l) => l.ifname === 'veth0000001')?.linkinfo?.info_slave_data?.hairpin;
    assert.equal(await hairpin(), false);
    await rtnl.setBridgePortHairpin(veth.index, true);
    assert.equal(await hairpin(), true);
    await rtnl.setBridgePortHairpin(veth.index, false);
    assert.equal(await hairpin(), false);

    // Not a bridge port: the kernel refuses, as a typed error naming the operation.
    await rtnl.setLink(veth.index, { master: 0 });
    await assert.rejects(
      rtnl.setBridgePortHairpin(veth.index, true),
      (err: unknown) => err instanceof KernelError && err.op === `set hairpin on on link #${veth.index}`,
    );
  } finally {
    peerNs.close();
    rtnl.close();
    await peer.destroy();
    await host.destroy();
  }
});

/** Plumbs one container onto the bridge through the kernel layer only, as the bridge driver does. */
async function plumb(
  hostRtnl: Rtnl,
  bridge: Link,
  container: TestContainer,
  hostName: string,
  v4: string,
  v6: string,
): Promise<void> {
  const ns = openNs(netnsPathOfPid(container.pid));
  try {
    await hostRtnl.createVeth({ name: hostName, master: bridge.index, up: true, peer: { name: 'eth0', netns: ns, mac: MAC.random() } });
    const rtnl = Rtnl.open(ns);
    try {
      const lo = await rtnl.linkByName('lo');
      const eth0 = await rtnl.linkByName('eth0');
      assert.ok(lo && eth0);
      await rtnl.setLink(lo.index, { up: true });
      await rtnl.addAddress(eth0.index, InterfaceAddress.parse(v4));
      await rtnl.addAddress(eth0.index, InterfaceAddress.parse(v6));
      await rtnl.setLink(eth0.index, { up: true });
      await rtnl.addRoute({ dst: 'default', gateway: IPAddress.parse('192.0.2.1') });
      await rtnl.addRoute({ dst: 'default', gateway: IPAddress.parse('2001:db8::1'), oif: eth0.index });
    } finally {
      rtnl.close();
    }
  } finally {
    ns.close();
  }
}

test('addresses and default routes inside containers, then ping across the bridge (IPv4 and IPv6)', async () => {
  const host = await TestNetns.create('ping');
  const c1 = await TestContainer.start();
  const c2 = await TestContainer.start();
  const rtnl = openRtnl(host.path);
  try {
    const br = await rtnl.createBridge({ name: BRIDGE, mac: MAC.random() });
    await rtnl.addAddress(br.index, InterfaceAddress.parse('192.0.2.1/24'));
    await rtnl.addAddress(br.index, InterfaceAddress.parse('2001:db8::1/64'));
    await rtnl.setLink(br.index, { up: true });

    await plumb(rtnl, br, c1, 'veth1111111', '192.0.2.2/24', '2001:db8::2/64');
    await plumb(rtnl, br, c2, 'veth2222222', '192.0.2.3/24', '2001:db8::3/64');

    // What iproute2 sees inside container 1.
    const addrs = await c1.ipJson<{ ifname: string; addr_info: { local: string; prefixlen: number }[] }[]>(['addr', 'show', 'dev', 'eth0']);
    const locals = addrs[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`);
    assert.ok(locals.includes('192.0.2.2/24') && locals.includes('2001:db8::2/64'), locals.join(' '));
    const r4 = await c1.ipJson<{ dst: string; gateway?: string; dev: string }[]>(['-4', 'route', 'show']);
    assert.ok(r4.some((r) => r.dst === 'default' && String(r.gateway) === '192.0.2.1' && r.dev === 'eth0'), JSON.stringify(r4));
    const r6 = await c1.ipJson<{ dst: string; gateway?: string; dev: string }[]>(['-6', 'route', 'show']);
    assert.ok(r6.some((r) => r.dst === 'default' && String(r.gateway) === '2001:db8::1' && r.dev === 'eth0'), JSON.stringify(r6));

    // And what the layer reads back there.
    const c1ns = openNs(netnsPathOfPid(c1.pid));
    const inC1 = Rtnl.open(c1ns);
    c1ns.close(); // the Rtnl holds its own handle
    try {
      const eth0 = await inC1.linkByName('eth0');
      assert.ok(eth0?.up);
      assert.deepEqual(
        (await inC1.addresses(4)).filter((a) => a.index === eth0.index).map((a) => ({ ...a, cidr: String(a.cidr) })),
        [{ index: eth0.index, cidr: '192.0.2.2/24', family: 4 }],
      );
      assert.ok((await inC1.addresses(6)).some((a) => a.index === eth0.index && String(a.cidr) === '2001:db8::2/64'));
      const routes4 = await inC1.routes(4);
      assert.ok(routes4.some((r) => r.dst === 'default' && String(r.gateway) === '192.0.2.1' && r.oif === eth0.index && r.protocol === 'boot'));
      assert.ok(routes4.some((r) => String(r.dst) === '192.0.2.0/24' && r.protocol === 'kernel' && r.scope === 'link'));
      assert.ok((await inC1.routes(6)).some((r) => r.dst === 'default' && String(r.gateway) === '2001:db8::1'));
    } finally {
      inC1.close();
    }

    const ping = (c: TestContainer, dst: string) => c.exec(['ping', '-n', '-c', '2', '-i', '0.2', '-W', '3', dst]);
    await ping(c1, '192.0.2.3');
    await ping(c2, '192.0.2.2');
    await ping(c1, '2001:db8::3');
    await ping(c2, '2001:db8::2');
    await ping(c1, '192.0.2.1'); // the gateway on the bridge, in the host namespace
  } finally {
    rtnl.close();
    await c1.stop();
    await c2.stop();
    await host.destroy();
  }
});

test('routes and addresses: add, list, delete; errors are typed', async () => {
  const host = await TestNetns.create('routes');
  const rtnl = openRtnl(host.path);
  try {
    const br = await rtnl.createBridge({ name: BRIDGE, up: true });
    await rtnl.addAddress(br.index, InterfaceAddress.parse('192.0.2.1/24'));
    await rtnl.addAddress(br.index, InterfaceAddress.parse('2001:db8::1/64'));
    await rejectsWith(rtnl.addAddress(br.index, InterfaceAddress.parse('192.0.2.1/24')), 'EEXIST', `add address 192.0.2.1/24 to link #${br.index}`);

    await rtnl.addRoute({ dst: Prefix.parse('198.51.100.0/24'), gateway: IPAddress.parse('192.0.2.254') });
    await rtnl.addRoute({ dst: Prefix.parse('203.0.113.0/24'), oif: br.index });
    await rtnl.addRoute({ dst: Prefix.parse('2001:db8:1::/48'), gateway: IPAddress.parse('2001:db8::fe') });
    await rejectsWith(rtnl.addRoute({ dst: Prefix.parse('198.51.100.0/24'), gateway: IPAddress.parse('192.0.2.254') }), 'EEXIST', /^add route 198\.51\.100\.0\/24/);

    const r4 = await rtnl.routes(4);
    assert.ok(r4.some((r) => String(r.dst) === '198.51.100.0/24' && String(r.gateway) === '192.0.2.254' && r.oif === br.index));
    assert.ok(r4.some((r) => String(r.dst) === '203.0.113.0/24' && r.gateway === undefined && r.scope === 'link'));
    const ip4 = await ipJson<{ dst: string }[]>(host.exec.bind(host), ['-4', 'route', 'show']);
    assert.ok(ip4.some((r) => String(r.dst) === '203.0.113.0/24'));
    assert.ok((await rtnl.routes(6)).some((r) => String(r.dst) === '2001:db8:1::/48' && String(r.gateway) === '2001:db8::fe'));

    await rtnl.deleteRoute({ dst: Prefix.parse('198.51.100.0/24'), gateway: IPAddress.parse('192.0.2.254') });
    await rtnl.deleteRoute({ dst: Prefix.parse('203.0.113.0/24'), oif: br.index });
    await rtnl.deleteRoute({ dst: Prefix.parse('2001:db8:1::/48'), gateway: IPAddress.parse('2001:db8::fe') });
    await rejectsWith(rtnl.deleteRoute({ dst: Prefix.parse('198.51.100.0/24'), gateway: IPAddress.parse('192.0.2.254') }), 'ESRCH');
    assert.ok(!(await rtnl.routes(4)).some((r) => String(r.dst) === '198.51.100.0/24' || String(r.dst) === '203.0.113.0/24'));

    await rtnl.deleteAddress(br.index, InterfaceAddress.parse('192.0.2.1/24'));
    await rtnl.deleteAddress(br.index, InterfaceAddress.parse('2001:db8::1/64'));
    await rejectsWith(rtnl.deleteAddress(br.index, InterfaceAddress.parse('192.0.2.1/24')), 'EADDRNOTAVAIL');
    const left = (await rtnl.addresses()).filter((a) => a.index === br.index);
    assert.ok(left.every((a) => String(a.cidr).startsWith('fe80::')), JSON.stringify(left)); // only the link-local remains
  } finally {
    rtnl.close();
    await host.destroy();
  }
});

test('typed errors: duplicate names, missing links, invalid input refused before the kernel', async () => {
  const host = await TestNetns.create('errors');
  const rtnl = openRtnl(host.path);
  try {
    const br = await rtnl.createBridge({ name: BRIDGE });
    const dup = await rejectsWith(rtnl.createBridge({ name: BRIDGE }), 'EEXIST', `create bridge ${BRIDGE}`);
    assert.equal(dup.message, `create bridge ${BRIDGE}: EEXIST`);
    assert.equal(dup.status, 500);

    await rejectsWith(rtnl.deleteLink(999_999), 'ENODEV', 'delete link #999999');
    await rejectsWith(rtnl.setLink(999_999, { up: true }), 'ENODEV');
    assert.equal(await rtnl.linkByName('nosuchlink'), undefined);

    const invalid: [string, () => Promise<unknown>][] = [
      ['interface name with a space', () => rtnl.createBridge({ name: 'bad name' })],
      ['interface name too long', () => rtnl.createBridge({ name: 'abcdefghijklmnop' })],
      ['multicast MAC', async () => rtnl.createBridge({ name: 'br1', mac: MAC.parse('01:00:5e:00:00:01') })],
      ['MTU too small', () => rtnl.createBridge({ name: 'br1', mtu: 10 })],
      ['bad address', async () => rtnl.addAddress(br.index, InterfaceAddress.parse('192.0.2.300/24'))],
      ['address without prefix', async () => rtnl.addAddress(br.index, InterfaceAddress.parse('192.0.2.3'))],
      ['route with host bits', async () => rtnl.addRoute({ dst: Prefix.parse('192.0.2.1/24'), oif: br.index })],
      ['route mixing families', async () => rtnl.addRoute({ dst: Prefix.parse('192.0.2.0/24'), gateway: IPAddress.parse('2001:db8::1') })],
      ['default route without family', () => rtnl.addRoute({ dst: 'default', oif: br.index })],
      ['route without gateway or oif', () => rtnl.addRoute({ dst: Prefix.parse('192.0.2.0/24') })],
      ['bad ifindex', () => rtnl.setLink(0, { up: true })],
      ['bad alias', () => rtnl.setLink(br.index, { alias: 'x'.repeat(256) })],
      ['closed peer netns', () => {
        const ns = openNs(host.path);
        ns.close();
        return rtnl.createVeth({ name: 'veth0000009', peer: { name: 'eth0', netns: ns } });
      }],
    ];
    for (const [what, call] of invalid) {
      await assert.rejects(call(), InvalidArgumentError, what);
    }
    // Nothing reached the kernel.
    assert.deepEqual(
      (await rtnl.links()).map((l) => l.name),
      ['lo', BRIDGE],
    );
  } finally {
    rtnl.close();
    await host.destroy();
  }
});

test('Rtnl: bound to its namespace for life, bounded concurrency, recovers from an overrun, closes cleanly', async () => {
  const host = await TestNetns.create('rtnl');
  try {
    // The caller's handle is closed at once; the Rtnl keeps working in that namespace.
    const rtnl = openRtnl(host.path);
    try {
      await rtnl.createBridge({ name: BRIDGE });
      assert.ok((await ipLinks(host.exec.bind(host))).some((l) => l.ifname === BRIDGE));

      // Many concurrent requests, dumps mixed in (the kernel allows one dump per socket at a time).
      const results = await Promise.all(
        Array.from({ length: 600 }, (_, i) => (i % 3 === 0 ? rtnl.links() : i % 3 === 1 ? rtnl.linkByIndex(1) : rtnl.addresses())),
      );
      assert.equal(results.length, 600);
      assert.equal(rtnl.socketsOpened, 1);
    } finally {
      rtnl.close();
    }
    await rejectsWith(rtnl.links(), 'EBADF');

    // Closing with requests in flight and queued rejects every one of them.
    const ns0 = openNs(host.path);
    const busy = Rtnl.open(ns0, { maxInFlight: 2 });
    ns0.close();
    const calls = Array.from({ length: 10 }, () => busy.linkByIndex(1));
    busy.close();
    for (const s of await Promise.allSettled(calls)) {
      assert.ok(s.status === 'rejected' && s.reason instanceof KernelError && s.reason.errno === 'EBADF', JSON.stringify(s));
    }

    // A tiny receive buffer and no in-flight bound: answers overflow the socket. The process must not
    // abort (the patched netlink build), pending requests fail with ENOBUFS, and the next call reopens.
    const ns = openNs(host.path);
    const fragile = Rtnl.open(ns, { recvBufferSize: 4096, maxInFlight: 1000 });
    ns.close();
    try {
      const settled = await Promise.allSettled(Array.from({ length: 500 }, () => fragile.linkByIndex(1)));
      const failures = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
      assert.ok(failures.length > 0, 'expected the receive buffer to overflow');
      for (const f of failures) assert.ok(f.reason instanceof KernelError && f.reason.errno === 'ENOBUFS', String(f.reason));
      assert.equal((await fragile.linkByIndex(1))?.name, 'lo');
      assert.ok(fragile.socketsOpened >= 2);
    } finally {
      fragile.close();
    }
  } finally {
    await host.destroy();
  }
});

test('an exception thrown after an Rtnl reply reaches uncaughtException instead of aborting the process', async () => {
  // The netlink addon rethrows exceptions pending at the end of its native callbacks as C++ exceptions
  // and never catches them (std::terminate). Rtnl settles its promises outside those callbacks.
  const host = await TestNetns.create('abort');
  try {
    const script = `
      const { Netns } = require(${JSON.stringify(path.join(__dirname, '../../src/kernel/netns.js'))});
      const { Rtnl } = require(${JSON.stringify(path.join(__dirname, '../../src/kernel/rtnetlink.js'))});
      process.on('uncaughtException', (e) => { console.log('caught: ' + e.message); process.exit(3); });
      (async () => {
        const ns = Netns.open(process.argv[1]);
        const rtnl = Rtnl.open(ns);
        await rtnl.linkByIndex(1);
        process.nextTick(() => { throw new Error('late'); });
      })();`;
    const res = await run([process.execPath, '-e', script, host.path], { allowFail: true });
    assert.equal(res.code, 3, `exit ${res.code}: ${res.stderr}`);
    assert.equal(res.stdout.trim(), 'caught: late');
  } finally {
    await host.destroy();
  }
});

test('withNetns / Netns.run restores the original namespace even when fn throws', async () => {
  const host = await TestNetns.create('withns');
  const ns = openNs(host.path);
  try {
    const before = threadNetnsIno();
    assert.equal(before, MACHINE_NETNS_INODE);
    let inside = 0;
    const boom = new Error('boom');
    assert.throws(
      () =>
        ns.run(() => {
          inside = threadNetnsIno();
          throw boom;
        }),
      (err: unknown) => err === boom,
    );
    assert.equal(inside, ns.ino);
    assert.equal(threadNetnsIno(), before);

    // The raw addon function behaves the same, and returns fn's value.
    assert.equal(
      withNetns(ns.fd, () => threadNetnsIno()),
      ns.ino,
    );
    assert.equal(threadNetnsIno(), before);
    assert.throws(() => withNetns(ns.fd, () => { throw new TypeError('inner'); }), TypeError);
    assert.equal(threadNetnsIno(), before);
    // Nested runs unwind to the right place.
    const other = await TestNetns.create('withns2');
    const ns2 = openNs(other.path);
    try {
      const seen = ns.run(() => [threadNetnsIno(), ns2.run(() => threadNetnsIno()), threadNetnsIno()]);
      assert.deepEqual(seen, [ns.ino, ns2.ino, ns.ino]);
      assert.equal(threadNetnsIno(), before);
    } finally {
      ns2.close();
      await other.destroy();
    }
  } finally {
    ns.close();
    await host.destroy();
  }
});

test('Netns: open validates, identifies and compares namespaces', async () => {
  const host = await TestNetns.create('netnsobj');
  const container = await TestContainer.start();
  const dir = mkdtempSync(path.join(tmpdir(), 'netd-netns-'));
  try {
    const a = Netns.open(host.path);
    const b = Netns.open(host.path);
    const c = Netns.open(netnsPathOfPid(container.pid));
    const self = Netns.current();
    try {
      assert.ok(a.sameAs(b));
      assert.ok(!a.sameAs(c));
      assert.equal(self.ino, MACHINE_NETNS_INODE);
      assert.equal(a.ino, statSync(host.path).ino);
      const d = a.dup();
      assert.ok(d.sameAs(a) && d.fd !== a.fd && d.path === a.path);
      d.close();
      d.close(); // idempotent
      assert.throws(() => d.fd, /closed/);
    } finally {
      for (const n of [a, b, c, self]) n.close();
    }

    const plain = path.join(dir, 'plain');
    writeFileSync(plain, '');
    assert.throws(() => Netns.open(plain), (e: unknown) => e instanceof InvalidArgumentError && /not a namespace/.test(e.message));
    assert.throws(() => Netns.open('/proc/self/ns/mnt'), (e: unknown) => e instanceof InvalidArgumentError && /not a network namespace/.test(e.message));
    assert.throws(() => Netns.open(path.join(dir, 'missing')), (e: unknown) => e instanceof InvalidArgumentError && /does not exist/.test(e.message));

    assert.equal(netnsPathOfPid(container.pid), `/proc/${container.pid}/ns/net`);
    for (const bad of [0, -1, 1.5, Number.NaN, 4_194_305]) assert.throws(() => netnsPathOfPid(bad), InvalidArgumentError);
    assert.throws(() => netnsPathOfPid(4_194_304), /no process/); // pids are < pid_max ≤ 4194304
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await container.stop();
    await host.destroy();
  }
});

test('createPersistentNetns / deletePersistentNetns under a temporary directory', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'netd-persist-'));
  const file = path.join(dir, 'ns1');
  const before = threadNetnsIno();
  try {
    createPersistentNetns(file);
    assert.equal(threadNetnsIno(), before, 'the main thread is back in its namespace');
    const ino = statSync(file).ino;
    assert.notEqual(ino, MACHINE_NETNS_INODE);
    assert.notEqual(ino, before);

    // It is a real, empty network namespace, usable by other tools and by the layer.
    const links = JSON.parse((await run(['nsenter', `--net=${file}`, 'ip', '-j', 'link', 'show'])).stdout) as IpLink[];
    assert.deepEqual(
      links.map((l) => l.ifname),
      ['lo'],
    );
    const ns = openNs(file);
    assert.equal(ns.ino, ino);
    ns.close();

    await rejectsWith(Promise.resolve().then(() => createPersistentNetns(file)), 'EEXIST');
    assert.equal(statSync(file).ino, ino, 'an existing namespace file is never shadowed');

    deletePersistentNetns(file);
    assert.equal(existsSync(file), false);
    deletePersistentNetns(file); // idempotent
    assert.equal(threadNetnsIno(), before);
    assert.throws(() => createPersistentNetns('relative/ns'), InvalidArgumentError);
  } finally {
    try {
      deletePersistentNetns(file);
    } catch {
      /* already gone */
    }
    // createPersistentNetns made the directory a (shared) mount point, as iproute2 does for /run/netns.
    try {
      umount2(dir, nc.MNT_DETACH);
    } catch {
      /* not mounted */
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sysctl: read and write inside a namespace through run(); writes only when the value differs', async () => {
  const host = await TestNetns.create('sysctl');
  const ns = openNs(host.path);
  const machineForward = readSysctl('net.ipv4.ip_forward');
  try {
    const inNs = <T>(fn: () => T): T =>
      ns.run(() => {
        // Guard: never write the machine's sysctls.
        assert.equal(threadNetnsIno(), ns.ino);
        return fn();
      });
    assert.equal(
      inNs(() => readSysctl('net.ipv4.ip_forward')),
      '0',
    );
    assert.equal(
      inNs(() => writeSysctl('net.ipv4.ip_forward', 1)),
      true,
    );
    assert.equal(
      inNs(() => writeSysctl('net.ipv4.ip_forward', '1')),
      false,
      'unchanged value is not rewritten',
    );
    assert.equal((await host.exec(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim(), '1');
    assert.equal(readSysctl('net.ipv4.ip_forward'), machineForward, "the machine's value is untouched");

    assert.equal(
      inNs(() => writeSysctl('net.ipv4.conf.lo.route_localnet', '1')),
      true,
    );
    assert.equal((await host.exec(['sysctl', '-n', 'net.ipv4.conf.lo.route_localnet'])).stdout.trim(), '1');

    assert.throws(
      () => inNs(() => readSysctl('net.ipv4.conf.nosuchif.forwarding')),
      (e: unknown) => e instanceof KernelError && e.errno === 'ENOENT',
    );
    assert.throws(
      () => inNs(() => writeSysctl('net.ipv4.ip_forward', 'abc')),
      (e: unknown) => e instanceof KernelError && e.errno === 'EINVAL',
    );
    assert.throws(() => inNs(() => writeSysctl('net.ipv4.ip_forward', '1\n0')), InvalidArgumentError);
  } finally {
    ns.close();
    await host.destroy();
  }
});
