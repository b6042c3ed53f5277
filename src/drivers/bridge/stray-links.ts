/**
 * After a restart, the host's veths as the bridge driver finds them: the host ends of known endpoints get
 * this instance's mark if they still carry netd's mark from before instances; host ends this instance
 * made but has no record of (an attach interrupted by a crash) are removed. Those of another netd
 * instance are not this one's business, nor are old-marked ones whose id is not one of this data root's
 * (another old data root's).
 */
import type { Logger } from '../../log.js';
import type { DriverEndpoint, DriverNetwork } from '../../driverapi/model.js';
import type { Link, Rtnl } from '../../kernel/rtnetlink.js';
import type { LinkOwner } from './link-owner.js';
import { hostIfnameOf } from './names.js';

export interface StrayLinkDeps {
  rtnl: Rtnl;
  owner: LinkOwner;
  log: Logger;
}

/** A link of this instance still marked the way netd did before instances gets this instance's mark. */
export async function remark(deps: StrayLinkDeps, link: Link, id: string): Promise<void> {
  const mark = deps.owner.mark(id);
  if (link.alias === mark || !deps.owner.isOf(link.alias, id)) return;
  await deps.rtnl.setLink(link.index, { alias: mark });
  deps.log.info({ op: 'restore', link: link.name, from: link.alias, to: mark }, 'link marked as this instance\'s');
}

/** Remarks the known endpoints' host ends and removes this instance's veths nobody knows. */
export async function sweepStrayVeths(deps: StrayLinkDeps, links: readonly Link[], networks: readonly DriverNetwork[], endpoints: readonly DriverEndpoint[]): Promise<void> {
  const known = new Map(endpoints.map((e) => [hostIfnameOf(e), e.id]));
  const adopted = new Set([...networks, ...endpoints].map((o) => o.id.slice(0, 12)));
  for (const l of links) {
    if (l.kind !== 'veth') continue;
    const id = known.get(l.name);
    if (id !== undefined && deps.owner.isOf(l.alias, id)) {
      await remark(deps, l, id);
    } else if (deps.owner.isMine(l.alias, adopted)) {
      deps.log.warn({ op: 'restore', link: l.name, alias: l.alias }, 'removing a veth this netd has no record of');
      await deps.rtnl.deleteLink(l.index).catch(() => undefined);
    }
  }
}
