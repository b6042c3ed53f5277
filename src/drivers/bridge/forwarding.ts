/**
 * Turning on the host's IP forwarding, which bridge networks need, without its side effects:
 * - Forwarding makes the host a router between all its interfaces. When netd is the one that turns it on
 *   (it was off), it sets the FORWARD policy to DROP, as Docker does, so the host forwards only what
 *   netd's rules (or the administrator's) accept. `netd daemon --ip-forward-no-drop` keeps the policy.
 * - IPv6 forwarding is turned on only for a network with an IPv6 subnet. With `all.forwarding=1` an
 *   interface ignores router advertisements unless its accept_ra is 2: interfaces that used them
 *   (accept_ra=1) are set to 2 first, netd's own links excepted (its bridges must never learn routes
 *   from containers).
 */
import { readdirSync } from 'node:fs';
import type { Logger } from '../../log.js';
import type { Firewall } from '../../firewall/firewall.js';
import { readSysctl, writeSysctl } from '../../kernel/sysctl.js';

export interface ForwardingDeps {
  firewall: Firewall;
  log: Logger;
  /** Leave the FORWARD policy alone even when netd turned forwarding on. */
  noDrop: boolean;
  /** Names of the host's links that are netd's (any instance). */
  netdLinks: () => Promise<Set<string>>;
}

const IPV6_CONF = '/proc/sys/net/ipv6/conf';

export class HostForwarding {
  constructor(private readonly deps: ForwardingDeps) {}

  /**
   * Forwarding on for the families a network has (4 and/or 6). The policy goes to DROP before forwarding
   * comes on: the host never routes unfiltered, and a failure leaves forwarding off, so the next attempt
   * protects the host again.
   */
  async enable(v4: boolean, v6: boolean): Promise<void> {
    const families = ([[4, v4, 'net.ipv4.ip_forward'], [6, v6, 'net.ipv6.conf.all.forwarding']] as const).filter(
      ([, wanted, key]) => wanted && readSysctl(key) !== '1',
    );
    if (families.length === 0) return;
    if (!this.deps.noDrop) await this.deps.firewall.dropForwardByDefault(families.map(([f]) => f));
    for (const [family, , key] of families) {
      if (family === 6) await this.keepAcceptingRouterAdvertisements();
      writeSysctl(key, '1');
    }
    this.deps.log.info({ op: 'forwarding', families: families.map(([f]) => f) }, 'IP forwarding turned on');
  }

  private async keepAcceptingRouterAdvertisements(): Promise<void> {
    let names: string[];
    try {
      names = readdirSync(IPV6_CONF);
    } catch {
      return; // IPv6 disabled in this kernel: nothing accepts advertisements
    }
    const netd = await this.deps.netdLinks();
    for (const name of names) {
      if (name === 'all' || name === 'default' || name === 'lo' || netd.has(name)) continue;
      try {
        if (readSysctl(`net.ipv6.conf.${name}.accept_ra`) === '1' && writeSysctl(`net.ipv6.conf.${name}.accept_ra`, '2')) {
          this.deps.log.info({ op: 'forwarding', interface: name }, 'accept_ra set to 2 so the interface keeps accepting router advertisements with forwarding on');
        }
      } catch (err) {
        this.deps.log.warn({ op: 'forwarding', interface: name, err }, 'could not keep accept_ra working on an interface');
      }
    }
  }
}
