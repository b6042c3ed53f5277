/**
 * Removing conntrack entries with `conntrack -D` (argv, never a shell). NAT is decided once per
 * connection: an entry made before a port was published (a UDP "connection" to the host itself) keeps
 * bypassing the new DNAT, and entries of a removed mapping keep pointing at the old container. So a new
 * UDP/SCTP mapping clears entries to its host port, and a removed UDP/SCTP mapping clears the flows to
 * its container port: a client that keeps sending from the same port would otherwise keep its entry
 * alive, and its traffic going to the old address, forever. TCP entries of a removed mapping are left:
 * they belong to connections that end (reset by whoever has the address now, or timed out), and a new
 * connection gets a new NAT decision. Each `conntrack -D` walks the whole conntrack hash the namespaces
 * share (~13 ms with 262144 buckets), so it runs only where it changes something.
 *
 * Failures are logged, never thrown: the rules are what matters, stale entries only expire later.
 */
import type { Logger } from '../log.js';
import type { CommandRunner } from './exec.js';
import type { Family, Proto } from '../net/index.js';
import type { FirewallForward } from './port-forward.js';

/** Above this many ports per container, family and protocol, one command clears all its inbound flows. */
const PER_PORT_LIMIT = 16;

function base(family: Family, proto: Proto): string[] {
  return ['conntrack', '-D', ...(family === 6 ? ['-f', 'ipv6'] : []), '-p', proto];
}

/** Commands clearing the connectionless flows that reach the forward's container ports (reply source = the container). */
export function flowsToContainer(f: FirewallForward): string[][] {
  const out: string[][] = [];
  for (const [family, part] of [[4, f.v4], [6, f.v6]] as const) {
    if (!part) continue;
    const byProto = new Map<Proto, Set<number>>();
    for (const m of part.mappings) {
      if (m.proto === 'tcp') continue;
      byProto.set(m.proto, (byProto.get(m.proto) ?? new Set()).add(m.containerPort));
    }
    for (const [proto, ports] of byProto) {
      if (ports.size > PER_PORT_LIMIT) {
        // The endpoint is going away: every inbound flow of this protocol to it is stale.
        out.push([...base(family, proto), '--reply-src', part.container.toString()]);
        continue;
      }
      for (const p of [...ports].sort((a, b) => a - b)) out.push([...base(family, proto), '--reply-src', part.container.toString(), '--reply-port-src', String(p)]);
    }
  }
  return out;
}

/** Commands clearing entries to the forward's new connectionless host ports (UDP, SCTP). */
export function flowsToHostPorts(f: FirewallForward): string[][] {
  const out: string[][] = [];
  for (const [family, part] of [[4, f.v4], [6, f.v6]] as const) {
    if (!part) continue;
    const seen = new Set<string>();
    for (const m of part.mappings) {
      if (m.proto === 'tcp') continue;
      const k = `${m.proto}/${m.hostPort}`;
      if (seen.has(k)) continue;
      seen.add(k);
      out.push([...base(family, m.proto), '--orig-port-dst', String(m.hostPort)]);
    }
  }
  return out;
}

/** Runs the commands one after the other; "0 flow entries have been deleted" (exit 1) is success. */
export async function deleteConntrack(exec: CommandRunner, log: Logger, commands: readonly string[][]): Promise<void> {
  for (const argv of commands) {
    const res = await exec(argv);
    if (res.missing) return log.warn({ op: 'conntrack' }, `could not clear conntrack entries: ${res.stderr.trim()}`);
    if (res.code === 0 || /\b0 flow entries have been deleted/.test(res.stderr)) continue;
    log.warn({ op: 'conntrack', argv: argv.join(' '), code: res.code, stderr: res.stderr.trim() }, 'could not clear conntrack entries');
  }
}
