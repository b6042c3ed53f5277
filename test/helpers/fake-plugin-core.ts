/**
 * An in-memory stand-in for the controller's API as the Docker plugin uses it (docker-plugin/core.ts):
 * networks, endpoints, held pools and addresses, published ports, and a log of every call that would
 * change something, so a test can tell that a refused request changed nothing.
 */
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConflictError, ForbiddenError, NotFoundError } from '../../src/errors.js';
import { IPAddress, InterfaceAddress, Prefix } from '../../src/net/index.js';
import type { NetworkRecord } from '../../src/cnm/network.js';
import type { AttachResult, EndpointRecord } from '../../src/cnm/endpoint.js';
import type { PoolInfo } from '../../src/ipam/ipam.js';
import type { PortBinding, PortRequest } from '../../src/portmap/types.js';
import { PORT_MAP } from '../../src/driverapi/labels.js';
import type { HeldPool, PluginAttachRequest, PluginCore, PluginNetworkRequest } from '../../src/docker-plugin/core.js';
import { silentLogger } from '../../src/log.js';
import { DockerPlugin } from '../../src/docker-plugin/plugin.js';

export class FakePluginCore implements PluginCore {
  /** Every call that changes something, in order. */
  calls: string[] = [];
  nets = new Map<string, NetworkRecord>();
  eps = new Map<string, EndpointRecord>();
  pools = new Map<string, PoolInfo>();
  heldAddresses = new Set<string>();
  ports = new Map<string, PortBinding[]>();
  restored?: readonly HeldPool[];
  /** Every attach request, whole. */
  attaches: PluginAttachRequest[] = [];
  private nextPool = 0;

  network(ref: string): NetworkRecord {
    const n = this.nets.get(ref);
    if (!n) throw new NotFoundError(`network ${ref} not found`);
    return n;
  }

  networks(): NetworkRecord[] {
    return [...this.nets.values()];
  }

  async createNetwork(req: PluginNetworkRequest): Promise<NetworkRecord> {
    this.calls.push(`createNetwork ${req.id} ${req.subnet ?? ''} ${req.gateway ?? ''}`);
    const subnet = req.subnet ?? Prefix.parse('172.30.0.0/16');
    const record: NetworkRecord = {
      id: req.id,
      name: req.name,
      driver: req.driver ?? 'bridge',
      created: '',
      attachable: false,
      enableIPv6: req.enableIPv6 ?? false,
      labels: req.labels ?? {},
      predefined: false,
      internal: req.internal ?? false,
      ipv4: [{ subnet, gateway: req.gateway ?? subnet.at(1n) }],
      ipv6: req.subnet6 ? [{ subnet: req.subnet6, gateway: req.gateway6 ?? req.subnet6.at(1n) }] : [],
      options: req.options ?? {},
      driverState: { managedBy: req.managedBy, adoptHeldPool: req.adoptHeldPool },
      managedBy: req.managedBy,
    };
    this.nets.set(req.id, record);
    return record;
  }

  async deleteNetwork(ref: string, managedBy?: string): Promise<void> {
    this.calls.push(`deleteNetwork ${ref} ${managedBy}`);
    const n = this.network(ref);
    if (n.managedBy !== managedBy) throw new ForbiddenError(`network ${ref} is managed by ${n.managedBy}`);
    const active = this.endpointsOf(ref).length;
    if (active > 0) throw new ConflictError(`network ${n.name} has ${active} active endpoint(s)`);
    this.nets.delete(ref);
  }

  async attach(req: PluginAttachRequest): Promise<AttachResult> {
    this.calls.push(`attach ${req.endpointId} ${req.ifname} ${req.ip ?? ''} ${req.mac} handOff=${req.handOff} claimHeld=${req.claimHeld} ${req.target.path}`);
    this.attaches.push(req);
    const n = this.network(req.network!);
    const ep: EndpointRecord = {
      id: req.endpointId,
      name: req.name!,
      networkId: n.id,
      ifname: req.ifname!,
      mac: req.mac,
      ...(req.ip ? { ipv4: InterfaceAddress.of(req.ip, n.ipv4[0].subnet) } : {}),
      gatewayEndpoint: true,
      driverState: {},
      sandboxId: 'sb',
      aliases: [],
      created: '',
      labels: req.labels,
      ...(req.managedBy ? { managedBy: req.managedBy } : {}),
    };
    this.eps.set(ep.id, ep);
    return { network: n.name, networkId: n.id, endpointId: ep.id, sandboxId: 'sb', name: ep.name, interface: ep.ifname };
  }

  async endpointGone(_id: string): Promise<void> {}

  async removeEndpoint(id: string, reason?: string, managedBy?: string): Promise<boolean> {
    this.calls.push(`removeEndpoint ${id} ${reason} ${managedBy}`);
    const ep = this.eps.get(id);
    if (ep && ep.managedBy !== managedBy) throw new ForbiddenError(`endpoint ${id} is managed by ${ep.managedBy}`);
    this.ports.delete(id);
    return this.eps.delete(id);
  }

  endpoint(id: string): EndpointRecord | undefined {
    return this.eps.get(id);
  }

  endpointsOf(networkId: string): EndpointRecord[] {
    return [...this.eps.values()].filter((e) => e.networkId === networkId);
  }

  endpointInfo(ep: EndpointRecord): Record<string, unknown> {
    const ports = this.ports.get(ep.id) ?? [];
    return { hostInterface: { name: `veth${ep.id.slice(0, 7)}` }, ...(ports.length > 0 ? { ports } : {}) };
  }

  async holdPool(req: { family: 4 | 6; subnet?: Prefix; ipRange?: Prefix }): Promise<PoolInfo> {
    this.calls.push(`holdPool ${req.family} ${req.subnet ?? ''} ${req.ipRange ?? ''}`);
    const subnet = req.subnet ?? Prefix.parse(req.family === 4 ? `10.${200 + this.nextPool++}.0.0/24` : `fd00:${this.nextPool++}::/64`);
    const same = this.pools.get(subnet.toString());
    if (same) return same;
    if ([...this.pools.values()].some((p) => p.subnet.overlaps(subnet))) throw new ConflictError(`pool ${subnet} overlaps a held pool`);
    const info: PoolInfo = { subnet, family: req.family, gateway: subnet.at(1n), prefix: subnet.length, ...(req.ipRange ? { ipRange: req.ipRange } : {}) };
    this.pools.set(subnet.toString(), info);
    return info;
  }

  async releasePool(subnet: Prefix): Promise<void> {
    this.calls.push(`releasePool ${subnet}`);
    this.pools.delete(subnet.toString());
  }

  async holdAddress(subnet: Prefix, address?: IPAddress, opts?: { gateway?: boolean }): Promise<InterfaceAddress> {
    this.calls.push(`holdAddress ${subnet} ${address ?? ''}${opts?.gateway ? ' gateway' : ''}`);
    if (!this.pools.has(subnet.toString()) && !this.networks().some((n) => n.ipv4.concat(n.ipv6).some((c) => c.subnet.equals(subnet)))) throw new NotFoundError(`no pool ${subnet}`);
    let a = address ?? (opts?.gateway ? subnet.at(1n) : undefined);
    for (let i = 2n; !a; i++) if (!this.heldAddresses.has(`${subnet} ${subnet.at(i)}`)) a = subnet.at(i);
    if (this.heldAddresses.has(`${subnet} ${a}`)) throw new ConflictError(`address ${a} is held already`);
    this.heldAddresses.add(`${subnet} ${a}`);
    return InterfaceAddress.of(a, subnet);
  }

  async releaseAddress(subnet: Prefix, address: IPAddress): Promise<void> {
    this.calls.push(`releaseAddress ${subnet} ${address}`);
    this.heldAddresses.delete(`${subnet} ${address}`);
  }

  addressHeld(subnet: Prefix, address: IPAddress): boolean {
    return this.heldAddresses.has(`${subnet} ${address}`);
  }

  /** The holds, as the controller offers them (`controller.held`). */
  get held(): this {
    return this;
  }

  async restore(pools: readonly HeldPool[]): Promise<string[]> {
    this.restored = pools;
    return [];
  }

  async programExternalConnectivity(endpointId: string, options: Record<string, unknown>): Promise<AttachResult> {
    this.calls.push(`programExternalConnectivity ${endpointId}`);
    const reqs = options[PORT_MAP] as PortRequest[];
    this.ports.set(endpointId, reqs.map((r) => ({ proto: r.proto, hostIp: r.hostIp ?? '0.0.0.0', hostPort: r.hostPort || 49153, containerPort: r.containerPort })));
    return {} as AttachResult;
  }

  async revokeExternalConnectivity(endpointId: string): Promise<void> {
    this.calls.push(`revokeExternalConnectivity ${endpointId}`);
    this.ports.delete(endpointId);
  }
}

/** A plugin on a fresh state directory with a fake core, ready. */
export async function fakePlugin(dir = mkdtempSync(join(tmpdir(), 'netd-plugin-'))): Promise<{ plugin: DockerPlugin; core: FakePluginCore; dir: string }> {
  const core = new FakePluginCore();
  const plugin = new DockerPlugin(dir, silentLogger());
  await plugin.ready(core);
  return { plugin, core, dir };
}

/** Every file under `dir` with its content (and mode), to compare before and after a refused request. */
export function snapshotDir(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[p] = readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

export const NET1 = 'a71aff9a6e3beafa5431d5a78ac36a4694ae7b862d900c23a4a55f6b4ff24fa3';
export const NET2 = 'a63f0fa473b13dacd6b05c9d7478daafa462859a1f57a422935a9273643ae779';
export const EP1 = '31657ccdec87b064e8a0ff8ed4d3acf4457cb8e7b916d4718ac89adb2887c46a';
export const EP2 = '3969db0b288f1fcd19390c7f5bf1fdadf13f2ba577ad6f83b4ad33a353499787';

/** An endpoint on NET2 (10.124.0.0/24), as CreateEndpoint sends it. */
export const ENDPOINT_FOR_RESTORE = { NetworkID: NET2, EndpointID: EP1, Interface: { Address: '10.124.0.2/24', AddressIPv6: '', MacAddress: '' }, Options: {} };
