/**
 * What a VXLAN link is, as the kernel reports it in IFLA_LINKINFO / IFLA_INFO_DATA: the IFLA_VXLAN_*
 * attribute numbers and the decoder of a vxlan device's settings (VxlanInfo), which a restart compares
 * with what it wants before adopting a device. A leaf module: link-messages.ts (reading links) and
 * vxlan-messages.ts (creating them) both use it.
 */
import { IPAddress } from '../net/index.js';
import { attrMap, read } from './nlattr.js';

// ---- include/uapi/linux/if_link.h, enum IFLA_VXLAN_* ----
export const IFLA_VXLAN_ID = 1;
export const IFLA_VXLAN_GROUP = 2;
export const IFLA_VXLAN_LINK = 3;
export const IFLA_VXLAN_LOCAL = 4;
export const IFLA_VXLAN_TTL = 5;
export const IFLA_VXLAN_LEARNING = 7;
export const IFLA_VXLAN_PROXY = 11;
export const IFLA_VXLAN_L2MISS = 13;
export const IFLA_VXLAN_L3MISS = 14;
/** u16 in NETWORK byte order (big-endian), without NLA_F_NET_BYTEORDER: what iproute2 and the kernel use. */
export const IFLA_VXLAN_PORT = 15;
export const IFLA_VXLAN_GROUP6 = 16;
export const IFLA_VXLAN_LOCAL6 = 17;

/** VNIs are 24 bits (VXLAN_N_VID = 1 << 24). */
export const VNI_MAX = 0xffffff;
/** The kernel's default UDP port when IFLA_VXLAN_PORT is absent (Linux's historical choice, not IANA's 4789). */
export const VXLAN_KERNEL_DEFAULT_PORT = 8472;

/** A vxlan device's settings, read back from the kernel. */
export interface VxlanInfo {
  /** VNI (IFLA_VXLAN_ID). */
  vni: number;
  /** UDP destination port (host byte order here). */
  port: number;
  /** Source address of the encapsulated packets (IFLA_VXLAN_LOCAL or LOCAL6); absent when unset. */
  local?: IPAddress;
  /** Whether the device learns remote MACs from received packets (IFLA_VXLAN_LEARNING). */
  learning: boolean;
  /** ARP/ND suppression: the device answers from its neighbour table (IFLA_VXLAN_PROXY). */
  proxy: boolean;
  /** L2/L3 miss notifications (off unless asked for). */
  l2miss: boolean;
  l3miss: boolean;
  /** ifindex of the underlay device (IFLA_VXLAN_LINK); absent when unset. */
  underlay?: number;
}

function flag(attrs: Map<number, Buffer>, type: number): boolean {
  const v = attrs.get(type);
  return v !== undefined && v.length >= 1 && read.u8(v) !== 0;
}

/** Decodes a vxlan IFLA_INFO_DATA payload. Lenient: returns undefined rather than throw on malformed data. */
export function decodeVxlanInfo(infoData: Uint8Array): VxlanInfo | undefined {
  try {
    const a = attrMap(infoData);
    const id = a.get(IFLA_VXLAN_ID);
    if (!id) return undefined;
    const port = a.get(IFLA_VXLAN_PORT);
    const info: VxlanInfo = {
      vni: read.u32(id),
      port: port && port.length >= 2 ? port.readUInt16BE(0) : VXLAN_KERNEL_DEFAULT_PORT,
      learning: flag(a, IFLA_VXLAN_LEARNING),
      proxy: flag(a, IFLA_VXLAN_PROXY),
      l2miss: flag(a, IFLA_VXLAN_L2MISS),
      l3miss: flag(a, IFLA_VXLAN_L3MISS),
    };
    // The kernel reports LOCAL (or LOCAL6) only when it is set, i.e. not the unspecified address.
    const local = a.get(IFLA_VXLAN_LOCAL6) ?? a.get(IFLA_VXLAN_LOCAL);
    if (local && (local.length === 4 || local.length === 16)) {
      const ip = IPAddress.fromBytes(local);
      if (!ip.isUnspecified) info.local = ip;
    }
    const link = a.get(IFLA_VXLAN_LINK);
    if (link && link.length >= 4 && read.u32(link) !== 0) info.underlay = read.u32(link);
    return info;
  } catch {
    return undefined;
  }
}
