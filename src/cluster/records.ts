/**
 * What netd keeps in etcd, under `/netd/v1/`, and the shape of each value (JSON). Every host reads all of
 * it through one watch (cluster.ts); each key has one writer rule:
 *
 *   hosts/<hostId>                  HostRecord       the host itself, under its lease
 *   networks/<netId>                NetworkEntry     whoever creates the network; removed by rm-network
 *   network-names/<name>            <netId>          created once with the network: names are unique cluster-wide
 *   vni/<vni>                       <netId>          created once with the network: VXLAN ids are unique
 *   blocks/<netId>/<a.b.c.d-len>    BlockRecord      a host claims a block with create-if-absent (blocks.ts)
 *   endpoints/<netId>/<epId>        EndpointEntry    the endpoint's host, under its lease
 *
 * Leased keys vanish with their host's lease: a host that dies (or is cut off longer than the lease's TTL)
 * takes its endpoints with it, and every other host removes their forwarding entries and names.
 */
import { IPAddress, MAC, Prefix } from '../net/index.js';
import type { EtcdStore } from './etcd-store.js';

export const ROOT = '/netd/v1/';

export interface HostRecord {
  /** Its address on the underlay (the VXLAN tunnels' end). */
  advertise: string;
  /** Its hostname, for people. */
  name: string;
  started: string;
}

export interface NetworkEntry {
  name: string;
  subnet: string;
  gateway: string;
  vni: number;
  internal: boolean;
  options: Record<string, string>;
  labels: Record<string, string>;
  created: string;
  /** The host that created it. */
  by: string;
  /** `deleting` while rm-network checks that no host has endpoints: no host attaches meanwhile. */
  state: 'active' | 'deleting';
  /** The host removing it (state `deleting`): after a crash, it completes the removal when it is back. */
  deletingBy?: string;
}

export interface BlockRecord {
  host: string;
  claimed: string;
}

export interface EndpointEntry {
  host: string;
  /** The host's underlay address, where its VXLAN device receives. */
  vtep: string;
  ip: string;
  mac: string;
  /** The container's name on the network, its aliases, and its sandbox's id (for the short-id name). */
  name: string;
  aliases: string[];
  sandbox: string;
}

export const keys = {
  host: (id: string) => `${ROOT}hosts/${id}`,
  network: (id: string) => `${ROOT}networks/${id}`,
  networkName: (name: string) => `${ROOT}network-names/${name}`,
  vni: (vni: number) => `${ROOT}vni/${vni}`,
  blocks: (netId: string) => `${ROOT}blocks/${netId}/`,
  block: (netId: string, block: Prefix) => `${ROOT}blocks/${netId}/${block.address}-${block.length}`,
  endpoints: (netId: string) => `${ROOT}endpoints/${netId}/`,
  endpoint: (netId: string, epId: string) => `${ROOT}endpoints/${netId}/${epId}`,
};

/** A key of the layout, split: its kind and its parts (undefined for a key netd does not write). */
export type ParsedKey =
  | { kind: 'host'; host: string }
  | { kind: 'network'; network: string }
  | { kind: 'endpoint'; network: string; endpoint: string }
  | { kind: 'block'; network: string; block: string }
  | { kind: 'other' };

const ID = '[0-9a-f]{64}';
const HOST_ID = '[0-9a-f]{32}';
const PATTERNS: [RegExp, (m: RegExpExecArray) => ParsedKey][] = [
  [new RegExp(`^hosts/(${HOST_ID})$`), (m) => ({ kind: 'host', host: m[1] })],
  [new RegExp(`^networks/(${ID})$`), (m) => ({ kind: 'network', network: m[1] })],
  [new RegExp(`^endpoints/(${ID})/(${ID})$`), (m) => ({ kind: 'endpoint', network: m[1], endpoint: m[2] })],
  [new RegExp(`^blocks/(${ID})/([0-9.]+-\\d+)$`), (m) => ({ kind: 'block', network: m[1], block: m[2] })],
];

export function parseKey(key: string): ParsedKey {
  if (!key.startsWith(ROOT)) return { kind: 'other' };
  const rest = key.slice(ROOT.length);
  for (const [re, make] of PATTERNS) {
    const m = re.exec(rest);
    if (m) return make(m);
  }
  return { kind: 'other' };
}

/** A value read back from etcd, checked: another host (or a person with etcdctl) may have written anything. */
export function parseJson<T>(text: string | undefined, check: (v: Record<string, unknown>) => boolean): T | undefined {
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === 'object' && check(v as Record<string, unknown>) ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}

const isString = (v: unknown): v is string => typeof v === 'string';
const parses = (parse: () => unknown): boolean => {
  try {
    parse();
    return true;
  } catch {
    return false;
  }
};

export const isEndpointEntry = (v: Record<string, unknown>): boolean =>
  isString(v.host) &&
  isString(v.vtep) &&
  isString(v.ip) &&
  isString(v.mac) &&
  isString(v.name) &&
  isString(v.sandbox) &&
  Array.isArray(v.aliases) &&
  v.aliases.every(isString) &&
  parses(() => [IPAddress.parse(v.vtep), IPAddress.parse(v.ip), MAC.parse(v.mac)]);

export const isNetworkEntry = (v: Record<string, unknown>): boolean =>
  isString(v.name) &&
  isString(v.subnet) &&
  isString(v.gateway) &&
  typeof v.vni === 'number' &&
  typeof v.options === 'object' &&
  v.options !== null &&
  parses(() => [Prefix.parse(v.subnet), IPAddress.parse(v.gateway)]);

export const isHostRecord = (v: Record<string, unknown>): boolean => isString(v.advertise) && isString(v.name);

export const isBlockRecord = (v: Record<string, unknown>): boolean => isString(v.host);

/** A global network's keys, all at once, if the network's record is still at `modRevision`. */
export function removeNetworkKeys(store: EtcdStore, networkId: string, entry: NetworkEntry, modRevision: bigint): Promise<boolean> {
  const key = keys.network(networkId);
  return store.deletePrefixWhen(key, modRevision, [key, keys.networkName(entry.name), keys.vni(entry.vni)], [keys.blocks(networkId), keys.endpoints(networkId)]);
}
