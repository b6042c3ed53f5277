/**
 * The names of the bridge driver's kernel objects: a network's bridge, an endpoint's host end, and the
 * firewall's view of a network (its bridge and subnets).
 */
import { InvalidArgumentError } from '../../errors.js';
import type { DriverEndpoint, DriverNetwork } from '../../driverapi/model.js';
import type { NetworkFirewallSpec } from '../../firewall/firewall.js';
import type { BridgeOptions } from './options.js';

/** What createNetwork persists in the network's driverState. */
export interface BridgeState {
  bridge: string;
  [key: string]: unknown;
}

/** `veth` + 7 hex characters of the endpoint id. */
export function hostInterfaceName(endpointId: string): string {
  if (!/^[0-9a-f]{7}/.test(endpointId)) throw new InvalidArgumentError(`invalid endpoint id ${endpointId}`);
  return `veth${endpointId.slice(0, 7)}`;
}

/** The host end's name as join recorded it (endpoints from before it did: derived from the id). */
export function hostIfnameOf(endpoint: DriverEndpoint): string {
  return (endpoint.driverState.hostIfname as string | undefined) ?? hostInterfaceName(endpoint.id);
}

/** The network's bridge: as created (driverState), else as its options name it. */
export function bridgeName(network: DriverNetwork, opts: BridgeOptions): string {
  return (network.driverState as Partial<BridgeState>).bridge ?? opts.bridgeName;
}

export function firewallSpec(network: DriverNetwork, opts: BridgeOptions): NetworkFirewallSpec {
  return {
    id: network.id,
    bridge: bridgeName(network, opts),
    subnets: [...network.ipv4, ...network.ipv6].map((c) => c.subnet),
    internal: network.internal,
    masquerade: opts.masquerade,
    icc: opts.icc,
  };
}
