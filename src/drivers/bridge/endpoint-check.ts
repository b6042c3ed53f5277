/**
 * CNI's CHECK for the bridge driver: what the kernel holds of an endpoint against its record. Inside the
 * container's namespace (over a netlink socket opened there): the interface by name and MAC, its
 * addresses, its default routes via the gateway; on the host: the veth's host end, on the network's bridge.
 * Each difference is one sentence; none when everything matches.
 */
import type { DriverEndpoint, DriverSandbox } from '../../driverapi/model.js';
import { Netns } from '../../kernel/netns.js';
import { Rtnl, type Link } from '../../kernel/rtnetlink.js';
import type { IPAddress } from '../../net/index.js';

/** The container side: interface, MAC, addresses, default routes. */
export async function checkContainerSide(endpoint: DriverEndpoint, sandbox: DriverSandbox): Promise<string[]> {
  let ns: Netns;
  try {
    ns = Netns.open(sandbox.key);
  } catch (err) {
    return [`the container's network namespace ${sandbox.key} cannot be opened: ${(err as Error).message}`];
  }
  const rtnl = Rtnl.open(ns);
  try {
    const link = await rtnl.linkByName(endpoint.ifname);
    if (!link) return [`the container has no interface ${endpoint.ifname}`];
    const problems: string[] = [];
    if (endpoint.mac !== undefined && link.mac !== endpoint.mac.toString()) {
      problems.push(`interface ${endpoint.ifname} has the MAC ${link.mac}, netd gave it ${endpoint.mac}`);
    }
    if (!link.up) problems.push(`interface ${endpoint.ifname} is down`);
    const [addresses, routes4, routes6] = await Promise.all([rtnl.addresses(), rtnl.routes(4), rtnl.routes(6)]);
    const onLink = addresses.filter((a) => a.index === link.index).map((a) => a.cidr);
    for (const want of [endpoint.ipv4, endpoint.ipv6]) {
      if (want !== undefined && !onLink.some((a) => a.equals(want))) problems.push(`interface ${endpoint.ifname} lacks the address ${want}`);
    }
    if (endpoint.gatewayEndpoint) {
      const wanted: [IPAddress | undefined, typeof routes4][] = [
        [endpoint.gateway4, routes4],
        [endpoint.gateway6, routes6],
      ];
      for (const [gateway, routes] of wanted) {
        if (gateway === undefined) continue;
        const found = routes.some((r) => r.dst === 'default' && r.oif === link.index && r.gateway?.equals(gateway));
        if (!found) problems.push(`there is no default route via ${gateway} on ${endpoint.ifname}`);
      }
    }
    return problems;
  } finally {
    rtnl.close();
    ns.close();
  }
}

/** The host side: the veth's host end exists, is up and is a port of the network's bridge. */
export function checkHostSide(name: string, link: Link | undefined, bridgeIndex: number): string[] {
  if (!link) return [`the host end ${name} of the veth pair is missing`];
  const problems: string[] = [];
  if (!link.up) problems.push(`the host end ${name} of the veth pair is down`);
  if (link.master !== bridgeIndex) problems.push(`the host end ${name} of the veth pair is not on the network's bridge`);
  return problems;
}
