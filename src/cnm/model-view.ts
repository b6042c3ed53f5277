/**
 * What the controller answers without its lock: lookups in the model as it stands (registry.ts). An
 * attach whose join is still in flight (joins.ts) is not in it yet; a detach is gone from it at its answer.
 */
import { NotFoundError } from '../errors.js';
import type { Registry } from './registry.js';
import { Targets } from './targets.js';
import type { NetworkRecord } from './network.js';
import type { EndpointRecord } from './endpoint.js';
import type { NamespaceResolver, ResolvedNamespace, SandboxRecord, SandboxTarget } from './sandbox.js';

export class ModelView {
  protected readonly targets: Targets;

  constructor(
    protected readonly registry: Registry,
    resolver: NamespaceResolver,
  ) {
    this.targets = new Targets(registry, resolver);
  }

  networks(): NetworkRecord[] {
    return [...this.registry.networksById.values()].map((n) => n.record);
  }

  /** Finds a network by full id, exact name, or unique id prefix. */
  network(ref: string): NetworkRecord {
    const n = this.registry.findNetwork(ref);
    if (!n) throw new NotFoundError(`network ${ref} not found`);
    return n.record;
  }

  endpoints(): EndpointRecord[] {
    return [...this.registry.endpointsById.values()];
  }

  endpoint(id: string): EndpointRecord | undefined {
    return this.registry.endpointsById.get(id);
  }

  endpointsOf(networkId: string): EndpointRecord[] {
    const network = this.registry.networksById.get(networkId);
    return network ? [...network.endpoints].map((id) => this.registry.endpointsById.get(id)!) : [];
  }

  sandboxes(): SandboxRecord[] {
    return [...this.registry.sandboxesById.values()];
  }

  sandbox(id: string): SandboxRecord | undefined {
    return this.registry.sandboxesById.get(id);
  }

  /** Finds an attached container's sandbox by PID, name, sandbox id (or unique prefix) or namespace path. */
  findSandbox(ref: string): SandboxRecord | undefined {
    return this.targets.findSandbox(ref);
  }

  /** The endpoint on the network named exactly `networkName` of the container (sandbox) named `container` with interface `ifname`. */
  endpointByInterface(networkName: string, container: string, ifname: string): EndpointRecord | undefined {
    const network = this.registry.findNetworkByName(networkName);
    return network ? this.registry.endpointByInterface(network, container, ifname) : undefined;
  }

  /** Locates a namespace as an attach would (throws when it cannot be opened), without attaching. */
  namespaceOf(target: SandboxTarget): ResolvedNamespace {
    return this.targets.resolve(target, false);
  }
}
