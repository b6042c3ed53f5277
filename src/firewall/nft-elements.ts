/**
 * Set and map elements of netd's nftables table, and the writers that put them into the kernel. Published
 * ports are nothing but elements (nftables-layout.ts), so publishing is one element transaction.
 *
 * Two writers implement NftElementWriter: NftScriptElementWriter here (one `nft -f -` transaction, argv
 * and stdin through the CommandRunner, never a shell: the fallback and the reference), and the in-process
 * nfnetlink writer (src/firewall/nft-netlink*.ts). Every value is checked before it is rendered: fields are
 * net values of their declared type, set names come from a fixed list, the table name is netd's.
 */
import { InvalidArgumentError, KernelError } from '../errors.js';
import { IPAddress, describeValue as describe } from '../net/index.js';
import type { CommandRunner } from './exec.js';
import { missingTool } from './tools.js';

/** One field of a set key or map value, in the set's declared order. */
export type NftField =
  | { type: 'ipv4_addr'; value: IPAddress } // 4 bytes, network order
  | { type: 'ipv6_addr'; value: IPAddress } // 16 bytes
  | { type: 'inet_proto'; value: number } // 1 byte (padded to 4 in a concatenation)
  | { type: 'inet_service'; value: number }; // 2 bytes big-endian (padded to 4 in a concatenation)
export interface NftElement {
  key: NftField[];
  /** Sets declared `flags interval` with a concatenated key (the kernel's pipapo set): each field's inclusive end. */
  keyEnd?: NftField[];
  /** Maps: the value (e.g. ipv4_addr . inet_service for a DNAT map). */
  data?: NftField[];
}
export interface NftSetChange {
  set: string;
  add?: NftElement[];
  delete?: NftElement[];
}
export interface NftElementWriter {
  /**
   * One atomic transaction on `table inet <table>`: every change or none (deletes before adds). Rejects with a
   * typed error (FirewallError/KernelError from src/errors.ts) carrying the errno name, e.g. ENOENT, EEXIST.
   */
  apply(table: string, changes: readonly NftSetChange[]): Promise<void>;
  close(): void;
}

/** netd's table names: `netd`, or `netd-<instance id>`. */
export const NFT_TABLE_RE = /^netd(?:-[0-9a-f]{6})?$/;

/** The sets and maps whose elements go through a writer (published ports): nftables-layout.ts declares them. */
export const NFT_ELEMENT_SETS = [
  'pf4_addr', 'pf4_any', 'pf4_addr_range', 'pf4_any_range', 'routed4',
  'pf6_addr', 'pf6_any', 'pf6_addr_range', 'pf6_any_range', 'routed6',
] as const;
export type NftElementSet = (typeof NFT_ELEMENT_SETS)[number];

export function checkTableName(table: unknown): string {
  if (typeof table !== 'string' || !NFT_TABLE_RE.test(table)) throw new InvalidArgumentError(`invalid nftables table ${describe(table)}: expected netd or netd-<6 hex>`);
  return table;
}

export function checkSetName(set: unknown): NftElementSet {
  if (typeof set !== 'string' || !(NFT_ELEMENT_SETS as readonly string[]).includes(set)) {
    throw new InvalidArgumentError(`invalid nftables set ${describe(set)}: not one of netd's (${NFT_ELEMENT_SETS.join(', ')})`);
  }
  return set as NftElementSet;
}

const PROTO_NAMES: Readonly<Record<number, string>> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

function checkInt(value: unknown, max: number, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) throw new InvalidArgumentError(`invalid ${what} ${describe(value)}`);
  return value;
}

/** A field as nft prints it in `list` output (and reads it back): addresses canonical, tcp/udp/sctp by name. */
export function fieldText(f: NftField): string {
  if (typeof f !== 'object' || f === null) throw new InvalidArgumentError('an nftables field must be an object');
  switch (f.type) {
    case 'ipv4_addr':
    case 'ipv6_addr': {
      const family = f.type === 'ipv4_addr' ? 4 : 6;
      if (!(f.value instanceof IPAddress) || f.value.family !== family) throw new InvalidArgumentError(`invalid ${f.type} ${describe(f.value)}`);
      return f.value.toString();
    }
    case 'inet_proto': {
      const p = checkInt(f.value, 255, 'inet_proto');
      return PROTO_NAMES[p] ?? String(p);
    }
    case 'inet_service':
      return String(checkInt(f.value, 65535, 'inet_service'));
    default:
      throw new InvalidArgumentError(`invalid nftables field type ${describe((f as { type?: unknown }).type)}`);
  }
}

function sameType(a: readonly NftField[], b: readonly NftField[]): boolean {
  return a.length === b.length && a.every((f, i) => f.type === b[i].type);
}

/** An element's key (with ranges `a-b` where keyEnd differs), as nft prints it. */
export function elementKeyText(e: NftElement): string {
  if (!Array.isArray(e.key) || e.key.length === 0) throw new InvalidArgumentError('an nftables element needs a key');
  if (e.keyEnd !== undefined && (!Array.isArray(e.keyEnd) || !sameType(e.key, e.keyEnd))) throw new InvalidArgumentError('an element key end must have the fields of its key');
  return e.key
    .map((f, i) => {
      const start = fieldText(f);
      if (!e.keyEnd) return start;
      const end = fieldText(e.keyEnd[i]);
      if (end === start) return start;
      if (f.type === 'ipv4_addr' || f.type === 'ipv6_addr') {
        if ((e.keyEnd[i].value as IPAddress).toBigInt() < (f.value as IPAddress).toBigInt()) throw new InvalidArgumentError(`invalid range ${start}-${end}`);
      } else if ((e.keyEnd[i].value as number) < (f.value as number)) {
        throw new InvalidArgumentError(`invalid range ${start}-${end}`);
      }
      return `${start}-${end}`;
    })
    .join(' . ');
}

/** A whole element (`key : data` for maps), as nft prints it. */
export function elementText(e: NftElement): string {
  const key = elementKeyText(e);
  if (e.data === undefined) return key;
  if (!Array.isArray(e.data) || e.data.length === 0) throw new InvalidArgumentError('a map element needs its data');
  return `${key} : ${e.data.map(fieldText).join(' . ')}`;
}

/** `add|delete element` lines of one set (at most 500 elements a line). */
export function elementLines(verb: 'add' | 'delete', table: string, set: string, texts: readonly string[]): string[] {
  const lines: string[] = [];
  for (let i = 0; i < texts.length; i += 500) lines.push(`${verb} element inet ${table} ${set} { ${texts.slice(i, i + 500).join(', ')} }`);
  return lines;
}

/** The `nft -f` lines of a transaction: all deletes first, then all adds. */
export function renderElementChanges(table: string, changes: readonly NftSetChange[]): string {
  const t = checkTableName(table);
  const checked = changes.map((c) => ({ set: checkSetName(c.set), add: c.add ?? [], delete: c.delete ?? [] }));
  const lines = [
    ...checked.flatMap((c) => elementLines('delete', t, c.set, c.delete.map(elementKeyText))),
    ...checked.flatMap((c) => elementLines('add', t, c.set, c.add.map(elementText))),
  ];
  return lines.length > 0 ? lines.join('\n') + '\n' : '';
}

/** nft's error texts → errno names (what the nfnetlink writer reports directly). */
const ERRNO: readonly [RegExp, string][] = [
  [/No such file or directory/, 'ENOENT'],
  [/File exists/, 'EEXIST'],
  [/Device or resource busy/, 'EBUSY'],
  [/Invalid argument/, 'EINVAL'],
  [/Operation not permitted/, 'EPERM'],
  [/Operation not supported/, 'EOPNOTSUPP'],
  [/No buffer space available/, 'ENOBUFS'],
  [/Cannot allocate memory/, 'ENOMEM'],
];

export function nftErrno(stderr: string): string {
  return ERRNO.find(([re]) => re.test(stderr))?.[1] ?? 'EIO';
}

/** Runs one `nft -f -` transaction; a failure is a KernelError naming the errno nft reported. */
export async function runNftScript(exec: CommandRunner, op: string, script: string): Promise<void> {
  if (script === '') return;
  const res = await exec(['nft', '-f', '-'], script);
  if (res.code === 0) return;
  if (res.missing) throw missingTool('nft');
  throw new KernelError(op, nftErrno(res.stderr), res.stderr.trim().split('\n').slice(0, 3).join('; '));
}

/** The element writer over `nft -f -`: one process per transaction. */
export class NftScriptElementWriter implements NftElementWriter {
  constructor(private readonly exec: CommandRunner) {}

  async apply(table: string, changes: readonly NftSetChange[]): Promise<void> {
    await runNftScript(this.exec, 'nft elements', renderElementChanges(table, changes));
  }

  close(): void {}
}
