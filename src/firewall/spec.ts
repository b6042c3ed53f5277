/**
 * What the firewall layer is told about a network, and its validation into a normalised form that the
 * backends use. Nothing reaches a backend without passing through normalizeNetwork.
 */
import { InvalidArgumentError } from '../errors.js';
import { Prefix, parseFirewallIfName, type IfName } from '../net/index.js';
import { checkMatchable } from './model.js';
import { FirewallMarks } from './marks.js';

export { BASE_TAG } from './marks.js';

export interface NetworkFirewallSpec {
  /** Network id, 64 lower-case hex characters; rules are tagged with it (marks.ts: "netd:<instance>:<first 12>"). */
  id: string;
  /** Bridge interface name. */
  bridge: string;
  /** At most one IPv4 and one IPv6 subnet (v6 rules go through ip6tables). */
  subnets: Prefix[];
  /** No outside access: no MASQUERADE, traffic only within the subnet. */
  internal: boolean;
  /** com.docker.network.bridge.enable_ip_masquerade (default true). */
  masquerade: boolean;
  /** Inter-container communication on this bridge (default true). */
  icc: boolean;
}

/** A validated network: every field safe to render. */
export interface FirewallNetwork {
  readonly id: string;
  readonly id12: string;
  /** The comment carried by every rule of this network. */
  readonly tag: string;
  readonly bridge: IfName;
  readonly v4?: Prefix;
  readonly v6?: Prefix;
  readonly internal: boolean;
  readonly masquerade: boolean;
  readonly icc: boolean;
}

function bool(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new InvalidArgumentError(`network ${name} must be a boolean`);
  return value;
}

/**
 * Validates a spec. The bridge driver supports one subnet per family (as Docker's does), and the
 * firewall rules rely on it: two IPv4 subnets on one internal network would each drop the other's traffic.
 */
export function normalizeNetwork(spec: NetworkFirewallSpec, marks: FirewallMarks = FirewallMarks.LEGACY): FirewallNetwork {
  if (typeof spec !== 'object' || spec === null) throw new InvalidArgumentError('network spec must be an object');
  if (typeof spec.id !== 'string' || !/^[0-9a-f]{64}$/.test(spec.id)) {
    throw new InvalidArgumentError(`invalid network id ${JSON.stringify(spec.id)}: expected 64 lower-case hex characters`);
  }
  const bridge = parseFirewallIfName(spec.bridge, 'bridge name');
  if (!Array.isArray(spec.subnets) || spec.subnets.length === 0) {
    throw new InvalidArgumentError('network needs at least one subnet');
  }
  let v4: Prefix | undefined;
  let v6: Prefix | undefined;
  for (const s of spec.subnets) {
    if (!(s instanceof Prefix)) throw new InvalidArgumentError(`invalid subnet ${JSON.stringify(s)}: expected a Prefix`);
    const c = checkMatchable(s, 'subnet');
    if (c.family === 4) {
      if (v4) throw new InvalidArgumentError(`network has more than one IPv4 subnet (${v4}, ${c})`);
      v4 = c;
    } else {
      if (v6) throw new InvalidArgumentError(`network has more than one IPv6 subnet (${v6}, ${c})`);
      v6 = c;
    }
  }
  const id12 = spec.id.slice(0, 12);
  return {
    id: spec.id,
    id12,
    tag: marks.networkTag(id12),
    bridge,
    v4,
    v6,
    internal: bool(spec.internal, 'internal'),
    masquerade: bool(spec.masquerade, 'masquerade'),
    icc: bool(spec.icc, 'icc'),
  };
}
