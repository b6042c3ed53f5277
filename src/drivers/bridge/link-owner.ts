/**
 * Which links are whose: every link the bridge driver creates carries the ifalias `netd:<instance>:<id12>`
 * (the network's or the endpoint's id; the daemon's instance id), the same mark as the instance's rules
 * (firewall/marks.ts). A link marked by another netd instance is never touched; one with netd's mark from
 * before instances (`netd:<id12>`) is this instance's only when its id is one of this data root's records
 * (another old data root on the host may own the rest).
 */
import { FirewallMarks, type InstanceIdentity } from '../../firewall/marks.js';

export class LinkOwner {
  private readonly marks: FirewallMarks;

  constructor(instance?: InstanceIdentity) {
    this.marks = instance ? new FirewallMarks(instance) : FirewallMarks.LEGACY;
  }

  /** The alias of the link made for this network or endpoint. */
  mark(id: string): string {
    return this.marks.networkTag(id.slice(0, 12));
  }

  /**
   * Whether a link with this alias is the one made for this object: its mark, netd's mark from before
   * instances, or none at all (made by an operation a crash interrupted before the alias, a separate
   * request, was set).
   */
  isOf(alias: string | undefined, id: string): boolean {
    return !alias || alias === this.mark(id) || alias === FirewallMarks.LEGACY.networkTag(id.slice(0, 12));
  }

  /**
   * Whether a link with this alias was made by this instance (so one with no record may be removed).
   * `adopted`: the id12s of this data root's networks and endpoints (see FirewallMarks.ownsLink).
   */
  isMine(alias: string | undefined, adopted?: ReadonlySet<string>): boolean {
    return this.marks.ownsLink(alias, adopted);
  }

  /** Whether a link is any netd's (any instance). */
  static isNetd(alias: string | undefined): boolean {
    return alias?.startsWith('netd:') === true;
  }
}
