/**
 * Which links are whose: every link the bridge driver creates carries the ifalias `netd:<instance>:<id12>`
 * (the network's or the endpoint's id; the daemon's instance id, see firewall/marks.ts). A link marked by
 * another netd instance is never touched; one with netd's mark from before instances (`netd:<id12>`) is
 * this instance's when its id is one of its records, or when the instance adopts legacy marks.
 */
import type { InstanceIdentity } from '../../firewall/marks.js';

const LEGACY_ALIAS_RE = /^netd:[0-9a-f]{12}$/;

export class LinkOwner {
  private readonly prefix: string;

  constructor(private readonly instance?: InstanceIdentity) {
    this.prefix = instance ? `netd:${instance.id}:` : 'netd:';
  }

  /** The alias of the link made for this network or endpoint. */
  mark(id: string): string {
    return `${this.prefix}${id.slice(0, 12)}`;
  }

  /**
   * Whether a link with this alias is the one made for this object: its mark, netd's mark from before
   * instances, or none at all (made by an operation a crash interrupted before the alias, a separate
   * request, was set).
   */
  isOf(alias: string | undefined, id: string): boolean {
    return !alias || alias === this.mark(id) || alias === `netd:${id.slice(0, 12)}`;
  }

  /** Whether a link with this alias was made by this instance (so one with no record may be removed). */
  isMine(alias: string | undefined): boolean {
    if (!alias) return false;
    if (!this.instance) return alias.startsWith(this.prefix);
    return alias.startsWith(this.prefix) || (this.instance.adoptLegacy === true && LEGACY_ALIAS_RE.test(alias));
  }

  /** Whether a link is any netd's (any instance). */
  static isNetd(alias: string | undefined): boolean {
    return alias?.startsWith('netd:') === true;
  }
}
