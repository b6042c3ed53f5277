/**
 * The VXLAN device of one overlay network on this host (its "segment"): `vx-<network id12>`, created in
 * the host namespace and enslaved to the network's bridge, unicast-only:
 *
 * - learning off (every remote MAC is a static FDB entry, peer-table.ts) and no all-zeros FDB entry, so
 *   broadcast and unknown unicast are never flooded to other hosts;
 * - ARP/ND suppression (proxy): the device answers a container's ARP request for a remote endpoint from its
 *   permanent neighbour entries;
 * - UDP port 4789 (IANA's, Docker's), always sent (the kernel's default is 8472);
 * - local = the host's advertise address, link = the underlay interface that carries it, so the kernel
 *   derives the MTU (underlay − 50 over IPv4) and the encapsulated packets leave through it;
 * - UDP checksums and tx checksum offload left at the kernel's defaults (design §1.4: the kubernetes#88986
 *   double-masquerade bug is fixed in Debian 12's kernel; netd never masquerades encapsulated traffic).
 *
 * "Replace, never only add": an existing device of the name is adopted only when it is exactly what is
 * wanted (VNI, port, local address, underlay, learning, proxy) and carries the owner's alias; a device made
 * for another address (the host's address changed) or VNI is deleted and made again. Its FDB and neighbour
 * entries go with it: the caller re-programs the peers (a new PeerTable, resync) when `created` is true.
 * Calls for one network must not overlap (the caller serialises them).
 */
import { ConflictError, InvalidArgumentError, KernelError } from '../../errors.js';
import type { IPAddress } from '../../net/index.js';
import { VXLAN_IANA_PORT, VXLAN_OVERHEAD_V4, VXLAN_OVERHEAD_V6, type Link, type Rtnl } from '../../kernel/rtnetlink.js';
import { checkVni } from '../../kernel/vxlan-messages.js';

/** The overlay's UDP port: IANA's 4789, the same on every host of a cluster. */
export const VXLAN_PORT: number = VXLAN_IANA_PORT;
/** VXLAN's bytes per packet over an IPv4 underlay (50). */
export const VXLAN_OVERHEAD: number = VXLAN_OVERHEAD_V4;

export interface SegmentSpec {
  /** The overlay network's id (at least 12 lowercase hex characters). */
  networkId: string;
  /** The network's VNI (cluster-wide). */
  vni: number;
  /** This host's advertise address: the VTEP address peers send to. Must be an address of this host. */
  local: IPAddress;
  /** ifindex of the network's bridge on this host. */
  bridgeIndex: number;
  /** Overlay MTU; default (and at most) the underlay's MTU − the VXLAN overhead. */
  mtu?: number;
  /** The owner's ifalias (netd's mark for this network): a device with another alias is never touched. */
  alias: string;
}

export interface Segment {
  /** ifindex of the vxlan device. */
  index: number;
  /** The MTU the bridge and the containers' veths must use. */
  mtu: number;
  /** The device was (re)made by this call: it has no FDB or neighbour entries (program the peers again). */
  created: boolean;
  /** ifindex of the underlay interface carrying `local`. */
  underlay: number;
}

/** The vxlan device's name for a network: `vx-` + the first 12 characters of its id (15, IFNAMSIZ − 1). */
export function vxlanName(networkId: string): string {
  if (typeof networkId !== 'string' || !/^[0-9a-f]{12}/.test(networkId)) {
    throw new InvalidArgumentError(`invalid network id ${JSON.stringify(networkId)}: expected at least 12 lowercase hex characters`);
  }
  return `vx-${networkId.slice(0, 12)}`;
}

/** VXLAN's overhead for an underlay of `local`'s family (IPv6's outer header is 40 bytes, not 20). */
export function vxlanOverhead(local: IPAddress): number {
  return local.family === 4 ? VXLAN_OVERHEAD : VXLAN_OVERHEAD_V6;
}

/** The interface of this host that has the address `local`. KernelError 'EADDRNOTAVAIL' if none has it. */
export async function findUnderlay(rtnl: Rtnl, local: IPAddress): Promise<Link> {
  const op = `find the underlay interface of ${local}`;
  const found = (await rtnl.addresses(local.family)).find((a) => a.cidr.address.equals(local));
  const link = found && (await rtnl.linkByIndex(found.index));
  if (!link) {
    throw new KernelError(op, 'EADDRNOTAVAIL', `no interface of this host has the address ${local}: the advertise address must be one of the host's own`);
  }
  return link;
}

/** The MTU of the underlay interface that carries `local`. */
export async function underlayMtu(rtnl: Rtnl, local: IPAddress): Promise<number> {
  return (await findUnderlay(rtnl, local)).mtu;
}

/** A device with our name is ours with our alias, or with none (a create interrupted before its alias was set). */
function isOurs(link: Link, alias: string): boolean {
  return !link.alias || link.alias === alias;
}

/** Why an existing device cannot be adopted as the wanted one (undefined: it can). */
export function staleReason(link: Link, want: { vni: number; local: IPAddress; underlay: number }): string | undefined {
  const v = link.vxlan;
  if (link.kind !== 'vxlan' || !v) return `it is a ${link.kind ?? 'non-vxlan'} device`;
  if (v.vni !== want.vni) return `VNI ${v.vni}, not ${want.vni}`;
  if (v.port !== VXLAN_PORT) return `port ${v.port}, not ${VXLAN_PORT}`;
  if (!want.local.equals(v.local)) return `local address ${v.local ?? 'unset'}, not ${want.local}`;
  if (v.underlay !== want.underlay) return `underlay #${v.underlay ?? 'unset'}, not #${want.underlay}`;
  if (v.learning || !v.proxy || v.l2miss || v.l3miss) return 'learning, proxy or miss flags differ';
  return undefined;
}

function checkSpec(spec: SegmentSpec): void {
  checkVni(spec.vni);
  if (!Number.isInteger(spec.bridgeIndex) || spec.bridgeIndex <= 0) throw new InvalidArgumentError(`invalid bridge index ${JSON.stringify(spec.bridgeIndex)}`);
  if (typeof spec.alias !== 'string' || spec.alias === '') throw new InvalidArgumentError('a vxlan segment needs its owner alias');
  if (spec.local?.isUnspecified !== false) throw new InvalidArgumentError(`invalid VXLAN local address ${String(spec.local)}`);
}

/**
 * Makes sure this host has the network's vxlan device, as wanted, in the bridge and up (see the file's
 * comment). ConflictError when a device of the name belongs to someone else, or when another device of this
 * host already uses the VNI with the same port and local address; KernelError 'EADDRNOTAVAIL' when `local`
 * is not an address of this host; InvalidArgumentError for an MTU above what the underlay allows.
 */
export async function ensureSegment(rtnl: Rtnl, spec: SegmentSpec): Promise<Segment> {
  checkSpec(spec);
  const name = vxlanName(spec.networkId);
  const underlay = await findUnderlay(rtnl, spec.local);
  const max = underlay.mtu - vxlanOverhead(spec.local);
  if (spec.mtu !== undefined && !(Number.isInteger(spec.mtu) && spec.mtu >= 68 && spec.mtu <= max)) {
    throw new InvalidArgumentError(`overlay MTU ${spec.mtu} must be 68-${max}: the underlay ${underlay.name} has MTU ${underlay.mtu}, VXLAN adds ${vxlanOverhead(spec.local)} bytes`);
  }
  const mtu = spec.mtu ?? max;
  const existing = await rtnl.linkByName(name);
  if (existing) {
    if (!isOurs(existing, spec.alias)) {
      throw new ConflictError(`interface ${name} exists and is not this netd's (alias ${JSON.stringify(existing.alias)}): remove it or use another network`);
    }
    if (staleReason(existing, { vni: spec.vni, local: spec.local, underlay: underlay.index }) === undefined) {
      await rtnl.setLink(existing.index, {
        ...(existing.master !== spec.bridgeIndex && { master: spec.bridgeIndex }),
        ...(existing.mtu !== mtu && { mtu }),
        ...(!existing.up && { up: true }),
        ...(existing.alias !== spec.alias && { alias: spec.alias }),
      });
      return { index: existing.index, mtu, created: false, underlay: underlay.index };
    }
    await deleteIfThere(rtnl, existing.index);
  }
  const vxlan = { vni: spec.vni, port: VXLAN_PORT, local: spec.local, learning: false, proxy: true, underlay: underlay.index };
  try {
    const link = await rtnl.createVxlan({ name, ...vxlan, mtu: spec.mtu, master: spec.bridgeIndex, up: true, alias: spec.alias });
    return { index: link.index, mtu: link.mtu, created: true, underlay: underlay.index };
  } catch (err) {
    if (!(err instanceof KernelError && err.errno === 'EEXIST')) throw err;
    // The name was free: another device has the same VNI, port and local address (the kernel refuses a twin).
    const twin = (await rtnl.links()).find((l) => l.vxlan?.vni === spec.vni && l.vxlan.port === VXLAN_PORT && spec.local.equals(l.vxlan.local));
    throw new ConflictError(`VNI ${spec.vni} (port ${VXLAN_PORT}, local ${spec.local}) is already used on this host${twin ? ` by ${twin.name}` : ''}`, { cause: err });
  }
}

async function deleteIfThere(rtnl: Rtnl, index: number): Promise<boolean> {
  try {
    await rtnl.deleteLink(index);
    return true;
  } catch (err) {
    if (err instanceof KernelError && err.errno === 'ENODEV') return false;
    throw err;
  }
}

/** Deletes the network's vxlan device if it is there and ours (see ensureSegment); true if it deleted it. */
export async function removeSegment(rtnl: Rtnl, networkId: string, alias: string): Promise<boolean> {
  const link = await rtnl.linkByName(vxlanName(networkId));
  if (!link || !isOurs(link, alias)) return false;
  return deleteIfThere(rtnl, link.index);
}
