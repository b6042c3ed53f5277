/**
 * A remote endpoint of an overlay network as this host's vxlan device must know it (a "peer"), and the
 * kernel entries it stands for: one FDB entry (its MAC → its host's VTEP address) and one permanent
 * neighbour entry per address (its IP → its MAC).
 *
 * Entries are keyed by what the kernel keys them by (the MAC; the IP), not by endpoint: when two peers
 * claim the same key (an address moved to another endpoint before the old record's removal was seen), the
 * one set last wins, and removing one peer gives the key back to the other instead of deleting it.
 * planResync (pure) compares the desired entries with a dump of the device's tables.
 */
import { InvalidArgumentError } from '../../errors.js';
import { IPAddress, MAC } from '../../net/index.js';
import type { FdbInfo, NeighbourInfo } from '../../kernel/rtnetlink.js';

export interface Peer {
  /** The endpoint's id (cluster-wide). */
  endpointId: string;
  ip4?: IPAddress;
  ip6?: IPAddress;
  mac: MAC;
  /** The VTEP (advertise address) of the host the endpoint lives on. */
  vtep: IPAddress;
}

/** One kernel entry a peer stands for: its FDB entry (by MAC) or one of its neighbour entries (by IP). */
export type EntryKey = { kind: 'fdb'; id: string; mac: MAC } | { kind: 'neighbour'; id: string; address: IPAddress };

function describe(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : v instanceof Object ? v.constructor.name : typeof v;
}

/** Validates a peer (typed values only) and returns a frozen copy. InvalidArgumentError otherwise. */
export function checkPeer(peer: Peer): Peer {
  const id = peer?.endpointId;
  if (typeof id !== 'string' || id === '') throw new InvalidArgumentError(`invalid peer endpoint id ${describe(id)}`);
  if (!(peer.mac instanceof MAC)) throw new InvalidArgumentError(`peer ${id}: invalid MAC ${describe(peer.mac)}`);
  if (!(peer.vtep instanceof IPAddress) || peer.vtep.isUnspecified) throw new InvalidArgumentError(`peer ${id}: invalid VTEP address ${describe(peer.vtep)}`);
  for (const [field, family] of [['ip4', 4], ['ip6', 6]] as const) {
    const ip = peer[field];
    if (ip !== undefined && !(ip instanceof IPAddress && ip.family === family && !ip.isUnspecified)) {
      throw new InvalidArgumentError(`peer ${id}: ${field} must be an IPv${family} address, not ${describe(ip)}`);
    }
  }
  const out: Peer = { endpointId: id, mac: peer.mac, vtep: peer.vtep };
  if (peer.ip4) out.ip4 = peer.ip4;
  if (peer.ip6) out.ip6 = peer.ip6;
  return Object.freeze(out);
}

export function fdbKey(mac: MAC): EntryKey {
  return { kind: 'fdb', id: `fdb ${mac}`, mac };
}

export function neighbourKey(address: IPAddress): EntryKey {
  return { kind: 'neighbour', id: `ip ${address}`, address };
}

/** The kernel entries a peer stands for. */
export function keysOf(peer: Peer | undefined): EntryKey[] {
  if (!peer) return [];
  const keys = [fdbKey(peer.mac)];
  for (const ip of [peer.ip4, peer.ip6]) if (ip) keys.push(neighbourKey(ip));
  return keys;
}

/** Whether a peer stands for this entry. */
export function claims(peer: Peer, key: EntryKey): boolean {
  if (key.kind === 'fdb') return peer.mac.equals(key.mac);
  return key.address.equals(key.address.family === 4 ? peer.ip4 : peer.ip6);
}

/** What the device's tables must hold: MAC → VTEP and IP → MAC, the later peer winning a shared key. */
export interface DesiredEntries {
  fdb: Map<string, { mac: MAC; vtep: IPAddress }>;
  neighbours: Map<string, { address: IPAddress; mac: MAC }>;
}

export function desiredEntries(peers: Iterable<Peer>): DesiredEntries {
  const out: DesiredEntries = { fdb: new Map(), neighbours: new Map() };
  for (const p of peers) {
    out.fdb.set(String(p.mac), { mac: p.mac, vtep: p.vtep });
    for (const ip of [p.ip4, p.ip6]) if (ip) out.neighbours.set(String(ip), { address: ip, mac: p.mac });
  }
  return out;
}

export interface ResyncPlan {
  /** FDB remotes to delete (MAC + the stale remote's address: only that remote goes). */
  deleteFdb: { mac: MAC; dst: IPAddress }[];
  /** Permanent neighbour entries to delete. */
  deleteNeighbours: IPAddress[];
  /** FDB entries to write (missing, or pointing elsewhere). */
  writeFdb: { mac: MAC; vtep: IPAddress }[];
  /** Neighbour entries to write (missing, not permanent, or with another MAC). */
  writeNeighbours: { address: IPAddress; mac: MAC }[];
}

/** An FDB entry netd may have written: the device's own (NTF_SELF), with a remote, for an endpoint-like MAC. */
function remoteEntryMac(e: FdbInfo): MAC | undefined {
  if (!e.self || e.dst === undefined) return undefined;
  try {
    return MAC.parse(e.mac); // not multicast, not all zeros
  } catch {
    return undefined;
  }
}

/**
 * What to change so that a vxlan device's tables hold exactly `desired`: every remote FDB entry (see
 * remoteEntryMac) and every permanent neighbour entry that no peer explains is deleted; what is missing or
 * different is written. The bridge's entries for the port (not NTF_SELF), multicast and all-zeros MACs and
 * the kernel's own non-permanent neighbour entries are left alone.
 */
export function planResync(desired: DesiredEntries, fdb: readonly FdbInfo[], neighbours: readonly NeighbourInfo[]): ResyncPlan {
  const plan: ResyncPlan = { deleteFdb: [], deleteNeighbours: [], writeFdb: [], writeNeighbours: [] };
  const fdbOk = new Set<string>();
  for (const e of fdb) {
    const mac = remoteEntryMac(e);
    if (!mac || !e.dst) continue;
    const want = desired.fdb.get(String(mac));
    if (want?.vtep.equals(e.dst) && e.permanent) fdbOk.add(String(mac));
    else if (!want?.vtep.equals(e.dst)) plan.deleteFdb.push({ mac, dst: e.dst });
  }
  for (const [mac, want] of desired.fdb) if (!fdbOk.has(mac)) plan.writeFdb.push(want);

  const neighbourOk = new Set<string>();
  for (const n of neighbours) {
    if (!n.permanent) continue;
    const want = desired.neighbours.get(String(n.address));
    if (!want) plan.deleteNeighbours.push(n.address);
    else if (n.mac === String(want.mac)) neighbourOk.add(String(n.address));
  }
  for (const [address, want] of desired.neighbours) if (!neighbourOk.has(address)) plan.writeNeighbours.push(want);
  return plan;
}
