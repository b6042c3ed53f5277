/**
 * What the plugin keeps across restarts, under `<data-root>/docker-plugin/`:
 *  - `ipam.json` (fsync'd, it outlives reboots as dockerd's networks do): the pools dockerd requested
 *    through netd's IPAM with their reference counts and the addresses held in them, and the aux
 *    addresses the network driver held for each network;
 *  - `endpoints/<EndpointID>.json` (not fsync'd: it describes an interface that lives as long as the
 *    running kernel): each endpoint between CreateEndpoint and DeleteEndpoint, with its addresses, its
 *    MAC and the holds made for it.
 * Writes are atomic (store/atomic-file.ts). A file that cannot be read is set aside as `*.corrupt` and
 * reported, never fatal; its holds are then not re-applied.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { IPAddress, InterfaceAddress, MAC, Prefix } from '../net/index.js';
import { TEMP_SUFFIX, writeFileAtomic } from '../store/atomic-file.js';
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
  /** Other addresses dockerd asked for. */
  addresses: IPAddress[];
}

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

const ID = /^[0-9a-f]{64}$/;

function holdFromStored(raw: { subnet: string; address: string }): Hold {
  return { subnet: Prefix.parse(raw.subnet, 'subnet'), address: IPAddress.parse(raw.address, 'address') };
}

function poolFromStored(raw: Record<string, unknown>): PoolEntry {
  const refs = raw.refs;
  if (typeof raw.id !== 'string' || typeof refs !== 'number' || !Number.isSafeInteger(refs) || refs < 1 || !Array.isArray(raw.addresses)) throw new Error('malformed pool entry');
  return {
    id: raw.id,
    subnet: Prefix.parse(raw.subnet, 'subnet'),
    ...(raw.subPool === undefined ? {} : { subPool: Prefix.parse(raw.subPool, 'sub-pool') }),
    refs,
    ...(raw.gateway === undefined ? {} : { gateway: IPAddress.parse(raw.gateway, 'gateway') }),
    addresses: raw.addresses.map((a) => IPAddress.parse(a, 'address')),
  };
}

function endpointFromStored(raw: Record<string, unknown>): EndpointEntry {
  if (typeof raw.id !== 'string' || !ID.test(raw.id) || typeof raw.networkId !== 'string' || !Array.isArray(raw.heldHere)) throw new Error('malformed endpoint entry');
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

export class PluginState {
  readonly pools = new Map<string, PoolEntry>();
  /** NetworkID → the aux addresses the driver held for it. */
  readonly networks = new Map<string, Hold[]>();
  readonly endpoints = new Map<string, EndpointEntry>();
  readonly problems: LoadProblem[] = [];

  private constructor(readonly dir: string) {}

  private get ipamFile(): string {
    return join(this.dir, 'ipam.json');
  }

  private get endpointsDir(): string {
    return join(this.dir, 'endpoints');
  }

  /** Opens (creating) the state directory and reads what is there. */
  static open(dir: string): PluginState {
    const state = new PluginState(dir);
    mkdirSync(state.endpointsDir, { recursive: true, mode: 0o700 });
    state.load();
    return state;
  }

  private setAside(file: string, err: unknown): void {
    this.problems.push({ file, error: (err as Error).message });
    renameSync(file, `${file}.corrupt`);
  }

  private load(): void {
    try {
      const raw = JSON.parse(readFileSync(this.ipamFile, 'utf8')) as { pools?: unknown; networks?: unknown };
      if (!Array.isArray(raw.pools) || typeof raw.networks !== 'object' || raw.networks === null) throw new Error('malformed plugin state');
      const pools = (raw.pools as Record<string, unknown>[]).map(poolFromStored);
      const networks = Object.entries(raw.networks as Record<string, { subnet: string; address: string }[]>).map(([id, holds]) => [id, holds.map(holdFromStored)] as const);
      for (const p of pools) this.pools.set(p.id, p);
      for (const [id, holds] of networks) this.networks.set(id, holds);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.setAside(this.ipamFile, err);
    }
    for (const name of readdirSync(this.endpointsDir).sort()) {
      const path = join(this.endpointsDir, name);
      if (name.endsWith(TEMP_SUFFIX)) rmSync(path, { force: true });
      if (!name.endsWith('.json')) continue;
      try {
        const ep = endpointFromStored(JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>);
        this.endpoints.set(ep.id, ep);
      } catch (err) {
        this.setAside(path, err);
      }
    }
  }

  /** Writes the pools and network holds (durably). */
  saveIpam(): void {
    const networks = Object.fromEntries([...this.networks].filter(([, holds]) => holds.length > 0));
    writeFileAtomic(this.ipamFile, JSON.stringify({ pools: [...this.pools.values()], networks }, null, 1), { mode: 0o600, durable: true });
  }

  saveEndpoint(ep: EndpointEntry): void {
    this.endpoints.set(ep.id, ep);
    writeFileAtomic(join(this.endpointsDir, `${ep.id}.json`), JSON.stringify(ep, null, 1), { mode: 0o600 });
  }

  dropEndpoint(id: string): void {
    this.endpoints.delete(id);
    rmSync(join(this.endpointsDir, `${id}.json`), { force: true });
  }

  /** The pools dockerd holds through netd's IPAM, by subnet, with their held addresses: re-applied at start. */
  heldPools(): HeldPool[] {
    const bySubnet = new Map<string, HeldPool>();
    for (const pool of this.pools.values()) {
      const key = pool.subnet.toString();
      const p = bySubnet.get(key) ?? { subnet: pool.subnet, addresses: [] };
      bySubnet.set(key, p);
      if (pool.subPool) p.ipRange = pool.subPool;
      if (pool.gateway) p.gateway = pool.gateway;
      p.addresses.push(...pool.addresses);
    }
    return [...bySubnet.values()];
  }

  /** The addresses the network driver held in networks' subnets (aux addresses, the own of the endpoints `which` picks). */
  driverHolds(which: (endpointId: string) => boolean = () => true): Hold[] {
    return [...[...this.networks.values()].flat(), ...[...this.endpoints.values()].filter((e) => which(e.id)).flatMap((e) => e.heldHere)];
  }
}
