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
  /** The prefix lengths `ips` gave (`a/len`), checked against the network's subnet by the service. */
  ipLengths: { address: IPAddress; length: number }[];
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
  /**
   * GC's `cni.dev/valid-attachments` (and the 1.1.0 tag's `cni.dev/attachments`). Absent or null (libcni
   * sends a Go nil slice as null) is the empty list: nothing is valid.
   */
  validAttachments: Attachment[];
  /** CHECK's (and DEL's) `prevResult`, as sent (compared by prev-result.ts); undefined when absent. */
  prevResult?: unknown;
}

/** The static requests of CNI_ARGS (`IP=a[,b]`, `MAC=m`: what podman 4.3 sends for `--ip`/`--mac-address`). */
export interface ArgsRequests {
  ips: IPAddress[];
  mac?: MAC;
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

/** The config's own `cniVersion` when it is a string ('' otherwise): errors answer in it even when the rest is bad. */
export function rawVersion(raw: Record<string, unknown>): string {
  return typeof raw.cniVersion === 'string' ? raw.cniVersion : '';
}

/** What DEL needs, and nothing more: a config ADD refused must still be deletable. */
export interface CniIdentity {
  cniVersion: string;
  name: string;
  network: string;
}

/** DEL's reading of the config: its version, `name` and `network`; every other field is ignored. */
export function parseIdentity(raw: Record<string, unknown>): CniIdentity {
  const name = typeof raw.name === 'string' ? raw.name : '';
  if (name === '') throw bad('name is required');
  const network = typeof raw.network === 'string' && raw.network !== '' ? raw.network : name;
  return { cniVersion: rawVersion(raw), name, network };
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
  const valid = raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments'];
  const validAttachments = valid === undefined || valid === null ? [] : parseAttachments(valid);
  const config: CniConfig = { cniVersion, name, network, subnet, gateway, runtimeConfig: parseRuntimeConfig(rc, network, name), validAttachments };
  if (raw.prevResult !== undefined && raw.prevResult !== null) config.prevResult = raw.prevResult;
  return config;
}

function parseRuntimeConfig(rc: Record<string, unknown>, network: string, name: string): RuntimeConfig {
  const ips = field(rc, 'ips');
  const out: RuntimeConfig = { portMappings: parsePortMappings(field(rc, 'portMappings')), ips: parseIps(ips), aliases: parseAliases(field(rc, 'aliases'), network, name), ipLengths: prefixLengths(ips) };
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
  if (value.some((item) => typeof item !== 'string')) throw bad('runtimeConfig.ips must hold strings');
  return addressList(value as string[], 'runtimeConfig.ips', bad);
}

/** The `/len` parts of runtimeConfig.ips (already checked by parseIps); a length that is not one is code 7. */
function prefixLengths(value: unknown): { address: IPAddress; length: number }[] {
  if (!Array.isArray(value)) return [];
  return (value as string[]).flatMap((item) => {
    const [text, len] = item.trim().split('/');
    if (len === undefined) return [];
    const address = IPAddress.parse(text, 'IP address');
    const length = /^\d{1,3}$/.test(len) ? Number(len) : NaN;
    if (!(length <= (address.family === 4 ? 32 : 128))) throw bad(`runtimeConfig.ips: ${JSON.stringify(item)} has no valid prefix length`);
    return [{ address, length }];
  });
}

/** Addresses (an optional `/len` is dropped: the network's prefix applies), at most one per family. */
function addressList(items: string[], what: string, fail: (msg: string) => CniError): IPAddress[] {
  const out: IPAddress[] = [];
  for (const item of items) {
    let address: IPAddress;
    try {
      address = IPAddress.parse(item.trim().split('/')[0], 'IP address');
    } catch (err) {
      throw fail(`${what}: ${(err as Error).message}`);
    }
    if (out.some((a) => a.family === address.family)) throw fail(`${what} asks for two IPv${address.family} addresses; netd gives one per family`);
    out.push(address);
  }
  return out;
}

/**
 * The addresses and MAC an ADD asks for: runtimeConfig's `ips`/`mac` (the capabilities) win over CNI_ARGS'
 * `IP`/`MAC` when both are given (each taken whole: the two address lists are never mixed); CNI_ARGS is read
 * (and checked) either way.
 */
export function staticRequests(rc: RuntimeConfig, args: ReadonlyMap<string, string>): ArgsRequests {
  const fromArgs = parseArgsRequests(args);
  const mac = rc.mac ?? fromArgs.mac;
  return { ips: rc.ips.length > 0 ? rc.ips : fromArgs.ips, ...(mac ? { mac } : {}) };
}

function badArgs(msg: string): CniError {
  return new CniError(CNI_CODE.INVALID_ENVIRONMENT, `invalid CNI_ARGS: ${msg}`);
}

/**
 * CNI_ARGS' `IP` (comma-separated, v4 and/or v6, as the CNI conventions and host-local take it) and `MAC`.
 * A malformed value is code 4 (it is the environment that is wrong). The service lets runtimeConfig's
 * `ips`/`mac` win over these when both are given.
 */
export function parseArgsRequests(args: ReadonlyMap<string, string>): ArgsRequests {
  const out: ArgsRequests = { ips: [] };
  const ip = args.get('IP');
  if (ip !== undefined && ip.trim() !== '') out.ips = addressList(ip.split(',').filter((x) => x.trim() !== ''), 'IP', badArgs);
  const mac = args.get('MAC');
  if (mac !== undefined && mac !== '') {
    try {
      out.mac = MAC.parse(mac);
    } catch (err) {
      throw badArgs(`MAC: ${(err as Error).message}`);
    }
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
