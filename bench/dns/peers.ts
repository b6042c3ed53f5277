/**
 * The DNS servers netd is compared with, started on the same gateway address netd used, serving the
 * same names: aardvark-dns (Podman's, Debian package `aardvark-dns`) and dnsmasq (package `dnsmasq`).
 * Both run inside the benchmark's own namespaces; nothing is installed or configured on the machine.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type TestNetns } from '../../test/helpers/netns.js';

export const AARDVARK = '/usr/lib/podman/aardvark-dns';
export const DNSMASQ = '/usr/sbin/dnsmasq';

export interface NameRecord {
  id: string;
  ipv4: string;
  names: string[];
}

export interface Peer {
  version: string;
  /** The server's process (for its CPU time). */
  pid?: number;
  stop(): Promise<void>;
}

/** Starts dnsmasq in a namespace, in the foreground, with no configuration but the arguments given. */
export async function startDnsmasq(ns: TestNetns, listen: string, args: string[], port = 53): Promise<Peer> {
  const child = ns.spawn([DNSMASQ, '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--bind-interfaces', `--listen-address=${listen}`, `--port=${port}`, '--pid-file=', '--user=root', '--log-facility=-', ...args]);
  await started(child, 'dnsmasq', /started, version/);
  const version = (await run([DNSMASQ, '--version'])).stdout.split('\n')[0].replace(/^Dnsmasq version (\S+).*/, '$1');
  return { version, pid: child.pid, stop: () => kill(child) };
}

/** dnsmasq as the front server: the names from a hosts file, everything else to `upstream`, no cache. */
export async function startDnsmasqFront(ns: TestNetns, dir: string, gateway: string, records: NameRecord[], upstream: string, port = 53): Promise<Peer> {
  const hosts = join(dir, 'dnsmasq.hosts');
  writeFileSync(hosts, records.map((r) => `${r.ipv4} ${r.names.join(' ')}\n`).join(''));
  // No cache, like netd and aardvark-dns: forwarded names measure forwarding, not a cache.
  return startDnsmasq(ns, gateway, [`--addn-hosts=${hosts}`, `--server=${upstream}`, '--cache-size=0', '--dns-forward-max=1024'], port);
}

/**
 * aardvark-dns with one network's config file (format of aardvark-dns 1.4: first line the listen
 * addresses, then `ID IPV4 IPV6 NAMES`). Its upstreams come from /etc/resolv.conf, so it runs in a
 * private mount namespace where that file is bind-mounted over with one naming `upstream`.
 * aardvark-dns daemonizes itself; it is stopped through the pid file it writes.
 */
export async function startAardvark(ns: TestNetns, dir: string, network: string, gateway: string, records: NameRecord[], upstream: string, port = 53): Promise<Peer> {
  const config = join(dir, 'aardvark');
  mkdirSync(config, { recursive: true });
  writeFileSync(join(config, network), `${gateway}\n` + records.map((r) => `${r.id} ${r.ipv4}  ${r.names.join(',')}\n`).join(''));
  const resolv = join(dir, 'aardvark-resolv.conf');
  writeFileSync(resolv, `nameserver ${upstream}\n`);
  const script = 'mount --bind "$1" /etc/resolv.conf && exec ip netns exec "$2" "$3" --config "$4" -p "$5" run';
  await run(['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', resolv, ns.name, AARDVARK, config, String(port)]);
  const pidFile = join(config, 'aardvark.pid');
  for (let i = 0; i < 100 && !existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(pidFile)) throw new Error('aardvark-dns did not start (no pid file)');
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const version = (await run([AARDVARK, '--version'], { allowFail: true })).stdout.trim().replace(/^aardvark-dns /, '');
  return {
    version,
    pid,
    stop: async () => {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        return;
      }
      for (let i = 0; i < 100; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      process.kill(pid, 'SIGKILL');
    },
  };
}

function started(child: ChildProcess, what: string, ready: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d;
      if (ready.test(out)) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${what} exited ${code}: ${out}`)));
    setTimeout(() => reject(new Error(`${what} did not start: ${out}`)), 10_000);
  });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}
