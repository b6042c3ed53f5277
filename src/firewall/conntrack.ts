/**
 * Which conntrack entries a port-forward change makes stale. NAT is decided once per connection: an
 * entry made before a port was published (a UDP "connection" to the host itself) keeps bypassing the new
 * DNAT, and entries of a removed mapping keep pointing at the old container until they time out. So a
 * new UDP/SCTP mapping clears entries to its host port, and a removed mapping clears the flows to its
 * container ports.
 *
 * The entries are deleted in-process over ctnetlink (src/kernel/ctnetlink.ts): one table dump per
 * family, no `conntrack` process. Failures are logged, never thrown: the rules are what matters, stale
 * entries only expire later.
 */
import type { Logger } from '../log.js';
import { describeFlowMatch, type FlowMatch } from '../kernel/ctnetlink.js';
import type { Protocol } from './model.js';
import type { FirewallForward } from './port-forward.js';

/** Deletes the matching entries, returns how many; the firewall's seam to the kernel (tests record). */
export type ConntrackCleaner = (matches: readonly FlowMatch[]) => Promise<number>;

/** Above this many ports per container, family and protocol, one match clears all its inbound flows. */
const PER_PORT_LIMIT = 16;

/** The flows that reach the forward's container ports (reply source = the container). */
export function flowsToContainer(f: FirewallForward): FlowMatch[] {
  const out: FlowMatch[] = [];
  for (const [family, part] of [[4, f.v4], [6, f.v6]] as const) {
    if (!part) continue;
    const byProto = new Map<Protocol, Set<number>>();
    for (const m of part.mappings) byProto.set(m.proto, (byProto.get(m.proto) ?? new Set()).add(m.containerPort));
    for (const [proto, ports] of byProto) {
      if (ports.size > PER_PORT_LIMIT) {
        // The endpoint is going away: every inbound flow of this protocol to it is stale.
        out.push({ family, proto, replySrc: part.container });
        continue;
      }
      for (const p of [...ports].sort((a, b) => a - b)) out.push({ family, proto, replySrc: part.container, replySrcPort: p });
    }
  }
  return out;
}

/** Entries to the forward's new connectionless host ports (UDP, SCTP). */
export function flowsToHostPorts(f: FirewallForward): FlowMatch[] {
  const out: FlowMatch[] = [];
  for (const [family, part] of [[4, f.v4], [6, f.v6]] as const) {
    if (!part) continue;
    const seen = new Set<string>();
    for (const m of part.mappings) {
      if (m.proto === 'tcp') continue;
      const k = `${m.proto}/${m.hostPort}`;
      if (seen.has(k)) continue;
      seen.add(k);
      out.push({ family, proto: m.proto, origDstPort: m.hostPort });
    }
  }
  return out;
}

/** Deletes the entries; a failure is logged with the equivalent conntrack(8) commands, not thrown. */
export async function deleteConntrack(clean: ConntrackCleaner, log: Logger, matches: readonly FlowMatch[]): Promise<void> {
  if (matches.length === 0) return;
  try {
    const deleted = await clean(matches);
    if (deleted > 0) log.debug({ op: 'conntrack', deleted, matches: matches.map(describeFlowMatch) }, 'stale conntrack entries deleted');
  } catch (err) {
    log.warn({ op: 'conntrack', matches: matches.map(describeFlowMatch), error: (err as Error).message }, 'could not clear conntrack entries');
  }
}
