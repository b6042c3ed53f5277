/**
 * What every firewall backend does with its input before it plans anything: networks and port forwards
 * validated (spec.ts, port-forward.ts), IPv6 parts dropped with a warning when IPv6 is off, and the
 * lists reconcile is given checked for clashes (two networks on one id prefix or one bridge, two forwards
 * on one endpoint id prefix).
 */
import { InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Family } from './model.js';
import type { FirewallMarks } from './marks.js';
import { normalizeNetwork, type FirewallNetwork, type NetworkFirewallSpec } from './spec.js';
import { normalizeForward, type FirewallForward, type PortForwardSpec } from './port-forward.js';

export class BackendInput {
  constructor(
    private readonly log: Logger,
    private readonly families: readonly Family[],
    private readonly marks: FirewallMarks,
  ) {}

  network(spec: NetworkFirewallSpec): FirewallNetwork {
    const n = normalizeNetwork(spec, this.marks);
    if (n.v6 && !this.families.includes(6)) {
      this.log.warn({ network: n.id12, subnet: n.v6.toString() }, 'IPv6 firewalling is disabled: ignoring the IPv6 subnet');
      return { ...n, v6: undefined };
    }
    return n;
  }

  forward(spec: PortForwardSpec): FirewallForward {
    return normalizeForward(
      spec,
      this.families,
      (m) => this.log.warn({ endpoint: spec.endpointId?.slice?.(0, 12), hostIp: m.hostIp, hostPort: m.hostPort }, 'IPv6 firewalling is disabled: ignoring an IPv6 port mapping'),
      this.marks,
    );
  }

  /** reconcile's lists, validated, by id12. */
  lists(specs: NetworkFirewallSpec[], forwardSpecs: PortForwardSpec[]): { networks: Map<string, FirewallNetwork>; forwards: Map<string, FirewallForward> } {
    if (!Array.isArray(specs)) throw new InvalidArgumentError('reconcile needs a list of networks');
    if (!Array.isArray(forwardSpecs)) throw new InvalidArgumentError('reconcile needs a list of port forwards');
    const networks = new Map<string, FirewallNetwork>();
    const bridges = new Map<string, string>();
    for (const spec of specs) {
      const n = this.network(spec);
      const seen = networks.get(n.id12);
      if (seen && JSON.stringify(seen) !== JSON.stringify(n)) throw new InvalidArgumentError(`two different networks share the id prefix ${n.id12}`);
      const owner = bridges.get(n.bridge);
      if (owner && owner !== n.id12) throw new InvalidArgumentError(`networks ${owner} and ${n.id12} both use bridge ${n.bridge}`);
      networks.set(n.id12, n);
      bridges.set(n.bridge, n.id12);
    }
    const forwards = new Map<string, FirewallForward>();
    for (const spec of forwardSpecs) {
      const f = this.forward(spec);
      if (forwards.has(f.id12)) throw new InvalidArgumentError(`two port forwards share the endpoint id prefix ${f.id12}`);
      forwards.set(f.id12, f);
    }
    return { networks, forwards };
  }
}
