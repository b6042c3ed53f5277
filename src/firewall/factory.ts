/**
 * Making the firewall: the backend is chosen by name, so another one (nftables) plugs in here, beside
 * iptables, without its callers changing.
 */
import { InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log.js';
import { spawnRunner, type CommandRunner } from './exec.js';
import type { Firewall, FirewallBackendOptions } from './firewall.js';
import type { InstanceIdentity } from './marks.js';
import { IptablesFirewall } from './iptables.js';
import { NftablesFirewall } from './nftables.js';
import type { NftElementWriter } from './nft-elements.js';
import type { ConntrackSweep } from './conntrack.js';

const BACKENDS = {
  iptables: (opts: FirewallBackendOptions): Firewall => new IptablesFirewall(opts),
  nftables: (opts: FirewallBackendOptions): Firewall => new NftablesFirewall(opts),
} satisfies Record<string, (opts: FirewallBackendOptions) => Firewall>;

export type FirewallBackendName = keyof typeof BACKENDS;

/** The backends netd has, by name; the first is the default. */
export const FIREWALL_BACKENDS = Object.keys(BACKENDS) as FirewallBackendName[];

export interface FirewallOptions {
  logger: Logger;
  /** Which backend (default: iptables). */
  backend?: FirewallBackendName;
  /** How commands run; defaults to spawning the argv directly. */
  exec?: CommandRunner;
  /** Program ip6tables too (default true). When false, IPv6 subnets are ignored with a warning. */
  ipv6?: boolean;
  /** The daemon instance whose marks the rules carry (see marks.ts). */
  instance?: InstanceIdentity;
  /**
   * Clears stale conntrack entries of new host ports: the daemon gives `hostPortSweeper` (in-process over
   * ctnetlink, in its own network namespace). Default: none.
   */
  sweep?: ConntrackSweep;
  /** nftables: the element writer (the daemon's in-process nfnetlink one); default `nft -f -`. */
  elements?: NftElementWriter;
}

export function createFirewall(opts: FirewallOptions): Firewall {
  const name: string = opts.backend ?? FIREWALL_BACKENDS[0];
  if (!Object.hasOwn(BACKENDS, name)) {
    throw new InvalidArgumentError(`unknown firewall backend ${JSON.stringify(name)} (netd has: ${FIREWALL_BACKENDS.join(', ')})`);
  }
  return BACKENDS[name as FirewallBackendName]({
    logger: opts.logger,
    exec: opts.exec ?? spawnRunner,
    ipv6: opts.ipv6 ?? true,
    instance: opts.instance,
    sweep: opts.sweep ?? (async () => {}),
    elements: opts.elements,
  });
}
