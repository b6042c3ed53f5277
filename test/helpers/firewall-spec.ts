/**
 * Firewall specs written with plain strings in tests, turned into the typed specs the firewall takes.
 * Parsing happens when the function is called, so a table of bad inputs can be built up front.
 */
import type { NetworkFirewallSpec, PortForwardSpec } from '../../src/firewall/firewall.js';
import type { PortForwardMapping } from '../../src/firewall/port-forward.js';
import { IPAddress, Prefix } from '../../src/net/index.js';

export type NetworkSpecText = Omit<NetworkFirewallSpec, 'subnets'> & { subnets: string[] };
export type MappingText = Omit<PortForwardMapping, 'hostIp'> & { hostIp: string };
export type ForwardSpecText = Omit<PortForwardSpec, 'containerV4' | 'containerV6' | 'ports'> & {
  containerV4?: string;
  containerV6?: string;
  ports: MappingText[];
};

export function networkSpec(s: NetworkSpecText): NetworkFirewallSpec {
  return { ...s, subnets: s.subnets.map((x) => Prefix.parse(x)) };
}

export function forwardSpec(s: ForwardSpecText): PortForwardSpec {
  const ip = (x: string | undefined) => (x === undefined ? undefined : IPAddress.parse(x));
  return {
    ...s,
    containerV4: ip(s.containerV4),
    containerV6: ip(s.containerV6),
    ports: s.ports.map((m) => ({ ...m, hostIp: IPAddress.parse(m.hostIp) })),
  };
}
