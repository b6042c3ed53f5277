/**
 * The bodies dockerd sends to a remote network and IPAM plugin, parsed once, strictly, into net/ values
 * before anything changes. dockerd sends JSON whatever its headers say, `null` or nothing for calls
 * without arguments, and Go's zero values (`""`, `null`) for fields it leaves empty; unknown fields are
 * ignored (newer dockerd versions add some). Anything malformed throws an InvalidArgumentError.
 */
import { InvalidArgumentError } from '../errors.js';
import { IPAddress, InterfaceAddress, MAC, Prefix, describeValue, type Family } from '../net/index.js';
import type { PortRequest } from '../portmap/types.js';
import { isValidId } from '../cnm/validation.js';
import { parsePoolId, type PoolId } from './pool-id.js';
import { portRequestsOf } from './portmap.js';

/** Option keys of libnetwork's netlabel package that the plugin reads. */
export const OPT_GENERIC = 'com.docker.network.generic';
export const OPT_ENABLE_IPV4 = 'com.docker.network.enable_ipv4';
export const OPT_ENABLE_IPV6 = 'com.docker.network.enable_ipv6';
export const OPT_INTERNAL = 'com.docker.network.internal';
export const OPT_ADDRESS_TYPE = 'RequestAddressType';
export const GATEWAY_ADDRESS_TYPE = 'com.docker.network.gateway';

const MAX_PATH = 4096;
/** Generic driver options and aux addresses of one network: far more than any real one. */
const MAX_ENTRIES = 256;

type Fields = Record<string, unknown>;

/** A value as an error message names it: long strings cut short (a body may be a megabyte of one). */
function shown(v: unknown): string {
  return describeValue(typeof v === 'string' && v.length > 80 ? `${v.slice(0, 80)}…` : v);
}

/** The body as an object: `null`, nothing (undefined) and `""` are an empty one. */
export function bodyOf(raw: unknown): Fields {
  if (raw === undefined || raw === null || raw === '') return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new InvalidArgumentError(`the request body must be a JSON object, not ${shown(raw)}`);
  return raw as Fields;
}

function objectField(o: Fields, key: string): Fields {
  const v = o[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new InvalidArgumentError(`${key} must be an object`);
  return v as Fields;
}

function listField(o: Fields, key: string): unknown[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InvalidArgumentError(`${key} must be a list`);
  return v;
}

/** A string field; `""`, null and absent are undefined. */
function text(o: Fields, key: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new InvalidArgumentError(`${key} must be a string, not ${shown(v)}`);
  if (v.length > MAX_PATH) throw new InvalidArgumentError(`${key} is too long (${v.length} characters)`);
  return v;
}

function flag(o: Fields, key: string): boolean {
  const v = o[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`${key} must be true or false, not ${shown(v)}`);
  return v;
}

/** A NetworkID or EndpointID: 64 lowercase hex digits, as dockerd makes them. */
export function idField(o: Fields, key: string): string {
  const v = o[key];
  if (!isValidId(v)) throw new InvalidArgumentError(`${key} must be 64 lowercase hex digits, not ${shown(v)}`);
  return v;
}

function familyOf(what: string, value: { family: Family }, family: Family): void {
  if (value.family !== family) throw new InvalidArgumentError(`${what} must be an IPv${family} value`);
}

// ---------------------------------------------------------------- NetworkDriver

export interface EndpointRef {
  networkId: string;
  endpointId: string;
}

export interface NetworkPool {
  pool: Prefix;
  gateway?: IPAddress;
  /** AuxAddresses: addresses kept from containers (`--aux-address name=IP`). */
  aux: IPAddress[];
}

export interface CreateNetworkRequest {
  networkId: string;
  v4: NetworkPool;
  v6?: NetworkPool;
  enableIPv6: boolean;
  internal: boolean;
  /** `docker network create -o k=v`: the bridge driver's options. */
  options: Record<string, string>;
}

function networkPools(o: Fields, key: string, family: Family): NetworkPool | undefined {
  const list = listField(o, key);
  if (list.length > 1) throw new InvalidArgumentError(`${key}: netd networks have one IPv${family} pool, not ${list.length}`);
  if (list.length === 0) return undefined;
  const data = objectField({ [key]: list[0] }, key);
  const pool = Prefix.parse(text(data, 'Pool'), `${key} Pool`);
  familyOf(`${key} Pool`, pool, family);
  const gatewayText = text(data, 'Gateway');
  const gateway = gatewayText === undefined ? undefined : InterfaceAddress.parse(gatewayText, `${key} Gateway`).address;
  if (gateway && !pool.contains(gateway)) throw new InvalidArgumentError(`${key}: the gateway ${gateway} is not inside ${pool}`);
  const auxMap = objectField(data, 'AuxAddresses');
  const entries = Object.entries(auxMap);
  if (entries.length > MAX_ENTRIES) throw new InvalidArgumentError(`${key}: at most ${MAX_ENTRIES} AuxAddresses`);
  const aux = entries.map(([name, value]) => {
    const a = InterfaceAddress.parse(value, `${key} AuxAddresses.${name.slice(0, 64)}`).address;
    if (!pool.contains(a)) throw new InvalidArgumentError(`${key}: the aux address ${a} is not inside ${pool}`);
    return a;
  });
  return { pool, gateway, aux };
}

function genericOptions(options: Fields): Record<string, string> {
  const generic = objectField(options, OPT_GENERIC);
  const entries = Object.entries(generic);
  if (entries.length > MAX_ENTRIES) throw new InvalidArgumentError(`at most ${MAX_ENTRIES} driver options`);
  for (const [k, v] of entries) {
    if (typeof v !== 'string') throw new InvalidArgumentError(`driver option ${JSON.stringify(k.slice(0, 100))} must be a string, not ${shown(v)}`);
  }
  return { ...(generic as Record<string, string>) };
}

export function parseCreateNetwork(raw: unknown): CreateNetworkRequest {
  const o = bodyOf(raw);
  const networkId = idField(o, 'NetworkID');
  const options = objectField(o, 'Options');
  // dockerd 27+ sends enable_ipv4 (false with `--ipv4=false`, IPv4Data then empty); older ones always a pool.
  const v4 = networkPools(o, 'IPv4Data', 4);
  if (options[OPT_ENABLE_IPV4] !== undefined && !flag(options, OPT_ENABLE_IPV4)) throw new InvalidArgumentError('netd networks need IPv4: --ipv4=false is not supported');
  if (!v4) throw new InvalidArgumentError('netd networks need IPv4: IPv4Data has no pool');
  return {
    networkId,
    v4,
    v6: networkPools(o, 'IPv6Data', 6),
    enableIPv6: flag(options, OPT_ENABLE_IPV6),
    internal: flag(options, OPT_INTERNAL),
    options: genericOptions(options),
  };
}

export function parseNetworkRef(raw: unknown): { networkId: string } {
  return { networkId: idField(bodyOf(raw), 'NetworkID') };
}

export function parseEndpointRef(raw: unknown): EndpointRef {
  const o = bodyOf(raw);
  return { networkId: idField(o, 'NetworkID'), endpointId: idField(o, 'EndpointID') };
}

export interface CreateEndpointRequest extends EndpointRef {
  ipv4?: InterfaceAddress;
  ipv6?: InterfaceAddress;
  mac?: MAC;
}

export function parseCreateEndpoint(raw: unknown): CreateEndpointRequest {
  const o = bodyOf(raw);
  const ref = parseEndpointRef(o);
  const iface = objectField(o, 'Interface');
  const v4 = text(iface, 'Address');
  const v6 = text(iface, 'AddressIPv6');
  const mac = text(iface, 'MacAddress');
  const req: CreateEndpointRequest = { ...ref };
  if (v4 !== undefined) familyOf('Interface.Address', (req.ipv4 = InterfaceAddress.parse(v4, 'Interface.Address')), 4);
  if (v6 !== undefined) familyOf('Interface.AddressIPv6', (req.ipv6 = InterfaceAddress.parse(v6, 'Interface.AddressIPv6')), 6);
  if (mac !== undefined) req.mac = MAC.parse(mac);
  if (!req.ipv4 && !req.ipv6) throw new InvalidArgumentError('the endpoint has no address: netd endpoints need one (use an IPAM driver that gives one)');
  // Options (exposed ports, port map) are read again at ProgramExternalConnectivity; checked here all the same.
  portRequestsOf(objectField(o, 'Options'));
  return req;
}

export interface JoinRequest extends EndpointRef {
  /** The path of the sandbox's network namespace (dockerd's bind mount). */
  sandboxKey: string;
}

export function parseJoin(raw: unknown): JoinRequest {
  const o = bodyOf(raw);
  const ref = parseEndpointRef(o);
  const key = text(o, 'SandboxKey');
  if (key === undefined || !key.startsWith('/') || key.length > MAX_PATH || key.includes('\0') || key.split('/').some((s) => s === '..' || s === '.')) {
    throw new InvalidArgumentError(`SandboxKey must be an absolute path to a network namespace, not ${shown(key === undefined ? o.SandboxKey : key)}`);
  }
  objectField(o, 'Options');
  return { ...ref, sandboxKey: key };
}

export interface ConnectivityRequest extends EndpointRef {
  ports: PortRequest[];
}

export function parseProgramConnectivity(raw: unknown): ConnectivityRequest {
  const o = bodyOf(raw);
  return { ...parseEndpointRef(o), ports: portRequestsOf(objectField(o, 'Options')) };
}

// ---------------------------------------------------------------- IpamDriver

export interface RequestPoolRequest {
  space: string;
  pool?: Prefix;
  subPool?: Prefix;
  v6: boolean;
}

export function parseRequestPool(raw: unknown): RequestPoolRequest {
  const o = bodyOf(raw);
  const space = text(o, 'AddressSpace') ?? '';
  if (space.length > 256) throw new InvalidArgumentError('AddressSpace is too long');
  const v6 = flag(o, 'V6');
  const poolText = text(o, 'Pool');
  const subText = text(o, 'SubPool');
  objectField(o, 'Options');
  const pool = poolText === undefined ? undefined : Prefix.parse(poolText, 'Pool');
  const subPool = subText === undefined ? undefined : Prefix.parse(subText, 'SubPool');
  if (pool) familyOf('Pool', pool, v6 ? 6 : 4);
  if (subPool && !pool) throw new InvalidArgumentError('SubPool needs a Pool');
  if (subPool && pool && !pool.containsPrefix(subPool)) throw new InvalidArgumentError(`SubPool ${subPool} is not inside ${pool}`);
  return { space, pool, subPool, v6 };
}

export function parsePoolRef(raw: unknown): { poolId: PoolId } {
  return { poolId: parsePoolId(bodyOf(raw).PoolID) };
}

export interface RequestAddressRequest {
  poolId: PoolId;
  address?: IPAddress;
  gateway: boolean;
}

function addressIn(o: Fields, poolId: PoolId): IPAddress | undefined {
  const t = text(o, 'Address');
  if (t === undefined) return undefined;
  // Plain, as dockerd sends it; the prefix length form is taken too.
  const address = t.includes('/') ? InterfaceAddress.parse(t, 'Address').address : IPAddress.parse(t, 'Address');
  if (!poolId.subnet.contains(address)) throw new InvalidArgumentError(`Address ${address} is not inside the pool ${poolId.subnet}`);
  return address;
}

export function parseRequestAddress(raw: unknown): RequestAddressRequest {
  const o = bodyOf(raw);
  const { poolId } = parsePoolRef(o);
  const options = objectField(o, 'Options');
  const type = text(options, OPT_ADDRESS_TYPE);
  return { poolId, address: addressIn(o, poolId), gateway: type === GATEWAY_ADDRESS_TYPE };
}

export function parseReleaseAddress(raw: unknown): { poolId: PoolId; address: IPAddress } {
  const o = bodyOf(raw);
  const { poolId } = parsePoolRef(o);
  const address = addressIn(o, poolId);
  if (!address) throw new InvalidArgumentError('ReleaseAddress needs an Address');
  return { poolId, address };
}
