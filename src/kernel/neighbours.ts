/**
 * An overlay's static forwarding state over rtnetlink: vxlan FDB entries (MAC → remote VTEP) and
 * permanent neighbour entries (IP → MAC). Every write is create-or-replace (NLM_F_CREATE|NLM_F_REPLACE),
 * so a changed VTEP or MAC overwrites the old value in one message and a re-sent entry is not an error;
 * deletes carry the add's family and flags. Messages are built in neigh-messages.ts.
 */
import { FlagsGet, FlagsNew, rt } from 'netlink';
import { KernelError } from '../errors.js';
import type { Family, IPAddress, MAC } from '../net/index.js';
import {
  fdbDumpPayload,
  fdbPayload,
  neighbourDumpPayload,
  neighbourPayload,
  toFdbInfo,
  toNeighbourInfo,
  type FdbEntry,
  type FdbInfo,
  type NeighbourEntry,
  type NeighbourInfo,
} from './neigh-messages.js';
import type { RtnlSocket } from './rtnl-socket.js';

const REPLACE = FlagsNew.CREATE | FlagsNew.REPLACE;

/** Writes (or rewrites) an FDB entry on a vxlan device. KernelError 'ENODEV' if there is no such link. */
export async function replaceFdb(sock: RtnlSocket, entry: FdbEntry): Promise<void> {
  const payload = fdbPayload(entry);
  await sock.raw(`replace fdb ${entry.mac} dst ${entry.dst} on link #${entry.ifindex}`, rt.MessageType.NEWNEIGH, [payload], REPLACE);
}

/**
 * Deletes the FDB entry for `mac` on a vxlan device: the whole entry, or, with `dst`, only that remote.
 * Resolves false when the device has no entry for the MAC (ENOENT). Careful: when the MAC is there but
 * `dst` is not one of its remotes, the kernel deletes nothing and still answers success (true), so a
 * delete that must not miss (a reconcile) leaves `dst` out.
 */
export async function deleteFdb(sock: RtnlSocket, entry: { ifindex: number; mac: MAC; dst?: IPAddress }): Promise<boolean> {
  const payload = fdbPayload(entry);
  try {
    await sock.raw(`delete fdb ${entry.mac}${entry.dst ? ` dst ${entry.dst}` : ''} on link #${entry.ifindex}`, rt.MessageType.DELNEIGH, [payload]);
    return true;
  } catch (err) {
    if (err instanceof KernelError && err.errno === 'ENOENT') return false;
    throw err;
  }
}

/**
 * The FDB entries of one device (one per remote for a vxlan entry with several). Both the device's own
 * entries (self: true) and, for a bridge port, the bridge's entries for that port (self: false) are
 * listed; an overlay reconciles only the first kind.
 */
export async function listFdb(sock: RtnlSocket, ifindex: number): Promise<FdbInfo[]> {
  const msgs = await sock.raw(`list fdb of link #${ifindex}`, rt.MessageType.GETNEIGH, [fdbDumpPayload(ifindex)], FlagsGet.DUMP);
  const out: FdbInfo[] = [];
  for (const m of msgs) {
    if (m.kind !== 'neighbor') continue;
    const info = toFdbInfo(m);
    // The kernel filters by port already; checked again so a kernel that ignores the filter cannot mislead.
    if (info && info.ifindex === ifindex) out.push(info);
  }
  return out;
}

/** Writes (or rewrites) a permanent neighbour entry. KernelError 'ENODEV' if there is no such link. */
export async function replaceNeighbour(sock: RtnlSocket, entry: NeighbourEntry): Promise<void> {
  const payload = neighbourPayload(entry);
  await sock.raw(`replace neighbour ${entry.address} lladdr ${entry.mac} on link #${entry.ifindex}`, rt.MessageType.NEWNEIGH, [payload], REPLACE);
}

/** Deletes the neighbour entry for `address` on a link. Resolves false when there was none (ENOENT). */
export async function deleteNeighbour(sock: RtnlSocket, entry: { ifindex: number; address: IPAddress }): Promise<boolean> {
  const payload = neighbourPayload({ ifindex: entry.ifindex, address: entry.address });
  try {
    await sock.raw(`delete neighbour ${entry.address} on link #${entry.ifindex}`, rt.MessageType.DELNEIGH, [payload]);
    return true;
  } catch (err) {
    if (err instanceof KernelError && err.errno === 'ENOENT') return false;
    throw err;
  }
}

/** The neighbour entries of one family on one link (permanent or not; see NeighbourInfo.permanent). */
export async function listNeighbours(sock: RtnlSocket, family: Family, ifindex: number): Promise<NeighbourInfo[]> {
  const msgs = await sock.raw(`list IPv${family} neighbours of link #${ifindex}`, rt.MessageType.GETNEIGH, [neighbourDumpPayload(family, ifindex)], FlagsGet.DUMP);
  const out: NeighbourInfo[] = [];
  for (const m of msgs) {
    if (m.kind !== 'neighbor') continue;
    const info = toNeighbourInfo(m);
    if (info && info.ifindex === ifindex && info.address.family === family) out.push(info);
  }
  return out;
}
