/**
 * The container's side of a bridge endpoint, over a netlink socket opened inside its namespace: setting
 * it up after the veth pair is made (lo up, addresses, interface up, default routes), and checking it
 * against the record later (CNI's CHECK: the interface by name and MAC, its addresses, its default routes
 * via the gateway; and on the host, the veth's host end on the network's bridge). Each difference is one
 * sentence; none when everything matches.
 */
import type { DriverEndpoint, DriverSandbox } from '../../driverapi/model.js';
import { Netns } from '../../kernel/netns.js';
import { ConflictError, KernelError } from '../../errors.js';
import { Rtnl, LOOPBACK_IFINDEX, type Link } from '../../kernel/rtnetlink.js';
import type { IPAddress } from '../../net/index.js';

/** Waits for every promise to settle (none is left running), then throws the first refusal, if any. */
export async function allDone(work: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(work)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Inside the container: lo up, addresses on the interface, interface up, default routes. The requests
 * are pipelined on one socket (the kernel handles them in the order sent, so the routes find the
 * address and the link up): two waits for the kernel instead of one per request.
 */
export async function configureContainerSide(ns: Netns, endpoint: DriverEndpoint): Promise<void> {
  const rtnl = Rtnl.open(ns);
  try {
    const [, link] = await Promise.all([rtnl.setLink(LOOPBACK_IFINDEX, { up: true }), rtnl.linkByName(endpoint.ifname)]);
    if (!link) throw new KernelError(`find ${endpoint.ifname} in the container`, 'ENODEV');
    const requests: Promise<void>[] = [];
    if (endpoint.ipv4) requests.push(rtnl.addAddress(link.index, endpoint.ipv4));
    if (endpoint.ipv6) requests.push(rtnl.addAddress(link.index, endpoint.ipv6));
    // On a network without IPv6 the interface gets no link-local address either (as Docker does): set
    // before it comes up, since the kernel makes one at that moment.
    if (!endpoint.ipv6) requests.push(rtnl.setLink(link.index, { ipv6LinkLocal: false }));
    requests.push(rtnl.setLink(link.index, { up: true }));
    if (endpoint.gatewayEndpoint) {
      if (endpoint.gateway4) requests.push(rtnl.addRoute({ dst: 'default', family: 4, gateway: endpoint.gateway4, oif: link.index }));
      if (endpoint.gateway6) requests.push(rtnl.addRoute({ dst: 'default', family: 6, gateway: endpoint.gateway6, oif: link.index }));
    }
    await allDone(requests); // every answer before the socket closes
  } finally {
    rtnl.close();
  }
}

/** The container side: interface, MAC, addresses, default routes. */
export async function checkContainerSide(endpoint: DriverEndpoint, sandbox: DriverSandbox): Promise<string[]> {
  let ns: Netns;
  try {
    ns = Netns.open(sandbox.key);
  } catch (err) {
    return [`the container's network namespace ${sandbox.key} cannot be opened: ${(err as Error).message}`];
  }
  let rtnl: Rtnl | undefined;
  try {
    rtnl = Rtnl.open(ns);
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
    rtnl?.close();
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

/**
 * The kernel refused a veth pair with EEXIST: one of its names is taken, either inside the container
 * (an interface of its own, say `eth0`) or on the host (`host`: the daemon's socket). Says which; nothing
 * was created.
 */
export async function nameTaken(host: Rtnl, ns: Netns, ifname: string, hostIfname: string, err: KernelError): Promise<Error> {
  const inside = Rtnl.open(ns);
  try {
    if (await inside.linkByName(ifname)) return new ConflictError(`container already has an interface named ${ifname}`, { cause: err });
  } finally {
    inside.close();
  }
  if (await host.linkByName(hostIfname)) return new ConflictError(`the host already has an interface named ${hostIfname}`, { cause: err });
  return err;
}
