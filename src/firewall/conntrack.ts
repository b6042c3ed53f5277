/**
 * Removing conntrack entries with `conntrack` (argv, never a shell). NAT is decided once per connection:
 * an entry made before a port was published (a UDP "connection" to the host itself) keeps bypassing the
 * new DNAT, and entries of a removed mapping keep pointing at the old container. So a new UDP/SCTP
 * mapping clears entries to its host ports, and a removed UDP/SCTP forward clears the flows to its
 * container: a client that keeps sending from the same port would otherwise keep its entry alive, and
 * its traffic going to the old address, forever. TCP entries of a removed mapping are left: they belong
 * to connections that end (reset by whoever has the address now, or timed out), and a new connection
 * gets a new NAT decision.
 *
 * Neither cost depends on how many ports a mapping spans:
 * - removal: one `conntrack -D --reply-src CONTAINER` per family and protocol (the endpoint is going
 *   away, so every inbound flow of that protocol to its address is stale); each walks the whole
 *   conntrack hash the namespaces share (~13 ms with 262144 buckets);
 * - publishing: in-process over ctnetlink (ctnetlink.ts), one dump per family, the stale entries
 *   picked here (to a new host port at a local address, not DNATed), each deleted by its tuple (a hash
 *   lookup; requests batched). A `conntrack -D` per entry would walk the whole table each time (1000
 *   entries: seconds), and entries to closed host ports are anyone's to create.
 *
 * Failures are logged, never thrown: the rules are what matters, stale entries only expire later.
 */
import type { Logger } from '../log.js';
import type { CommandRunner } from './exec.js';
import { PROTO_NUMBER, type IPAddress, type Family, type Proto } from '../net/index.js';
import type { FirewallForward, PortForwardMapping } from './port-forward.js';
import { Ctnetlink, type CtEntry } from './ctnetlink.js';

function familyArgs(family: Family): string[] {
  return family === 6 ? ['-f', 'ipv6'] : [];
}

function base(family: Family, proto: Proto): string[] {
  return ['conntrack', '-D', ...familyArgs(family), '-p', proto];
}

function connectionless(f: FirewallForward): [Family, Proto, PortForwardMapping[], IPAddress][] {
  const out: [Family, Proto, PortForwardMapping[], IPAddress][] = [];
  for (const [family, part] of [[4, f.v4], [6, f.v6]] as const) {
    if (!part) continue;
    for (const proto of ['udp', 'sctp'] as const) {
      const mappings = part.mappings.filter((m) => m.proto === proto);
      if (mappings.length > 0) out.push([family, proto, mappings, part.container]);
    }
  }
  return out;
}

/** Commands clearing the connectionless flows that reach the forward's container (reply source = the container). */
export function flowsToContainer(f: FirewallForward): string[][] {
  return connectionless(f).map(([family, proto, , container]) => [...base(family, proto), '--reply-src', container.toString()]);
}

/** One family's sweep: its connectionless mappings, by protocol. */
export interface HostPortSweep {
  family: Family;
  mappings: readonly PortForwardMapping[];
}

/** The sweeps clearing entries to the forward's new connectionless host ports (UDP, SCTP): one per family. */
export function hostPortSweeps(f: FirewallForward): HostPortSweep[] {
  const byFamily = new Map<Family, PortForwardMapping[]>();
  for (const [family, , mappings] of connectionless(f)) byFamily.set(family, [...(byFamily.get(family) ?? []), ...mappings]);
  return [...byFamily].map(([family, mappings]) => ({ family, mappings }));
}

/**
 * Picks the entries a sweep deletes: of a mapping's protocol, to one of its host ports at an address the
 * DNAT applies to (the mapping's address, or any local address for a wildcard mapping: the rules match
 * `--dst-type LOCAL`), and not DNATed (the reply comes from where the packet was sent). Outbound flows
 * (the host's own, or masqueraded containers') go to other hosts' addresses and are never picked.
 * `local`: the host's addresses (127.0.0.0/8 is local anyway).
 */
export function staleEntries(mappings: readonly PortForwardMapping[], local: Iterable<IPAddress>): (e: CtEntry) => boolean {
  const localBytes = [...local].map((a) => a.bytes);
  const isLocal = (a: Buffer) => (a.length === 4 && a[0] === 127) || localBytes.some((l) => l.equals(a));
  const ms = mappings.map((m) => ({ proto: PROTO_NUMBER[m.proto], first: m.hostPort, last: m.hostPortEnd ?? m.hostPort, ip: m.hostIp.isUnspecified ? undefined : m.hostIp.bytes }));
  return (e) => {
    if (e.replySport !== e.dport || !e.replySrc.equals(e.dst)) return false;
    return ms.some((m) => m.proto === e.proto && e.dport >= m.first && e.dport <= m.last && (m.ip ? m.ip.equals(e.dst) : isLocal(e.dst)));
  };
}

/** Clears the stale entries of the sweeps (logging failures, never throwing). */
export type ConntrackSweep = (log: Logger, sweeps: readonly HostPortSweep[]) => Promise<void>;

/**
 * Deletes the stale entries of each sweep in-process, in this process's network namespace: one dump of
 * the family's table, one lookup per deleted entry (requests batched, see ctnetlink.ts). Its cost
 * depends on the table's size, never on the ranges' lengths, and no entry costs a walk of the table.
 */
/**
 * The in-process sweep: `localAddresses` lists the host's addresses (the daemon's rtnetlink layer), which
 * decide what "to the host" means.
 */
export const hostPortSweeper = (localAddresses: () => Promise<Iterable<IPAddress>>): ConntrackSweep => async (log, sweeps) => {
  if (sweeps.length === 0) return;
  let ct: Ctnetlink | undefined;
  try {
    const local = await localAddresses();
    ct = new Ctnetlink();
    for (const s of sweeps) {
      const stale = await ct.list(s.family, staleEntries(s.mappings, local));
      if (stale.length === 0) continue;
      const res = await ct.delete(s.family, stale);
      if (res.failed.size > 0) log.warn({ op: 'conntrack', family: s.family, failed: Object.fromEntries(res.failed) }, 'could not clear some conntrack entries');
      else log.debug({ op: 'conntrack', family: s.family, deleted: res.deleted, gone: res.gone }, 'cleared stale conntrack entries');
    }
  } catch (err) {
    log.warn({ op: 'conntrack', err: (err as Error).message }, 'could not clear conntrack entries');
  } finally {
    ct?.close();
  }
};

function deleted(res: { code: number | null; stderr: string }): boolean {
  return res.code === 0 || /\b0 flow entries have been deleted/.test(res.stderr);
}

/** A missing `conntrack` program: said once (its package named), and nothing more is tried. */
function missing(res: { missing?: boolean; stderr: string }, log: Logger): boolean {
  if (res.missing) log.warn({ op: 'conntrack' }, `could not clear conntrack entries: ${res.stderr.trim()}`);
  return res.missing === true;
}

/** Runs the commands one after the other; "0 flow entries have been deleted" (exit 1) is success. */
export async function deleteConntrack(exec: CommandRunner, log: Logger, commands: readonly string[][]): Promise<void> {
  for (const argv of commands) {
    const res = await exec(argv);
    if (missing(res, log)) return;
    if (!deleted(res)) log.warn({ op: 'conntrack', argv: argv.join(' '), code: res.code, stderr: res.stderr.trim() }, 'could not clear conntrack entries');
  }
}
