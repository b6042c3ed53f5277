/**
 * The model in memory: networks, endpoints and sandboxes by id, the loaded drivers, and the lookups the
 * operations share. Sandbox records are written here too, since their shape on disk (no endpoint list)
 * is the registry's business.
 */
import { PENDING_NAMESPACE } from './sandbox.js';
import { InvalidArgumentError, NetdError, NotFoundError } from '../errors.js';
import type { Driver } from '../driverapi/driver.js';
import type { Store } from '../store/store.js';
import { Network, type NetworkRecord } from './network.js';
import type { EndpointRecord } from './endpoint.js';
import type { SandboxRecord } from './sandbox.js';

export class Registry {
  readonly networksById = new Map<string, Network>();
  readonly endpointsById = new Map<string, EndpointRecord>();
  readonly sandboxesById = new Map<string, SandboxRecord>();
  readonly drivers = new Map<string, Driver>();

  constructor(
    drivers: Driver[],
    private readonly store: Store,
  ) {
    for (const d of drivers) this.drivers.set(d.type, d);
  }

  // ---------------------------------------------------------------- networks

  /** Finds a network by full id, exact name, or unique id prefix. */
  findNetwork(ref: string): Network | undefined {
    if (typeof ref !== 'string' || ref === '') return undefined;
    const byId = this.networksById.get(ref);
    if (byId) return byId;
    const byName = this.findNetworkByName(ref);
    if (byName) return byName;
    if (/^[0-9a-f]{1,63}$/.test(ref)) {
      const matches = [...this.networksById.values()].filter((n) => n.id.startsWith(ref));
      if (matches.length === 1) return matches[0];
      if (matches.length > 1) throw new InvalidArgumentError(`network id prefix ${ref} is ambiguous`);
    }
    return undefined;
  }

  findNetworkByName(name: string): Network | undefined {
    for (const n of this.networksById.values()) if (n.name === name) return n;
    return undefined;
  }

  /** The network of an endpoint (it always has one: endpoints without are dropped at load). */
  networkOf(ep: EndpointRecord): Network {
    return this.networksById.get(ep.networkId)!;
  }

  // ---------------------------------------------------------------- drivers

  driverOf(network: NetworkRecord): Driver {
    const d = this.drivers.get(network.driver);
    if (!d) throw new NetdError(`network ${network.name} uses driver ${network.driver}, which is not loaded`, 500, 'internal');
    return d;
  }

  driver(type: string): Driver {
    const d = this.drivers.get(type);
    if (!d) throw new NotFoundError(`unknown network driver ${JSON.stringify(type)} (available: ${[...this.drivers.keys()].join(', ')})`);
    return d;
  }

  /** Each driver with its networks and their endpoints (for restore and firewall reloads). */
  *byDriver(): Generator<[Driver, NetworkRecord[], EndpointRecord[]]> {
    for (const [type, driver] of this.drivers) {
      const nets = [...this.networksById.values()].filter((n) => n.record.driver === type).map((n) => n.record);
      const ids = new Set(nets.map((n) => n.id));
      yield [driver, nets, [...this.endpointsById.values()].filter((e) => ids.has(e.networkId))];
    }
  }

  // ---------------------------------------------------------------- endpoints

  /** The endpoint on `network` of the container named `container` whose interface is `ifname`. */
  endpointByInterface(network: Network, container: string, ifname: string): EndpointRecord | undefined {
    for (const id of network.endpoints) {
      const ep = this.endpointsById.get(id);
      if (ep && ep.ifname === ifname && this.sandboxesById.get(ep.sandboxId)?.name === container) return ep;
    }
    return undefined;
  }

  endpointsOfSandbox(sandbox: SandboxRecord): EndpointRecord[] {
    return sandbox.endpoints.map((id) => this.endpointsById.get(id)!);
  }

  addEndpoint(network: Network, sandbox: SandboxRecord, ep: EndpointRecord): void {
    sandbox.endpoints.push(ep.id);
    this.endpointsById.set(ep.id, ep);
    network.endpoints.add(ep.id);
  }

  removeEndpoint(network: Network, ep: EndpointRecord, sandbox: SandboxRecord | undefined): void {
    this.endpointsById.delete(ep.id);
    network.endpoints.delete(ep.id);
    if (sandbox) sandbox.endpoints = sandbox.endpoints.filter((id) => id !== ep.id);
  }

  // ---------------------------------------------------------------- sandboxes

  /** The sandbox of a namespace, by its identity (host-mode sandboxes are never shared). */
  sandboxOfNamespace(nsId: string): SandboxRecord | undefined {
    return [...this.sandboxesById.values()].find((s) => s.nsId === nsId && !s.host);
  }

  /** The sandbox joined at `key` before its namespace existed (PENDING_NAMESPACE), if any. */
  pendingSandboxAt(key: string): SandboxRecord | undefined {
    return this.sandboxOfNamespace(PENDING_NAMESPACE + key);
  }

  /**
   * Writes a sandbox's record. Its endpoint list is left out: at start it is rebuilt from the endpoints'
   * own records, so a sandbox file changes only when the sandbox itself does.
   */
  persistSandbox(sandbox: SandboxRecord): void {
    const { endpoints: _derived, ...record } = sandbox;
    this.store.put('sandboxes', sandbox.id, record);
  }

  forgetSandbox(sandbox: SandboxRecord): void {
    this.store.delete('sandboxes', sandbox.id);
    this.sandboxesById.delete(sandbox.id);
  }
}
