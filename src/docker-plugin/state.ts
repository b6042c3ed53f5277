/**
 * What the plugin keeps across restarts, under `<data-root>/docker-plugin/`. Each call writes one small
 * file, whatever else is held (a `docker run` or `rm` costs the same with ten containers or ten thousand):
 *  - `pools/<subnet>.json` (fsync'd): a pool dockerd requested through netd's IPAM, its reference count, its
 *    gateway and the addresses held while no network used it yet (`--aux-address`). These change only at
 *    `docker network create`/`rm`, and must outlive a reboot as dockerd's networks do;
 *  - `networks/<NetworkID>.json` (fsync'd): the aux addresses the network driver held itself (default IPAM);
 *  - `addresses/<subnet>/<address>` (empty files, not fsync'd): an address held for an endpoint (RequestAddress
 *    once a network uses the pool). It lives as long as the container, and a power cut kills containers:
 *    dockerd, at its next start, deletes the endpoints of the sandboxes it lost and releases their addresses
 *    itself (a release netd no longer knows is answered {}), so a hold lost in a crash costs nothing. A removal
 *    lost in a crash would bring a hold back that nobody releases: the files of another boot
 *    (`boot-id`, the kernel's) are dropped at start;
 *  - `endpoints/<EndpointID>.json` (not fsync'd: it describes an interface that lives as long as the running
 *    kernel): each endpoint between CreateEndpoint and DeleteEndpoint, its addresses, MAC and the holds made for it.
 * Writes of records are atomic (store/atomic-file.ts). The single `ipam.json` of earlier versions is read at
 * start and converted in place. A file that cannot be read is set aside as `*.corrupt` and reported, never
 * fatal; its holds are then not re-applied.
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { IPAddress, InterfaceAddress, MAC, Prefix } from '../net/index.js';
import { fsyncDirectory, TEMP_SUFFIX, writeFileAtomic } from '../store/atomic-file.js';
import { isValidId } from '../cnm/validation.js';
import type { HeldPool } from './core.js';

/** An address held in a subnet (a network's, or a held pool's). */
export interface Hold {
  subnet: Prefix;
  address: IPAddress;
}

export interface PoolEntry {
  /** The PoolID given to dockerd (pool-id.ts). */
  id: string;
  subnet: Prefix;
  subPool?: Prefix;
  /** Identical RequestPool calls: each counts, each ReleasePool takes one away. */
  refs: number;
  /** The gateway dockerd asked for (RequestAddress with the gateway type). */
  gateway?: IPAddress;
  /** Addresses held before a network used the pool (aux addresses): in the pool's record, durable. */
  fixed: Map<string, IPAddress>;
  /** Addresses held for endpoints: one file each, for this boot. */
  addresses: Map<string, IPAddress>;
}

/** What a held address is for, which decides where it is kept. */
export type HoldKind = 'gateway' | 'fixed' | 'endpoint';

export interface EndpointEntry {
  id: string;
  networkId: string;
  ipv4?: InterfaceAddress;
  ipv6?: InterfaceAddress;
  mac: MAC;
  /** Addresses the network driver held itself (not held through netd's IPAM): released with the endpoint. */
  heldHere: Hold[];
  /** The sandbox it joined (Join's SandboxKey); absent before Join. */
  sandboxKey?: string;
  /** Leave came (dockerd took the interface back); DeleteEndpoint follows. */
  left?: boolean;
}

export interface LoadProblem {
  file: string;
  error: string;
}

/** The state directory under the daemon's data root. */
export function pluginStateDir(dataRoot: string): string {
  return join(dataRoot, 'docker-plugin');
}

/** The kernel's boot id ('' where it cannot be read). */
export function kernelBootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

/** A subnet as a file name: `10.124.0.0_24`, `fd00:1::_64`. */
function subnetKey(subnet: Prefix): string {
  return subnet.toString().replace('/', '_');
}

function holdFromStored(raw: { subnet: string; address: string }): Hold {
  return { subnet: Prefix.parse(raw.subnet, 'subnet'), address: IPAddress.parse(raw.address, 'address') };
}

function byText(addresses: IPAddress[]): Map<string, IPAddress> {
  return new Map(addresses.map((a) => [a.toString(), a]));
}

/** A pool's record; `addresses` is the durable list (the old ipam.json's, or the fixed ones). */
function poolFromStored(raw: Record<string, unknown>): PoolEntry {
  const refs = raw.refs;
  if (typeof raw.id !== 'string' || typeof refs !== 'number' || !Number.isSafeInteger(refs) || refs < 1 || !Array.isArray(raw.addresses)) throw new Error('malformed pool entry');
  const subnet = Prefix.parse(raw.subnet, 'subnet');
  return {
    id: raw.id,
    subnet,
    ...(raw.subPool === undefined ? {} : { subPool: Prefix.parse(raw.subPool, 'sub-pool') }),
    refs,
    ...(raw.gateway === undefined ? {} : { gateway: IPAddress.parse(raw.gateway, 'gateway') }),
    fixed: byText(raw.addresses.map((a) => IPAddress.parse(a, 'address'))),
    addresses: new Map(),
  };
}

function poolToStored(p: PoolEntry): Record<string, unknown> {
  return { id: p.id, subnet: p.subnet.toString(), ...(p.subPool ? { subPool: p.subPool.toString() } : {}), refs: p.refs, ...(p.gateway ? { gateway: p.gateway.toString() } : {}), addresses: [...p.fixed.keys()] };
}

function endpointFromStored(raw: Record<string, unknown>): EndpointEntry {
  if (!isValidId(raw.id) || typeof raw.networkId !== 'string' || !Array.isArray(raw.heldHere)) throw new Error('malformed endpoint entry');
  return {
    id: raw.id,
    networkId: raw.networkId,
    ...(raw.ipv4 === undefined ? {} : { ipv4: InterfaceAddress.parse(raw.ipv4) }),
    ...(raw.ipv6 === undefined ? {} : { ipv6: InterfaceAddress.parse(raw.ipv6) }),
    mac: MAC.parse(raw.mac),
    heldHere: (raw.heldHere as { subnet: string; address: string }[]).map(holdFromStored),
    ...(typeof raw.sandboxKey === 'string' ? { sandboxKey: raw.sandboxKey } : {}),
    ...(raw.left === true ? { left: true } : {}),
  };
}

const DURABLE = { mode: 0o600, durable: true } as const;

export class PluginState {
  /** By PoolID. */
  readonly pools = new Map<string, PoolEntry>();
  /** NetworkID → the aux addresses the driver held for it. */
  readonly networks = new Map<string, Hold[]>();
  readonly endpoints = new Map<string, EndpointEntry>();
  readonly problems: LoadProblem[] = [];

  private constructor(readonly dir: string) {}

  private get poolsDir(): string {
    return join(this.dir, 'pools');
  }

  private get networksDir(): string {
    return join(this.dir, 'networks');
  }

  private get addressesDir(): string {
    return join(this.dir, 'addresses');
  }

  private get endpointsDir(): string {
    return join(this.dir, 'endpoints');
  }

  /** Opens (creating) the state directory and reads what is there; `bootId`: the running kernel's. */
  static open(dir: string, bootId: string = kernelBootId()): PluginState {
    const state = new PluginState(dir);
    for (const d of [state.poolsDir, state.networksDir, state.addressesDir, state.endpointsDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
    state.upgrade();
    state.load(bootId);
    return state;
  }

  private setAside(file: string, err: unknown): void {
    this.problems.push({ file, error: (err as Error).message });
    renameSync(file, `${file}.corrupt`);
  }

  /** The one `ipam.json` of earlier versions becomes one record per pool and network (its addresses stay durable). */
  private upgrade(): void {
    const file = join(this.dir, 'ipam.json');
    let raw: { pools?: unknown; networks?: unknown };
    let pools: PoolEntry[];
    let networks: (readonly [string, Hold[]])[];
    try {
      raw = JSON.parse(readFileSync(file, 'utf8')) as typeof raw;
      if (!Array.isArray(raw.pools) || typeof raw.networks !== 'object' || raw.networks === null) throw new Error('malformed plugin state');
      pools = (raw.pools as Record<string, unknown>[]).map(poolFromStored);
      networks = Object.entries(raw.networks as Record<string, { subnet: string; address: string }[]>).map(([id, holds]) => [id, holds.map(holdFromStored)] as const);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.setAside(file, err);
      return;
    }
    // A write that fails here (disk full, read-only) fails the start with ipam.json still in place: converting
    // again is harmless, losing the holds is not.
    for (const p of pools) this.savePool(p);
    for (const [id, holds] of networks) if (isValidId(id)) this.setNetworkHolds(id, holds);
    rmSync(file);
    fsyncDirectory(this.dir);
  }

  /** Reads every record in `dir` with `parse`; a temporary file of an interrupted write goes, a bad one is set aside. */
  private readRecords<T>(dir: string, parse: (raw: Record<string, unknown>) => T): T[] {
    const out: T[] = [];
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (name.endsWith(TEMP_SUFFIX)) rmSync(path, { force: true });
      if (!name.endsWith('.json')) continue;
      try {
        out.push(parse(JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>));
      } catch (err) {
        this.setAside(path, err);
      }
    }
    return out;
  }

  private load(bootId: string): void {
    for (const p of this.readRecords(this.poolsDir, poolFromStored)) this.pools.set(p.id, p);
    for (const [id, holds] of this.readRecords(this.networksDir, (raw) => {
      if (!isValidId(raw.id) || !Array.isArray(raw.holds)) throw new Error('malformed network entry');
      return [raw.id, (raw.holds as { subnet: string; address: string }[]).map(holdFromStored)] as const;
    }))
      this.networks.set(id, holds);
    for (const ep of this.readRecords(this.endpointsDir, endpointFromStored)) this.endpoints.set(ep.id, ep);
    this.loadAddresses(bootId);
  }

  /** The endpoints' addresses of this boot; those of another boot died with their containers (see above). */
  private loadAddresses(bootId: string): void {
    const bootFile = join(this.dir, 'boot-id');
    let stored: string | undefined;
    try {
      stored = readFileSync(bootFile, 'utf8').trim();
    } catch {
      /* none yet */
    }
    if (stored !== bootId) {
      rmSync(this.addressesDir, { recursive: true, force: true });
      mkdirSync(this.addressesDir, { mode: 0o700 });
      writeFileAtomic(bootFile, bootId, { mode: 0o600 });
    }
    const bySubnet = new Map([...this.pools.values()].map((p) => [subnetKey(p.subnet), p]));
    for (const key of readdirSync(this.addressesDir)) {
      const pool = bySubnet.get(key);
      const dir = join(this.addressesDir, key);
      let names: string[] = [];
      try {
        if (pool) names = readdirSync(dir);
      } catch (err) {
        this.problems.push({ file: dir, error: (err as Error).message });
      }
      if (!pool || names.length === 0) {
        rmSync(dir, { recursive: true, force: true });
        continue;
      }
      for (const name of names) {
        try {
          const a = IPAddress.parse(name, 'address');
          if (!pool.subnet.contains(a)) throw new Error(`address ${a} is not in ${pool.subnet}`);
          pool.addresses.set(a.toString(), a);
        } catch (err) {
          this.problems.push({ file: join(dir, name), error: (err as Error).message });
          rmSync(join(dir, name), { recursive: true, force: true });
        }
      }
    }
  }

  /** Writes a pool's record (durably: it changes only at network create/rm). */
  savePool(p: PoolEntry): void {
    writeFileAtomic(join(this.poolsDir, `${subnetKey(p.subnet)}.json`), JSON.stringify(poolToStored(p)), DURABLE);
    this.pools.set(p.id, p);
  }

  /** A pool and its addresses go (durably: a pool back from the dead would be held forever). */
  dropPool(p: PoolEntry): void {
    this.pools.delete(p.id);
    rmSync(join(this.poolsDir, `${subnetKey(p.subnet)}.json`), { force: true });
    rmSync(join(this.addressesDir, subnetKey(p.subnet)), { recursive: true, force: true });
    fsyncDirectory(this.poolsDir);
  }

  holds(p: PoolEntry, address: IPAddress): boolean {
    const key = address.toString();
    return p.gateway?.equals(address) === true || p.fixed.has(key) || p.addresses.has(key);
  }

  /** Records a held address where its kind is kept: the pool's record, or a file of its own. */
  hold(p: PoolEntry, address: IPAddress, kind: HoldKind): void {
    if (kind === 'endpoint') {
      const dir = join(this.addressesDir, subnetKey(p.subnet));
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      closeSync(openSync(join(dir, address.toString()), 'w', 0o600));
      p.addresses.set(address.toString(), address);
      return;
    }
    if (kind === 'gateway') p.gateway = address;
    else p.fixed.set(address.toString(), address);
    try {
      this.savePool(p);
    } catch (err) {
      if (kind === 'gateway') delete p.gateway;
      else p.fixed.delete(address.toString());
      throw err;
    }
  }

  /** Forgets a held address; false when the pool did not hold it. */
  release(p: PoolEntry, address: IPAddress): boolean {
    const key = address.toString();
    if (p.addresses.delete(key)) {
      rmSync(join(this.addressesDir, subnetKey(p.subnet), key), { force: true });
      return true;
    }
    if (p.gateway?.equals(address)) delete p.gateway;
    else if (!p.fixed.delete(key)) return false;
    this.savePool(p);
    return true;
  }

  /** Every address a pool holds, the gateway last. */
  addressesOf(p: PoolEntry): IPAddress[] {
    return [...p.addresses.values(), ...p.fixed.values(), ...(p.gateway ? [p.gateway] : [])];
  }

  /** The pool that holds `address` (one look-up per pool). */
  poolHolding(address: IPAddress): PoolEntry | undefined {
    return [...this.pools.values()].find((p) => p.subnet.contains(address) && this.holds(p, address));
  }

  /** The aux addresses the driver held for a network (durably: they last as long as the network). */
  setNetworkHolds(networkId: string, holds: Hold[]): void {
    writeFileAtomic(join(this.networksDir, `${networkId}.json`), JSON.stringify({ id: networkId, holds: holds.map((h) => ({ subnet: h.subnet.toString(), address: h.address.toString() })) }), DURABLE);
    this.networks.set(networkId, holds);
  }

  dropNetworkHolds(networkId: string): void {
    if (!this.networks.delete(networkId)) return;
    rmSync(join(this.networksDir, `${networkId}.json`), { force: true });
    fsyncDirectory(this.networksDir);
  }

  saveEndpoint(ep: EndpointEntry): void {
    this.endpoints.set(ep.id, ep);
    writeFileAtomic(join(this.endpointsDir, `${ep.id}.json`), JSON.stringify(ep, null, 1), { mode: 0o600 });
  }

  dropEndpoint(id: string): void {
    this.endpoints.delete(id);
    rmSync(join(this.endpointsDir, `${id}.json`), { force: true });
  }

  /** The ids of the endpoint records on a network. */
  endpointIdsOf(networkId: string): string[] {
    return [...this.endpoints.values()].filter((e) => e.networkId === networkId).map((e) => e.id);
  }

  /** The pools dockerd holds through netd's IPAM, with their held addresses: re-applied at start. */
  heldPools(): HeldPool[] {
    return [...this.pools.values()].map((p) => ({
      subnet: p.subnet,
      ...(p.subPool ? { ipRange: p.subPool } : {}),
      ...(p.gateway ? { gateway: p.gateway } : {}),
      addresses: [...p.addresses.values(), ...p.fixed.values()],
    }));
  }

  /** The addresses the network driver held in networks' subnets (aux addresses, the own of the endpoints `which` picks). */
  driverHolds(which: (endpointId: string) => boolean = () => true): Hold[] {
    return [...[...this.networks.values()].flat(), ...[...this.endpoints.values()].filter((e) => which(e.id)).flatMap((e) => e.heldHere)];
  }
}
