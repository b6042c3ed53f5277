/**
 * The conntrack table over ctnetlink (NETLINK_NETFILTER), in-process: one dump of a family's entries,
 * and deletions of chosen entries by their original tuple, hundreds per send. Deleting an entry by its
 * tuple is a hash lookup, whereas each `conntrack -D` line with a tuple walks the whole table: deleting
 * N entries here costs one dump plus N lookups, not N walks.
 *
 */
import { endianness } from 'node:os';
import { NLA_F_NESTED, NLA_HDRLEN, NLA_TYPE_MASK, nlaAlign } from '../kernel/nlattr.js';
import { errnoName, NetlinkExchange } from '../kernel/netlink-exchange.js';
import type { Family } from '../net/index.js';

const LE = endianness() === 'LE';
const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;

const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_REPLY = 2;
const CTA_ZONE = 18;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;

function afOf(family: Family): number {
  return family === 6 ? 10 : 2;
}

/**
 * One entry, decoded only as far as a sweep needs: addresses are views into the dump's buffer (4 or 16
 * network-order bytes), nothing is copied or parsed into objects (a dump may hold a million entries).
 */
export interface CtEntry {
  /** IP protocol number. */
  proto: number;
  src: Buffer;
  dst: Buffer;
  sport: number;
  dport: number;
  /** The reply direction's source address and port: the original destination unless DNATed. */
  replySrc: Buffer;
  replySport: number;
  /** The conntrack zone (0: none). */
  zone: number;
}

/** struct nfgenmsg: family, version 0, res_id 0. */
function nfgenmsg(family: Family): Buffer {
  return Buffer.from([afOf(family), 0, 0, 0]);
}

/** The offset of the payload of the first attribute of `type` in b[start, end), or -1. */
function findAttr(b: Buffer, start: number, end: number, type: number): number {
  let off = start;
  while (off + NLA_HDRLEN <= end) {
    const len = LE ? b.readUInt16LE(off) : b.readUInt16BE(off);
    if (len < NLA_HDRLEN || off + len > end) return -1;
    const t = (LE ? b.readUInt16LE(off + 2) : b.readUInt16BE(off + 2)) & NLA_TYPE_MASK;
    if (t === type) return off + NLA_HDRLEN;
    off += nlaAlign(len);
  }
  return -1;
}

/** The end of the attribute whose payload starts at `at`. */
function attrEnd(b: Buffer, at: number): number {
  return at - NLA_HDRLEN + (LE ? b.readUInt16LE(at - NLA_HDRLEN) : b.readUInt16BE(at - NLA_HDRLEN));
}

/** The payload of the attribute of `type`, or undefined. */
function attrValue(b: Buffer, start: number, end: number, type: number): Buffer | undefined {
  const at = findAttr(b, start, end, type);
  return at < 0 ? undefined : b.subarray(at, attrEnd(b, at));
}

interface Tuple {
  src: Buffer;
  dst: Buffer;
  proto: number;
  sport: number;
  dport: number;
}

function decodeTuple(b: Buffer, at: number): Tuple | undefined {
  const end = attrEnd(b, at);
  const ip = findAttr(b, at, end, CTA_TUPLE_IP);
  const pr = findAttr(b, at, end, CTA_TUPLE_PROTO);
  if (ip < 0 || pr < 0) return undefined;
  const ipEnd = attrEnd(b, ip);
  const src = attrValue(b, ip, ipEnd, CTA_IP_V4_SRC) ?? attrValue(b, ip, ipEnd, CTA_IP_V6_SRC);
  const dst = attrValue(b, ip, ipEnd, CTA_IP_V4_DST) ?? attrValue(b, ip, ipEnd, CTA_IP_V6_DST);
  const prEnd = attrEnd(b, pr);
  const num = attrValue(b, pr, prEnd, CTA_PROTO_NUM);
  const sport = attrValue(b, pr, prEnd, CTA_PROTO_SRC_PORT);
  const dport = attrValue(b, pr, prEnd, CTA_PROTO_DST_PORT);
  if (!src || !dst || !num || num.length < 1 || !sport || sport.length < 2 || !dport || dport.length < 2) return undefined;
  if ((src.length !== 4 && src.length !== 16) || src.length !== dst.length) return undefined;
  return { src, dst, proto: num[0], sport: sport.readUInt16BE(0), dport: dport.readUInt16BE(0) };
}

/** Decodes one IPCTNL_MSG_CT_NEW payload of a dump (nfgenmsg, then attributes); undefined if portless. */
export function decodeEntry(payload: Buffer): CtEntry | undefined {
  const orig = findAttr(payload, 4, payload.length, CTA_TUPLE_ORIG);
  const reply = findAttr(payload, 4, payload.length, CTA_TUPLE_REPLY);
  if (orig < 0 || reply < 0) return undefined;
  const o = decodeTuple(payload, orig);
  const r = decodeTuple(payload, reply);
  if (!o || !r) return undefined;
  const zone = attrValue(payload, 4, payload.length, CTA_ZONE);
  return { proto: o.proto, src: o.src, dst: o.dst, sport: o.sport, dport: o.dport, replySrc: r.src, replySport: r.sport, zone: zone && zone.length >= 2 ? zone.readUInt16BE(0) : 0 };
}

/** Appends an attribute header (and returns the offset after it). */
function putHeader(b: Buffer, off: number, len: number, type: number): number {
  if (LE) {
    b.writeUInt16LE(len, off);
    b.writeUInt16LE(type, off + 2);
  } else {
    b.writeUInt16BE(len, off);
    b.writeUInt16BE(type, off + 2);
  }
  return off + NLA_HDRLEN;
}

/** The CT_DELETE payload naming an entry by its original tuple (and zone): written in place, no copies. */
export function deletePayload(family: Family, e: CtEntry): Buffer {
  const alen = e.src.length;
  const ipLen = NLA_HDRLEN + 2 * (NLA_HDRLEN + alen);
  const protoLen = NLA_HDRLEN + 3 * 8;
  const tupleLen = NLA_HDRLEN + ipLen + protoLen;
  const b = Buffer.alloc(4 + tupleLen + (e.zone ? 8 : 0));
  b[0] = afOf(family);
  let off = putHeader(b, 4, tupleLen, CTA_TUPLE_ORIG | NLA_F_NESTED);
  off = putHeader(b, off, ipLen, CTA_TUPLE_IP | NLA_F_NESTED);
  const [srcType, dstType] = alen === 16 ? [CTA_IP_V6_SRC, CTA_IP_V6_DST] : [CTA_IP_V4_SRC, CTA_IP_V4_DST];
  off = putHeader(b, off, NLA_HDRLEN + alen, srcType);
  off += e.src.copy(b, off);
  off = putHeader(b, off, NLA_HDRLEN + alen, dstType);
  off += e.dst.copy(b, off);
  off = putHeader(b, off, protoLen, CTA_TUPLE_PROTO | NLA_F_NESTED);
  off = putHeader(b, off, NLA_HDRLEN + 1, CTA_PROTO_NUM);
  b[off] = e.proto;
  off = putHeader(b, off + 4, NLA_HDRLEN + 2, CTA_PROTO_SRC_PORT);
  b.writeUInt16BE(e.sport, off);
  off = putHeader(b, off + 4, NLA_HDRLEN + 2, CTA_PROTO_DST_PORT);
  b.writeUInt16BE(e.dport, off);
  if (e.zone) b.writeUInt16BE(e.zone, putHeader(b, off + 4, NLA_HDRLEN + 2, CTA_ZONE));
  return b;
}

const CT_TYPE = (msg: number) => (NFNL_SUBSYS_CTNETLINK << 8) | msg;

/** What a deletion did. */
export interface CtDeleted {
  deleted: number;
  /** Already gone (expired, or deleted by someone else): ENOENT. */
  gone: number;
  /** Refused otherwise: errno names with counts. */
  failed: Map<string, number>;
}

/** A conversation with ctnetlink in the current network namespace. */
export class Ctnetlink {
  private readonly ex: NetlinkExchange;

  constructor(timeoutMs = 10_000) {
    this.ex = new NetlinkExchange(NETLINK_NETFILTER, 'conntrack', timeoutMs);
  }

  close(): void {
    this.ex.close();
  }

  /** The entries of a family (the kernel filters by family) that have ports and that `keep` keeps. */
  async list(family: Family, keep: (e: CtEntry) => boolean = () => true): Promise<CtEntry[]> {
    const out: CtEntry[] = [];
    await this.ex.dump(CT_TYPE(IPCTNL_MSG_CT_GET), nfgenmsg(family), (payload) => {
      const e = decodeEntry(payload);
      // Kept entries get their own copies: a view would keep the whole datagram alive.
      if (e && e.src.length === (family === 6 ? 16 : 4) && keep(e)) out.push({ ...e, src: Buffer.from(e.src), dst: Buffer.from(e.dst), replySrc: Buffer.from(e.replySrc) });
    });
    return out;
  }

  async delete(family: Family, entries: readonly CtEntry[]): Promise<CtDeleted> {
    const errnos = await this.ex.requests(entries.map((e) => ({ type: CT_TYPE(IPCTNL_MSG_CT_DELETE), payload: deletePayload(family, e) })));
    const out: CtDeleted = { deleted: 0, gone: 0, failed: new Map() };
    for (const errno of errnos) {
      if (errno === 0) out.deleted++;
      else if (errno === 2) out.gone++;
      else {
        const name = errnoName(errno);
        out.failed.set(name, (out.failed.get(name) ?? 0) + 1);
      }
    }
    return out;
  }
}
