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
 * The number of processes never depends on how many ports a mapping spans: each `conntrack` walks the
 * whole conntrack hash the namespaces share (~13 ms with 262144 buckets).
 * - removal: one `conntrack -D --reply-src CONTAINER` per family and protocol (the endpoint is going
 *   away, so every inbound flow of that protocol to its address is stale);
 * - publishing: up to PER_PORT_LIMIT ports, one `conntrack -D --orig-port-dst P` each; beyond that, one
 *   `conntrack -L` per family and protocol, the stale entries picked here (original destination port in
 *   a new range, not DNATed), and one `conntrack -R FILE` deleting exactly those (from a private
 *   temporary file: conntrack opens "-" as /dev/stdin, which fails on Node's socketpair stdio).
 *
 * Failures are logged, never thrown: the rules are what matters, stale entries only expire later.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import type { CommandRunner } from './exec.js';
import { IPAddress, type Family, type Proto } from '../net/index.js';
import { mappingSpan, type FirewallForward, type PortForwardMapping } from './port-forward.js';

/** Above this many host ports per family and protocol, one listing replaces a command per port. */
const PER_PORT_LIMIT = 16;

/** One cleanup: a command, or a listing whose stale entries a second command deletes. */
export type ConntrackCleanup = { kind: 'delete'; argv: string[] } | { kind: 'sweep'; family: Family; proto: Proto; mappings: readonly PortForwardMapping[] };

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

/** Cleanups of entries to the forward's new connectionless host ports (UDP, SCTP). */
export function flowsToHostPorts(f: FirewallForward): ConntrackCleanup[] {
  const out: ConntrackCleanup[] = [];
  for (const [family, proto, mappings] of connectionless(f)) {
    const ports = new Set<number>();
    let total = 0;
    for (const m of mappings) {
      total += mappingSpan(m);
      if (total > PER_PORT_LIMIT) break;
      for (let p = m.hostPort; p <= (m.hostPortEnd ?? m.hostPort); p++) ports.add(p);
    }
    if (total > PER_PORT_LIMIT) {
      out.push({ kind: 'sweep', family, proto, mappings });
      continue;
    }
    for (const p of [...ports].sort((a, b) => a - b)) out.push({ kind: 'delete', argv: [...base(family, proto), '--orig-port-dst', String(p)] });
  }
  return out;
}

/** One entry of `conntrack -L` output: its original tuple and the reply's source address. */
interface Entry {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  replySrc: string;
}

/** Parses `conntrack -L` lines (`udp 17 29 src=A dst=B sport=P dport=Q [UNREPLIED] src=B dst=A sport=Q dport=P ...`). */
export function parseConntrackList(text: string): Entry[] {
  const out: Entry[] = [];
  for (const line of text.split('\n')) {
    const fields = new Map<string, string[]>();
    for (const token of line.trim().split(/\s+/)) {
      const eq = token.indexOf('=');
      if (eq <= 0) continue;
      const k = token.slice(0, eq);
      fields.set(k, [...(fields.get(k) ?? []), token.slice(eq + 1)]);
    }
    const [src, replySrc] = fields.get('src') ?? [];
    const [dst] = fields.get('dst') ?? [];
    const [sport] = fields.get('sport') ?? [];
    const [dport] = fields.get('dport') ?? [];
    if (!src || !dst || !replySrc || sport === undefined || dport === undefined) continue;
    out.push({ src, dst, sport: Number(sport), dport: Number(dport), replySrc });
  }
  return out;
}

/**
 * The entries a sweep deletes: to a new host port (and address, unless the mapping is on every address),
 * and not DNATed (the reply comes from the address the packet was sent to). Validated addresses only.
 */
export function staleEntries(entries: readonly Entry[], mappings: readonly PortForwardMapping[]): Entry[] {
  return entries.filter((e) => {
    if (e.replySrc !== e.dst) return false;
    return mappings.some((m) => e.dport >= m.hostPort && e.dport <= (m.hostPortEnd ?? m.hostPort) && (m.hostIp.isUnspecified || m.hostIp.toString() === e.dst));
  });
}

/** The `conntrack -R` lines deleting those entries (one listing's worth). */
export function deleteLines(family: Family, proto: Proto, entries: readonly Entry[]): string {
  const lines: string[] = [];
  for (const e of entries) {
    // Only what parses as an address of this family goes into the batch.
    const [src, dst] = [IPAddress.tryParse(e.src), IPAddress.tryParse(e.dst)];
    if (!src || !dst || src.family !== family || dst.family !== family || !Number.isInteger(e.sport) || !Number.isInteger(e.dport)) continue;
    lines.push(['-D', ...familyArgs(family), '-p', proto, '-s', src.toString(), '-d', dst.toString(), '--sport', String(e.sport), '--dport', String(e.dport)].join(' '));
  }
  return lines.length > 0 ? lines.join('\n') + '\n' : '';
}

function deleted(res: { code: number | null; stderr: string }): boolean {
  return res.code === 0 || /\b0 flow entries have been deleted/.test(res.stderr);
}

/** A missing `conntrack` program: said once (its package named), and nothing more is tried. */
function missing(res: { missing?: boolean; stderr: string }, log: Logger): boolean {
  if (res.missing) log.warn({ op: 'conntrack' }, `could not clear conntrack entries: ${res.stderr.trim()}`);
  return res.missing === true;
}

/** Runs the cleanups one after the other; "0 flow entries have been deleted" (exit 1) is success. */
export async function deleteConntrack(exec: CommandRunner, log: Logger, cleanups: readonly (ConntrackCleanup | string[])[]): Promise<void> {
  for (const c of cleanups) {
    const cleanup: ConntrackCleanup = Array.isArray(c) ? { kind: 'delete', argv: c } : c;
    if (cleanup.kind === 'delete') {
      const res = await exec(cleanup.argv);
      if (missing(res, log)) return;
      if (!deleted(res)) log.warn({ op: 'conntrack', argv: cleanup.argv.join(' '), code: res.code, stderr: res.stderr.trim() }, 'could not clear conntrack entries');
      continue;
    }
    const list = ['conntrack', '-L', ...familyArgs(cleanup.family), '-p', cleanup.proto];
    const listed = await exec(list);
    if (missing(listed, log)) return;
    if (listed.code !== 0) {
      log.warn({ op: 'conntrack', argv: list.join(' '), code: listed.code, stderr: listed.stderr.trim() }, 'could not list conntrack entries');
      continue;
    }
    const script = deleteLines(cleanup.family, cleanup.proto, staleEntries(parseConntrackList(listed.stdout), cleanup.mappings));
    if (script === '') continue;
    const dir = await mkdtemp(join(tmpdir(), 'netd-conntrack-'));
    try {
      const file = join(dir, 'delete');
      await writeFile(file, script, { mode: 0o600 });
      const res = await exec(['conntrack', '-R', file]);
      if (!deleted(res)) log.warn({ op: 'conntrack', argv: `conntrack -R ${file}`, code: res.code, stderr: res.stderr.trim() }, 'could not clear conntrack entries');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
