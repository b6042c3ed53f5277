/**
 * NfnetlinkElementWriter: set and map elements of `table inet <table>` written straight to the kernel,
 * in-process, one nfnetlink batch per apply (kernel/nfnetlink.ts): NFT_MSG_DELSETELEM messages first, then
 * NFT_MSG_NEWSETELEM (NLM_F_CREATE, as `nft add element`: adding an element that is there is no error),
 * each naming the table and set and carrying a list of elements:
 *
 *   NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET,
 *   NFTA_SET_ELEM_LIST_ELEMENTS { NFTA_LIST_ELEM { NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE }, [KEY_END], [DATA] } … }
 *
 * A key or value of several fields (a concatenation) has each field padded to 4 bytes (the kernel's
 * 32-bit registers); a single field keeps its own width. Everything is checked before anything is sent:
 * a hostile or malformed value never reaches the kernel.
 */
import { InvalidArgumentError } from '../errors.js';
import { IPAddress } from '../net/index.js';
import { nla, NLA_F_NESTED, NLA_HDRLEN, nlaAlign, writeAttrHeader } from '../kernel/nlattr.js';
import { NFPROTO, NFT_MSG, NLM_F_CREATE, NfnetlinkBatches, type NftMessage } from '../kernel/nfnetlink.js';
import type { NftElement, NftElementWriter, NftField, NftSetChange } from './nft-elements.js';

const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_SET_ELEM_KEY_END = 10;
const NFTA_DATA_VALUE = 1;
/** A concatenation has at most this many fields (NFT_REG32_COUNT: the registers a key spans). */
const MAX_FIELDS = 16;
/** Bytes of elements per message: NFTA_SET_ELEM_LIST_ELEMENTS is one attribute, whose length is a u16. */
const ELEMENTS_BYTES = 60_000;
/** Table and set names: what nft's scanner takes as an identifier, within NFT_NAME_MAXLEN (256 with the NUL). */
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,254}$/;
const FIELD_TYPES: ReadonlySet<string> = new Set(['ipv4_addr', 'ipv6_addr', 'inet_proto', 'inet_service']);

function checkName(what: string, name: unknown): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw new InvalidArgumentError(`invalid nftables ${what} name ${JSON.stringify(name)}`);
  return name;
}

function checkField(f: unknown, where: string): NftField {
  const field = f as NftField;
  if (typeof f !== 'object' || f === null || !FIELD_TYPES.has(field.type)) throw new InvalidArgumentError(`${where}: unknown field ${JSON.stringify(f)}`);
  const v: unknown = field.value;
  const ok =
    field.type === 'ipv4_addr' ? v instanceof IPAddress && v.family === 4
    : field.type === 'ipv6_addr' ? v instanceof IPAddress && v.family === 6
    : field.type === 'inet_proto' ? Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xff
    : Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff;
  if (!ok) throw new InvalidArgumentError(`${where}: invalid ${field.type} value ${String(v)}`);
  return field;
}

function checkFields(fields: unknown, where: string): NftField[] {
  if (!Array.isArray(fields) || fields.length === 0 || fields.length > MAX_FIELDS) throw new InvalidArgumentError(`${where}: needs 1 to ${MAX_FIELDS} fields`);
  return fields.map((f, i) => checkField(f, `${where} field ${i}`));
}

/** The field types of an element's key, key end and data: every element of one set must have the same. */
function shapeOf(e: NftElement): string {
  const types = (fs?: NftField[]) => (fs ? fs.map((f) => f.type).join('.') : '-');
  return `${types(e.key)}|${types(e.keyEnd)}|${types(e.data)}`;
}

function checkElement(e: unknown, where: string): NftElement {
  if (typeof e !== 'object' || e === null) throw new InvalidArgumentError(`${where}: not an element`);
  const el = e as NftElement;
  const key = checkFields(el.key, `${where} key`);
  const keyEnd = el.keyEnd === undefined ? undefined : checkFields(el.keyEnd, `${where} key end`);
  const data = el.data === undefined ? undefined : checkFields(el.data, `${where} data`);
  if (keyEnd && keyEnd.map((f) => f.type).join('.') !== key.map((f) => f.type).join('.')) throw new InvalidArgumentError(`${where}: key end fields differ from the key's`);
  return { key, keyEnd, data };
}

/** Bytes of one field: padded to 4 in a concatenation. */
function fieldLen(f: NftField, padded: boolean): number {
  if (f.type === 'ipv6_addr') return 16;
  if (padded || f.type === 'ipv4_addr') return 4;
  return f.type === 'inet_proto' ? 1 : 2;
}

function valueLen(fields: readonly NftField[]): number {
  let n = 0;
  for (const f of fields) n += fieldLen(f, fields.length > 1);
  return n;
}

/** Writes the fields at `off` (the buffer is zero-filled: padding stays zero). */
function writeValue(b: Buffer, off: number, fields: readonly NftField[]): void {
  const padded = fields.length > 1;
  for (const f of fields) {
    if (f.type === 'inet_proto') b[off] = f.value;
    else if (f.type === 'inet_service') b.writeUInt16BE(f.value, off);
    else b.set(f.value.bytes, off);
    off += fieldLen(f, padded);
  }
}

/** A key or value as the kernel takes it: the fields in order, each padded to 4 bytes in a concatenation. */
export function encodeValue(fields: readonly NftField[]): Buffer {
  const b = Buffer.alloc(valueLen(fields));
  writeValue(b, 0, fields);
  return b;
}

/** One NFTA_LIST_ELEM { KEY { DATA_VALUE }, [KEY_END { DATA_VALUE }], [DATA { DATA_VALUE }] }, in one buffer. */
export function encodeElement(e: NftElement): Buffer {
  const parts: [number, readonly NftField[]][] = [[NFTA_SET_ELEM_KEY, e.key]];
  if (e.keyEnd) parts.push([NFTA_SET_ELEM_KEY_END, e.keyEnd]);
  if (e.data) parts.push([NFTA_SET_ELEM_DATA, e.data]);
  const lens = parts.map(([, fields]) => valueLen(fields));
  const total = NLA_HDRLEN + lens.reduce((n, len) => n + 2 * NLA_HDRLEN + nlaAlign(len), 0);
  const b = Buffer.alloc(total);
  let off = writeAttrHeader(b, 0, total, NFTA_LIST_ELEM | NLA_F_NESTED);
  parts.forEach(([type, fields], i) => {
    off = writeAttrHeader(b, off, 2 * NLA_HDRLEN + lens[i], type | NLA_F_NESTED);
    off = writeAttrHeader(b, off, NLA_HDRLEN + lens[i], NFTA_DATA_VALUE);
    writeValue(b, off, fields);
    off += nlaAlign(lens[i]);
  });
  return b;
}

/** The messages of one change of one kind, each holding as many elements as fit in its list attribute. */
function setElemMessages(table: string, set: string, type: number, elements: readonly NftElement[]): NftMessage[] {
  const out: NftMessage[] = [];
  const head = [nla.string(NFTA_SET_ELEM_LIST_TABLE, table), nla.string(NFTA_SET_ELEM_LIST_SET, set)];
  const kind = type === NFT_MSG.NEWSETELEM ? 'add to' : 'delete from';
  let chunk: Buffer[] = [];
  let bytes = 0;
  const flush = () => {
    if (chunk.length === 0) return;
    const attrs = Buffer.concat([...head, nla.nested(NFTA_SET_ELEM_LIST_ELEMENTS, chunk)]);
    out.push({ type, flags: type === NFT_MSG.NEWSETELEM ? NLM_F_CREATE : 0, family: NFPROTO.inet, attrs, what: `${kind} set ${set} (${chunk.length} elements)` });
    chunk = [];
    bytes = 0;
  };
  for (const e of elements) {
    const enc = encodeElement(e);
    if (bytes + enc.length > ELEMENTS_BYTES) flush();
    chunk.push(enc);
    bytes += enc.length;
  }
  flush();
  return out;
}

/**
 * The batch's messages for these changes (deletes of every set first, then adds), after checking every
 * name and value: throws InvalidArgumentError before anything is built for the kernel.
 */
export function setElemBatch(table: string, changes: readonly NftSetChange[]): NftMessage[] {
  checkName('table', table);
  if (!Array.isArray(changes)) throw new InvalidArgumentError('element changes must be a list');
  const checked = changes.map((c: unknown, i) => {
    if (typeof c !== 'object' || c === null) throw new InvalidArgumentError(`change ${i}: not a set change`);
    const change = c as NftSetChange;
    const set = checkName('set', change.set);
    const list = (l: unknown, what: string): NftElement[] => {
      if (l === undefined) return [];
      if (!Array.isArray(l)) throw new InvalidArgumentError(`set ${set}: ${what} must be a list`);
      return l.map((e, k) => checkElement(e, `set ${set} ${what} ${k}`));
    };
    const add = list(change.add, 'add');
    const del = list(change.delete, 'delete');
    const shapes = new Set([...add, ...del].map(shapeOf));
    if (shapes.size > 1) throw new InvalidArgumentError(`set ${set}: elements of different shapes (${[...shapes].join(', ')})`);
    return { set, add, del };
  });
  return [
    ...checked.flatMap((c) => setElemMessages(table, c.set, NFT_MSG.DELSETELEM, c.del)),
    ...checked.flatMap((c) => setElemMessages(table, c.set, NFT_MSG.NEWSETELEM, c.add)),
  ];
}

/** The element writer over nfnetlink: one socket, opened in the calling thread's network namespace. */
export class NfnetlinkElementWriter implements NftElementWriter {
  private readonly batches: NfnetlinkBatches;

  constructor(timeoutMs = 10_000) {
    this.batches = new NfnetlinkBatches('nft set elements', timeoutMs);
  }

  async apply(table: string, changes: readonly NftSetChange[]): Promise<void> {
    await this.batches.send(setElemBatch(table, changes));
  }

  close(): void {
    this.batches.close();
  }
}
