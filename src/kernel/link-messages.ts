/**
 * Links as rtnetlink describes them: what netd reads back (Link), what it creates (BridgeSpec, VethSpec)
 * or changes (LinkChanges), and the raw RTM_NEWLINK payloads the netlink package cannot express
 * (IFLA_LINKINFO for bridge/veth creation, VETH_INFO_PEER, bridge-port options), built with nlattr.ts.
 * Everything is validated here, before it is sent.
 */
import { rt } from 'netlink';
import { InvalidArgumentError } from '../errors.js';
import { MAC, parseIfName } from '../net/index.js';
import type { Netns } from './netns.js';
import { checkIndex } from './rtnl-socket.js';
import { attrMap, encodeIfinfomsg, nla, read } from './nlattr.js';
import { decodeVxlanInfo, type VxlanInfo } from './vxlan-info.js';

// ---- kernel constants (include/uapi/linux/if_link.h, rtnetlink.h, if_addr.h, veth.h, if.h) ----
export const IFF_UP = 0x1;
export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_MASTER = 10;
export const IFLA_LINKINFO = 18;
export const IFLA_NET_NS_FD = 28;
export const IFLA_EXT_MASK = 29;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const IFLA_INFO_SLAVE_KIND = 4;
export const IFLA_INFO_SLAVE_DATA = 5;
export const IFLA_BRPORT_MODE = 4; // u8: hairpin mode
export const IFLA_INET6_ADDR_GEN_MODE = 8; // inside IFLA_AF_SPEC / AF_INET6
export const IN6_ADDR_GEN_MODE_EUI64 = 0;
export const IN6_ADDR_GEN_MODE_NONE = 1;
export const VETH_INFO_PEER = 1;
export const RTEXT_FILTER_SKIP_STATS = 1 << 3;
/** IFALIASZ is 256 including the NUL. */
export const IFALIAS_MAX_BYTES = 255;
/** ETH_MIN_MTU .. ETH_MAX_MTU, what bridges and veths accept. */
export const MTU_MIN = 68;
export const MTU_MAX = 65535;

export interface Link {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: 'bridge', 'veth', ... (absent for physical devices and lo). */
  kind?: string;
  /** ifindex of the master (bridge) this link is enslaved to. */
  master?: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  mtu: number;
  /**
   * Hardware address, lowercase colon-separated ('' if the device has none). Text, not a MAC: any device's
   * address is reported (lo's is all zeros), not only addresses an interface could be given.
   */
  mac: string;
  alias?: string;
  /** For kind 'vxlan': the device's VNI, port, local address, learning flag... (see vxlan-info.ts). */
  vxlan?: VxlanInfo;
}

export interface BridgeSpec {
  name: string;
  mtu?: number;
  /** Setting a MAC pins it; otherwise the kernel picks one and may change it as ports come and go. */
  mac?: MAC;
  alias?: string;
  /** Bring the bridge up in the same request. */
  up?: boolean;
}

export interface VethSpec {
  /** Host-side name. */
  name: string;
  mtu?: number;
  alias?: string;
  /** ifindex of the bridge to enslave the host end to. */
  master?: number;
  /** Bring the host end up. */
  up?: boolean;
  /**
   * false: the host end makes no IPv6 link-local address (see LinkChanges.ipv6LinkLocal): a bridge port
   * needs none. Set in the request that sets the alias, before the peer comes up and brings the carrier.
   */
  ipv6LinkLocal?: boolean;
  peer: {
    /** Name of the peer inside its namespace, e.g. 'eth0'. */
    name: string;
    /** Namespace the peer is created in; must stay open until createVeth resolves. */
    netns: Netns;
    mac?: MAC;
    /** Defaults to `mtu`. */
    mtu?: number;
  };
}

/**
 * The ifindex of `lo` in every network namespace: the kernel registers the loopback device first and
 * insists it gets index 1, so `lo` can be addressed without looking it up.
 */
export const LOOPBACK_IFINDEX = 1;

export interface LinkChanges {
  up?: boolean;
  /** Bridge ifindex to enslave to; 0 releases the link from its master. */
  master?: number;
  mtu?: number;
  /** '' removes the alias. */
  alias?: string;
  /**
   * false: the link gets no IPv6 link-local address of its own when it comes up (IPv6 address generation
   * mode "none"), so no duplicate address detection or multicast listener reports follow; true restores
   * the default (EUI-64). Addresses added explicitly still work.
   */
  ipv6LinkLocal?: boolean;
  /** The link's device group (IFLA_GROUP; 0 is the default group): links of one group can be deleted in one request. */
  group?: number;
}

/** A device group a link can be put in and deleted by (0, the default group, cannot be deleted as a group). */
export function checkGroup(group: unknown): number {
  if (typeof group !== 'number' || !Number.isInteger(group) || group < 0 || group > 0xffffffff) {
    throw new InvalidArgumentError(`invalid device group ${JSON.stringify(group)}: must be an integer 0-4294967295`);
  }
  return group;
}

export function checkMtu(mtu: unknown): number {
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < MTU_MIN || mtu > MTU_MAX) {
    throw new InvalidArgumentError(`invalid MTU ${JSON.stringify(mtu)}: must be an integer ${MTU_MIN}-${MTU_MAX}`);
  }
  return mtu;
}

export function checkAlias(alias: unknown): string {
  if (typeof alias !== 'string' || alias.includes('\0') || Buffer.byteLength(alias) > IFALIAS_MAX_BYTES) {
    throw new InvalidArgumentError(`invalid interface alias ${JSON.stringify(alias)}: a string of at most ${IFALIAS_MAX_BYTES} bytes without NUL`);
  }
  return alias;
}

/** A MAC given in code: the typed value, nothing else. */
export function checkMac(mac: unknown): MAC {
  if (!(mac instanceof MAC)) throw new InvalidArgumentError(`invalid MAC address ${typeof mac === 'string' ? JSON.stringify(mac) : typeof mac}: expected a MAC value`);
  return mac;
}

/** IFLA_INFO_KIND and IFLA_INFO_DATA out of a raw IFLA_LINKINFO payload. */
function linkInfo(linkinfo: Buffer | undefined): { kind?: string; data?: Buffer } {
  if (!linkinfo) return {};
  try {
    const a = attrMap(linkinfo);
    const kind = a.get(IFLA_INFO_KIND);
    return { kind: kind ? read.string(kind) : undefined, data: a.get(IFLA_INFO_DATA) };
  } catch {
    return {}; // malformed linkinfo: report the link without a kind rather than fail the dump
  }
}

export function toLink(m: rt.LinkMessage): Link {
  const a = m.attrs;
  const link: Link = {
    index: m.data.index ?? 0,
    name: a.ifname ?? '',
    up: Boolean(m.data.flags?.up),
    mtu: a.mtu ?? 0,
    mac: a.address ? MAC.formatBytes(a.address) : '',
  };
  const { kind, data } = linkInfo(a.linkinfo);
  if (kind !== undefined) link.kind = kind;
  if (a.master) link.master = a.master;
  if (a.ifalias) link.alias = a.ifalias;
  if (kind === 'vxlan' && data) {
    const vxlan = decodeVxlanInfo(data);
    if (vxlan) link.vxlan = vxlan;
  }
  return link;
}


// ---- raw request payloads (validated; exported so tests can pin them byte for byte) ----

/** RTM_NEWLINK payload creating a bridge (the alias, which the kernel ignores on creation, is not included). */
export function bridgeCreatePayload(spec: Omit<BridgeSpec, 'alias'>): Buffer {
  const name = parseIfName(spec.name);
  const attrs = [nla.string(IFLA_IFNAME, name)];
  if (spec.mtu !== undefined) attrs.push(nla.u32(IFLA_MTU, checkMtu(spec.mtu)));
  if (spec.mac !== undefined) attrs.push(nla.binary(IFLA_ADDRESS, checkMac(spec.mac).bytes));
  attrs.push(nla.nested(IFLA_LINKINFO, [nla.string(IFLA_INFO_KIND, 'bridge')]));
  const up = spec.up ? IFF_UP : 0;
  return Buffer.concat([encodeIfinfomsg({ flags: up, change: up }), ...attrs]);
}

export interface VethPayloadSpec extends Omit<VethSpec, 'peer' | 'alias'> {
  peer: { name: string; netnsFd: number; mac?: MAC; mtu?: number };
}

/**
 * RTM_NEWLINK payload creating a veth pair: ifinfomsg + IFLA_IFNAME/MTU/MASTER +
 * IFLA_LINKINFO{INFO_KIND "veth", INFO_DATA{VETH_INFO_PEER: ifinfomsg + IFNAME/NET_NS_FD/ADDRESS/MTU}}.
 */
export function vethCreatePayload(spec: VethPayloadSpec): Buffer {
  const name = parseIfName(spec.name);
  const peerName = parseIfName(spec.peer.name);
  const fd = spec.peer.netnsFd;
  if (!Number.isInteger(fd) || fd < 0) throw new InvalidArgumentError(`create veth ${name}: bad peer netns fd ${fd}`);
  const mtu = spec.mtu === undefined ? undefined : checkMtu(spec.mtu);
  const peerMtu = spec.peer.mtu === undefined ? mtu : checkMtu(spec.peer.mtu);
  const master = spec.master === undefined ? undefined : checkIndex(spec.master, 'master (bridge) index');

  // VETH_INFO_PEER carries a struct ifinfomsg followed by the peer's own attributes. It is not a pure
  // attribute list, so it goes without NLA_F_NESTED (as iproute2 sends it); kernel 6.x accepts both.
  const peerAttrs = [encodeIfinfomsg(), nla.string(IFLA_IFNAME, peerName), nla.u32(IFLA_NET_NS_FD, fd)];
  if (spec.peer.mac !== undefined) peerAttrs.push(nla.binary(IFLA_ADDRESS, checkMac(spec.peer.mac).bytes));
  if (peerMtu !== undefined) peerAttrs.push(nla.u32(IFLA_MTU, peerMtu));

  const attrs = [nla.string(IFLA_IFNAME, name)];
  if (mtu !== undefined) attrs.push(nla.u32(IFLA_MTU, mtu));
  if (master !== undefined) attrs.push(nla.u32(IFLA_MASTER, master));
  attrs.push(
    nla.nested(IFLA_LINKINFO, [
      nla.string(IFLA_INFO_KIND, 'veth'),
      nla.nested(IFLA_INFO_DATA, [nla.binary(VETH_INFO_PEER, Buffer.concat(peerAttrs))]),
    ]),
  );
  // The kernel applies IFLA_MASTER and IFF_UP to a link it creates within the same request (checked on
  // 6.x), so the host end is enslaved and up without a second message.
  const up = spec.up ? IFF_UP : 0;
  return Buffer.concat([encodeIfinfomsg({ flags: up, change: up }), ...attrs]);
}

/** RTM_NEWLINK payload setting a bridge port's hairpin mode: IFLA_LINKINFO{SLAVE_KIND "bridge", SLAVE_DATA{BRPORT_MODE}}. */
export function hairpinPayload(index: number, on: boolean): Buffer {
  checkIndex(index);
  return Buffer.concat([
    encodeIfinfomsg({ index }),
    nla.nested(IFLA_LINKINFO, [
      nla.string(IFLA_INFO_SLAVE_KIND, 'bridge'),
      nla.nested(IFLA_INFO_SLAVE_DATA, [nla.u8(IFLA_BRPORT_MODE, on ? 1 : 0)]),
    ]),
  ]);
}
