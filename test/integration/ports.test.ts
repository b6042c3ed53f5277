/**
 * Published ports end to end: a daemon in a throwaway "host" namespace, containers as processes in their
 * own namespaces, an "outside" namespace behind the host (198.51.100.2 → 198.51.100.1, and 2001:db8::2 →
 * 2001:db8::1). Real TCP and UDP traffic; kernel state compared before and after every refusal.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { TestContainer, TestNetns, requireRoot } from '../helpers/netns.js';
import { FIXTURES, TestDaemon, Topology, kernelSnapshot, testFirewallBackend } from '../helpers/daemon.js';
import { deleteNetdNftRules, mentioning, netdFirewallState, rulesThat } from '../helpers/firewall-state.js';
import { UDP_CLIENT, serve, stopAll } from '../helpers/traffic.js';

interface Binding {
  proto: string;
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

interface AttachJson {
  endpointId: string;
  ipv4?: string;
  ipv6?: string;
  ports?: Binding[];
}

const HOST = Topology.HOST_EXT;
const OUTSIDE = Topology.OUTSIDE;
const HOST6 = '2001:db8::1';
const OUTSIDE6 = '2001:db8::2';

const ip = (cidr: string | undefined) => (cidr ?? '').split('/')[0];
/** A dual-stack server reports IPv4 peers as ::ffff:a.b.c.d. */
const unmap = (a: string) => a.replace(/^::ffff:/, '');

// A UDP server answering every datagram with the sender's address (the client is in helpers/traffic.ts).
const UDP_SERVER =
  "const d=require('dgram').createSocket({type:'udp6'});d.on('message',(m,r)=>d.send(r.address+'\\n',r.port,r.address));" +
  "d.bind(Number(process.argv[1]),'::',()=>console.log('listening'))";
// A process on the host holding a port (TCP listening or UDP bound).
const HOLD_PORT =
  "const [proto,port]=process.argv.slice(1);const ready=()=>console.log('listening');" +
  "if(proto==='udp'){require('dgram').createSocket('udp4').bind(Number(port),'0.0.0.0',ready)}else{require('net').createServer().listen(Number(port),'0.0.0.0',ready)}";

type Where = TestContainer | TestNetns;

async function tcp(from: Where, host: string, port: number, timeoutMs = 1500): Promise<string | undefined> {
  const res = await from.exec(['node', join(FIXTURES, 'tcp-get.cjs'), host, String(port), String(timeoutMs)], { allowFail: true });
  return res.code === 0 ? unmap(res.stdout.trim()) : undefined;
}

async function udp(from: Where, host: string, port: number, timeoutMs = 1500): Promise<string | undefined> {
  const res = await from.exec(['node', '-e', UDP_CLIENT, host, String(port), String(timeoutMs)], { allowFail: true });
  return res.code === 0 ? unmap(res.stdout.trim()) : undefined;
}


describe('published ports', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  const containers: TestContainer[] = [];
  const processes: ChildProcess[] = [];

  /** A container running a TCP and a UDP "whoami" server on port 80 (dual-stack). */
  async function container(): Promise<TestContainer> {
    const c = await TestContainer.start();
    containers.push(c);
    const inC = ['nsenter', '-t', String(c.pid), '-n', '--'];
    processes.push(await serve([...inC, 'node', join(FIXTURES, 'tcp-whoami.cjs'), '::', '80']));
    processes.push(await serve([...inC, 'node', '-e', UDP_SERVER, '80']));
    return c;
  }

  async function attach(c: TestContainer, args: string[]): Promise<AttachJson> {
    return JSON.parse((await daemon.cli(['attach', String(c.pid), ...args])).stdout) as AttachJson;
  }

  /** iptables: the rule lines and port-forward chains of iptables-save; nftables: netd's state (its table). */
  async function rules(): Promise<string[]> {
    if (nft) {
      const state = await netdFirewallState(topo.host);
      assert.ok(state.some((l) => l.startsWith('table ')), 'netd’s nftables table is there');
      return state;
    }
    const v4 = (await topo.host.exec(['iptables-save'])).stdout;
    const v6 = (await topo.host.exec(['ip6tables-save'])).stdout;
    return (v4 + v6).split('\n').filter((l) => l.startsWith('-A') || l.startsWith(':NETD-PF'));
  }

  const nft = testFirewallBackend() === 'nftables';

  before(async () => {
    requireRoot();
    topo = await Topology.create('pt');
    await topo.host.exec(['ip', '-6', 'addr', 'add', `${HOST6}/64`, 'dev', 'ext0', 'nodad']);
    await topo.outside.exec(['ip', '-6', 'addr', 'add', `${OUTSIDE6}/64`, 'dev', 'ext1', 'nodad']);
    // No firewall watchdog here: a test removes one of netd's rules on purpose (to show the hole it
    // closes) and must not race a repair; the watchdog has its own tests (resilience.test).
    // Nor the nf_tables monitor (NETD_TEST_NO_FIREWALL_WATCH), which would put that rule back at once.
    daemon = await TestDaemon.start(topo.host, ['--firewall-check-interval', '0'], { NETD_TEST_NO_FIREWALL_WATCH: '1' });
  });

  after(() => stopAll(processes, containers, daemon, topo));

  let web: TestContainer;
  let webIp: string;

  test('TCP and UDP from outside, from the host on 127.0.0.1 and its own address, and hairpin', async () => {
    web = await container();
    const r = await attach(web, ['--name', 'web', '-p', '8080:80', '-p', '8080:80/udp']);
    webIp = ip(r.ipv4);
    assert.deepEqual(r.ports, [
      { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 },
      { proto: 'udp', hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80 },
    ]);

    // From another machine: the container sees the client's real address (no proxy in the path).
    assert.equal(await tcp(topo.outside, HOST, 8080), OUTSIDE, 'outside → tcp');
    assert.equal(await udp(topo.outside, HOST, 8080), OUTSIDE, 'outside → udp');

    // From the host itself: loopback (masqueraded to the bridge's address) and the host's own address.
    assert.equal(await tcp(topo.host, '127.0.0.1', 8080), '172.17.0.1', 'host 127.0.0.1 → tcp');
    assert.equal(await udp(topo.host, '127.0.0.1', 8080), '172.17.0.1', 'host 127.0.0.1 → udp');
    assert.ok(await tcp(topo.host, HOST, 8080), 'host own address → tcp');
    assert.ok(await udp(topo.host, HOST, 8080), 'host own address → udp');

    // Hairpin: the container itself, and a neighbour on the same bridge, through the host's address.
    const other = await container();
    await attach(other, ['--name', 'neighbour']);
    assert.equal(await tcp(web, HOST, 8080), '172.17.0.1', 'hairpin to itself → tcp');
    assert.equal(await udp(web, HOST, 8080), '172.17.0.1', 'hairpin to itself → udp');
    assert.equal(await tcp(other, HOST, 8080), '172.17.0.1', 'neighbour → tcp');
    assert.equal(await udp(other, HOST, 8080), '172.17.0.1', 'neighbour → udp');
    assert.ok(await tcp(other, '172.17.0.1', 8080), 'neighbour through the gateway address');

    const hostIf = `veth${r.endpointId.slice(0, 7)}`;
    const link = JSON.parse((await topo.host.exec(['ip', '-j', '-d', 'link', 'show', 'dev', hostIf])).stdout)[0];
    assert.equal(link.linkinfo.info_slave_data.hairpin, true, 'hairpin mode on the bridge port');
    assert.equal((await topo.host.exec(['sysctl', '-n', 'net.ipv4.conf.netd0.route_localnet'])).stdout.trim(), '1');

    const listed = await daemon.cli(['port', 'web']);
    assert.equal(listed.stdout, '80/tcp -> 0.0.0.0:8080\n80/udp -> 0.0.0.0:8080\n');
    assert.equal((await daemon.cli(['port', 'web', '80/udp'])).stdout, '0.0.0.0:8080\n');
    const api = await daemon.client.call<{ containerIp: string; hostPort: number }[]>('GET', '/netd/v1/containers/web/ports');
    assert.deepEqual(api.map((p) => [p.containerIp, p.hostPort]), [[webIp, 8080], [webIp, 8080]]);
  });

  test('the rule layout of one mapping (pasted into the report)', async (t) => {
    const id12 = (await daemon.client.call<{ id: string; name: string }[]>('GET', '/netd/v1/endpoints')).find((e) => e.name === 'web')!.id.slice(0, 12);
    // Marked with the daemon's instance id (issue 11: two daemons on one host keep apart).
    const inst = daemon.instance;
    const bucket = `NETD-PFB-${inst}-${id12.slice(0, 2)}`;
    const chain = `NETD-PF-${inst}-${id12}`;
    const tag = `netd:${inst}:pf:${id12}`;
    if (nft) {
      // Elements of netd's maps/sets (the rule layout does not change per mapping): TCP and UDP to web:80.
      const state = await rules();
      for (const proto of ['tcp', 'udp']) assert.notDeepEqual(rulesThat(state, 'dnat', proto, 8080, webIp, 80), [], `${proto} 8080 → ${webIp}:80:\n${state.join('\n')}`);
      t.diagnostic((await topo.host.exec(['nft', 'list', 'ruleset'])).stdout);
      return;
    }
    const mine = (await rules()).filter((l) => l.includes(tag) || l.includes(chain) || l.includes(bucket));
    assert.deepEqual(mine, [
      `:${chain} - [0:0]`,
      `:${bucket} - [0:0]`,
      `-A NETD -m comment --comment "netd:${inst}:pf" -j ${bucket}`,
      `-A ${chain} -p tcp -m tcp --dport 8080 -m comment --comment "${tag}" -j DNAT --to-destination ${webIp}:80`,
      `-A ${chain} -p udp -m udp --dport 8080 -m comment --comment "${tag}" -j DNAT --to-destination ${webIp}:80`,
      `-A ${bucket} -m comment --comment "${tag}" -j ${chain}`,
    ]);
    for (const table of ['raw', 'filter', 'nat']) t.diagnostic((await topo.host.exec(['iptables-save', '-t', table])).stdout);
  });

  test('a mapping bound to 127.0.0.1 is reachable from the host only, even when the outside routes 127.0.0.1 to us', async () => {
    const c = await container();
    await attach(c, ['--name', 'local', '-p', '127.0.0.1:8081:80', '-p', '127.0.0.1:8081:80/udp']);
    assert.equal(await tcp(topo.host, '127.0.0.1', 8081), '172.17.0.1', 'host → 127.0.0.1 tcp');
    assert.equal(await udp(topo.host, '127.0.0.1', 8081), '172.17.0.1', 'host → 127.0.0.1 udp');
    assert.equal(await tcp(topo.host, HOST, 8081, 800), undefined, 'not on the host’s other addresses');
    assert.equal(await tcp(topo.outside, HOST, 8081, 800), undefined, 'not from outside');

    // The route_localnet hole: the outside sends packets for 127.0.0.1 to the host, and accepts answers
    // from 127.0.0.1 (an attacker controls their own machine: no 127.0.0.1 of its own, route_localnet on).
    await topo.outside.exec(['ip', 'addr', 'del', '127.0.0.1/8', 'dev', 'lo']);
    await topo.outside.exec(['ip', 'route', 'add', '127.0.0.1/32', 'via', HOST, 'dev', 'ext1']);
    for (const dev of ['all', 'ext1']) await topo.outside.exec(['sysctl', '-qw', `net.ipv4.conf.${dev}.route_localnet=1`]);
    try {
      assert.equal(await tcp(topo.outside, '127.0.0.1', 8081, 1000), undefined, 'outside → 127.0.0.1 tcp dropped');
      assert.equal(await udp(topo.outside, '127.0.0.1', 8081, 1000), undefined, 'outside → 127.0.0.1 udp dropped');
      // Control: without netd's raw rule the hole is real, so the test above tests something.
      if (!nft) {
        const drop = ['-d', '127.0.0.0/8', '!', '-i', 'lo', '-m', 'comment', '--comment', 'netd', '-j', 'DROP'];
        await topo.host.exec(['iptables', '-t', 'raw', '-D', 'NETD', ...drop]);
      } else {
        const gone = await deleteNetdNftRules(topo.host, (l) => rulesThat([l], 'drop', '127.0.0.0/8', 'lo').length > 0);
        assert.equal(gone.length, 1, `netd's guard: one rule dropping 127.0.0.0/8 not from lo:\n${(await netdFirewallState(topo.host)).join('\n')}`);
      }
      assert.equal(await tcp(topo.outside, '127.0.0.1', 8081, 1500), OUTSIDE, 'without the raw rule, the hole is open (tcp)');
      assert.equal(await udp(topo.outside, '127.0.0.1', 8081, 1500), OUTSIDE, 'without the raw rule, the hole is open (udp)');
      // A firewall reload puts everything back, published ports included.
      await daemon.client.call('POST', '/netd/v1/firewall/reload');
      assert.equal(await tcp(topo.outside, '127.0.0.1', 8081, 1000), undefined, 'closed again after a reload');
    } finally {
      await topo.outside.exec(['ip', 'route', 'del', '127.0.0.1/32'], { allowFail: true });
      await topo.outside.exec(['ip', 'addr', 'add', '127.0.0.1/8', 'dev', 'lo'], { allowFail: true });
      for (const dev of ['all', 'ext1']) await topo.outside.exec(['sysctl', '-qw', `net.ipv4.conf.${dev}.route_localnet=0`]);
    }
    assert.equal(await tcp(topo.outside, HOST, 8080), OUTSIDE, 'the other mapping survived the reload');
    await daemon.cli(['detach', 'local']);
  });

  test('containers are not reachable directly by address from outside; published ports are', async () => {
    await topo.outside.exec(['ip', 'route', 'add', '172.17.0.0/16', 'via', HOST]);
    try {
      assert.equal(await tcp(topo.outside, webIp, 80, 1000), undefined, 'direct tcp to the container is dropped');
      assert.equal(await udp(topo.outside, webIp, 80, 1000), undefined, 'direct udp to the container is dropped');
      assert.equal(await tcp(topo.outside, HOST, 8080), OUTSIDE, 'the published port still works');
    } finally {
      await topo.outside.exec(['ip', 'route', 'del', '172.17.0.0/16']);
    }
  });

  test('every conflict and bad request is refused with a clear error and no change in the kernel', async () => {
    const c = await container();
    const tcpHolder = await serve(['ip', 'netns', 'exec', topo.host.name, 'node', '-e', HOLD_PORT, 'tcp', '9090']);
    const udpHolder = await serve(['ip', 'netns', 'exec', topo.host.name, 'node', '-e', HOLD_PORT, 'udp', '9091']);
    processes.push(tcpHolder, udpHolder);
    await daemon.cli(['create-network', 'sealed', '--internal', '--subnet', '203.0.113.0/25']);
    const cases: [string[], RegExp][] = [
      [['-p', '8080:80'], /host port 8080\/tcp on 0\.0\.0\.0 is already published by container web \(80\/tcp -> 0\.0\.0\.0:8080\)/],
      [['-p', '8080:81/udp'], /host port 8080\/udp on 0\.0\.0\.0 is already published by container web/],
      [['-p', '127.0.0.1:8080:80'], /host port 8080\/tcp on 127\.0\.0\.1 is already published by container web/],
      [['-p', '9090:80'], /host port 9090\/tcp on 0\.0\.0\.0 is already in use by a process on the host \(listening on 9090\/tcp\)/],
      [['-p', '9091:80/udp'], /host port 9091\/udp on 0\.0\.0\.0 is already in use by a process on the host \(bound to 0\.0\.0\.0:9091\/udp\)/],
      [['-p', '8085:80', '-p', '8085:81'], /host port 8085\/tcp on 0\.0\.0\.0 is published twice in this request/],
      [['-p', '8000-8002:80-81'], /ranges of unequal length/],
      [['-p', '8000:80-81'], /ranges of unequal length/],
      [['-p', '0:80'], /host port 0 is out of range/],
      [['-p', '65536:80'], /host port 65536 is out of range/],
      [['-p', '8080:0'], /container port 0 is out of range/],
      [['-p', 'http:80'], /host port "http" is not a port number/],
      [['-p', '8080:80/icmp'], /protocol "icmp" is not tcp, udp or sctp/],
      [['-p', '192.0.2.99:8086:80'], /192\.0\.2\.99: it is not an address of this host/],
      [['-p', '[::]:8087:80'], /the container has no IPv6 address on this network/],
      [['-p', '8088:80', '--network', 'sealed'], /network sealed is internal: it cannot publish ports/],
      [['-p', '8089:80', '--network', 'none'], /cannot publish ports/],
    ];
    const before = await kernelSnapshot(topo.host);
    for (const [args, message] of cases) {
      const res = await daemon.cli(['attach', String(c.pid), ...args], true);
      assert.equal(res.code, 1, `${args.join(' ')} exits 1`);
      assert.match(res.stderr, message, args.join(' '));
      assert.equal(res.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
    }
    // The API refuses the same things when the CLI is bypassed (libnetwork's portmap shape, and strings).
    const api = (ports: unknown) => daemon.client.call('POST', '/netd/v1/attach', { target: c.pid, ports }).then(() => 'ok', (e: Error) => e.message);
    assert.match(await api([{ Proto: 6, Port: 80, HostPort: 8080 }]), /already published by container web/);
    assert.match(await api([{ Proto: 1, Port: 80 }]), /protocol number 1 is not one of 6 \(tcp\), 17 \(udp\), 132 \(sctp\)/);
    assert.match(await api([{ Proto: 6, Port: 0 }]), /Port must be an integer from 1 to 65535/);
    assert.match(await api([{ Proto: 6, Port: 80, HostPort: 70000 }]), /HostPort must be an integer from 0 to 65535/);
    assert.match(await api(['8000-8002:80-81']), /ranges of unequal length/);
    assert.deepEqual(await kernelSnapshot(topo.host), before, 'refusals change nothing');
    assert.deepEqual((await c.ipJson<{ ifname: string }[]>(['link', 'show'])).map((l) => l.ifname), ['lo']);
    tcpHolder.kill('SIGKILL');
    udpHolder.kill('SIGKILL');
    await daemon.cli(['rm-network', 'sealed']);
  });

  test('no host port: a free one from the ephemeral range; a host range: the first free port of it', async () => {
    const [lo, hi] = (await topo.host.exec(['cat', '/proc/sys/net/ipv4/ip_local_port_range'])).stdout.trim().split(/\s+/).map(Number);
    const a = await container();
    const ra = await attach(a, ['--name', 'eph', '-p', '80', '-p', '127.0.0.1::80/udp']);
    const [t, u] = ra.ports!;
    assert.ok(t.hostPort >= lo && t.hostPort <= hi, `tcp port ${t.hostPort} in ${lo}-${hi}`);
    assert.ok(u.hostPort >= lo && u.hostPort <= hi, `udp port ${u.hostPort} in ${lo}-${hi}`);
    assert.equal(u.hostIp, '127.0.0.1');
    assert.equal(await tcp(topo.outside, HOST, t.hostPort), OUTSIDE);
    assert.equal(await udp(topo.host, '127.0.0.1', u.hostPort), '172.17.0.1');

    const b = await container();
    const c = await container();
    const rb = await attach(b, ['--name', 'range1', '-p', '9100-9102:80']);
    const rc = await attach(c, ['--name', 'range2', '-p', '9100-9102:80']);
    assert.deepEqual([rb.ports![0].hostPort, rc.ports![0].hostPort], [9100, 9101]);
    assert.equal(await tcp(topo.outside, HOST, 9101), OUTSIDE);
    for (const name of ['eph', 'range1', 'range2']) await daemon.cli(['detach', name]);
  });

  test('detach removes exactly that container’s rules and conntrack entries', async () => {
    const before = await rules();
    const c = await container();
    const r = await attach(c, ['--name', 'gone', '-p', '8082:80', '-p', '8082:80/udp']);
    assert.equal(await udp(topo.outside, HOST, 8082), OUTSIDE);
    assert.equal(await tcp(topo.outside, HOST, 8082), OUTSIDE);
    const flows = async () =>
      (await topo.host.exec(['conntrack', '-L', '-p', 'udp', '--reply-src', ip(r.ipv4)], { allowFail: true })).stdout.split('\n').filter((l) => l.includes('udp'));
    assert.ok((await flows()).length > 0, 'the UDP exchange left a conntrack entry');
    const during = await rules();
    if (!nft) assert.ok(during.some((l) => l.includes(`netd:${daemon.instance}:pf:${r.endpointId.slice(0, 12)}`)));
    else assert.notDeepEqual(rulesThat(during, 'dnat', 8082, ip(r.ipv4)), [], 'its DNAT is in netd’s table');

    await daemon.cli(['detach', 'gone']);
    assert.deepEqual(await rules(), before, 'only its rules are gone; every other rule is as it was');
    // The entries go right after the detach answers (the firewall's next task): allow that moment.
    let left = await flows();
    for (let i = 0; i < 20 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await flows();
    }
    assert.deepEqual(left, [], 'its conntrack entries are gone within 2 s');
    assert.equal(await tcp(topo.outside, HOST, 8082, 800), undefined);
    assert.equal(await tcp(topo.outside, HOST, 8080), OUTSIDE, 'web is untouched');
    // Its port is free again.
    const again = await container();
    await attach(again, ['--name', 'again', '-p', '8082:80']);
    assert.equal(await tcp(topo.outside, HOST, 8082), OUTSIDE);
    await daemon.cli(['detach', 'again']);
  });

  test('IPv6: a dual-stack container is published on both families', async () => {
    await daemon.cli(['create-network', 'dual', '--ipv6', '--subnet', '192.0.2.0/24', '--subnet', '2001:db8:1::/64']);
    const c = await container();
    const r = await attach(c, ['--name', 'v6', '--network', 'dual', '-p', '8443:80', '-p', '8443:80/udp', '-p', `[${HOST6}]:8444:80`]);
    assert.deepEqual(
      r.ports!.map((p) => `${p.proto} ${p.hostIp} ${p.hostPort}`),
      ['tcp 0.0.0.0 8443', 'tcp :: 8443', 'udp 0.0.0.0 8443', 'udp :: 8443', `tcp ${HOST6} 8444`],
    );
    assert.equal(await tcp(topo.outside, HOST6, 8443), OUTSIDE6, 'v6 outside → tcp, real source');
    assert.equal(await udp(topo.outside, HOST6, 8443), OUTSIDE6, 'v6 outside → udp');
    assert.equal(await tcp(topo.outside, HOST, 8443), OUTSIDE, 'v4 outside → tcp');
    assert.equal(await tcp(topo.outside, HOST6, 8444), OUTSIDE6, 'v6 on one host address');
    assert.equal(await tcp(topo.outside, HOST, 8444, 800), undefined, 'that one is v6 only');
    assert.ok(await tcp(topo.host, HOST6, 8443), 'host → its own v6 address');
    assert.ok(await tcp(c, HOST6, 8443), 'v6 hairpin');
    assert.equal((await daemon.cli(['port', 'v6', '80'])).stdout, `0.0.0.0:8443\n[::]:8443\n[${HOST6}]:8444\n`);
    await daemon.cli(['detach', 'v6']);
    await daemon.cli(['rm-network', 'dual']);
  });

  test('routed gateway mode: published container ports are also reachable directly, nothing else', async () => {
    await daemon.cli(['create-network', 'routed', '--subnet', '203.0.113.128/25', '-o', 'com.docker.network.bridge.gateway_mode_ipv4=routed']);
    const pub = await container();
    const priv = await container();
    const rp = await attach(pub, ['--name', 'pub', '--network', 'routed', '-p', '8095:80']);
    const rq = await attach(priv, ['--name', 'priv', '--network', 'routed']);
    await topo.outside.exec(['ip', 'route', 'add', '203.0.113.128/25', 'via', HOST]);
    try {
      assert.equal(await tcp(topo.outside, ip(rp.ipv4), 80), OUTSIDE, 'published container port, directly');
      assert.equal(await tcp(topo.outside, HOST, 8095), OUTSIDE, 'and through the host port');
      assert.equal(await tcp(topo.outside, ip(rq.ipv4), 80, 800), undefined, 'an unpublished container stays closed');
    } finally {
      await topo.outside.exec(['ip', 'route', 'del', '203.0.113.128/25']);
    }
    await daemon.cli(['detach', 'pub']);
    await daemon.cli(['detach', 'priv']);
    await daemon.cli(['rm-network', 'routed']);
  });

  test('a restart keeps every mapping, adds no duplicate rule, and still refuses conflicts', async () => {
    const before = await kernelSnapshot(topo.host);
    await daemon.restart('SIGKILL');
    assert.deepEqual(await kernelSnapshot(topo.host), before, 'no rule added or removed by the restart');
    assert.equal((await daemon.cli(['port', 'web'])).stdout, '80/tcp -> 0.0.0.0:8080\n80/udp -> 0.0.0.0:8080\n');
    assert.equal(await tcp(topo.outside, HOST, 8080), OUTSIDE);
    const c = await container();
    const res = await daemon.cli(['attach', String(c.pid), '-p', '8080:80'], true);
    assert.match(res.stderr, /already published by container web/);
    // After a restart the fast path knows the forwards again: detach removes them without a full read.
    const id12 = (await daemon.client.call<{ id: string; name: string }[]>('GET', '/netd/v1/endpoints')).find((e) => e.name === 'web')!.id.slice(0, 12);
    const mark = daemon.logs.length;
    await daemon.cli(['detach', 'web']);
    assert.ok(!(await rules()).some((l) => l.includes(id12)), 'nothing of web is left');
    if (nft) assert.deepEqual(mentioning(await rules(), webIp), [], 'nothing of web’s address is left');
    const logs = daemon.logs.slice(mark);
    // (The iptables backend's fast path; on nftables a forward is only ever map elements.)
    if (!nft) assert.match(logs, /"op":"port-forward teardown","endpoint":"[0-9a-f]{12}".*"msg":"firewall port-forward teardown"/, 'removed by the fast path');
    assert.doesNotMatch(logs, /repairing from iptables-save/);
    assert.equal(await tcp(topo.outside, HOST, 8080, 800), undefined);
  });
});
