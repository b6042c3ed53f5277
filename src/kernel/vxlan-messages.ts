/**
 * Creating a VXLAN link: what netd asks for (VxlanSpec) and the RTM_NEWLINK payload that says it
 * (IFLA_LINKINFO{INFO_KIND "vxlan", INFO_DATA{IFLA_VXLAN_*}}), validated before anything is sent.
 * Reading one back is vxlan-info.ts.
 *
 * netd's overlay wants a unicast-only device: no multicast group, learning off (every remote MAC comes
 * from a static FDB entry), the UDP port set explicitly (the kernel's default is 8472, IANA's is 4789),
 * optionally ARP/ND suppression (proxy) answered from the device's neighbour table.
 */
import { InvalidArgumentError } from '../errors.js';
import { IPAddress, parseIfName, type MAC } from '../net/index.js';
import {
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  checkMac,
  checkMtu,
} from './link-messages.js';
import { encodeIfinfomsg, nla } from './nlattr.js';
import { checkIndex } from './rtnl-socket.js';
import { IFLA_VXLAN_ID, IFLA_VXLAN_LEARNING, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LOCAL6, IFLA_VXLAN_PORT, IFLA_VXLAN_PROXY, VNI_MAX } from './vxlan-info.js';

/** Bytes VXLAN adds to every packet over an IPv4 underlay: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD_V4 = 50;
/** Over an IPv6 underlay the outer IP header is 40 bytes. */
export const VXLAN_OVERHEAD_V6 = 70;
/** IANA's VXLAN port (RFC 7348), Docker's default. */
export const VXLAN_IANA_PORT = 4789;

export interface VxlanSpec {
  name: string;
  /** VNI, 0-16777215. */
  vni: number;
  /** UDP destination port, 1-65535 (netd: 4789). Always sent: the kernel's default is 8472. */
  port: number;
  /** Underlay address the encapsulated packets come from (IPv4 or IPv6). */
  local: IPAddress;
  /** Learn remote MACs from received packets. Default false: every entry is written by netd. */
  learning?: boolean;
  /** ARP/ND suppression: the device answers ARP requests from its own neighbour table. Default false. */
  proxy?: boolean;
  /** ifindex of the underlay device. The kernel then defaults the MTU to the underlay's MTU minus the overhead. */
  underlay?: number;
  /**
   * Default: the underlay's MTU − overhead with `underlay`; without `underlay` the kernel leaves 1500,
   * too big for a 1500-byte underlay, so set it then. With `underlay`, a larger value is clamped to
   * underlay MTU − 50 silently at creation (a later change above it is EINVAL).
   */
  mtu?: number;
  /** Pin the device's MAC (else the kernel draws a random one). */
  mac?: MAC;
  /** ifindex of the bridge to enslave the device to (in the same request). */
  master?: number;
  /** Set after creation (the kernel ignores IFLA_IFALIAS on creation). */
  alias?: string;
  up?: boolean;
}

export function checkVni(vni: unknown): number {
  if (typeof vni !== 'number' || !Number.isInteger(vni) || vni < 0 || vni > VNI_MAX) {
    throw new InvalidArgumentError(`invalid VNI ${JSON.stringify(vni)}: must be an integer 0-${VNI_MAX}`);
  }
  return vni;
}

export function checkUdpPort(port: unknown): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 0xffff) {
    throw new InvalidArgumentError(`invalid VXLAN UDP port ${JSON.stringify(port)}: must be an integer 1-65535`);
  }
  return port;
}

function checkLocal(local: unknown): IPAddress {
  if (!(local instanceof IPAddress) || local.isUnspecified) {
    throw new InvalidArgumentError(`invalid VXLAN local address ${typeof local === 'string' ? JSON.stringify(local) : String(local)}: expected a specified IPAddress`);
  }
  return local;
}

/**
 * RTM_NEWLINK payload creating a vxlan device (send with NLM_F_CREATE|NLM_F_EXCL):
 * ifinfomsg + IFLA_IFNAME/MTU/ADDRESS/MASTER + IFLA_LINKINFO{INFO_KIND "vxlan",
 * INFO_DATA{ID, LINK?, LOCAL|LOCAL6, PORT (big-endian), LEARNING, PROXY}}.
 */
export function vxlanCreatePayload(spec: Omit<VxlanSpec, 'alias'>): Buffer {
  const name = parseIfName(spec.name);
  const vni = checkVni(spec.vni);
  const port = checkUdpPort(spec.port);
  const local = checkLocal(spec.local);
  const data = [nla.u32(IFLA_VXLAN_ID, vni)];
  if (spec.underlay !== undefined) data.push(nla.u32(IFLA_VXLAN_LINK, checkIndex(spec.underlay, 'underlay interface index')));
  data.push(nla.binary(local.family === 4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, local.toNetlink()));
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port, 0); // network byte order, no NLA_F_NET_BYTEORDER flag (as iproute2 sends it)
  data.push(nla.binary(IFLA_VXLAN_PORT, portBytes));
  data.push(nla.u8(IFLA_VXLAN_LEARNING, spec.learning ? 1 : 0));
  data.push(nla.u8(IFLA_VXLAN_PROXY, spec.proxy ? 1 : 0));

  const attrs = [nla.string(IFLA_IFNAME, name)];
  if (spec.mtu !== undefined) attrs.push(nla.u32(IFLA_MTU, checkMtu(spec.mtu)));
  if (spec.mac !== undefined) attrs.push(nla.binary(IFLA_ADDRESS, checkMac(spec.mac).bytes));
  if (spec.master !== undefined) attrs.push(nla.u32(IFLA_MASTER, checkIndex(spec.master, 'master (bridge) index')));
  attrs.push(nla.nested(IFLA_LINKINFO, [nla.string(IFLA_INFO_KIND, 'vxlan'), nla.nested(IFLA_INFO_DATA, data)]));
  const up = spec.up ? IFF_UP : 0;
  return Buffer.concat([encodeIfinfomsg({ flags: up, change: up }), ...attrs]);
}
