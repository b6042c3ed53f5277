/**
 * Connection tracking over netlink (NETLINK_NETFILTER, subsystem ctnetlink): deleting the entries of
 * flows that match, in-process, instead of running `conntrack -D` once per match.
 *
 * The kernel can only delete an entry named by its exact original tuple, so a deletion is: one dump of
 * the family's table, the matching done here, then one IPCTNL_MSG_CT_DELETE per match (all sent
 * together on one socket). An entry that vanished in between (ENOENT) is not an error. A namespace that
 * tracks no connection at all (nf_conntrack_count 0) is not dumped.
 *
 * Message layout: nlmsghdr, then struct nfgenmsg { u8 family; u8 version; be16 res_id }, then
 * attributes. Tuples are nested: CTA_TUPLE_ORIG/REPLY { CTA_TUPLE_IP { CTA_IP_V4_SRC ... },
 * CTA_TUPLE_PROTO { CTA_PROTO_NUM u8, CTA_PROTO_SRC_PORT be16, CTA_PROTO_DST_PORT be16 } }.
 */
import { createNetlink, FlagsGet, type NetlinkSocket } from 'netlink';
import { KernelError } from '../errors.js';
import { afOf, parseIp, type IpFamily } from './ipaddr.js';
import { attrMap, encodeAttr, nla, NLA_F_NESTED } from './nlattr.js';
import type { Netns } from './netns.js';
import { readSysctl } from './sysctl.js';
import { toKernelError } from './rtnetlink.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const MSG_GET = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
const MSG_DELETE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;

const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_REPLY = 2;
const CTA_ZONE = 18;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_TUPLE_ZONE = 3;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;

export type FlowProtocol = 'tcp' | 'udp' | 'sctp';
const PROTO_NUM: Record<FlowProtocol, number> = { tcp: 6, udp: 17, sctp: 132 };

/** Which entries to delete: every given field must match. */
export interface FlowMatch {
  family: IpFamily;
  proto: FlowProtocol;
  /** Source address of the reply direction: the container that answers (after DNAT). */
  replySrc?: string;
  replySrcPort?: number;
  /** Destination port of the original direction: the published host port. */
  origDstPort?: number;
}

/** One side of a conntrack entry, as the kernel reports it. */
export interface Tuple {
  src: Buffer;
  dst: Buffer;
  proto: number;
  srcPort?: number;
  dstPort?: number;
}

export interface ConntrackEntry {
  family: IpFamily;
  orig: Tuple;
  reply: Tuple;
  /** The raw CTA_TUPLE_ORIG attribute (sent back as is to delete the entry) and zone, if any. */
  origAttr: Buffer;
  zone?: Buffer;
}

/** The equivalent conntrack(8) command line, for logs. */
export function describeFlowMatch(m: FlowMatch): string {
  const parts = ['conntrack -D', ...(m.family === 6 ? ['-f ipv6'] : []), `-p ${m.proto}`];
  if (m.replySrc !== undefined) parts.push(`--reply-src ${m.replySrc}`);
  if (m.replySrcPort !== undefined) parts.push(`--reply-port-src ${m.replySrcPort}`);
  if (m.origDstPort !== undefined) parts.push(`--orig-port-dst ${m.origDstPort}`);
  return parts.join(' ');
}

function nfgenmsg(family: IpFamily): Buffer {
  return Buffer.from([afOf(family), 0, 0, 0]);
}

function decodeTuple(attr: Buffer, family: IpFamily): Tuple | undefined {
  const t = attrMap(attr);
  const ip = t.get(CTA_TUPLE_IP);
  const proto = t.get(CTA_TUPLE_PROTO);
  if (!ip || !proto) return undefined;
  const ips = attrMap(ip);
  const src = ips.get(family === 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC);
  const dst = ips.get(family === 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST);
  const p = attrMap(proto);
  const num = p.get(CTA_PROTO_NUM);
  if (!src || !dst || !num || num.length < 1) return undefined;
  const port = (b: Buffer | undefined) => (b && b.length >= 2 ? b.readUInt16BE(0) : undefined);
  return { src, dst, proto: num[0], srcPort: port(p.get(CTA_PROTO_SRC_PORT)), dstPort: port(p.get(CTA_PROTO_DST_PORT)) };
}

/** Decodes one ctnetlink message's payload (nfgenmsg + attributes); undefined if it is not a full entry. */
export function decodeEntry(payload: Buffer): ConntrackEntry | undefined {
  try {
    return decodeEntryOrThrow(payload);
  } catch (err) {
    if (err instanceof RangeError) return undefined; // a malformed attribute
    throw err;
  }
}

function decodeEntryOrThrow(payload: Buffer): ConntrackEntry | undefined {
  if (payload.length < 4) return undefined;
  const family = payload[0] === 2 ? 4 : payload[0] === 10 ? 6 : undefined;
  if (!family) return undefined;
  const attrs = attrMap(payload.subarray(4));
  const origAttr = attrs.get(CTA_TUPLE_ORIG);
  const replyAttr = attrs.get(CTA_TUPLE_REPLY);
  if (!origAttr || !replyAttr) return undefined;
  const orig = decodeTuple(origAttr, family);
  const reply = decodeTuple(replyAttr, family);
  if (!orig || !reply) return undefined;
  return { family, orig, reply, origAttr, zone: attrs.get(CTA_ZONE) };
}

interface CompiledMatch {
  family: IpFamily;
  proto: number;
  replySrc?: Buffer;
  replySrcPort?: number;
  origDstPort?: number;
}

function compile(m: FlowMatch): CompiledMatch {
  const proto = PROTO_NUM[m.proto];
  if (proto === undefined) throw new KernelError('conntrack match', 'EINVAL', `unknown protocol ${JSON.stringify(m.proto)}`);
  let replySrc: Buffer | undefined;
  if (m.replySrc !== undefined) {
    const ip = parseIp(m.replySrc, 'conntrack reply source');
    if (ip.family !== m.family) throw new KernelError('conntrack match', 'EINVAL', `${m.replySrc} is not an IPv${m.family} address`);
    replySrc = Buffer.from(ip.bytes);
  }
  return { family: m.family, proto, replySrc, replySrcPort: m.replySrcPort, origDstPort: m.origDstPort };
}

export function entryMatches(e: ConntrackEntry, m: CompiledMatch): boolean {
  if (e.family !== m.family || e.orig.proto !== m.proto) return false;
  if (m.replySrc && !e.reply.src.equals(m.replySrc)) return false;
  if (m.replySrcPort !== undefined && e.reply.srcPort !== m.replySrcPort) return false;
  if (m.origDstPort !== undefined && e.orig.dstPort !== m.origDstPort) return false;
  return true;
}

/** The IPCTNL_MSG_CT_DELETE payload naming an entry by its original tuple (and zone). */
export function deletePayload(e: ConntrackEntry): Buffer[] {
  const parts = [nfgenmsg(e.family), encodeAttr(CTA_TUPLE_ORIG, e.origAttr, NLA_F_NESTED)];
  if (e.zone) parts.push(nla.binary(CTA_ZONE, e.zone));
  return parts;
}

/**
 * Deletes the conntrack entries matching any of `matches` in `opts.netns` (default: the caller's network
 * namespace). Returns how many were deleted. One dump per family involved, however many matches.
 */
export async function deleteConntrackEntries(matches: readonly FlowMatch[], opts: { netns?: Netns; timeoutMs?: number } = {}): Promise<number> {
  if (matches.length === 0) return 0;
  const compiled = matches.map(compile);
  const timeoutMs = opts.timeoutMs ?? 5000;
  // The table is per namespace, but a dump walks the whole hash the namespaces share: when this
  // namespace tracks nothing, there is nothing to walk for.
  const tracked = () => readSysctl('net.netfilter.nf_conntrack_count');
  let count: string | undefined;
  try {
    count = opts.netns ? opts.netns.run(tracked) : tracked();
  } catch {
    count = undefined; // no nf_conntrack loaded, or no sysctl: ask the kernel anyway
  }
  if (count === '0') return 0;
  let sock: NetlinkSocket;
  try {
    const open = () => createNetlink(NETLINK_NETFILTER, { recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
    sock = opts.netns ? opts.netns.run(open) : open();
  } catch (err) {
    throw toKernelError('open ctnetlink socket', err);
  }
  // An 'error' event without a listener would be thrown from the event loop; the requests time out.
  sock.socket.on('error', () => undefined);
  try {
    let deleted = 0;
    for (const family of [4, 6] as const) {
      const mine = compiled.filter((m) => m.family === family);
      if (mine.length === 0) continue;
      let msgs;
      try {
        [msgs] = await sock.request(MSG_GET, [nfgenmsg(family)], { flags: FlagsGet.DUMP, timeout: timeoutMs });
      } catch (err) {
        throw toKernelError(`dump IPv${family} conntrack table`, err);
      }
      const doomed: ConntrackEntry[] = [];
      for (const msg of msgs) {
        if (msg.type >> 8 !== NFNL_SUBSYS_CTNETLINK) continue; // entries come as IPCTNL_MSG_CT_NEW
        const e = decodeEntry(msg.data);
        if (e && mine.some((m) => entryMatches(e, m))) doomed.push(e);
      }
      const results = await Promise.allSettled(doomed.map((e) => sock.request(MSG_DELETE, deletePayload(e), { timeout: timeoutMs })));
      for (const r of results) {
        if (r.status === 'fulfilled') {
          deleted++;
          continue;
        }
        const err = toKernelError('delete conntrack entry', r.reason);
        if (!(err instanceof KernelError && err.errno === 'ENOENT')) throw err; // ENOENT: it expired meanwhile
      }
    }
    return deleted;
  } finally {
    sock.close();
  }
}
