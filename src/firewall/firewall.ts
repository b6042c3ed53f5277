/**
 * The firewall interface the bridge driver uses. Like netavark's FirewallDriver it speaks of networks
 * (and, later, port forwards), not of rules: the backend decides the rules.
 */
import type { Logger } from '../log.js';
import { spawnRunner, type CommandRunner } from './exec.js';
import { IptablesFirewall } from './iptables.js';
import type { NetworkFirewallSpec } from './spec.js';

export type { CommandRunner, CommandResult } from './exec.js';
export type { NetworkFirewallSpec } from './spec.js';

export interface Firewall {
  readonly backend: string;
  /** Base chains and jumps; idempotent; safe after a restart or after someone flushed the tables. */
  init(): Promise<void>;
  /** Idempotent and all-or-nothing: applying it twice leaves one copy of each rule. */
  setupNetwork(n: NetworkFirewallSpec): Promise<void>;
  /** Removes exactly that network's rules, tolerating ones already gone. */
  teardownNetwork(n: NetworkFirewallSpec): Promise<void>;
  /**
   * Converge: add what is missing for these networks, remove netd-tagged rules of networks not in the
   * list. Never touches NETD-USER's contents or rules that are not netd's.
   */
  reconcile(networks: NetworkFirewallSpec[]): Promise<void>;
}

export interface FirewallOptions {
  logger: Logger;
  /** How commands run; defaults to spawning the argv directly. */
  exec?: CommandRunner;
  /** Program ip6tables too (default true). When false, IPv6 subnets are ignored with a warning. */
  ipv6?: boolean;
}

export function createFirewall(opts: FirewallOptions): Firewall {
  return new IptablesFirewall({ logger: opts.logger, exec: opts.exec ?? spawnRunner, ipv6: opts.ipv6 ?? true });
}
