/**
 * Rtnl: netd's one handle on rtnetlink in a network namespace: links, addresses, routes, and an overlay's
 * FDB and neighbour entries.
 *
 * The socket, its scheduling and its error mapping are in rtnl-socket.ts; link messages in
 * link-messages.ts (vxlan links: vxlan-messages.ts, vxlan-info.ts), addresses in addresses.ts, routes in
 * routes.ts, FDB and neighbour entries in neighbours.ts (messages: neigh-messages.ts). Bad input is refused with
 * InvalidArgumentError before anything is sent; kernel refusals are KernelError(op, errno). Only
 * IFLA_NET_NS_FD moves a new veth peer to another namespace.
 *
 * The package's typed methods are used for dumps, addresses, routes and simple link changes; requests it
 * cannot express are built in link-messages.ts and sent as raw payloads.
 */
import { FlagsGet, FlagsNew, rt, type RtNetlinkSocket } from 'netlink';
import { InvalidArgumentError, KernelError } from '../errors.js';
import { parseIfName, type Family, type IPAddress, type InterfaceAddress, type MAC } from '../net/index.js';
import { AF_INET6, afOf } from './af.js';
import { addAddress, deleteAddress, listAddresses, type AddressInfo } from './addresses.js';
import {
  IFLA_EXT_MASK,
  IFLA_IFNAME,
  IFLA_INET6_ADDR_GEN_MODE,
  IN6_ADDR_GEN_MODE_EUI64,
  IN6_ADDR_GEN_MODE_NONE,
  RTEXT_FILTER_SKIP_STATS,
  bridgeCreatePayload,
  checkAlias,
  checkGroup,
  checkMtu,
  hairpinPayload,
  toLink,
  vethCreatePayload,
  type BridgeSpec,
  type Link,
  type LinkChanges,
  type VethSpec,
} from './link-messages.js';
import type { FdbEntry, FdbInfo, NeighbourEntry, NeighbourInfo } from './neigh-messages.js';
import { deleteFdb, deleteNeighbour, listFdb, listNeighbours, replaceFdb, replaceNeighbour } from './neighbours.js';
import { Netns } from './netns.js';
import { encodeIfinfomsg, nla } from './nlattr.js';
import { addRoute, deleteRoute, listRoutes, type RouteInfo, type RouteSpec } from './routes.js';
import { RtnlSocket, checkIndex, type RtnlOptions } from './rtnl-socket.js';
import { vxlanCreatePayload, type VxlanSpec } from './vxlan-messages.js';

export { LOOPBACK_IFINDEX, bridgeCreatePayload, hairpinPayload, vethCreatePayload } from './link-messages.js';
export type { BridgeSpec, Link, LinkChanges, VethPayloadSpec, VethSpec } from './link-messages.js';
export type { AddressInfo } from './addresses.js';
export type { RouteInfo, RouteSpec } from './routes.js';
export { toKernelError, type RtnlOptions } from './rtnl-socket.js';
export { VXLAN_IANA_PORT, VXLAN_OVERHEAD_V4, VXLAN_OVERHEAD_V6, vxlanCreatePayload, type VxlanSpec } from './vxlan-messages.js';
export type { VxlanInfo } from './vxlan-info.js';
export { fdbPayload, neighbourPayload, type FdbEntry, type FdbInfo, type NeighbourEntry, type NeighbourInfo } from './neigh-messages.js';

export class Rtnl extends RtnlSocket {
  /**
   * Opens an rtnetlink socket in `netns` (default: the namespace the main thread is in now). The Rtnl
   * keeps its own handle on the namespace: the caller may close `netns` afterwards.
   */
  static open(netns?: Netns, opts: RtnlOptions = {}): Rtnl {
    const handle = netns ? netns.dup() : Netns.current();
    try {
      const r = new Rtnl(handle, opts);
      r.socket('open rtnetlink socket'); // open now, so namespace problems surface here
      return r;
    } catch (err) {
      handle.close();
      throw err;
    }
  }

  // ---- links ----

  /** All links in this namespace. */
  async links(): Promise<Link[]> {
    const msgs = await this.raw(
      'list links',
      rt.MessageType.GETLINK,
      [encodeIfinfomsg(), nla.u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)],
      FlagsGet.DUMP,
    );
    return msgs.filter((m): m is rt.LinkMessage => m.kind === 'link').map(toLink);
  }

  /** The link called `name`, or undefined. */
  async linkByName(name: string): Promise<Link | undefined> {
    parseIfName(name);
    return this.getLink(`get link ${name}`, [encodeIfinfomsg(), nla.string(IFLA_IFNAME, name)]);
  }

  /** The link with ifindex `index`, or undefined. */
  async linkByIndex(index: number): Promise<Link | undefined> {
    checkIndex(index);
    return this.getLink(`get link #${index}`, [encodeIfinfomsg({ index })]);
  }

  private async getLink(op: string, payload: Buffer[]): Promise<Link | undefined> {
    try {
      const msgs = await this.raw(op, rt.MessageType.GETLINK, [...payload, nla.u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)]);
      const m = msgs.find((x): x is rt.LinkMessage => x.kind === 'link');
      return m ? toLink(m) : undefined;
    } catch (err) {
      if (err instanceof KernelError && err.errno === 'ENODEV') return undefined;
      throw err;
    }
  }

  /** Like linkByName, but a missing link is a KernelError(op, 'ENODEV'). */
  private async mustLink(op: string, name: string): Promise<Link> {
    const link = await this.linkByName(name);
    if (!link) throw new KernelError(op, 'ENODEV', `${name} vanished right after creation`);
    return link;
  }

  /** Creates a bridge. Fails with KernelError 'EEXIST' if the name is taken. */
  async createBridge(spec: BridgeSpec): Promise<Link> {
    const payload = bridgeCreatePayload(spec);
    const alias = spec.alias === undefined ? undefined : checkAlias(spec.alias);
    const op = `create bridge ${spec.name}`;
    await this.raw(op, rt.MessageType.NEWLINK, [payload], FlagsNew.CREATE | FlagsNew.EXCL);
    return this.finishCreate(op, spec.name, { alias });
  }

  /**
   * Creates a veth pair in ONE request: the host end here (optionally enslaved to `master` and up), the
   * peer directly inside `peer.netns`, already named, with its MAC and MTU. Nothing is left behind if
   * the kernel refuses any part (it unregisters the pair). Returns the host end.
   */
  async createVeth(spec: VethSpec): Promise<Link> {
    const peer = spec?.peer;
    if (typeof peer !== 'object' || peer === null) throw new InvalidArgumentError(`create veth ${spec?.name}: peer is required`);
    if (!(peer.netns instanceof Netns) || peer.netns.closed) throw new InvalidArgumentError(`create veth ${spec.name}: peer.netns must be an open Netns`);
    const payload = vethCreatePayload({ ...spec, peer: { name: peer.name, netnsFd: peer.netns.fd, mac: peer.mac, mtu: peer.mtu } });
    const alias = spec.alias === undefined ? undefined : checkAlias(spec.alias);
    const op = `create veth ${spec.name}`;
    await this.raw(op, rt.MessageType.NEWLINK, [payload], FlagsNew.CREATE | FlagsNew.EXCL);
    return this.finishCreate(op, spec.name, { alias, ipv6LinkLocal: spec.ipv6LinkLocal });
  }

  /**
   * Creates a vxlan device in ONE request (enslaved to `master` and up if asked): VNI, UDP port, local
   * address, learning off unless asked. Returns it read back, with its settings in `link.vxlan`. Fails with
   * KernelError 'EEXIST' if the name is taken, also when another device of this namespace already has
   * the same VNI, port and local address (the kernel refuses a duplicate).
   */
  async createVxlan(spec: VxlanSpec): Promise<Link> {
    const payload = vxlanCreatePayload(spec);
    const alias = spec.alias === undefined ? undefined : checkAlias(spec.alias);
    const op = `create vxlan ${spec.name}`;
    await this.raw(op, rt.MessageType.NEWLINK, [payload], FlagsNew.CREATE | FlagsNew.EXCL);
    return this.finishCreate(op, spec.name, { alias });
  }

  /**
   * After a create: sets what the kernel ignores when it creates a link (IFLA_IFALIAS, IFLA_AF_SPEC), in a
   * second request, and reads the link back. Both requests go out together, by name; the kernel handles a
   * socket's requests in the order they were sent, so the link read back already carries the changes.
   */
  private async finishCreate(op: string, name: string, changes: LinkChanges): Promise<Link> {
    const [, link] = await Promise.all([this.setLink(name, changes), this.mustLink(op, name)]);
    return link;
  }

  /** Changes a link's admin state, master, MTU and/or alias in one request; the link by ifindex or by name. */
  async setLink(link: number | string, changes: LinkChanges): Promise<void> {
    const byName = typeof link === 'string';
    const index = byName ? 0 : checkIndex(link);
    const data: rt.Link = { index };
    const attrs: NonNullable<Parameters<RtNetlinkSocket['setLink']>[1]> = {};
    // With ifindex 0 the kernel finds the link by IFLA_IFNAME (with an index, IFLA_IFNAME would rename it).
    if (byName) attrs.ifname = parseIfName(link);
    const what: string[] = [];
    if (changes.up !== undefined) {
      data.flags = changes.up ? { up: true } : {};
      data.change = { up: true };
      what.push(changes.up ? 'up' : 'down');
    }
    if (changes.master !== undefined) {
      attrs.master = changes.master === 0 ? 0 : checkIndex(changes.master, 'master (bridge) index');
      what.push(changes.master === 0 ? 'nomaster' : `master #${changes.master}`);
    }
    if (changes.mtu !== undefined) {
      attrs.mtu = checkMtu(changes.mtu);
      what.push(`mtu ${changes.mtu}`);
    }
    if (changes.alias !== undefined) {
      attrs.ifalias = checkAlias(changes.alias);
      what.push('alias');
    }
    if (changes.ipv6LinkLocal !== undefined) {
      attrs.afSpec = new Map([[AF_INET6, nla.u8(IFLA_INET6_ADDR_GEN_MODE, changes.ipv6LinkLocal ? IN6_ADDR_GEN_MODE_EUI64 : IN6_ADDR_GEN_MODE_NONE)]]);
      what.push(`addrgenmode ${changes.ipv6LinkLocal ? 'eui64' : 'none'}`);
    }
    if (changes.group !== undefined) {
      attrs.group = checkGroup(changes.group);
      what.push(`group ${changes.group}`);
    }
    if (what.length === 0) return;
    await this.call(`set link ${byName ? link : `#${index}`} ${what.join(' ')}`, (s, timeout) => s.setLink(data, attrs, { timeout }));
  }

  /**
   * Turns hairpin mode on or off for a bridge port (the link must be enslaved to a bridge): lets the
   * bridge send a frame back out of the port it came in on, which NAT loopback to a published port needs.
   */
  async setBridgePortHairpin(index: number, on: boolean): Promise<void> {
    // RTM_NEWLINK without NLM_F_CREATE changes an existing link (ENODEV if there is none).
    await this.raw(`set hairpin ${on ? 'on' : 'off'} on link #${index}`, rt.MessageType.NEWLINK, [hairpinPayload(index, on)]);
  }

  /** Deletes a link (for a veth, both ends go). KernelError 'ENODEV' if there is no such link. */
  async deleteLink(index: number): Promise<void> {
    checkIndex(index);
    await this.call(`delete link #${index}`, (s, timeout) => s.delLink({ index }, undefined, { timeout }));
  }

  /**
   * Deletes every link of a device group in ONE request (RTM_DELLINK with IFLA_GROUP): the kernel
   * unregisters them together, so they share one RCU grace period instead of waiting for one each. Resolves
   * with false when the group holds no link (ENODEV). KernelError 'EOPNOTSUPP' when a link of the group
   * cannot be deleted (nothing is deleted then); 'EPERM' for group 0.
   */
  async deleteLinkGroup(group: number): Promise<boolean> {
    const g = checkGroup(group);
    if (g === 0) throw new InvalidArgumentError('the default device group (0) cannot be deleted as a group');
    try {
      await this.call(`delete link group ${g}`, (s, timeout) => s.delLink({ index: 0 }, { group: g }, { timeout }));
      return true;
    } catch (err) {
      if (err instanceof KernelError && err.errno === 'ENODEV') return false;
      throw err;
    }
  }

  /**
   * Removes the neighbour (ARP/NDP) entry for `address` on link `index`, if there is one: an address given
   * to a new interface must not be sent to the MAC that held it before.
   */
  async forgetNeighbour(index: number, address: IPAddress): Promise<void> {
    checkIndex(index);
    try {
      await this.call(`forget neighbour ${address} on link #${index}`, (s, timeout) => s.delNeighbor({ family: afOf(address.family), ifindex: index }, { dst: address.toNetlink() }, { timeout }));
    } catch (err) {
      if (!(err instanceof KernelError && err.errno === 'ENOENT')) throw err;
    }
  }

  // ---- an overlay's FDB and neighbour entries (neighbours.ts) ----

  /** Creates or rewrites the FDB entry MAC → remote VTEP on a vxlan device (NTF_SELF, permanent). */
  replaceFdb(entry: FdbEntry): Promise<void> {
    return replaceFdb(this, entry);
  }

  /** Deletes a vxlan device's FDB entry for a MAC (with `dst`: only that remote); false if there was none. */
  deleteFdb(entry: { ifindex: number; mac: MAC; dst?: IPAddress }): Promise<boolean> {
    return deleteFdb(this, entry);
  }

  /** The FDB entries of one device (its own, self: true, and the bridge's for it, self: false). */
  fdb(ifindex: number): Promise<FdbInfo[]> {
    return listFdb(this, ifindex);
  }

  /** Creates or rewrites a permanent neighbour entry IP → MAC on a link. */
  replaceNeighbour(entry: NeighbourEntry): Promise<void> {
    return replaceNeighbour(this, entry);
  }

  /** Deletes the neighbour entry for an address on a link; false if there was none. */
  deleteNeighbour(entry: { ifindex: number; address: IPAddress }): Promise<boolean> {
    return deleteNeighbour(this, entry);
  }

  /** The neighbour entries of one family on one link. */
  neighbours(family: Family, ifindex: number): Promise<NeighbourInfo[]> {
    return listNeighbours(this, family, ifindex);
  }

  // ---- addresses ----

  /** Adds an address to a link (see addresses.ts). KernelError 'EEXIST' if the link already has it. */
  addAddress(index: number, address: InterfaceAddress): Promise<void> {
    return addAddress(this, index, address);
  }

  /** Removes an address from a link. KernelError 'EADDRNOTAVAIL' if it is not there. */
  deleteAddress(index: number, address: InterfaceAddress): Promise<void> {
    return deleteAddress(this, index, address);
  }

  /** Addresses of all links, optionally of one family. */
  addresses(family?: Family): Promise<AddressInfo[]> {
    return listAddresses(this, family);
  }

  // ---- routes (main table) ----

  /** Adds a route to the main table. KernelError 'EEXIST' if it is already there. */
  addRoute(spec: RouteSpec): Promise<void> {
    return addRoute(this, spec);
  }

  /** Deletes a route from the main table. KernelError 'ESRCH' if absent. */
  deleteRoute(spec: RouteSpec): Promise<void> {
    return deleteRoute(this, spec);
  }

  /** Routes of the main table for one family. */
  routes(family: Family): Promise<RouteInfo[]> {
    return listRoutes(this, family);
  }
}
