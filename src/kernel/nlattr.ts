/**
 * Netlink attribute (TLV) encoding and decoding, plus struct ifinfomsg.
 *
 * An attribute is a 4-byte header — u16 nla_len (header + payload, without padding), u16 nla_type — then
 * the payload, then zero padding up to a multiple of 4 bytes. The top two bits of nla_type are flags:
 * NLA_F_NESTED (payload is itself a list of attributes) and NLA_F_NET_BYTEORDER. Integers are in host
 * byte order. The `netlink` package cannot set NLA_F_NESTED (it masks types with 0x3fff), which is why
 * netd builds its link-creation requests with this module.
 */
import { endianness } from 'node:os';

export const NLA_HDRLEN = 4;
export const NLA_ALIGNTO = 4;
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = 0xffff & ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER);
/** nla_len is a u16: header plus payload must fit in 65535 bytes. */
const NLA_MAX_LEN = 0xffff;

const LITTLE_ENDIAN = endianness() === 'LE';

/** Rounds len up to the netlink alignment (4). */
export function nlaAlign(len: number): number {
  return (len + NLA_ALIGNTO - 1) & ~(NLA_ALIGNTO - 1);
}

function checkType(type: number): void {
  if (!Number.isInteger(type) || type < 0 || type > NLA_TYPE_MASK) {
    throw new RangeError(`netlink attribute type ${type} out of range 0-${NLA_TYPE_MASK}`);
  }
}

function checkUint(value: number, bits: 8 | 16 | 32): void {
  if (!Number.isInteger(value) || value < 0 || value > 2 ** bits - 1) {
    throw new RangeError(`value ${value} does not fit in u${bits}`);
  }
}

/** Writes an unsigned integer in host byte order. */
function writeUint(buf: Buffer, value: number, offset: number, bytes: 1 | 2 | 4): void {
  if (bytes === 1) buf.writeUInt8(value, offset);
  else if (bytes === 2) LITTLE_ENDIAN ? buf.writeUInt16LE(value, offset) : buf.writeUInt16BE(value, offset);
  else LITTLE_ENDIAN ? buf.writeUInt32LE(value, offset) : buf.writeUInt32BE(value, offset);
}

function readUint(buf: Uint8Array, offset: number, bytes: 1 | 2 | 4): number {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (bytes === 1) return b.readUInt8(offset);
  if (bytes === 2) return LITTLE_ENDIAN ? b.readUInt16LE(offset) : b.readUInt16BE(offset);
  return LITTLE_ENDIAN ? b.readUInt32LE(offset) : b.readUInt32BE(offset);
}

/**
 * Encodes one attribute: header, payload, zero padding. `flags` may add NLA_F_NESTED or
 * NLA_F_NET_BYTEORDER to the type.
 */
export function encodeAttr(type: number, payload: Uint8Array, flags = 0): Buffer {
  checkType(type);
  const len = NLA_HDRLEN + payload.length;
  if (len > NLA_MAX_LEN) throw new RangeError(`netlink attribute ${type} too long (${len} bytes)`);
  const out = Buffer.alloc(nlaAlign(len)); // zero-filled: padding is zeros
  writeUint(out, len, 0, 2);
  writeUint(out, type | flags, 2, 2);
  out.set(payload, NLA_HDRLEN);
  return out;
}

/** Writes an attribute header (nla_len, nla_type with its flags) at `offset`; returns the offset after it. */
export function writeAttrHeader(buf: Buffer, offset: number, len: number, type: number): number {
  writeUint(buf, len, offset, 2);
  writeUint(buf, type, offset + 2, 2);
  return offset + NLA_HDRLEN;
}

/** Builders for the attribute payload types netd uses. Each returns the encoded, padded attribute. */
export const nla = {
  u8(type: number, value: number): Buffer {
    checkUint(value, 8);
    return encodeAttr(type, Buffer.of(value));
  },
  u16(type: number, value: number): Buffer {
    checkUint(value, 16);
    const b = Buffer.alloc(2);
    writeUint(b, value, 0, 2);
    return encodeAttr(type, b);
  },
  u32(type: number, value: number): Buffer {
    checkUint(value, 32);
    const b = Buffer.alloc(4);
    writeUint(b, value, 0, 4);
    return encodeAttr(type, b);
  },
  /** A NUL-terminated string (NLA_STRING / NLA_NUL_STRING). */
  string(type: number, value: string): Buffer {
    if (value.includes('\0')) throw new RangeError(`netlink string attribute ${type} contains NUL`);
    return encodeAttr(type, Buffer.from(`${value}\0`, 'utf8'));
  },
  binary(type: number, value: Uint8Array): Buffer {
    return encodeAttr(type, value);
  },
  /** A zero-length attribute whose presence is the value (NLA_FLAG). */
  flag(type: number): Buffer {
    return encodeAttr(type, Buffer.alloc(0));
  },
  /** A nested attribute: its payload is the concatenation of already encoded children; sets NLA_F_NESTED. */
  nested(type: number, children: Uint8Array[]): Buffer {
    return encodeAttr(type, Buffer.concat(children), NLA_F_NESTED);
  },
};

export interface DecodedAttr {
  /** The type with the flag bits removed. */
  type: number;
  nested: boolean;
  netByteOrder: boolean;
  /** The payload, without header or padding (a view into the input). */
  value: Buffer;
}

/**
 * Decodes a stream of attributes. Throws on malformed input (nla_len shorter than the header or running
 * past the end); trailing bytes shorter than a header are ignored, as the kernel does.
 */
export function decodeAttrs(input: Uint8Array): DecodedAttr[] {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const out: DecodedAttr[] = [];
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = readUint(buf, off, 2);
    const rawType = readUint(buf, off + 2, 2);
    if (len < NLA_HDRLEN || off + len > buf.length) {
      throw new RangeError(`malformed netlink attribute at offset ${off}: nla_len ${len}, ${buf.length - off} bytes left`);
    }
    out.push({
      type: rawType & NLA_TYPE_MASK,
      nested: (rawType & NLA_F_NESTED) !== 0,
      netByteOrder: (rawType & NLA_F_NET_BYTEORDER) !== 0,
      value: buf.subarray(off + NLA_HDRLEN, off + len),
    });
    off += nlaAlign(len);
  }
  return out;
}

/** Decodes attributes into a map by type; when a type repeats, the last one wins (like nla_parse). */
export function attrMap(input: Uint8Array): Map<number, Buffer> {
  const map = new Map<number, Buffer>();
  for (const a of decodeAttrs(input)) map.set(a.type, a.value);
  return map;
}

function needLength(value: Uint8Array, min: number, what: string): void {
  if (value.length < min) throw new RangeError(`netlink ${what} attribute needs ${min} bytes, has ${value.length}`);
}

/** Readers for attribute payloads (host byte order). */
export const read = {
  u8(value: Uint8Array): number {
    needLength(value, 1, 'u8');
    return readUint(value, 0, 1);
  },
  u16(value: Uint8Array): number {
    needLength(value, 2, 'u16');
    return readUint(value, 0, 2);
  },
  u32(value: Uint8Array): number {
    needLength(value, 4, 'u32');
    return readUint(value, 0, 4);
  },
  /** A string attribute, up to its first NUL (or the whole payload if there is none). */
  string(value: Uint8Array): string {
    const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    const nul = b.indexOf(0);
    return b.toString('utf8', 0, nul < 0 ? b.length : nul);
  },
};

/** struct ifinfomsg (16 bytes): the fixed header of RTM_{NEW,DEL,GET,SET}LINK and of VETH_INFO_PEER. */
export interface IfInfoMsg {
  /** AF_UNSPEC (0) for link requests. */
  family?: number;
  /** ARPHRD_* device type. */
  type?: number;
  /** Interface index; 0 lets the kernel choose (creation) or look up by name. */
  index?: number;
  /** IFF_* flags to set... */
  flags?: number;
  /** ...within this mask of IFF_* flags to change. */
  change?: number;
}

export const IFINFOMSG_LEN = 16;

export function encodeIfinfomsg(m: IfInfoMsg = {}): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  const family = m.family ?? 0;
  const type = m.type ?? 0;
  const index = m.index ?? 0;
  const flags = m.flags ?? 0;
  const change = m.change ?? 0;
  checkUint(family, 8);
  checkUint(type, 16);
  if (!Number.isInteger(index) || index < 0 || index > 0x7fffffff) throw new RangeError(`ifindex ${index} out of range`);
  checkUint(flags, 32);
  checkUint(change, 32);
  b.writeUInt8(family, 0); // byte 1 is padding
  writeUint(b, type, 2, 2);
  writeUint(b, index, 4, 4); // int, but only non-negative values are meaningful in requests
  writeUint(b, flags, 8, 4);
  writeUint(b, change, 12, 4);
  return b;
}

export function decodeIfinfomsg(input: Uint8Array): Required<IfInfoMsg> {
  needLength(input, IFINFOMSG_LEN, 'ifinfomsg');
  const index = readUint(input, 4, 4);
  return {
    family: readUint(input, 0, 1),
    type: readUint(input, 2, 2),
    index: index | 0, // the kernel field is a signed int
    flags: readUint(input, 8, 4),
    change: readUint(input, 12, 4),
  };
}
