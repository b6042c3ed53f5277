/**
 * Neighbour-table messages (RTM_NEWNEIGH/DELNEIGH/GETNEIGH, struct ndmsg + NDA_* attributes) for the
 * two tables an overlay writes:
 *
 * - the bridge FDB of a vxlan device (family AF_BRIDGE, NTF_SELF): remote endpoint MAC → remote VTEP
 *   address (FdbEntry);
 * - the ARP/ND table (AF_INET/AF_INET6): remote endpoint IP → its MAC, permanent (NeighbourEntry).
 *
 * Payloads are built here, validated, and exported so tests can pin them byte for byte against what
 * iproute2 sends (`bridge fdb replace … self permanent`, `ip neigh replace … nud permanent`); the kernel's
 * answers are turned back into FdbInfo / NeighbourInfo here too.
 */
import { endianness } from 'node:os';
import { rt } from 'netlink';
import { InvalidArgumentError } from '../errors.js';
import { IPAddress, MAC, type Family } from '../net/index.js';
import { afOf, familyOfAf } from './af.js';
import { checkMac } from './link-messages.js';
import { encodeIfinfomsg, nla } from './nlattr.js';
import { checkIndex } from './rtnl-socket.js';

// ---- include/uapi/linux/neighbour.h, socket.h ----
export const AF_BRIDGE = 7;
export const NDA_DST = 1;
export const NDA_LLADDR = 2;
export const NDA_IFINDEX = 8;
export const NDA_MASTER = 9;
export const NUD_NOARP = 0x40;
export const NUD_PERMANENT = 0x80;
export const NTF_SELF = 0x02;
export const NTF_MASTER = 0x04;
export const NDMSG_LEN = 12;

const LE = endianness() === 'LE';

/** struct ndmsg: family u8, 3 bytes padding, ifindex s32, state u16, flags u8, type u8 (host byte order). */
export interface NdMsg {
  family: number;
  ifindex: number;
  state: number;
  flags?: number;
  type?: number;
}

export function encodeNdmsg(m: NdMsg): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b.writeUInt8(m.family, 0);
  if (LE) {
    b.writeInt32LE(m.ifindex, 4);
    b.writeUInt16LE(m.state, 8);
  } else {
    b.writeInt32BE(m.ifindex, 4);
    b.writeUInt16BE(m.state, 8);
  }
  b.writeUInt8(m.flags ?? 0, 10);
  b.writeUInt8(m.type ?? 0, 11);
  return b;
}

// ---- bridge FDB entries of a vxlan device ----

/** One remote endpoint's MAC, reached through the VTEP at `dst`, on vxlan device `ifindex`. */
export interface FdbEntry {
  ifindex: number;
  mac: MAC;
  /** The remote VTEP's underlay address. */
  dst: IPAddress;
}

/** An FDB entry as the kernel reports it for a device. */
export interface FdbInfo {
  ifindex: number;
  /** Lowercase colon-separated (may be all zeros: the default-destination entry). */
  mac: string;
  /** Remote VTEP (vxlan entries); absent for the bridge's own entries. */
  dst?: IPAddress;
  /** NUD_* bits. */
  state: number;
  permanent: boolean;
  /** NTF_SELF: the device's own table (vxlan); otherwise the bridge's entry for this port (NTF_MASTER). */
  self: boolean;
  /** The bridge, for entries reported from the master's table (NDA_MASTER). */
  master?: number;
}

/**
 * What `bridge fdb … permanent` puts in ndm_state: NUD_PERMANENT|NUD_NOARP. The vxlan driver stores the
 * state as given; iproute2 shows the entry as "permanent" either way.
 */
export const FDB_STATE = NUD_PERMANENT | NUD_NOARP;

function checkIp(ip: unknown, what: string): IPAddress {
  if (!(ip instanceof IPAddress)) throw new InvalidArgumentError(`invalid ${what} ${typeof ip === 'string' ? JSON.stringify(ip) : typeof ip}: expected an IPAddress`);
  return ip;
}

/**
 * RTM_NEWNEIGH payload of a vxlan FDB entry: ndmsg{AF_BRIDGE, ifindex, NUD_PERMANENT|NUD_NOARP, NTF_SELF}
 * + NDA_LLADDR + NDA_DST. Sent with NLM_F_CREATE|NLM_F_REPLACE it creates the entry or rewrites its
 * remote; RTM_DELNEIGH with the same family and flags deletes it (with NDA_DST: only that remote).
 */
export function fdbPayload(entry: { ifindex: number; mac: MAC; dst?: IPAddress }): Buffer {
  const ifindex = checkIndex(entry.ifindex);
  const parts = [encodeNdmsg({ family: AF_BRIDGE, ifindex, state: FDB_STATE, flags: NTF_SELF }), nla.binary(NDA_LLADDR, checkMac(entry.mac).bytes)];
  if (entry.dst !== undefined) parts.push(nla.binary(NDA_DST, checkIp(entry.dst, 'VTEP address').toNetlink()));
  return Buffer.concat(parts);
}

/**
 * RTM_GETNEIGH dump request for the FDB of one device: an ifinfomsg{AF_BRIDGE, ifindex}. Without strict
 * checking on the socket, the kernel reads a request longer than an ndmsg as an ifinfomsg and dumps only
 * the port whose ifindex it names (rtnl_fdb_dump, valid_fdb_dump_legacy); a bare ndmsg is not filtered.
 */
export function fdbDumpPayload(ifindex: number): Buffer {
  return encodeIfinfomsg({ family: AF_BRIDGE, index: checkIndex(ifindex) });
}

export function toFdbInfo(m: rt.NeighborMessage): FdbInfo | undefined {
  if (m.data.family !== AF_BRIDGE) return undefined;
  const state = rt.formatNeighborState(m.data.state ?? {});
  const flags = rt.formatNeighborFlags(m.data.flags ?? {});
  const info: FdbInfo = {
    ifindex: m.data.ifindex ?? 0,
    mac: m.attrs.lladdr ? MAC.formatBytes(m.attrs.lladdr) : '',
    state,
    permanent: (state & NUD_PERMANENT) !== 0,
    self: (flags & NTF_SELF) !== 0,
  };
  const dst = m.attrs.dst;
  if (dst && (dst.length === 4 || dst.length === 16)) info.dst = IPAddress.fromBytes(dst);
  if (m.attrs.master) info.master = m.attrs.master;
  return info;
}

// ---- ARP / ND entries ----

/** A remote endpoint's IP → MAC, permanent, on link `ifindex` (the vxlan device or the bridge). */
export interface NeighbourEntry {
  ifindex: number;
  address: IPAddress;
  mac: MAC;
}

export interface NeighbourInfo {
  ifindex: number;
  address: IPAddress;
  /** Lowercase colon-separated; absent for an unresolved entry. */
  mac?: string;
  /** NUD_* bits. */
  state: number;
  permanent: boolean;
}

/**
 * RTM_NEWNEIGH payload of a permanent neighbour entry: ndmsg{AF_INET|AF_INET6, ifindex, NUD_PERMANENT}
 * + NDA_DST + NDA_LLADDR (send with NLM_F_CREATE|NLM_F_REPLACE). Without `mac`: the RTM_DELNEIGH payload
 * (ndmsg + NDA_DST), as `ip neigh del` sends it.
 */
export function neighbourPayload(entry: { ifindex: number; address: IPAddress; mac?: MAC }): Buffer {
  const ifindex = checkIndex(entry.ifindex);
  const address = checkIp(entry.address, 'neighbour address');
  const parts = [encodeNdmsg({ family: afOf(address.family), ifindex, state: NUD_PERMANENT }), nla.binary(NDA_DST, address.toNetlink())];
  if (entry.mac !== undefined) parts.push(nla.binary(NDA_LLADDR, checkMac(entry.mac).bytes));
  return Buffer.concat(parts);
}

/** RTM_GETNEIGH dump request for one family's entries on one link: ndmsg{family} + NDA_IFINDEX (as `ip neigh show dev X`). */
export function neighbourDumpPayload(family: Family, ifindex: number): Buffer {
  return Buffer.concat([encodeNdmsg({ family: afOf(family), ifindex: 0, state: 0 }), nla.u32(NDA_IFINDEX, checkIndex(ifindex))]);
}

export function toNeighbourInfo(m: rt.NeighborMessage): NeighbourInfo | undefined {
  const family = familyOfAf(m.data.family ?? 0);
  const dst = m.attrs.dst;
  if (family === undefined || !dst || dst.length !== (family === 4 ? 4 : 16)) return undefined;
  const state = rt.formatNeighborState(m.data.state ?? {});
  const info: NeighbourInfo = { ifindex: m.data.ifindex ?? 0, address: IPAddress.fromBytes(dst), state, permanent: (state & NUD_PERMANENT) !== 0 };
  if (m.attrs.lladdr && m.attrs.lladdr.length === 6) info.mac = MAC.formatBytes(m.attrs.lladdr);
  return info;
}
