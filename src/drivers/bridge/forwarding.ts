/**
 * Turning on the host's IP forwarding, which bridge networks need, without its side effects:
 * - Forwarding makes the host a router between all its interfaces. When netd is the one that turns it on
 *   (it was off), it sets the FORWARD policy to DROP, as Docker does, so the host forwards only what
 *   netd's rules (or the administrator's) accept. It records that in the data root, and keeps the policy:
 *   after a restart, and whenever the firewall converges (reload, watchdog) the policy is set back to DROP
 *   if someone reset it. `netd daemon --ip-forward-no-drop` keeps the policy. Where IPv6 cannot be
 *   firewalled (no ip6tables), netd leaves IPv6 forwarding off rather than route IPv6 unprotected.
 * - IPv6 forwarding is turned on only for a network with an IPv6 subnet. With `all.forwarding=1` an
 *   interface ignores router advertisements unless its accept_ra is 2: an interface that uses them — it
 *   has a route learned from one (protocol `ra`) and accept_ra=1 — is set to 2 first. Never a link that
 *   faces containers or guests (bridges and their ports, veths, tun/tap devices, netd's own links): a
 *   container must not be able to push routes to the host.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from '../../log.js';
import type { Firewall } from '../../firewall/firewall.js';
import type { Family } from '../../firewall/model.js';
import type { Link, RouteInfo } from '../../kernel/rtnetlink.js';
import { readSysctl, writeSysctl } from '../../kernel/sysctl.js';
import { LinkOwner } from './link-owner.js';

export interface ForwardingDeps {
  firewall: Firewall;
  log: Logger;
  /** Leave the FORWARD policy alone even when netd turned forwarding on. */
  noDrop: boolean;
  /** The host's links. */
  links: () => Promise<Link[]>;
  /** The host's IPv6 routes (main table). */
  routes6: () => Promise<RouteInfo[]>;
  /** Where netd records the families whose forwarding it turned on (in the data root); none: not kept. */
  recordFile?: string;
}

const SYSCTL: Record<Family, string> = { 4: 'net.ipv4.ip_forward', 6: 'net.ipv6.conf.all.forwarding' };
/** RTPROT_RA: a route learned from a router advertisement. */
const RA_PROTOCOLS = new Set(['ra', '9']);
/** Link kinds that face containers or guests. */
const GUEST_FACING = new Set(['bridge', 'veth', 'tun', 'tap']);

export class HostForwarding {
  constructor(private readonly deps: ForwardingDeps) {}

  /**
   * At start: the families netd turned forwarding on for earlier (recorded) whose forwarding is still on
   * get their FORWARD policy DROP back, and the firewall keeps it from then on.
   */
  async resume(): Promise<void> {
    if (this.deps.noDrop) return;
    const families = this.recorded().filter((f) => readSysctl(SYSCTL[f]) === '1');
    if (families.length > 0) await this.deps.firewall.dropForwardByDefault(families);
  }

  /**
   * Forwarding on for the families a network has (4 and/or 6). The policy goes to DROP before forwarding
   * comes on: the host never routes unfiltered, and a failure leaves forwarding off, so the next attempt
   * protects the host again.
   */
  async enable(v4: boolean, v6: boolean): Promise<void> {
    let families = ([[4, v4], [6, v6]] as const).filter(([f, wanted]) => wanted && readSysctl(SYSCTL[f]) !== '1').map(([f]) => f as Family);
    if (families.length === 0) return;
    if (!this.deps.noDrop) {
      const guarded = await this.deps.firewall.dropForwardByDefault(families);
      const bare = families.filter((f) => !guarded.includes(f));
      if (bare.length > 0) {
        this.deps.log.warn(
          { op: 'forwarding', families: bare },
          'IP forwarding left off: netd cannot set the FORWARD policy to DROP for this family (turn forwarding on yourself, or use --ip-forward-no-drop)',
        );
      }
      families = guarded;
    }
    for (const family of families) {
      if (family === 6) await this.keepAcceptingRouterAdvertisements();
      writeSysctl(SYSCTL[family], '1');
    }
    if (families.length === 0) return;
    this.record(families);
    this.deps.log.info({ op: 'forwarding', families }, 'IP forwarding turned on');
  }

  private recorded(): Family[] {
    if (!this.deps.recordFile) return [];
    try {
      const { families } = JSON.parse(readFileSync(this.deps.recordFile, 'utf8')) as { families?: unknown };
      return Array.isArray(families) ? families.filter((f): f is Family => f === 4 || f === 6) : [];
    } catch {
      return [];
    }
  }

  private record(families: readonly Family[]): void {
    const file = this.deps.recordFile;
    if (!file) return;
    const all = [...new Set([...this.recorded(), ...families])].sort();
    writeFileSync(`${file}.tmp`, `${JSON.stringify({ families: all })}\n`, { mode: 0o600, flush: true });
    renameSync(`${file}.tmp`, file);
  }

  private async keepAcceptingRouterAdvertisements(): Promise<void> {
    let links: Link[];
    let routes: RouteInfo[];
    try {
      [links, routes] = await Promise.all([this.deps.links(), this.deps.routes6()]);
    } catch (err) {
      this.deps.log.warn({ op: 'forwarding', err }, 'could not list links and IPv6 routes; accept_ra left as it is');
      return;
    }
    const learning = new Set(routes.filter((r) => RA_PROTOCOLS.has(r.protocol) && r.oif !== undefined).map((r) => r.oif));
    for (const link of links) {
      if (!learning.has(link.index) || !mayLearnRoutes(link)) continue;
      const key = `net.ipv6.conf.${link.name}.accept_ra`;
      try {
        if (readSysctl(key) === '1' && writeSysctl(key, '2')) {
          this.deps.log.info({ op: 'forwarding', interface: link.name }, 'accept_ra set to 2 so the interface keeps accepting router advertisements with forwarding on');
        }
      } catch (err) {
        this.deps.log.warn({ op: 'forwarding', interface: link.name, err }, 'could not keep accept_ra working on an interface');
      }
    }
  }
}

/** Whether a link may learn routes from advertisements: not one facing containers or guests. */
function mayLearnRoutes(link: Link): boolean {
  return link.name !== 'lo' && link.master === undefined && !GUEST_FACING.has(link.kind ?? '') && !LinkOwner.isNetd(link.alias);
}
