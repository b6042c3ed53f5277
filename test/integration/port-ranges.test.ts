/**
 * Published port ranges cost what one port costs: a full range (`1-65535:1-65535/udp`) is one DNAT rule,
 * a constant number of processes, and about the time of one port; equal ranges keep the port, shifted
 * ranges use the kernel's port offset. Real traffic from an "outside" namespace through the daemon's
 * "host" namespace into containers; SCTP too (a real association where the kernel has SCTP, raw SCTP
 * packets through netfilter everywhere).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TestContainer, requireRoot, run } from '../helpers/netns.js';
import { FIXTURES, TestDaemon, Topology, kernelSnapshot, testFirewallBackend } from '../helpers/daemon.js';
import { mentioning, netdFirewallState, rulesThat } from '../helpers/firewall-state.js';
import { UDP_CLIENT, serve, stopAll } from '../helpers/traffic.js';

interface AttachJson {
  endpointId: string;
  ipv4?: string;
  ports?: { proto: string; hostIp: string; hostPort: number; containerPort: number; hostPortEnd?: number; containerPortEnd?: number }[];
}

const HOST = Topology.HOST_EXT;
const OUTSIDE = Topology.OUTSIDE;

// A UDP client sending from a fixed source port (HOST PORT SOURCE_PORT TIMEOUT_MS), printing the answer.
const FIXED_SOURCE_CLIENT =
  "const [h,p,s,t]=process.argv.slice(1);const d=require('dgram').createSocket('udp4');" +
  "d.on('message',(m)=>{process.stdout.write(m.toString());process.exit(0)});d.on('error',(e)=>{process.stderr.write(e.code+'\\n');process.exit(1)});" +
  "setTimeout(()=>{process.stderr.write('timeout\\n');process.exit(1)},Number(t));d.bind(Number(s),()=>d.send('x',Number(p),h));";

const ip = (cidr: string | undefined) => (cidr ?? '').split('/')[0];
const unmap = (s: string) => s.trim().replace(/::ffff:/g, '');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];


describe('published port ranges', () => {
  let topo: Topology;
  let daemon: TestDaemon;
  const containers: TestContainer[] = [];
  const processes: ChildProcess[] = [];

  const inC = (c: TestContainer) => ['nsenter', '-t', String(c.pid), '-n', '--'];

  /** A container answering "PROTO PORT PEER" on these ports (TCP and UDP). */
  async function container(ports: number[]): Promise<TestContainer> {
    const c = await TestContainer.start();
    containers.push(c);
    if (ports.length > 0) processes.push(await serve([...inC(c), 'node', join(FIXTURES, 'port-echo.cjs'), ...ports.map(String)]));
    return c;
  }

  async function attach(c: TestContainer, args: string[]): Promise<AttachJson> {
    return JSON.parse((await daemon.cli(['attach', String(c.pid), ...args])).stdout) as AttachJson;
  }

  async function tcpFromOutside(port: number, timeoutMs = 1500): Promise<string | undefined> {
    const res = await topo.outside.exec(['node', join(FIXTURES, 'tcp-get.cjs'), HOST, String(port), String(timeoutMs)], { allowFail: true });
    return res.code === 0 ? unmap(res.stdout) : undefined;
  }

  async function udpFromOutside(port: number, timeoutMs = 1500): Promise<string | undefined> {
    const res = await topo.outside.exec(['node', '-e', UDP_CLIENT, HOST, String(port), String(timeoutMs)], { allowFail: true });
    return res.code === 0 ? unmap(res.stdout) : undefined;
  }

  /**
   * The rule lines (v4 and v6) that belong to one endpoint. On the nftables backend: the lines of netd's table
   * naming its id or its `address` (a published port is a map element keyed to the container's address), with
   * netd's table checked to be there.
   */
  async function rulesOf(endpointId: string, address?: string): Promise<string[]> {
    const id12 = endpointId.slice(0, 12);
    if (nft) {
      const state = await netdFirewallState(topo.host);
      assert.ok(state.some((l) => l.startsWith('table ')), 'netd’s nftables table is there');
      return state.filter((l) => mentioning([l], id12).length > 0 || (address !== undefined && mentioning([l], address).length > 0));
    }
    const text = (await topo.host.exec(['iptables-save'])).stdout + (await topo.host.exec(['ip6tables-save'])).stdout;
    return text.split('\n').filter((l) => l.includes(id12));
  }
  const nft = testFirewallBackend() === 'nftables';

  before(async () => {
    requireRoot();
    topo = await Topology.create('pr');
    daemon = await TestDaemon.start(topo.host, ['--firewall-check-interval', '0']);
  });

  after(() => stopAll(processes, containers, daemon, topo));

  test('1-65535:1-65535/udp is one DNAT rule; both ends of the range carry traffic; detach removes everything', async (t) => {
    const before = await kernelSnapshot(topo.host);
    const c = await container([1, 65535]);
    // On every address, the full range would shadow netd's own DNS server on the bridge's gateway: refused
    // at once, naming the port. On the host's outside address it is free.
    const refused = await daemon.cli(['attach', String(c.pid), '-p', '1-65535:1-65535/udp'], true);
    assert.match(refused.stderr, /^netd: host port 53\/udp on 0\.0\.0\.0 is already in use by a process on the host \(bound to 172\.17\.0\.1:53\/udp\)\n$/);
    const r = await attach(c, ['--name', 'full', '-p', `${HOST}:1-65535:1-65535/udp`]);
    const cip = ip(r.ipv4);
    assert.deepEqual(r.ports, [{ proto: 'udp', hostIp: HOST, hostPort: 1, hostPortEnd: 65535, containerPort: 1, containerPortEnd: 65535 }]);

    const id12 = r.endpointId.slice(0, 12);
    const mine = await rulesOf(r.endpointId, cip);
    t.diagnostic(mine.join('\n'));
    if (!nft) {
      assert.deepEqual(mine, [
        `:NETD-PF-${daemon.instance}-${id12} - [0:0]`,
        `-A NETD-PF-${daemon.instance}-${id12} -d ${HOST}/32 -p udp -m udp --dport 1:65535 -m comment --comment "netd:${daemon.instance}:pf:${id12}" -j DNAT --to-destination ${cip}`,
        `-A NETD-PFB-${daemon.instance}-${id12.slice(0, 2)} -m comment --comment "netd:${daemon.instance}:pf:${id12}" -j NETD-PF-${daemon.instance}-${id12}`,
      ]);
    } else {
      // A handful of elements (a DNAT map's, maybe a filter set's), not one per port: the range is one key.
      assert.ok(mine.length > 0 && mine.length <= 4, `a few lines for the whole range:\n${mine.join('\n')}`);
      // The element is DNAT's through the rule that looks its map up: read against netd's whole table.
      assert.notDeepEqual(rulesThat(await netdFirewallState(topo.host), 'dnat', HOST, '1-65535', cip), [], 'one DNAT of HOST:1-65535/udp to the container');
    }

    // The ends of the range, each reaching the same port in the container, from the client's real address.
    assert.equal(await udpFromOutside(1), `udp 1 ${OUTSIDE}`);
    assert.equal(await udpFromOutside(65535), `udp 65535 ${OUTSIDE}`);
    assert.equal(await tcpFromOutside(1, 800), undefined, 'TCP is not published');
    assert.equal((await daemon.cli(['port', 'full'])).stdout, `1-65535/udp -> ${HOST}:1-65535\n`);
    assert.equal((await daemon.cli(['port', 'full', '65535/udp'])).stdout, `${HOST}:65535\n`);

    // Another container cannot take any port of it.
    const other = await container([]);
    const res = await daemon.cli(['attach', String(other.pid), '-p', '40000:80/udp'], true);
    assert.match(res.stderr, /host port 40000\/udp on 0\.0\.0\.0 is already published by container full \(1-65535\/udp -> 198\.51\.100\.1:1-65535\)/);

    const flows = async () =>
      (await topo.host.exec(['conntrack', '-L', '-p', 'udp', '--reply-src', cip], { allowFail: true })).stdout.split('\n').filter((l) => l.includes('udp'));
    assert.ok((await flows()).length > 0, 'the exchanges left conntrack entries');
    await daemon.cli(['detach', 'full']);
    let left = await flows();
    for (let i = 0; i < 20 && left.length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      left = await flows();
    }
    assert.deepEqual(left, [], 'its conntrack entries are gone');
    assert.deepEqual(await rulesOf(r.endpointId, cip), []);
    assert.equal(await udpFromOutside(1, 800), undefined, 'nothing is forwarded any more');
    const after = await kernelSnapshot(topo.host);
    // The bucket chain stays until a reconcile (as for one port); everything else is as before.
    const withoutBuckets = (s: Record<string, string[]>) => ({ ...s, rules: s.rules.filter((l) => !/NETD-PFB-|:pf"/.test(l)) });
    assert.deepEqual(withoutBuckets(after), withoutBuckets(before));
  });

  test('a shifted range: host port 20000+i reaches container port 30000+i (TCP and UDP)', async () => {
    const c = await container([30000, 30009]);
    const r = await attach(c, ['--name', 'shifted', '-p', '20000-20009:30000-30009', '-p', '20000-20009:30000-30009/udp']);
    const cip = ip(r.ipv4);
    const id12 = r.endpointId.slice(0, 12);
    if (!nft) {
      const dnat = (await rulesOf(r.endpointId)).filter((l) => l.includes('DNAT'));
      assert.deepEqual(dnat, [
        `-A NETD-PF-${daemon.instance}-${id12} -p tcp -m tcp --dport 20000:20009 -m comment --comment "netd:${daemon.instance}:pf:${id12}" -j DNAT --to-destination ${cip}:30000-30009/20000`,
        `-A NETD-PF-${daemon.instance}-${id12} -p udp -m udp --dport 20000:20009 -m comment --comment "netd:${daemon.instance}:pf:${id12}" -j DNAT --to-destination ${cip}:30000-30009/20000`,
      ]);
    } else {
      // nft has no port offset: a shifted range is one DNAT map element per port (host port → container port).
      const state = await netdFirewallState(topo.host);
      for (const proto of ['tcp', 'udp']) {
        for (let i = 0; i < 10; i++) {
          assert.equal(rulesThat(state, 'dnat', proto, 20000 + i, cip, 30000 + i).length, 1, `${proto} ${20000 + i} → ${cip}:${30000 + i} in netd’s table:\n${state.join('\n')}`);
        }
        assert.deepEqual(rulesThat(state, 'dnat', proto, 20010, cip), [], 'nothing past the range');
      }
    }
    assert.equal(await tcpFromOutside(20000), `tcp 30000 ${OUTSIDE}`);
    assert.equal(await tcpFromOutside(20009), `tcp 30009 ${OUTSIDE}`);
    assert.equal(await udpFromOutside(20000), `udp 30000 ${OUTSIDE}`);
    assert.equal(await udpFromOutside(20009), `udp 30009 ${OUTSIDE}`);
    assert.equal(await tcpFromOutside(20010, 800), undefined, 'one past the range is not forwarded');
    assert.equal((await daemon.cli(['port', 'shifted', '30009'])).stdout, '0.0.0.0:20009\n');

    // A restart finds exactly these rules again (iptables-save prints them the way netd renders them).
    const kernel = await kernelSnapshot(topo.host);
    await daemon.restart('SIGKILL');
    await daemon.client.call('POST', '/netd/v1/firewall/reload');
    assert.deepEqual(await kernelSnapshot(topo.host), kernel, 'reconcile after a restart changes nothing');
    assert.equal(await tcpFromOutside(20009), `tcp 30009 ${OUTSIDE}`, 'still forwarded after the restart');
    await daemon.cli(['detach', 'shifted']);
    assert.deepEqual(await rulesOf(r.endpointId, cip), []);
  });

  test('a UDP flow to the host from before a long range was published is DNATed once it is (one conntrack sweep)', async () => {
    // A client that keeps its source port: its first datagram, sent before the range exists, leaves a
    // conntrack entry without NAT that would keep its later datagrams away from the container.
    const send = (port: number) =>
      topo.outside.exec(['node', '-e', `${FIXED_SOURCE_CLIENT}`, HOST, String(port), '5555', '800'], { allowFail: true }).then((r) => (r.code === 0 ? unmap(r.stdout) : undefined));
    assert.equal(await send(40050), undefined, 'nothing listens there yet');
    const entries = async () =>
      (await topo.host.exec(['conntrack', '-L', '-p', 'udp', '--orig-port-dst', '40050'], { allowFail: true })).stdout.split('\n').filter((l) => l.includes('sport=5555'));
    assert.equal((await entries()).length, 1, 'the early datagram left an entry');
    const c = await container([40050]);
    const r = await attach(c, ['--name', 'swept', '-p', '40000-40099:40000-40099/udp']);
    assert.doesNotMatch(daemon.logs, /could not (clear|list) conntrack entries/);
    assert.equal(await send(40050), `udp 40050 ${OUTSIDE}`, 'the same flow reaches the container');
    assert.match((await entries()).join('\n'), new RegExp(`src=${ip(r.ipv4).replace(/\./g, '\\.')} `), 'its entry is now DNATed');
    await daemon.cli(['detach', 'swept']);
  });

  test('publishing a range over thousands of stale UDP entries: the local ones are cleared in bounded time, outbound flows untouched', async (t) => {
    const FIRST = 41000;
    const STALE = 3000;
    const OUTBOUND = 500;
    // One datagram to each of COUNT consecutive ports from one socket: one conntrack entry per port.
    const SPRAY =
      "const [h,f,n]=process.argv.slice(1).map((v,i)=>i?Number(v):v);const d=require('dgram').createSocket('udp4');d.on('error',()=>{});" +
      'let i=0;const next=()=>{if(i>=n)return d.close();d.send("x",f+i++,h,next)};next();';
    const masq = await container([]);
    const masqIp = ip((await attach(masq, ['--name', 'masq'])).ipv4);
    // Anyone can make entries to closed host ports; the host's own and masqueraded flows go to the outside.
    await topo.outside.exec(['node', '-e', SPRAY, HOST, String(FIRST), String(STALE)]);
    await topo.host.exec(['node', '-e', SPRAY, OUTSIDE, String(FIRST), String(OUTBOUND)]);
    await run([...inC(masq), 'node', '-e', SPRAY, OUTSIDE, String(FIRST + OUTBOUND), String(OUTBOUND)]);

    interface Flow {
      src: string;
      dst: string;
      dport: number;
      replySrc: string;
    }
    const flows = async (): Promise<Flow[]> =>
      (await topo.host.exec(['conntrack', '-L', '-p', 'udp'], { allowFail: true })).stdout
        .split('\n')
        .map((l) => [...l.matchAll(/(src|dst|dport)=(\S+)/g)].map((m) => m[2]))
        .filter((f) => f.length >= 6)
        .map(([src, dst, dport, replySrc]) => ({ src, dst, dport: Number(dport), replySrc }))
        .filter((f) => f.dport >= FIRST && f.dport < FIRST + STALE);
    const inbound = (fs: Flow[]) => fs.filter((f) => f.dst === HOST && f.replySrc === HOST).length;
    const fromHost = (fs: Flow[]) => fs.filter((f) => f.dst === OUTSIDE && f.src === HOST).length;
    const masqueraded = (fs: Flow[]) => fs.filter((f) => f.dst === OUTSIDE && f.src === masqIp).length;
    const before = await flows();
    t.diagnostic(`before: ${inbound(before)} stale inbound, ${fromHost(before)} from the host, ${masqueraded(before)} masqueraded (${masqIp})`);
    assert.ok(inbound(before) >= STALE * 0.9, `the spray left stale entries (${inbound(before)})`);
    assert.equal(fromHost(before), OUTBOUND);
    assert.equal(masqueraded(before), OUTBOUND);

    const c = await container([]);
    const started = performance.now();
    await attach(c, ['--name', 'sweep', '-p', `${FIRST}-${FIRST + STALE - 1}:${FIRST}-${FIRST + STALE - 1}/udp`]);
    const took = performance.now() - started;
    const line = `publishing ${FIRST}-${FIRST + STALE - 1}/udp over ${inbound(before)} stale entries (+${2 * OUTBOUND} outbound): ${took.toFixed(0)} ms`;
    t.diagnostic(line);
    console.log(`# ${line}`);
    assert.doesNotMatch(daemon.logs, /could not (clear|list) conntrack entries/);
    const after = await flows();
    assert.equal(inbound(after), 0, 'no entry to the new host ports bypasses the DNAT');
    assert.equal(fromHost(after), OUTBOUND, "the host's own flows to those ports elsewhere are untouched");
    assert.equal(masqueraded(after), OUTBOUND, "masqueraded containers' flows are untouched");
    await daemon.cli(['detach', 'sweep']);
    await daemon.cli(['detach', 'masq']);
  });

  test('IPv6: a shifted range through ip6tables (the port offset with a bracketed address)', async () => {
    await topo.host.exec(['ip', '-6', 'addr', 'add', '2001:db8::1/64', 'dev', 'ext0', 'nodad']);
    await topo.outside.exec(['ip', '-6', 'addr', 'add', '2001:db8::2/64', 'dev', 'ext1', 'nodad']);
    await daemon.cli(['create-network', 'dual', '--ipv6', '--subnet', '192.0.2.0/24', '--subnet', '2001:db8:1::/64']);
    const c = await container([30000, 30009]);
    await attach(c, ['--name', 'v6range', '--network', 'dual', '-p', '[::]:20000-20009:30000-30009']);
    const get = async (port: number) => {
      const res = await topo.outside.exec(['node', join(FIXTURES, 'tcp-get.cjs'), '2001:db8::1', String(port), '1500'], { allowFail: true });
      return res.code === 0 ? res.stdout.trim() : undefined;
    };
    assert.equal(await get(20000), 'tcp 30000 2001:db8::2');
    assert.equal(await get(20009), 'tcp 30009 2001:db8::2');
    await daemon.cli(['detach', 'v6range']);
    await daemon.cli(['rm-network', 'dual']);
  });

  test('publishing the full range costs what publishing one port costs: the same rules (timings printed, not asserted)', async (t) => {
    const c = await container([]);
    // Rule lines of one endpoint with its id and ports masked: the shape of the work, not its numbers.
    const shape = (lines: string[], id: string) =>
      lines.map((l) => l.replaceAll(id.slice(0, 12), 'ID').replace(/\d+(:\d+)?(\/\d+)?/g, 'N')).sort();
    const publish = async (spec: string) => {
      const started = performance.now();
      const r = (await daemon.client.call('POST', '/netd/v1/attach', { target: c.pid, name: 'timed', ports: [spec] })) as { endpointId: string; ipv4?: string };
      const attached = performance.now() - started;
      const rules = shape(await rulesOf(r.endpointId, nft ? ip(r.ipv4) : undefined), r.endpointId);
      const mid = performance.now();
      await daemon.client.call('POST', '/netd/v1/detach', { container: 'timed' });
      return { attached, detached: performance.now() - mid, rules };
    };
    await publish(`${HOST}:8080:80/udp`); // warm up
    const one: Awaited<ReturnType<typeof publish>>[] = [];
    const full: Awaited<ReturnType<typeof publish>>[] = [];
    for (let i = 0; i < 5; i++) {
      one.push(await publish(`${HOST}:8080:80/udp`));
      full.push(await publish(`${HOST}:1-65535:1-65535/udp`));
    }
    for (const r of [...one, ...full]) assert.equal(r.rules.length, one[0].rules.length, 'a range has as many rules as one port');
    assert.ok(one[0].rules.length > 0);
    const med = (xs: typeof one, k: 'attached' | 'detached') => median(xs.map((x) => x[k])).toFixed(1);
    const line = `attach+publish, median of 5: one port ${med(one, 'attached')} ms, 1-65535/udp ${med(full, 'attached')} ms; ` +
      `detach: ${med(one, 'detached')} ms vs ${med(full, 'detached')} ms`;
    t.diagnostic(line);
    console.log(`# ${line}`);
  });

  test('a request with too many mappings is refused with a 400 and changes nothing', async () => {
    const c = await container([]);
    const before = await kernelSnapshot(topo.host);
    const ports = Array.from({ length: 1025 }, (_, i) => `${10000 + i}:80/udp`);
    await assert.rejects(daemon.client.call('POST', '/netd/v1/attach', { target: c.pid, ports }), (e: Error & { status?: number }) => {
      assert.match(e.message, /too many published ports: 1025 mappings in one request, at most 1024/);
      assert.equal(e.status, 400);
      return true;
    });
    assert.deepEqual(await kernelSnapshot(topo.host), before);
  });

  test('SCTP packets through a shifted range reach the right container port (raw INIT, no SCTP stack needed)', async () => {
    const c = await container([]);
    const r = await attach(c, ['--name', 'sctpraw', '-p', '9400-9401:9500-9501/sctp']);
    const cip = ip(r.ipv4);
    for (const [hostPort, containerPort] of [[9400, 9500], [9401, 9501]]) {
      const recv = await serve([...inC(c), 'python3', join(FIXTURES, 'sctp-raw.py'), 'recv', '3']);
      processes.push(recv);
      let out = '';
      recv.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => recv.once('exit', resolve));
      await topo.outside.exec(['python3', join(FIXTURES, 'sctp-raw.py'), 'send', HOST, String(hostPort), '5000']);
      assert.equal(await exited, 0, `an SCTP packet to ${hostPort} reached the container`);
      assert.equal(out.split('\n').find((l) => l && l !== 'listening'), `${cip} ${containerPort} ${OUTSIDE}`);
    }
    await daemon.cli(['detach', 'sctpraw']);
  });

  test('SCTP: a real association through published ports (needs the kernel’s sctp module)', async (t) => {
    // Load the module where the kernel has it; only where it does not exist is this skipped.
    if (existsSync('/usr/sbin/modprobe') || existsSync('/sbin/modprobe')) await run(['modprobe', 'sctp'], { allowFail: true });
    const probe = await topo.host.exec(['python3', '-c', 'import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)'], { allowFail: true });
    if (probe.code !== 0) {
      const reason = `the kernel has no SCTP (modprobe sctp failed; socket(IPPROTO_SCTP): ${probe.stderr.trim().split('\n').pop()})`;
      console.log(`# skipped: ${reason}`);
      t.skip(reason);
      return;
    }
    const c = await container([]);
    for (const port of [9500, 9509]) {
      processes.push(await serve([...inC(c), 'sh', '-c', `echo listening; exec socat SCTP-LISTEN:${port},reuseaddr,fork EXEC:'echo sctp ${port}'`]));
    }
    await attach(c, ['--name', 'sctp', '-p', '9500:9500/sctp', '-p', '9600-9609:9500-9509/sctp']);
    const connect = async (port: number) => {
      // socat says nothing once it listens: allow it a moment.
      for (let i = 0; ; i++) {
        const res = await topo.outside.exec(['socat', '-T', '3', 'STDIO', `SCTP-CONNECT:${HOST}:${port}`], { allowFail: true, input: '' });
        if (res.code === 0 || i === 5) return res.stdout.trim();
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    };
    assert.equal(await connect(9500), 'sctp 9500');
    assert.equal(await connect(9600), 'sctp 9500');
    assert.equal(await connect(9609), 'sctp 9509');
    await daemon.cli(['detach', 'sctp']);
  });
});
