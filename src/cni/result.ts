/**
 * ADD's result: the host veth and the container interface (with its MAC, which podman insists on, and
 * its `sandbox`), the addresses with their gateways, the default routes, and the network's DNS server.
 * Built in the 1.x form and converted for 0.3.x/0.4.0, whose `ips[]` also carry `version`.
 */
import { isLegacyResult } from './version.js';

/** What netd reports of an attachment, as the service gathers it (plain text values). */
export interface Attachment {
  hostInterface?: { name: string; mac?: string };
  ifname: string;
  mac?: string;
  /** CNI_NETNS as the runtime sent it. */
  sandbox: string;
  /** `address/length` with the network's gateway of that family. */
  addresses: { address: string; gateway?: string }[];
  /** Gateways of the default routes this interface provides (only the sandbox's gateway endpoint has them). */
  defaultGateways: string[];
  nameservers: string[];
  /** The resolver settings netd gives the network's containers (its resolv.conf `search`/`options`). */
  search?: string[];
  options?: string[];
}

export interface CniInterface {
  name: string;
  mac?: string;
  sandbox?: string;
}

export interface CniIp {
  version?: '4' | '6';
  address: string;
  gateway?: string;
  interface?: number;
}

export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIp[];
  routes: { dst: string; gw?: string }[];
  dns: CniDns;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

const isV6 = (address: string) => address.includes(':');

/** The result in `cniVersion`'s format (with `prevResult`, merged after it: mergeResult). */
export function buildResult(cniVersion: string, a: Attachment, prev?: unknown): CniResult {
  const interfaces: CniInterface[] = [];
  if (a.hostInterface) interfaces.push({ name: a.hostInterface.name, ...(a.hostInterface.mac ? { mac: a.hostInterface.mac } : {}) });
  const index = interfaces.length;
  interfaces.push({ name: a.ifname, ...(a.mac ? { mac: a.mac } : {}), sandbox: a.sandbox });
  const ips: CniIp[] = a.addresses.map((x) => ({ address: x.address, ...(x.gateway ? { gateway: x.gateway } : {}), interface: index }));
  const routes = a.defaultGateways.map((gw) => ({ dst: isV6(gw) ? '::/0' : '0.0.0.0/0', gw }));
  const dns: CniDns = {};
  if (a.nameservers.length > 0) dns.nameservers = a.nameservers;
  if (a.search && a.search.length > 0) dns.search = a.search;
  if (a.options && a.options.length > 0) dns.options = a.options;
  const result: CniResult = { cniVersion, interfaces, ips, routes, dns };
  if (prev !== undefined) return mergeResult(cniVersion, prev, result);
  return isLegacyResult(cniVersion) ? toLegacy(result) : result;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function listOf<T>(v: unknown): T[] {
  return Array.isArray(v) ? (v as T[]) : [];
}

/** Both lists, each entry once (by its JSON), the first's first. */
function union<T>(a: T[], b: T[]): T[] {
  const seen = new Set<string>();
  return [...a, ...b].filter((x) => {
    const key = JSON.stringify(x);
    return seen.has(key) ? false : (seen.add(key), true);
  });
}

/**
 * netd's result chained after earlier plugins' (SPEC.md: a plugin given prevResult passes it on, modified):
 * prevResult's interfaces first and netd's appended (netd's `ips[].interface` indices shifted past them),
 * addresses, routes and DNS settings merged, the whole in `cniVersion`'s format. `ours` is netd's 1.x form.
 */
export function mergeResult(cniVersion: string, prev: unknown, ours: CniResult): CniResult {
  if (!isObject(prev)) return isLegacyResult(cniVersion) ? toLegacy(ours) : ours;
  const prevInterfaces = listOf<CniInterface>(prev.interfaces);
  const shift = prevInterfaces.length;
  // 1.x has no `ips[].version`; toLegacy adds it back for the older formats.
  const prevIps = listOf<CniIp>(prev.ips).map(({ version: _v, ...ip }) => ip);
  const prevDns = isObject(prev.dns) ? (prev.dns as CniDns) : {};
  const dns: CniDns = { ...prevDns };
  for (const key of ['nameservers', 'search', 'options'] as const) {
    const merged = union(listOf<string>(prevDns[key]), ours.dns[key] ?? []);
    if (merged.length > 0) dns[key] = merged;
  }
  const result: CniResult = {
    cniVersion,
    interfaces: [...prevInterfaces, ...ours.interfaces],
    ips: [...prevIps, ...ours.ips.map((ip) => (ip.interface === undefined ? ip : { ...ip, interface: ip.interface + shift }))],
    routes: union(listOf<{ dst: string; gw?: string }>(prev.routes), ours.routes),
    dns,
  };
  return isLegacyResult(cniVersion) ? toLegacy(result) : result;
}

/** 0.3.x/0.4.0: every `ips[]` entry names its family as `version` ("4"/"6"). */
export function toLegacy(result: CniResult): CniResult {
  return { ...result, ips: result.ips.map((ip) => ({ version: isV6(ip.address) ? '6' : '4', ...ip })) };
}
