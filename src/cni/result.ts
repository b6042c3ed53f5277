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
  dns: { nameservers?: string[] };
}

const isV6 = (address: string) => address.includes(':');

/** The result in `cniVersion`'s format. */
export function buildResult(cniVersion: string, a: Attachment): CniResult {
  const interfaces: CniInterface[] = [];
  if (a.hostInterface) interfaces.push({ name: a.hostInterface.name, ...(a.hostInterface.mac ? { mac: a.hostInterface.mac } : {}) });
  const index = interfaces.length;
  interfaces.push({ name: a.ifname, ...(a.mac ? { mac: a.mac } : {}), sandbox: a.sandbox });
  const ips: CniIp[] = a.addresses.map((x) => ({ address: x.address, ...(x.gateway ? { gateway: x.gateway } : {}), interface: index }));
  const routes = a.defaultGateways.map((gw) => ({ dst: isV6(gw) ? '::/0' : '0.0.0.0/0', gw }));
  const result: CniResult = { cniVersion, interfaces, ips, routes, dns: a.nameservers.length > 0 ? { nameservers: a.nameservers } : {} };
  return isLegacyResult(cniVersion) ? toLegacy(result) : result;
}

/** 0.3.x/0.4.0: every `ips[]` entry names its family as `version` ("4"/"6"). */
export function toLegacy(result: CniResult): CniResult {
  return { ...result, ips: result.ips.map((ip) => ({ version: isV6(ip.address) ? '6' : '4', ...ip })) };
}
