/**
 * The firewall interface the bridge driver uses. Like netavark's FirewallDriver it speaks of networks
 * and port forwards, not of rules: the backend decides the rules. Types only: backends implement it,
 * factory.ts makes one.
 */
import type { ConntrackSweep } from './conntrack.js';
import type { Logger } from '../log.js';
import type { CommandRunner } from './exec.js';
import type { NetworkFirewallSpec } from './spec.js';
import type { PortForwardSpec } from './port-forward.js';
import type { InstanceIdentity } from './marks.js';
import type { Family } from './model.js';
import type { NftElementWriter } from './nft-elements.js';

export type { CommandRunner, CommandResult } from './exec.js';
export type { NetworkFirewallSpec } from './spec.js';
export type { PortForwardSpec, PortForwardMapping } from './port-forward.js';

export interface Firewall {
  readonly backend: string;
  /** Programs it runs: those it cannot work without (checked at start), and those it can (a warning). */
  readonly tools: { readonly required: readonly string[]; readonly optional: readonly string[] };
  /**
   * The nf_tables tables whose deletion or flush means netd's rules may be gone (iptables-nft: ip/ip6
   * filter, nat, raw; nftables: netd's own table). The healing monitor watches them.
   */
  readonly watchedTables: readonly { family: 'ip' | 'ip6' | 'inet'; name: string }[];
  /** Base chains and jumps; idempotent; safe after a restart or after someone flushed the tables. */
  init(): Promise<void>;
  /** Idempotent and all-or-nothing: applying it twice leaves one copy of each rule. */
  setupNetwork(n: NetworkFirewallSpec): Promise<void>;
  /** Removes exactly that network's rules, tolerating ones already gone. */
  teardownNetwork(n: NetworkFirewallSpec): Promise<void>;
  /**
   * Publishes an endpoint's ports (DNAT from every local address, or the given host addresses, to the
   * container). Its network must be set up. Idempotent; all-or-nothing; its cost does not depend on how
   * many other ports are published. New UDP/SCTP host ports get their stale conntrack entries cleared.
   */
  setupPortForward(forward: PortForwardSpec): Promise<void>;
  /**
   * Removes exactly that endpoint's port-forward rules. The conntrack entries of its flows are deleted
   * right after, before any later change of this firewall; `settled()` waits for that too.
   */
  teardownPortForward(forward: PortForwardSpec): Promise<void>;
  /** Resolves when every change asked for so far, follow-up work included, has been carried out. */
  settled(): Promise<void>;
  /**
   * Converge: add what is missing for these networks and port forwards, remove netd-tagged rules (and
   * port-forward chains) of networks and endpoints not in the lists. Never touches NETD-USER's contents
   * or rules that are not netd's. Port forwards left out are removed: pass all of them.
   */
  reconcile(networks: NetworkFirewallSpec[], forwards?: PortForwardSpec[]): Promise<void>;
  /**
   * True when `reconcile` with the same lists would change nothing. Reads only, without waiting for
   * changes under way: the timed check calls it, and reconciles (under the controller's lock) only when false.
   */
  intact?(networks: NetworkFirewallSpec[], forwards?: PortForwardSpec[]): Promise<boolean>;
  /**
   * Sets the policy of the FORWARD chain to DROP in these families (as Docker does when it had to turn
   * forwarding on): the host then routes only what netd's rules (or the administrator's) accept. The
   * policy is kept: every later convergence (init, reconcile, the watchdog) sets it back if it changed.
   * Returns the families it protects: a family this firewall does not program (IPv6 without ip6tables)
   * is left out, with a warning, so the caller does not turn its forwarding on unprotected.
   */
  dropForwardByDefault(families: readonly Family[]): Promise<Family[]>;
  /**
   * What keeps netd's rules from working that is not netd's to change, each with its fix (nftables: another
   * table's chain that drops the forwarded traffic netd accepts); none: []. Looks again when its last look
   * is older than a second (start and reloads look too). Plain data, for `netd info`.
   */
  warnings(): Promise<FirewallWarning[]>;
}

/** Something in the host's firewall, outside netd's rules, that drops what netd lets through. */
export interface FirewallWarning {
  /** Where: the nf_tables family, table and chain (e.g. `ip`, `filter`, `FORWARD`: iptables-nft's). */
  readonly family: string;
  readonly table: string;
  readonly chain: string;
  /** What it does to netd's traffic. */
  readonly problem: string;
  /** The one rule that lets netd's traffic through. */
  readonly fix: string;
}

/** What a backend is made with (factory.ts fills in the defaults). */
export interface FirewallBackendOptions {
  logger: Logger;
  /** How commands run. */
  exec: CommandRunner;
  /** Program IPv6 too. When false, IPv6 subnets and port mappings are ignored with a warning. */
  ipv6: boolean;
  /** The daemon instance whose marks the rules carry (marks.ts); none: netd's marks before instances. */
  instance?: InstanceIdentity;
  /** Clears stale conntrack entries to newly published connectionless host ports (conntrack.ts). */
  sweep: ConntrackSweep;
  /** nftables: how set/map elements (published ports) are written; default: `nft -f -` (NftScriptElementWriter). */
  elements?: NftElementWriter;
}
