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
 * existed) treats an old mark as its own only when its id12 is one of its own records' (networks,
 * endpoints), so the upgrade replaces those; another old data root on the same host keeps its objects.
 * An old bucket chain (shared by old data roots) is adopted only when every rule in it is adopted (or it
 * is empty); the jumps to a bucket that goes are removed with it.
 */
import { InvalidArgumentError } from '../errors.js';

/** Comment on the shared base rules (chains, jumps). */
export const BASE_TAG = 'netd';

/** An instance id: 6 lower-case hex characters (chain names must stay within 28 characters). */
export const INSTANCE_ID_RE = /^[0-9a-f]{6}$/;

/** An old rule or link mark: `netd:<id12>` or `netd:pf:<id12>` (group 1: the id12). */
const LEGACY_TAG_RE = /^netd:(?:pf:)?([0-9a-f]{12})$/;
const LEGACY_FORWARD_CHAIN_RE = /^NETD-PF-([0-9a-f]{12})$/;
const LEGACY_BUCKET_RE = /^NETD-PFB-[0-9a-f]{2}$/;
const LEGACY_CHAIN_RE = /^NETD-PF-[0-9a-f]{12}$|^NETD-PFB-[0-9a-f]{2}$/;
/** A link mark of any instance, or an old one (group 1: the instance, if any; group 2: the id12). */
const OBJECT_TAG_RE = /^netd:(?:([0-9a-f]{6}):)?([0-9a-f]{12})$/;
const NONE: ReadonlySet<string> = new Set();

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

  /**
   * Whether a rule with this comment is this instance's to keep in order (the shared base rules included).
   * `adopted`: the id12s of this data root's networks and endpoints, whose old marks an adopting instance owns.
   */
  owns(comment: string | undefined, adopted: ReadonlySet<string> = NONE): boolean {
    if (comment === undefined) return false;
    if (comment === BASE_TAG) return true;
    if (comment.startsWith(this.prefix)) return true;
    return this.adopts(LEGACY_TAG_RE.exec(comment)?.[1], adopted);
  }

  /**
   * Whether a chain is one of this instance's port-forward chains or buckets (deleted when nothing uses
   * it). An old bucket is this instance's only when each of its `rules` is (see the file comment).
   */
  ownsChain(table: string, chain: string, adopted: ReadonlySet<string> = NONE, rules: readonly { comment?: string }[] = []): boolean {
    if (table !== 'nat' && table !== 'filter') return false;
    if (this.chainRe.test(chain)) return true;
    if (this.instance?.adoptLegacy !== true) return false;
    if (LEGACY_BUCKET_RE.test(chain)) return rules.every((r) => this.adopts(LEGACY_TAG_RE.exec(r.comment ?? '')?.[1], adopted));
    return this.adopts(LEGACY_FORWARD_CHAIN_RE.exec(chain)?.[1], adopted);
  }

  /** Whether a link with this alias is this instance's: its own mark, or an adopted old one. */
  ownsLink(alias: string | undefined, adopted: ReadonlySet<string> = NONE): boolean {
    const m = OBJECT_TAG_RE.exec(alias ?? '');
    if (!m) return false;
    return alias === this.networkTag(m[2]) || (m[1] === undefined && this.adopts(m[2], adopted));
  }

  /** An old mark of this id12 is this instance's: it adopts old marks and the id is one of its records'. */
  private adopts(id12: string | undefined, adopted: ReadonlySet<string>): boolean {
    return this.instance?.adoptLegacy === true && id12 !== undefined && adopted.has(id12);
  }
}
