/**
 * Ownership marks on firewall rules and chains, per netd instance.
 *
 * Several daemons (different data roots) may share one host. They share the base chains (NETD-USER,
 * NETD-FORWARD, NETD-CT, NETD-INTERNAL, NETD-BRIDGE, NETD, NETD-POSTROUTING) and their jumps, which
 * every instance lays out identically and idempotently under the comment `netd`; so one network's
 * DROPs isolate it from every other netd network, whichever daemon made it. Everything else is marked
 * with the instance's id and only ever changed or removed by that instance:
 *   network rules       comment `netd:<instance>:<network id12>`
 *   port-forward rules  comment `netd:<instance>:pf:<endpoint id12>`, chain `NETD-PF-<instance>-<id12>`
 *   bucket jumps        comment `netd:<instance>:pf`, bucket chain `NETD-PFB-<instance>-<2 hex>`
 * Without an instance (the firewall used on its own, as the unit tests do) the marks are the ones netd
 * used before instances existed: `netd:<id12>`, `netd:pf:<id12>`, `netd:pf`, `NETD-PF-<id12>`,
 * `NETD-PFB-<2 hex>`. An instance that adopts legacy marks (a data root written before instances
 * existed) treats those as its own too, so the upgrade replaces them.
 */
import { InvalidArgumentError } from '../errors.js';

/** Comment on the shared base rules (chains, jumps). */
export const BASE_TAG = 'netd';

/** An instance id: 6 lower-case hex characters (chain names must stay within 28 characters). */
export const INSTANCE_ID_RE = /^[0-9a-f]{6}$/;

const LEGACY_TAG_RE = /^netd:(?:[0-9a-f]{12}|pf|pf:[0-9a-f]{12})$/;
const LEGACY_CHAIN_RE = /^NETD-PF-[0-9a-f]{12}$|^NETD-PFB-[0-9a-f]{2}$/;

export interface InstanceIdentity {
  /** INSTANCE_ID_RE. */
  readonly id: string;
  /** Also own the marks netd wrote before it had instances (a data root being upgraded). */
  readonly adoptLegacy?: boolean;
}

export class FirewallMarks {
  /** The marks of netd before instances: what the firewall uses when it is given no instance. */
  static readonly LEGACY = new FirewallMarks();

  private readonly prefix: string;
  private readonly chainRe: RegExp;

  constructor(readonly instance?: InstanceIdentity) {
    if (instance !== undefined && (typeof instance.id !== 'string' || !INSTANCE_ID_RE.test(instance.id))) {
      throw new InvalidArgumentError(`invalid netd instance id ${JSON.stringify(instance.id)}: expected 6 lower-case hex characters`);
    }
    this.prefix = instance ? `${BASE_TAG}:${instance.id}:` : `${BASE_TAG}:`;
    this.chainRe = instance ? new RegExp(`^NETD-PF-${instance.id}-[0-9a-f]{12}$|^NETD-PFB-${instance.id}-[0-9a-f]{2}$`) : LEGACY_CHAIN_RE;
  }

  networkTag(id12: string): string {
    return `${this.prefix}${id12}`;
  }

  forwardTag(id12: string): string {
    return `${this.prefix}pf:${id12}`;
  }

  /** The comment of the jumps from NETD into this instance's buckets. */
  get bucketTag(): string {
    return `${this.prefix}pf`;
  }

  /** An endpoint's port-forward chain (the same name in each table that has one). */
  forwardChain(id12: string): string {
    return this.instance ? `NETD-PF-${this.instance.id}-${id12}` : `NETD-PF-${id12}`;
  }

  /** The bucket chain an endpoint's chain is reached through. */
  bucketChain(id12: string): string {
    return this.instance ? `NETD-PFB-${this.instance.id}-${id12.slice(0, 2)}` : `NETD-PFB-${id12.slice(0, 2)}`;
  }

  /** Whether a rule with this comment is this instance's to keep in order (the shared base rules included). */
  owns(comment: string | undefined): boolean {
    if (comment === undefined) return false;
    if (comment === BASE_TAG) return true;
    if (!this.instance) return comment.startsWith(this.prefix);
    return comment.startsWith(this.prefix) || (this.instance.adoptLegacy === true && LEGACY_TAG_RE.test(comment));
  }

  /** Whether a chain is one of this instance's port-forward chains or buckets (deleted when nothing uses it). */
  ownsChain(table: string, chain: string): boolean {
    if (table !== 'nat' && table !== 'filter') return false;
    return this.chainRe.test(chain) || (this.instance?.adoptLegacy === true && LEGACY_CHAIN_RE.test(chain));
  }
}
