/**
 * The question of an ordinary query, read straight off the wire without decoding the whole message: the
 * fast path of the embedded DNS. Only the common shape is accepted (one question with a plain name of
 * letters, digits, `-` and `_`, no compression, nothing but an optional EDNS OPT record after it, no
 * trailing bytes); anything else gives `undefined` and goes through the full decoder (wire.ts), which
 * knows every rule and error answer.
 */
import { CLASSIC_UDP_SIZE, MAX_QUERY_BYTES } from './wire.js';

const HEADER_BYTES = 12;
const MAX_NAME_BYTES = 255;
const MAX_LABEL = 63;
const TYPE_OPT = 41;
const QR = 0x8000;
const OPCODE_MASK = 0x7800;

export interface QuestionView {
  /** The query's header flags as received. */
  flags: number;
  /** Offset just past the question (name, type, class). */
  end: number;
  /** Offset just past the name. */
  nameEnd: number;
  qtype: number;
  qclass: number;
  /** Whether an EDNS OPT record came with the query, and the UDP payload size it advertised. */
  edns: boolean;
  udpPayloadSize: number;
}

/** Reads an ordinary query's question; `undefined` when the message needs the full decoder. */
export function readQuestion(buf: Buffer): QuestionView | undefined {
  const length = buf.length;
  if (length < HEADER_BYTES + 5 || length > MAX_QUERY_BYTES) return undefined;
  const flags = (buf[2] << 8) | buf[3];
  if ((flags & (QR | OPCODE_MASK)) !== 0) return undefined;
  // QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 0 or 1.
  if (buf[4] !== 0 || buf[5] !== 1 || buf[6] !== 0 || buf[7] !== 0 || buf[8] !== 0 || buf[9] !== 0 || buf[10] !== 0) return undefined;
  const additional = buf[11];
  if (additional > 1) return undefined;
  let at = HEADER_BYTES;
  for (;;) {
    if (at >= length) return undefined;
    const label = buf[at];
    if (label === 0) break;
    if (label > MAX_LABEL || at + 1 + label > length) return undefined;
    for (let i = at + 1; i <= at + label; i++) if (!plainByte(buf[i])) return undefined;
    at += 1 + label;
    if (at - HEADER_BYTES + 1 > MAX_NAME_BYTES) return undefined;
  }
  // The root name (a lone zero byte) is left to the full decoder.
  if (at === HEADER_BYTES) return undefined;
  const nameEnd = at + 1;
  const end = nameEnd + 4;
  if (end > length) return undefined;
  const qtype = (buf[nameEnd] << 8) | buf[nameEnd + 1];
  const qclass = (buf[nameEnd + 2] << 8) | buf[nameEnd + 3];
  if (additional === 0) {
    if (end !== length) return undefined;
    return { flags, end, nameEnd, qtype, qclass, edns: false, udpPayloadSize: CLASSIC_UDP_SIZE };
  }
  // OPT: root owner, type 41, class = payload size, 4 bytes TTL (extended rcode, version, flags), rdata.
  if (end + 11 > length || buf[end] !== 0 || ((buf[end + 1] << 8) | buf[end + 2]) !== TYPE_OPT) return undefined;
  const rdlength = (buf[end + 9] << 8) | buf[end + 10];
  if (end + 11 + rdlength !== length) return undefined;
  return { flags, end, nameEnd, qtype, qclass, edns: true, udpPayloadSize: (buf[end + 3] << 8) | buf[end + 4] };
}

/** Letters, digits, `-` and `_`: the bytes of names netd could hold (anything else takes the full path). */
function plainByte(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x5f;
}

/** The question's name in lower case, as the wire spells it (length bytes and all): a cheap map key. */
export function wireNameKey(buf: Buffer, q: QuestionView): string {
  return buf.toString('latin1', HEADER_BYTES, q.nameEnd).toLowerCase();
}

/** The question's name as dotted text in lower case, without the trailing dot. */
export function dottedName(buf: Buffer, q: QuestionView): string {
  let out = '';
  let at = HEADER_BYTES;
  while (buf[at] !== 0) {
    const label = buf[at];
    if (out !== '') out += '.';
    out += buf.toString('latin1', at + 1, at + 1 + label);
    at += 1 + label;
  }
  return out.toLowerCase();
}

/** The largest UDP answer the asker accepts (RFC 6891: below 512 means 512). */
export function udpLimitOf(q: QuestionView): number {
  return q.edns ? Math.max(q.udpPayloadSize, CLASSIC_UDP_SIZE) : CLASSIC_UDP_SIZE;
}
