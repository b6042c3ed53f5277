import type { IPAddress } from '../net/index.js';
/** One field of a set key or map value, in the set's declared order. */
export type NftField =
  | { type: 'ipv4_addr'; value: IPAddress }   // 4 bytes, network order
  | { type: 'ipv6_addr'; value: IPAddress }   // 16 bytes
  | { type: 'inet_proto'; value: number }     // 1 byte (padded to 4 in a concatenation)
  | { type: 'inet_service'; value: number };  // 2 bytes big-endian (padded to 4 in a concatenation)
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
