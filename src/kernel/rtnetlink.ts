/**
 * Rtnl: netd's one wrapper around an rtnetlink socket of the `netlink` package.
 *
 * - One socket per Rtnl, bound for life to the network namespace it was opened in (the socket is created
 *   while the main thread is inside that namespace). Links, addresses and routes are read and changed
 *   in that namespace; only IFLA_NET_NS_FD moves a new veth peer elsewhere.
 * - Every request has a deadline (default 5 s, counted from the call, queueing included); at most
 *   `maxInFlight` requests are outstanding on the socket, the rest wait in FIFO order. This keeps the
 *   socket's receive buffer from overflowing (ENOBUFS), which the netlink package reports as an 'error'.
 * - Kernel refusals become KernelError(op, errno); bad input is refused with InvalidArgumentError before
 *   anything is sent.
 * - If the socket reports an error or closes, every pending request is rejected with it and the next call
 *   opens a fresh socket in the same namespace. Callers that cache kernel state should resync then.
 *
 * The package's typed methods are used for dumps, addresses, routes and simple link changes; requests it
 * cannot express (IFLA_LINKINFO for bridge/veth creation, VETH_INFO_PEER, bridge-port options) are built
 * with nlattr.ts and sent as raw payloads.
 */
import { constants as osConstants } from 'node:os';
import { createRtNetlink, FlagsGet, FlagsNew, rt, type RtNetlinkSocket } from 'netlink';
import { InvalidArgumentError, KernelError, NetdError } from '../errors.js';
import { afOf, familyOfAf, formatIp, parseCidr, parseIp, type IpFamily, type IpPrefix } from './ipaddr.js';
import { formatMac, macToBytes, validateIfName, validateMac } from './names.js';
import { Netns } from './netns.js';
import { attrMap, encodeIfinfomsg, nla, read } from './nlattr.js';

// ---- kernel constants (include/uapi/linux/if_link.h, rtnetlink.h, if_addr.h, veth.h, if.h) ----
const IFF_UP = 0x1;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_EXT_MASK = 29;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INFO_SLAVE_DATA = 5;
const IFLA_BRPORT_MODE = 4; // u8: hairpin mode
const AF_INET6 = 10;
const IFLA_INET6_ADDR_GEN_MODE = 8; // inside IFLA_AF_SPEC / AF_INET6
const IN6_ADDR_GEN_MODE_EUI64 = 0;
const IN6_ADDR_GEN_MODE_NONE = 1;
const VETH_INFO_PEER = 1;
const RTEXT_FILTER_SKIP_STATS = 1 << 3;
const RT_TABLE_MAIN = 254;
/** IFALIASZ is 256 including the NUL. */
const IFALIAS_MAX_BYTES = 255;
/** ETH_MIN_MTU .. ETH_MAX_MTU, what bridges and veths accept. */
const MTU_MIN = 68;
const MTU_MAX = 65535;

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
  /** Hardware address, lowercase colon-separated ('' if the device has none). */
  mac: string;
  alias?: string;
}

export interface BridgeSpec {
  name: string;
  mtu?: number;
  /** Setting a MAC pins it; otherwise the kernel picks one and may change it as ports come and go. */
  mac?: string;
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
    mac?: string;
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
}

export interface AddressInfo {
  index: number;
  /** 'address/prefixLen' as configured on the link. */
  cidr: string;
  family: IpFamily;
}

export interface RouteSpec {
  /** Destination prefix ('10.1.0.0/16', 'fd00::/64') or 'default'. */
  dst: string;
  /** Needed only for a default route without a gateway. */
  family?: IpFamily;
  gateway?: string;
  /** Output interface index. */
  oif?: number;
}

export interface RouteInfo {
  /** 'default' or a CIDR. */
  dst: string;
  gateway?: string;
  oif?: number;
  table: number;
  /** Route protocol name as iproute2 prints it: 'kernel', 'boot', 'static', ... (or the number). */
  protocol: string;
  /** 'universe', 'link', 'host', ... (or the number). */
  scope: string;
}

export interface RtnlOptions {
  /** Per-request deadline in ms, queueing included. Default 5000. */
  timeoutMs?: number;
  /** Requests outstanding on the socket at once. Default 32. */
  maxInFlight?: number;
  /** SO_RCVBUF to ask for (the kernel caps it at net.core.rmem_max). Default 4 MiB. */
  recvBufferSize?: number;
}

interface Waiter {
  op: string;
  exclusive: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Linux errno names; Node's table lacks a few the kernel's networking code returns. */
const ERRNO_NAMES = new Map<number, string>([
  ...Object.entries(osConstants.errno).map(([name, num]): [number, string] => [num, name]),
  [54, 'EXFULL'], // e.g. a bridge that has all its 1023 ports
]);

/** Maps whatever the netlink package threw to a KernelError naming the operation. */
export function toKernelError(op: string, err: unknown): NetdError {
  if (err instanceof NetdError) return err;
  const message = err instanceof Error ? err.message : String(err);
  // The package names the errno when libuv knows it, else says "Unknown system error -N".
  const rejected = /^Request rejected: (?:(E[A-Z0-9]+)|-?(\d+)|Unknown system error -(\d+))$/.exec(message);
  if (rejected) {
    const num = rejected[2] ?? rejected[3];
    const code = rejected[1] ?? ERRNO_NAMES.get(Number(num)) ?? `errno ${num}`;
    return new KernelError(op, code, undefined, { cause: err });
  }
  if (message === 'Timeout has been reached') return new KernelError(op, 'ETIMEDOUT', 'no answer from the kernel', { cause: err });
  // libuv reports POLLERR as EBADF. On a netlink socket the pending socket error is, in practice, a
  // receive-queue overrun (the kernel sets ENOBUFS); answers were lost and the socket is reopened.
  if ((err as { syscall?: unknown } | undefined)?.syscall === 'poll') {
    return new KernelError(op, 'ENOBUFS', 'rtnetlink socket failed (POLLERR: receive buffer overrun); it will be reopened, resync state', { cause: err });
  }
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return new KernelError(op, code, message, { cause: err });
  return new KernelError(op, 'EIO', message, { cause: err });
}

function checkIndex(index: unknown, what = 'interface index'): number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index <= 0 || index > 0x7fffffff) {
    throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(index)}`);
  }
  return index;
}

function checkMtu(mtu: unknown): number {
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < MTU_MIN || mtu > MTU_MAX) {
    throw new InvalidArgumentError(`invalid MTU ${JSON.stringify(mtu)}: must be an integer ${MTU_MIN}-${MTU_MAX}`);
  }
  return mtu;
}

function checkAlias(alias: unknown): string {
  if (typeof alias !== 'string' || alias.includes('\0') || Buffer.byteLength(alias) > IFALIAS_MAX_BYTES) {
    throw new InvalidArgumentError(`invalid interface alias ${JSON.stringify(alias)}: a string of at most ${IFALIAS_MAX_BYTES} bytes without NUL`);
  }
  return alias;
}

/** IFLA_INFO_KIND out of a raw IFLA_LINKINFO payload. */
function linkKind(linkinfo: Buffer | undefined): string | undefined {
  if (!linkinfo) return undefined;
  try {
    const kind = attrMap(linkinfo).get(IFLA_INFO_KIND);
    return kind ? read.string(kind) : undefined;
  } catch {
    return undefined; // malformed linkinfo: report the link without a kind rather than fail the dump
  }
}

function toLink(m: rt.LinkMessage): Link {
  const a = m.attrs;
  const link: Link = {
    index: m.data.index ?? 0,
    name: a.ifname ?? '',
    up: Boolean(m.data.flags?.up),
    mtu: a.mtu ?? 0,
    mac: a.address ? formatMac(a.address) : '',
  };
  const kind = linkKind(a.linkinfo);
  if (kind !== undefined) link.kind = kind;
  if (a.master) link.master = a.master;
  if (a.ifalias) link.alias = a.ifalias;
  return link;
}

function enumName(v: unknown): string {
  return typeof v === 'string' ? v.toLowerCase() : String(v ?? 0);
}

/** A validated route: what both addRoute and deleteRoute send. */
interface ParsedRoute {
  family: IpFamily;
  dst?: IpPrefix;
  gateway?: Buffer;
  oif?: number;
  text: string;
}

function parseRoute(spec: RouteSpec): ParsedRoute {
  if (typeof spec !== 'object' || spec === null) throw new InvalidArgumentError('route must be an object');
  const dst = spec.dst === 'default' ? undefined : parseCidr(spec.dst, { network: true, what: 'route destination' });
  const gateway = spec.gateway === undefined ? undefined : parseIp(spec.gateway, 'gateway');
  if (spec.family !== undefined && spec.family !== 4 && spec.family !== 6) {
    throw new InvalidArgumentError(`invalid address family ${JSON.stringify(spec.family)}: 4 or 6`);
  }
  const family = dst?.family ?? gateway?.family ?? spec.family;
  if (family === undefined) throw new InvalidArgumentError('a default route without a gateway needs a family (4 or 6)');
  for (const f of [dst?.family, gateway?.family, spec.family]) {
    if (f !== undefined && f !== family) throw new InvalidArgumentError(`route ${spec.dst} mixes IPv${family} and IPv${f}`);
  }
  const oif = spec.oif === undefined ? undefined : checkIndex(spec.oif, 'output interface index');
  if (gateway === undefined && oif === undefined) throw new InvalidArgumentError(`route ${spec.dst} needs a gateway or an output interface`);
  const text = `${dst?.cidr ?? `default (IPv${family})`}${gateway ? ` via ${gateway.text}` : ''}${oif ? ` dev #${oif}` : ''}`;
  return { family, dst, gateway: gateway?.bytes, oif, text };
}

// ---- raw request payloads (validated; exported so tests can pin them byte for byte) ----

/** RTM_NEWLINK payload creating a bridge (the alias, which the kernel ignores on creation, is not included). */
export function bridgeCreatePayload(spec: Omit<BridgeSpec, 'alias'>): Buffer {
  const name = validateIfName(spec.name);
  const attrs = [nla.string(IFLA_IFNAME, name)];
  if (spec.mtu !== undefined) attrs.push(nla.u32(IFLA_MTU, checkMtu(spec.mtu)));
  if (spec.mac !== undefined) attrs.push(nla.binary(IFLA_ADDRESS, macToBytes(validateMac(spec.mac))));
  attrs.push(nla.nested(IFLA_LINKINFO, [nla.string(IFLA_INFO_KIND, 'bridge')]));
  const up = spec.up ? IFF_UP : 0;
  return Buffer.concat([encodeIfinfomsg({ flags: up, change: up }), ...attrs]);
}

export interface VethPayloadSpec extends Omit<VethSpec, 'peer' | 'alias'> {
  peer: { name: string; netnsFd: number; mac?: string; mtu?: number };
}

/**
 * RTM_NEWLINK payload creating a veth pair: ifinfomsg + IFLA_IFNAME/MTU/MASTER +
 * IFLA_LINKINFO{INFO_KIND "veth", INFO_DATA{VETH_INFO_PEER: ifinfomsg + IFNAME/NET_NS_FD/ADDRESS/MTU}}.
 */
export function vethCreatePayload(spec: VethPayloadSpec): Buffer {
  const name = validateIfName(spec.name);
  const peerName = validateIfName(spec.peer.name);
  const fd = spec.peer.netnsFd;
  if (!Number.isInteger(fd) || fd < 0) throw new InvalidArgumentError(`create veth ${name}: bad peer netns fd ${fd}`);
  const mtu = spec.mtu === undefined ? undefined : checkMtu(spec.mtu);
  const peerMtu = spec.peer.mtu === undefined ? mtu : checkMtu(spec.peer.mtu);
  const master = spec.master === undefined ? undefined : checkIndex(spec.master, 'master (bridge) index');

  // VETH_INFO_PEER carries a struct ifinfomsg followed by the peer's own attributes. It is not a pure
  // attribute list, so it goes without NLA_F_NESTED (as iproute2 sends it); kernel 6.x accepts both.
  const peerAttrs = [encodeIfinfomsg(), nla.string(IFLA_IFNAME, peerName), nla.u32(IFLA_NET_NS_FD, fd)];
  if (spec.peer.mac !== undefined) peerAttrs.push(nla.binary(IFLA_ADDRESS, macToBytes(validateMac(spec.peer.mac))));
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

export class Rtnl {
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  private readonly recvBufferSize: number;
  /** Our own handle on the namespace, so the socket can be reopened there whatever the caller closes. */
  private readonly netns: Netns;
  private sock: RtNetlinkSocket | undefined;
  private isClosed = false;
  private inFlight = 0;
  /** A dump is on the socket: nothing else may be sent until it completes. */
  private exclusiveActive = false;
  private readonly queue: Waiter[] = [];
  /** Rejecters of requests currently on the socket. */
  private readonly pending = new Set<(err: Error) => void>();
  private opened = 0;

  private constructor(netns: Netns, opts: RtnlOptions) {
    this.netns = netns;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.maxInFlight = opts.maxInFlight ?? 32;
    this.recvBufferSize = opts.recvBufferSize ?? 4 << 20;
    if (!(this.timeoutMs > 0) || !Number.isInteger(this.maxInFlight) || this.maxInFlight < 1) {
      throw new InvalidArgumentError('Rtnl: timeoutMs must be > 0 and maxInFlight a positive integer');
    }
  }

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

  /** How many sockets this Rtnl has opened (1 + reopens after errors); for tests and diagnostics. */
  get socketsOpened(): number {
    return this.opened;
  }

  /** The namespace this Rtnl acts in (its dev/ino identify it). */
  get namespace(): { path: string; dev: number; ino: number } {
    return { path: this.netns.path, dev: this.netns.dev, ino: this.netns.ino };
  }

  /** Closes the socket; pending and queued requests are rejected. Idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const w of this.queue.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new KernelError(w.op, 'EBADF', 'rtnetlink handle closed'));
    }
    // Mapped by toKernelError to KernelError(op, 'EBADF') for each request still on the socket.
    if (this.sock) this.drop(this.sock, Object.assign(new Error('rtnetlink handle closed'), { code: 'EBADF' }));
    this.netns.close();
  }

  // ---- socket lifecycle ----

  private socket(op: string): RtNetlinkSocket {
    if (this.isClosed) throw new KernelError(op, 'EBADF', 'rtnetlink handle closed');
    if (this.sock) return this.sock;
    let sock: RtNetlinkSocket;
    try {
      sock = this.netns.run(() => createRtNetlink({ recvBufferSize: this.recvBufferSize, sendBufferSize: 1 << 20 }));
    } catch (err) {
      throw toKernelError(`${op}: open rtnetlink socket in ${this.netns.path}`, err);
    }
    this.opened++;
    // The NetlinkSocket re-emits the raw socket's events. Without an 'error' listener an error event
    // would be thrown from the event loop; with one, it invalidates this socket.
    sock.socket.on('error', (err) => this.drop(sock, err));
    sock.socket.on('close', () => this.drop(sock, new Error('rtnetlink socket closed')));
    this.sock = sock;
    return sock;
  }

  /** Forgets a broken (or closing) socket: rejects what is pending on it and closes it. */
  private drop(sock: RtNetlinkSocket, err: Error): void {
    if (this.sock !== sock) return;
    this.sock = undefined;
    for (const reject of [...this.pending]) reject(err);
    this.pending.clear();
    try {
      sock.socket.close();
    } catch {
      /* already closed by the native side */
    }
  }

  // ---- request scheduling ----
  //
  // Plain requests (one answer each) may share the socket, up to maxInFlight at once. A dump must have
  // the socket to itself: the kernel runs one dump per socket at a time (a second one gets EBUSY), and
  // any other answer arriving between the parts of a multipart reply breaks the package's reassembly.
  // Waiters are served strictly in FIFO order so a dump is never starved by a stream of plain requests.

  private canGrant(exclusive: boolean): boolean {
    return exclusive ? this.inFlight === 0 : !this.exclusiveActive && this.inFlight < this.maxInFlight;
  }

  private grant(exclusive: boolean): void {
    this.inFlight++;
    if (exclusive) this.exclusiveActive = true;
  }

  private acquire(op: string, deadline: number, exclusive: boolean): Promise<void> {
    if (this.queue.length === 0 && this.canGrant(exclusive)) {
      this.grant(exclusive);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        op,
        exclusive,
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) this.queue.splice(i, 1);
          reject(new KernelError(op, 'ETIMEDOUT', `still queued after ${this.timeoutMs} ms (${this.inFlight} requests in flight)`));
          this.pump(); // the waiter behind it may be grantable now
        }, Math.max(0, deadline - Date.now())),
      };
      this.queue.push(waiter);
    });
  }

  private release(exclusive: boolean): void {
    this.inFlight--;
    if (exclusive) this.exclusiveActive = false;
    this.pump();
  }

  /** Grants waiting requests from the head of the queue while the socket has room for them. */
  private pump(): void {
    while (this.queue.length > 0 && this.canGrant(this.queue[0].exclusive)) {
      const next = this.queue.shift() as Waiter;
      clearTimeout(next.timer);
      this.grant(next.exclusive);
      next.resolve();
    }
  }

  /**
   * Runs one request under the scheduling rules and deadline. `send` gets the socket and the time left;
   * its errors are mapped to KernelError(op, ...). `exclusive` marks dumps.
   */
  private async call<T>(op: string, send: (sock: RtNetlinkSocket, timeout: number) => Promise<T>, exclusive = false): Promise<T> {
    if (this.isClosed) throw new KernelError(op, 'EBADF', 'rtnetlink handle closed');
    const deadline = Date.now() + this.timeoutMs;
    await this.acquire(op, deadline, exclusive);
    try {
      const sock = this.socket(op);
      const timeout = Math.max(1, deadline - Date.now());
      return await new Promise<T>((resolve, reject) => {
        // drop() calls this from the socket's 'error' event, i.e. inside the addon: defer (see below).
        const fail = (err: Error) => setImmediate(reject, err);
        this.pending.add(fail);
        const settle = () => this.pending.delete(fail);
        let sent: Promise<T>;
        try {
          sent = send(sock, timeout);
        } catch (err) {
          settle();
          reject(err);
          return;
        }
        // Settle from setImmediate, outside the netlink addon's native callback. Otherwise the caller's
        // continuation runs inside that callback's scope, and any exception thrown later in the same
        // tick by unrelated code (an 'error' event without listener, emitted via process.nextTick) is
        // rethrown by the addon as a C++ exception it never catches: the process aborts, bypassing
        // 'uncaughtException' handlers.
        sent.then(
          (v) => {
            settle();
            setImmediate(resolve, v);
          },
          (e) => {
            settle();
            setImmediate(reject, e);
          },
        );
      });
    } catch (err) {
      throw toKernelError(op, err);
    } finally {
      this.release(exclusive);
    }
  }

  /** Sends a raw rtnetlink message (payload after nlmsghdr) and waits for the kernel's answer. */
  private raw(op: string, type: rt.MessageType, payload: Buffer[], flags = 0): Promise<rt.Message[]> {
    const dump = (flags & FlagsGet.DUMP) === FlagsGet.DUMP;
    return this.call(op, (s, timeout) => s.request(type, payload, { flags, timeout }), dump);
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
    validateIfName(name);
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
    if (byName) attrs.ifname = validateIfName(link);
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

  // ---- addresses ----

  /**
   * Adds 'address/prefixLen' to a link. IPv6 addresses get IFA_F_NODAD so they are usable at once
   * (no duplicate address detection delay). KernelError 'EEXIST' if the link already has it.
   */
  async addAddress(index: number, cidr: string): Promise<void> {
    checkIndex(index);
    const p = parseCidr(cidr, { what: 'interface address' });
    const flags = p.family === 6 ? { nodad: true as const } : {};
    await this.call(`add address ${p.cidr} to link #${index}`, (s, timeout) =>
      s.newAddress(
        { family: afOf(p.family), prefixlen: p.prefixLen, index, scope: 0, flags },
        { local: p.bytes, address: p.bytes, flags },
        { flags: FlagsNew.CREATE | FlagsNew.EXCL, timeout },
      ),
    );
  }

  /** Removes an address from a link. KernelError 'EADDRNOTAVAIL' if it is not there. */
  async deleteAddress(index: number, cidr: string): Promise<void> {
    checkIndex(index);
    const p = parseCidr(cidr, { what: 'interface address' });
    await this.call(`delete address ${p.cidr} from link #${index}`, (s, timeout) =>
      s.delAddress({ family: afOf(p.family), prefixlen: p.prefixLen, index }, { local: p.bytes, address: p.bytes }, { timeout }),
    );
  }

  /** Addresses of all links, optionally of one family. */
  async addresses(family?: IpFamily): Promise<AddressInfo[]> {
    if (family !== undefined && family !== 4 && family !== 6) throw new InvalidArgumentError(`invalid address family ${JSON.stringify(family)}: 4 or 6`);
    const msgs = await this.call('list addresses', (s, timeout) =>
      s.getAddresses({ family: family === undefined ? 0 : afOf(family) }, undefined, { timeout }),
      true,
    );
    const out: AddressInfo[] = [];
    for (const m of msgs) {
      const f = familyOfAf(m.data.family ?? 0);
      const bytes = m.attrs.local ?? m.attrs.address; // IFA_LOCAL is the interface's own address (IPv4)
      if (f === undefined || !bytes || (family !== undefined && f !== family)) continue;
      out.push({ index: m.data.index ?? 0, cidr: `${formatIp(bytes)}/${m.data.prefixlen ?? 0}`, family: f });
    }
    return out;
  }

  // ---- routes (main table) ----

  /** Adds a route to the main table. KernelError 'EEXIST' if it is already there. */
  async addRoute(spec: RouteSpec): Promise<void> {
    const r = parseRoute(spec);
    await this.call(`add route ${r.text}`, (s, timeout) =>
      s.newRoute(
        {
          family: afOf(r.family),
          dstLen: r.dst?.prefixLen ?? 0,
          table: RT_TABLE_MAIN,
          protocol: 'BOOT', // what `ip route add` uses
          // Without a gateway the destination is directly on the link (ip route add X dev Y).
          scope: r.gateway ? 'UNIVERSE' : 'LINK',
          type: 'UNICAST',
        },
        { dst: r.dst?.bytes, gateway: r.gateway, oif: r.oif, table: RT_TABLE_MAIN },
        { flags: FlagsNew.CREATE | FlagsNew.EXCL, timeout },
      ),
    );
  }

  /** Deletes a route from the main table, matched on destination and the gateway/oif given. KernelError 'ESRCH' if absent. */
  async deleteRoute(spec: RouteSpec): Promise<void> {
    const r = parseRoute(spec);
    await this.call(`delete route ${r.text}`, (s, timeout) =>
      s.delRoute(
        // Scope NOWHERE and protocol/type 0 match any, as `ip route del` does.
        { family: afOf(r.family), dstLen: r.dst?.prefixLen ?? 0, table: RT_TABLE_MAIN, scope: 'NOWHERE' },
        { dst: r.dst?.bytes, gateway: r.gateway, oif: r.oif, table: RT_TABLE_MAIN },
        { timeout },
      ),
    );
  }

  /** Routes of the main table for one family. */
  async routes(family: IpFamily): Promise<RouteInfo[]> {
    if (family !== 4 && family !== 6) throw new InvalidArgumentError(`invalid address family ${JSON.stringify(family)}: 4 or 6`);
    const msgs = await this.call(`list IPv${family} routes`, (s, timeout) => s.getRoutes({ family: afOf(family) }, undefined, { timeout }), true);
    const out: RouteInfo[] = [];
    for (const m of msgs) {
      const table = m.attrs.table ?? m.data.table ?? 0;
      if (table !== RT_TABLE_MAIN || m.data.family !== afOf(family)) continue;
      const dstLen = m.data.dstLen ?? 0;
      const info: RouteInfo = {
        dst: dstLen === 0 || !m.attrs.dst ? 'default' : `${formatIp(m.attrs.dst)}/${dstLen}`,
        table,
        protocol: enumName(m.data.protocol),
        scope: enumName(m.data.scope),
      };
      if (m.attrs.gateway) info.gateway = formatIp(m.attrs.gateway);
      if (m.attrs.oif !== undefined) info.oif = m.attrs.oif;
      out.push(info);
    }
    return out;
  }
}
