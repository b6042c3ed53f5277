/**
 * Host side effects of IP forwarding (issue 11, item 5). The "host" namespace has two interfaces that are
 * not netd's, each a veth to a namespace of its own, with routes through the host:
 *
 *   left 203.0.113.2/26 ── hl0 203.0.113.1/26 [host] hr0 203.0.113.65/26 ── right 203.0.113.66/26
 *
 * With ip_forward on they route to each other. When netd turns forwarding on it sets the FORWARD policy
 * to DROP (as Docker does), so they no longer do — unless `--ip-forward-no-drop` — and keeps it so after
 * a reset, on reload and restart. IPv6 forwarding stays off until an IPv6 network exists, and then an
 * interface that uses router advertisements (accept_ra=1 and a route learned from one) is set to 2 so it
 * keeps accepting them; links facing containers or guests (veths, bridges) are never raised.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { TestContainer, TestNetns, requireRoot } from '../helpers/netns.js';
import { FIXTURES, TestDaemon, startWhoami, testFirewallBackend } from '../helpers/daemon.js';
import { forwardPolicy as netdForwardPolicy, nftRuleset, nftTables, resetForwardPolicy } from '../helpers/firewall-state.js';

const RIGHT = '203.0.113.66';
const LEFT = '203.0.113.2';

interface Hosts {
  host: TestNetns;
  left: TestNetns;
  right: TestNetns;
  server: ChildProcess;
  destroy(): Promise<void>;
}

async function hosts(tag: string): Promise<Hosts> {
  const made: TestNetns[] = [];
  try {
    for (const t of ['h', 'l', 'r']) made.push(await TestNetns.create(`${tag}${t}`));
    const [host, left, right] = made;
    for (const [peer, hostIf, peerIf, hostAddr, peerAddr] of [
      [left, 'hl0', 'l0', '203.0.113.1', LEFT],
      [right, 'hr0', 'r0', '203.0.113.65', RIGHT],
    ] as const) {
      await host.exec(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf, 'netns', peer.name]);
      await host.exec(['ip', 'addr', 'add', `${hostAddr}/26`, 'dev', hostIf]);
      await host.exec(['ip', 'link', 'set', hostIf, 'up']);
      await peer.exec(['ip', 'addr', 'add', `${peerAddr}/26`, 'dev', peerIf]);
      await peer.exec(['ip', 'link', 'set', peerIf, 'up']);
      await peer.exec(['ip', 'route', 'add', 'default', 'via', hostAddr]);
    }
    const server = await startWhoami(right, RIGHT, 7000);
    return {
      host,
      left,
      right,
      server,
      destroy: async () => {
        server.kill('SIGKILL');
        for (const ns of made) await ns.destroy();
      },
    };
  } catch (err) {
    for (const ns of made) await ns.destroy();
    throw err;
  }
}

/** left → right through the host: the address the right side saw, or undefined. */
async function routed(h: Hosts): Promise<string | undefined> {
  const res = await h.left.exec(['node', join(FIXTURES, 'tcp-get.cjs'), RIGHT, '7000', '1000'], { allowFail: true });
  return res.code === 0 ? res.stdout.trim() : undefined;
}

async function sysctl(ns: TestNetns, key: string): Promise<string> {
  return (await ns.exec(['sysctl', '-n', key])).stdout.trim();
}

/**
 * The forward policy netd's routing is under, in iptables' words: `-P FORWARD DROP` (iptables: the first line of
 * `iptables -S FORWARD`, as the suite always read it; nftables: the policy of netd's forward base chain for that
 * family, test/helpers/firewall-state.ts).
 */
async function forwardPolicy(ns: TestNetns, cmd: 'iptables' | 'ip6tables'): Promise<string> {
  if (testFirewallBackend() === 'iptables') return (await ns.exec([cmd, '-w', '-S', 'FORWARD'])).stdout.split('\n')[0];
  return `-P FORWARD ${await netdForwardPolicy(ns, cmd === 'iptables' ? 4 : 6)}`;
}

const POOL = ['--default-address-pool', 'base=192.0.2.0/24,size=26'];

test('netd turns forwarding on with the FORWARD policy DROP: other interfaces stop routing; IPv6 and accept_ra', async () => {
  requireRoot();
  const h = await hosts('fw');
  let daemon: TestDaemon | undefined;
  const c = await TestContainer.start();
  try {
    assert.equal(await sysctl(h.host, 'net.ipv4.ip_forward'), '0', 'a fresh namespace does not forward');
    await h.host.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    assert.equal(await routed(h), LEFT, 'the two interfaces route to each other once forwarding is on');
    await h.host.exec(['sysctl', '-qw', 'net.ipv4.ip_forward=0']);
    assert.equal(await routed(h), undefined, 'and not while it is off');
    assert.equal(await sysctl(h.host, 'net.ipv6.conf.hl0.accept_ra'), '1');
    // An uplink that learned its default route from a router advertisement (a macvlan stands for it); a
    // veth with such a route too (a container could send one) and a bridge of someone else's, without.
    await h.host.exec(['ip', 'link', 'add', 'link', 'hl0', 'name', 'up0', 'type', 'macvlan']);
    await h.host.exec(['ip', 'link', 'add', 'brx0', 'type', 'bridge']);
    for (const dev of ['up0', 'brx0']) await h.host.exec(['ip', 'link', 'set', dev, 'up']);
    for (const dev of ['up0', 'hr0']) await h.host.exec(['ip', '-6', 'route', 'add', 'default', 'via', 'fe80::1', 'dev', dev, 'proto', 'ra', 'metric', dev === 'up0' ? '100' : '200']);
    for (const dev of ['up0', 'hr0', 'brx0']) assert.equal(await sysctl(h.host, `net.ipv6.conf.${dev}.accept_ra`), '1', dev);

    daemon = await TestDaemon.start(h.host, POOL);
    assert.equal(await sysctl(h.host, 'net.ipv4.ip_forward'), '1', 'netd turned forwarding on (the default network)');
    assert.equal(await forwardPolicy(h.host, 'iptables'), '-P FORWARD DROP');
    assert.equal(await routed(h), undefined, 'the host no longer routes between interfaces that are not netd’s');
    if (testFirewallBackend() === 'nftables') {
      // The drop is netd's own chain's: iptables' FORWARD chain (another table) is left as it was.
      assert.equal((await h.host.exec(['iptables', '-w', '-S', 'FORWARD'])).stdout.split('\n')[0], '-P FORWARD ACCEPT', 'iptables untouched');
    }
    assert.equal(await sysctl(h.host, 'net.ipv6.conf.all.forwarding'), '0', 'no IPv6 network, no IPv6 forwarding');
    assert.equal(await sysctl(h.host, 'net.ipv6.conf.hl0.accept_ra'), '1', 'untouched without IPv6 forwarding');

    // netd's own traffic is what its rules accept: a container reaches a host behind another interface.
    await daemon.cli(['attach', String(c.pid)]);
    const seen = await c.exec(['node', join(FIXTURES, 'tcp-get.cjs'), RIGHT, '7000', '1500'], { allowFail: true });
    assert.equal(seen.stdout.trim(), '203.0.113.65', 'container → right, masqueraded behind the host');

    await daemon.cli(['create-network', 'v6', '--ipv6', '--subnet', '2001:db8:1::/64']);
    assert.equal(await sysctl(h.host, 'net.ipv6.conf.all.forwarding'), '1', 'an IPv6 network turns IPv6 forwarding on');
    assert.equal(await sysctl(h.host, 'net.ipv6.conf.up0.accept_ra'), '2', 'an interface that uses router advertisements keeps taking them');
    assert.equal(await sysctl(h.host, 'net.ipv6.conf.hl0.accept_ra'), '1', 'an interface without a route from one is left alone');
    assert.equal(await sysctl(h.host, 'net.ipv6.conf.hr0.accept_ra'), '1', 'a veth is never raised, route or not');
    assert.equal(await sysctl(h.host, 'net.ipv6.conf.brx0.accept_ra'), '1', 'another bridge is never raised');
    const addrs = JSON.parse((await h.host.exec(['ip', '-j', '-6', 'addr', 'show'])).stdout) as { ifname: string; addr_info: { local: string }[] }[];
    const brName = addrs.find((l) => l.addr_info.some((i) => i.local === '2001:db8:1::1'))!.ifname;
    assert.notEqual(await sysctl(h.host, `net.ipv6.conf.${brName}.accept_ra`), '2', 'netd’s own bridge does not take advertisements from containers');
    assert.equal(await forwardPolicy(h.host, 'ip6tables'), '-P FORWARD DROP');
    assert.equal(await routed(h), undefined);
  } finally {
    await c.stop();
    await daemon?.destroy();
    await h.destroy();
  }
});

test('the FORWARD policy stays DROP: a reset is undone by a firewall reload and by a restart', async () => {
  requireRoot();
  const h = await hosts('fk');
  let daemon: TestDaemon | undefined;
  try {
    // No timed check nor nf_tables monitor (which would undo the reset at once): the reset is seen first.
    daemon = await TestDaemon.start(h.host, [...POOL, '--firewall-check-interval', '0'], { NETD_TEST_NO_FIREWALL_WATCH: '1' });
    assert.equal(await forwardPolicy(h.host, 'iptables'), '-P FORWARD DROP');
    await resetForwardPolicy(h.host, 4);
    assert.equal(await routed(h), LEFT, 'reset: the host routes again');
    await daemon.cli(['firewall-reload']);
    assert.equal(await forwardPolicy(h.host, 'iptables'), '-P FORWARD DROP', 'a reload sets it back');
    assert.equal(await routed(h), undefined);

    await resetForwardPolicy(h.host, 4);
    await daemon.restart('SIGTERM');
    assert.equal(await sysctl(h.host, 'net.ipv4.ip_forward'), '1', 'forwarding was on already at this start');
    assert.equal(await forwardPolicy(h.host, 'iptables'), '-P FORWARD DROP', 'a restart sets it back (netd turned forwarding on)');
    assert.equal(await routed(h), undefined);
    if (testFirewallBackend() === 'nftables') {
      // The whole drop chain deleted (not only its rule): a reload puts it back too.
      const [t] = nftTables(await nftRuleset(h.host));
      await h.host.exec(['nft', 'delete', 'chain', t.family, t.name, 'forward-drop']);
      assert.equal(await forwardPolicy(h.host, 'iptables'), '-P FORWARD ACCEPT', 'chain deleted: nothing drops');
      assert.equal(await routed(h), LEFT);
      await daemon.cli(['firewall-reload']);
      assert.equal(await forwardPolicy(h.host, 'iptables'), '-P FORWARD DROP', 'a reload restores the chain');
      assert.equal(await routed(h), undefined);
    }
  } finally {
    await daemon?.destroy();
    await h.destroy();
  }
});

test('--ip-forward-no-drop: netd turns forwarding on and leaves the FORWARD policy alone', async () => {
  requireRoot();
  const h = await hosts('fn');
  let daemon: TestDaemon | undefined;
  try {
    assert.equal(await routed(h), undefined, 'no forwarding yet');
    daemon = await TestDaemon.start(h.host, [...POOL, '--ip-forward-no-drop']);
    assert.equal(await sysctl(h.host, 'net.ipv4.ip_forward'), '1');
    assert.equal(await forwardPolicy(h.host, 'iptables'), '-P FORWARD ACCEPT');
    assert.equal(await routed(h), LEFT, 'the host routes as the administrator asked');
  } finally {
    await daemon?.destroy();
    await h.destroy();
  }
});
