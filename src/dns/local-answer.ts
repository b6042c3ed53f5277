/**
 * netd's own answers (A, AAAA, PTR, NODATA, NXDOMAIN) encoded by hand for a query read by question.ts,
 * in the form the answer cache keeps: the whole response and its truncated twin (TC set, no records:
 * "ask again over TCP"), each echoing the query's question and EDNS. Answer owner names point at the
 * question (compression pointer to offset 12), so that a cached response serves any later asker once its
 * id, RD/CD flags and question bytes (the asker's own letter case, DNS 0x20) are copied in.
 */
import type { QuestionView } from './question.js';
import { EDNS_UDP_SIZE } from './wire.js';

const HEADER_BYTES = 12;
const QR = 0x8000;
const AA = 0x0400;
const TC = 0x0200;
const RD = 0x0100;
const RA = 0x0080;
const CD = 0x0010;
const CLASS_IN = 1;
const TYPE_OPT = 41;
const OPT_BYTES = 11;
/** Owner name (pointer), type, class, TTL, rdata length. */
const RECORD_FIXED_BYTES = 12;
const POINTER_TO_QUESTION = 0xc000 | HEADER_BYTES;
const MAX_NAME_BYTES = 255;

export interface LocalRecord {
  type: number;
  rdata: Buffer;
}

export class EncodedAnswer {
  private constructor(
    private readonly full: Buffer,
    private readonly truncated: Buffer,
  ) {}

  /** The answer to `query` (as read into `q`): `rcode`, authoritative, with these records for its question. */
  static build(query: Buffer, q: QuestionView, rcode: number, records: readonly LocalRecord[], ttl: number): EncodedAnswer {
    const flags = QR | RA | AA | rcode;
    return new EncodedAnswer(encode(query, q, flags, records, ttl), encode(query, q, flags | TC, [], ttl));
  }

  /** A fresh response for this asker: its id, RD and CD flags and question bytes; truncated when it exceeds `limit`. */
  reply(query: Buffer, q: QuestionView, limit: number | undefined): Buffer {
    const source = limit === undefined || this.full.length <= limit ? this.full : this.truncated;
    const out = Buffer.allocUnsafe(source.length);
    source.copy(out);
    out[0] = query[0];
    out[1] = query[1];
    // The cached flags carry neither RD nor CD: the asker's are or-ed in.
    const echoed = q.flags & (RD | CD);
    out[2] |= echoed >> 8;
    out[3] |= echoed & 0xff;
    query.copy(out, HEADER_BYTES, HEADER_BYTES, q.end);
    return out;
  }

  get size(): number {
    return this.full.length;
  }
}

function encode(query: Buffer, q: QuestionView, flags: number, records: readonly LocalRecord[], ttl: number): Buffer {
  let length = q.end + (q.edns ? OPT_BYTES : 0);
  for (const r of records) length += RECORD_FIXED_BYTES + r.rdata.length;
  const out = Buffer.alloc(length);
  // The id and RD/CD are the asker's, patched in by reply().
  out.writeUInt16BE(flags, 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(records.length, 6);
  out.writeUInt16BE(q.edns ? 1 : 0, 10);
  query.copy(out, HEADER_BYTES, HEADER_BYTES, q.end);
  let at = q.end;
  for (const r of records) {
    out.writeUInt16BE(POINTER_TO_QUESTION, at);
    out.writeUInt16BE(r.type, at + 2);
    out.writeUInt16BE(CLASS_IN, at + 4);
    out.writeUInt32BE(ttl, at + 6);
    out.writeUInt16BE(r.rdata.length, at + 10);
    r.rdata.copy(out, at + RECORD_FIXED_BYTES);
    at += RECORD_FIXED_BYTES + r.rdata.length;
  }
  if (q.edns) {
    // Root owner, OPT, netd's payload size, extended rcode 0, version 0, no flags, no options.
    out[at] = 0;
    out.writeUInt16BE(TYPE_OPT, at + 1);
    out.writeUInt16BE(EDNS_UDP_SIZE, at + 3);
  }
  return out;
}

/** A domain name in wire form (uncompressed), or undefined when it is not a plain ASCII name DNS can carry. */
export function wireName(dotted: string): Buffer | undefined {
  const labels = dotted.replace(/\.$/, '').split('.');
  const out = Buffer.alloc(dotted.length + 2);
  let at = 0;
  for (const label of labels) {
    if (label.length === 0 || label.length > 63 || !/^[\x21-\x7e]+$/.test(label)) return undefined;
    out[at++] = label.length;
    at += out.write(label, at, 'latin1');
  }
  out[at++] = 0;
  return at > MAX_NAME_BYTES ? undefined : out.subarray(0, at);
}
