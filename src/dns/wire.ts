/**
 * DNS messages on the wire, through the `dns-packet` library: decoding a query defensively, encoding
 * answers and error responses that fit the client's transport, and the few fixed-offset header fields
 * (id, TC bit) the forwarder rewrites or reads on packets it otherwise relays untouched.
 */
import * as packet from 'dns-packet';

/** Queries larger than this are refused unread: real queries are a few hundred bytes at most. */
export const MAX_QUERY_BYTES = 4096;
/** What netd advertises in its own EDNS answers (the DNS flag day 2020 value). */
export const EDNS_UDP_SIZE = 1232;
/** Without EDNS a UDP answer may be at most 512 bytes (RFC 1035). */
export const CLASSIC_UDP_SIZE = 512;
const HEADER_BYTES = 12;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = (typeof RCODE)[keyof typeof RCODE];

const OPCODE_QUERY = 0;

export interface Query {
  id: number;
  /** The raw header flags (without QR), as received. */
  flags: number;
  opcode: number;
  recursionDesired: boolean;
  questions: packet.Question[];
  /** Whether the client sent an EDNS OPT record, and the UDP payload size it advertised. */
  edns: boolean;
  udpPayloadSize: number;
}

export type DecodeResult =
  | { ok: true; query: Query }
  /** A packet to answer with an error (the header was readable). */
  | { ok: false; id: number; rcode: Rcode; reason: string }
  /** A packet to drop without a word: too short, or a response (answering responses invites loops). */
  | { ok: false; id?: undefined; reason: string };

/** Decodes a client's query; never throws. */
export function decodeQuery(buf: Buffer): DecodeResult {
  if (buf.length < HEADER_BYTES) return { ok: false, reason: 'shorter than a DNS header' };
  const id = buf.readUInt16BE(0);
  const rawFlags = buf.readUInt16BE(2);
  if (rawFlags & 0x8000) return { ok: false, reason: 'a response, not a query' };
  if (buf.length > MAX_QUERY_BYTES) return { ok: false, id, rcode: RCODE.FORMERR, reason: `query of ${buf.length} bytes` };
  const opcode = (rawFlags >> 11) & 0xf;
  if (opcode !== OPCODE_QUERY) return { ok: false, id, rcode: RCODE.NOTIMP, reason: `opcode ${opcode}` };
  let decoded: packet.DecodedPacket;
  try {
    decoded = packet.decode(buf);
  } catch (err) {
    return { ok: false, id, rcode: RCODE.FORMERR, reason: (err as Error).message };
  }
  const questions = decoded.questions ?? [];
  if (questions.length !== 1) return { ok: false, id, rcode: RCODE.FORMERR, reason: `${questions.length} questions` };
  const opt = (decoded.additionals ?? []).find((a): a is packet.OptAnswer => a.type === 'OPT');
  return {
    ok: true,
    query: {
      id,
      flags: rawFlags,
      opcode,
      recursionDesired: Boolean(rawFlags & packet.RECURSION_DESIRED),
      questions,
      edns: opt !== undefined,
      udpPayloadSize: opt ? opt.udpPayloadSize : CLASSIC_UDP_SIZE,
    },
  };
}

/** The largest UDP answer this client accepts (RFC 6891: below 512 means 512). */
export function udpLimit(query: Query): number {
  if (!query.edns) return CLASSIC_UDP_SIZE;
  return Math.min(Math.max(query.udpPayloadSize, CLASSIC_UDP_SIZE), 65_535);
}

export interface AnswerOptions {
  rcode: Rcode;
  answers?: packet.Answer[];
  authoritative?: boolean;
  /** The size the answer must fit (UDP); answers that do not fit are dropped and TC is set. */
  limit?: number;
}

function responseFlags(query: Query | undefined, rcode: Rcode, authoritative: boolean, truncated: boolean): number {
  let flags = packet.RECURSION_AVAILABLE | rcode;
  if (query) flags |= (query.opcode << 11) | (query.flags & (packet.RECURSION_DESIRED | packet.CHECKING_DISABLED));
  if (authoritative) flags |= packet.AUTHORITATIVE_ANSWER;
  if (truncated) flags |= packet.TRUNCATED_RESPONSE;
  return flags;
}

/** Encodes netd's own answer to a query, echoing its question and EDNS. */
export function encodeAnswer(query: Query, opts: AnswerOptions): Buffer {
  const additionals: packet.Answer[] = query.edns
    ? [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_UDP_SIZE, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }]
    : [];
  const build = (answers: packet.Answer[], truncated: boolean): Buffer =>
    packet.encode({
      id: query.id,
      type: 'response',
      flags: responseFlags(query, opts.rcode, Boolean(opts.authoritative), truncated),
      questions: query.questions,
      answers,
      additionals,
    });
  try {
    const full = build(opts.answers ?? [], false);
    if (opts.limit === undefined || full.length <= opts.limit) return full;
    // Too big for the client's UDP buffer: say so (TC), so that it asks again over TCP.
    return build([], true);
  } catch {
    // A question the library decoded but cannot encode again (e.g. odd bytes in a label): answer
    // with the header alone rather than not at all.
    return headerOnly(query.id, responseFlags(query, opts.rcode === RCODE.NOERROR ? RCODE.SERVFAIL : opts.rcode, false, false));
  }
}

/** An empty answer with TC set: "ask again over TCP". */
export function encodeTruncated(query: Query): Buffer {
  return encodeAnswer(query, { rcode: RCODE.NOERROR, limit: 0 });
}

/** An error response to a query that could not be decoded further than its id. */
export function encodeError(id: number, rcode: Rcode, query?: Query): Buffer {
  if (query) return encodeAnswer(query, { rcode });
  return headerOnly(id, responseFlags(undefined, rcode, false, false));
}

function headerOnly(id: number, flags: number): Buffer {
  const buf = Buffer.alloc(HEADER_BYTES);
  buf.writeUInt16BE(id, 0);
  buf.writeUInt16BE(0x8000 | (flags & 0x7fff), 2);
  return buf;
}

/** A copy of a message with another id (the forwarder hides clients' ids from upstreams). */
export function withId(buf: Buffer, id: number): Buffer {
  const copy = Buffer.from(buf);
  copy.writeUInt16BE(id, 0);
  return copy;
}

export function messageId(buf: Buffer): number {
  return buf.readUInt16BE(0);
}

/** Whether a relayed upstream message is a response (QR) with a full header. */
export function isResponse(buf: Buffer): boolean {
  return buf.length >= HEADER_BYTES && (buf.readUInt16BE(2) & 0x8000) !== 0;
}

export function isTruncated(buf: Buffer): boolean {
  return buf.length >= HEADER_BYTES && (buf.readUInt16BE(2) & packet.TRUNCATED_RESPONSE) !== 0;
}

/** Prefixes a message with its two-byte length, for DNS over TCP (RFC 1035 4.2.2). */
export function tcpFrame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + message.length);
  out.writeUInt16BE(message.length, 0);
  message.copy(out, 2);
  return out;
}

/**
 * Splits DNS-over-TCP frames out of a byte stream. `push` returns the complete messages so far, or
 * throws when a frame announces a length outside [12, max].
 */
export class TcpFrameReader {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly max: number) {}

  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      if (this.pending.length < 2) break;
      const length = this.pending.readUInt16BE(0);
      if (length < HEADER_BYTES || length > this.max) throw new Error(`TCP frame of ${length} bytes`);
      if (this.pending.length < 2 + length) break;
      out.push(this.pending.subarray(2, 2 + length));
      this.pending = this.pending.subarray(2 + length);
    }
    return out;
  }

  get buffered(): number {
    return this.pending.length;
  }
}
