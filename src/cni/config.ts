/**
 * The network configuration a runtime hands the plugin on stdin, as netd reads it: its own fields
 * (`network`, `subnet`, `gateway`), the spec's (`cniVersion`, `name`, GC's attachment list) and the
 * capabilities' `runtimeConfig` in both spellings (the spec's camelCase and containerd's capitalised keys).
 * Unknown fields are ignored, as CNI requires. Malformed JSON is code 6; wrong types or values, code 7.
 */
import { IPAddress, MAC, Prefix } from '../net/index.js';
import { parsePortRequests } from '../portmap/parse.js';
import type { PortRequest } from '../portmap/types.js';
import { CNI_CODE, CniError } from './errors.js';

export interface Attachment {
  containerId: string;
  ifname: string;
}

export interface RuntimeConfig {
  portMappings: PortRequest[];
  ips: IPAddress[];
  mac?: MAC;
  /** DNS names on the network: podman's map entry for it, or a plain list. */
  aliases: string[];
}

export interface CniConfig {
  /** Empty when stdin had none (VERSION only). */
  cniVersion: string;
  name: string;
  /** The netd network: `network`, else `name`. */
  network: string;
  subnet?: Prefix;
  gateway?: IPAddress;
  runtimeConfig: RuntimeConfig;
  /** GC's `cni.dev/valid-attachments` (and the 1.1.0 tag's `cni.dev/attachments`); undefined when neither was sent. */
  validAttachments?: Attachment[];
}

function bad(msg: string): CniError {
  return new CniError(CNI_CODE.INVALID_NETWORK_CONFIG, `invalid network configuration: ${msg}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(o: Record<string, unknown>, key: string, what = key): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw bad(`${what} must be a string`);
  return v;
}

/** A value parsed by a net/ parser; its refusal becomes code 7 with the parser's words. */
function parsed<T>(what: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw bad(`${what}: ${(err as Error).message}`);
  }
}

/** The key as the spec spells it, else capitalised (containerd's CRI: `HostPort`, `Servers`). */
function field(o: Record<string, unknown>, key: string): unknown {
  return o[key] ?? o[key[0].toUpperCase() + key.slice(1)];
}

/** stdin as text → the JSON object (code 6 when it is not JSON, 7 when it is not an object). */
export function decodeStdin(stdin: unknown): Record<string, unknown> {
  if (typeof stdin !== 'string') throw new CniError(CNI_CODE.DECODE_FAILURE, 'stdin must be the network configuration as a string');
  let value: unknown;
  try {
    value = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CNI_CODE.DECODE_FAILURE, `the network configuration is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw bad('it must be a JSON object');
  return value;
}

export function parseConfig(raw: Record<string, unknown>): CniConfig {
  const cniVersion = optString(raw, 'cniVersion') ?? '';
  const name = optString(raw, 'name');
  if (name === undefined) throw bad('name is required');
  const network = optString(raw, 'network') ?? name;
  const subnetText = optString(raw, 'subnet');
  const gatewayText = optString(raw, 'gateway');
  const subnet = subnetText === undefined ? undefined : parsed('subnet', () => Prefix.parse(subnetText, 'subnet'));
  const gateway = gatewayText === undefined ? undefined : parsed('gateway', () => IPAddress.parse(gatewayText, 'gateway'));
  if (gateway !== undefined && subnet === undefined) throw bad('gateway needs a subnet');
  const rc = raw.runtimeConfig ?? {};
  if (!isObject(rc)) throw bad('runtimeConfig must be an object');
  const config: CniConfig = { cniVersion, name, network, subnet, gateway, runtimeConfig: parseRuntimeConfig(rc, network, name) };
  const valid = raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments'];
  if (valid !== undefined && valid !== null) config.validAttachments = parseAttachments(valid);
  return config;
}

function parseRuntimeConfig(rc: Record<string, unknown>, network: string, name: string): RuntimeConfig {
  const out: RuntimeConfig = { portMappings: parsePortMappings(field(rc, 'portMappings')), ips: parseIps(field(rc, 'ips')), aliases: parseAliases(field(rc, 'aliases'), network, name) };
  const mac = field(rc, 'mac');
  if (mac !== undefined && mac !== null && mac !== '') {
    if (typeof mac !== 'string') throw bad('runtimeConfig.mac must be a string');
    out.mac = parsed('runtimeConfig.mac', () => MAC.parse(mac));
  }
  const dns = field(rc, 'dns');
  if (dns !== undefined && dns !== null && !isObject(dns)) throw bad('runtimeConfig.dns must be an object');
  return out;
}

/** `[{hostPort, containerPort, protocol, hostIP}]`, either spelling, as published-port requests (netd's limits apply). */
function parsePortMappings(value: unknown): PortRequest[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw bad('runtimeConfig.portMappings must be a list');
  const entries = value.map((m, i) => {
    if (!isObject(m)) throw bad(`runtimeConfig.portMappings[${i}] must be an object`);
    const protocol = field(m, 'protocol');
    return {
      Proto: typeof protocol === 'string' && protocol !== '' ? protocol.toLowerCase() : protocol || undefined,
      Port: field(m, 'containerPort'),
      HostPort: field(m, 'hostPort'),
      HostIP: m.hostIP ?? m.HostIP ?? m.hostIp,
    };
  });
  return parsed('runtimeConfig.portMappings', () => parsePortRequests(entries));
}

/** `["10.1.2.3/24", "10.1.2.3", "fd00::3"]`: at most one address per family. */
function parseIps(value: unknown): IPAddress[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw bad('runtimeConfig.ips must be a list');
  const out: IPAddress[] = [];
  for (const item of value) {
    if (typeof item !== 'string') throw bad('runtimeConfig.ips must hold strings');
    const address = parsed('runtimeConfig.ips', () => IPAddress.parse(item.split('/')[0], 'IP address'));
    if (out.some((a) => a.family === address.family)) throw bad(`runtimeConfig.ips asks for two IPv${address.family} addresses; netd gives one per family`);
    out.push(address);
  }
  return out;
}

/** podman's `{"<network>": ["a"]}` (the entry for this network, by netd or conflist name), or a list. */
function parseAliases(value: unknown, network: string, name: string): string[] {
  if (value === undefined || value === null) return [];
  const own = (key: string): unknown => (isObject(value) && Object.hasOwn(value, key) ? value[key] : undefined);
  const list = isObject(value) ? (own(network) ?? own(name) ?? []) : value;
  if (!Array.isArray(list) || list.some((a) => typeof a !== 'string')) throw bad('runtimeConfig.aliases must be a list of names, or an object of such lists by network');
  return list as string[];
}

function parseAttachments(value: unknown): Attachment[] {
  if (!Array.isArray(value)) throw bad('cni.dev/valid-attachments must be a list');
  return value.map((a, i) => {
    if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
      throw bad(`cni.dev/valid-attachments[${i}] must be {"containerID": "...", "ifname": "..."}`);
    }
    return { containerId: a.containerID, ifname: a.ifname };
  });
}
