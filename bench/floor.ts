/**
 * The raw floor (item 3): the kernel work of one netd attach, without the daemon. A bridge with the
 * gateway address; per container a veth created with its peer directly in the container's namespace as
 * eth0 (enslaved, up, with an alias like netd's), then inside: lo up, the address, eth0 up, the default
 * route. Detach deletes the host end. No IPAM, no state files, no firewall, no HTTP.
 *
 * - `ip`: iproute2 in batch mode. The host half and the container half need two processes (a batch
 *   cannot switch namespaces between lines): `ip -batch -` here, `ip -n NS -batch -` for the inside.
 * - `rtnl`: netd's own kernel layer (src/kernel) called in-process, the same requests as the bridge
 *   driver's join/leave.
 */
import { NET, containerIp, newContainerNs, run } from './env.js';
import type { Ctr, Impl, PortMap } from './harness.js';
import { Netns } from '../src/kernel/netns.js';
import { Rtnl, LOOPBACK_IFINDEX } from '../src/kernel/rtnetlink.js';
import { IPAddress, InterfaceAddress, MAC } from '../src/net/index.js';

const NA_PORTS = 'n/a (a floor has no port publishing)';

/** What both floors share: containers are bare namespaces, and no port publishing. */
abstract class Floor {
  async portSupport(): Promise<true | string> {
    return NA_PORTS;
  }

  async makeContainer(name: string, index: number, ports: PortMap[]): Promise<Ctr> {
    return { name, index, ns: newContainerNs(name), ports };
  }
}

export class IpBatchFloor extends Floor implements Impl {
  readonly id = 'ip';
  private static readonly BRIDGE = 'brfloor0';

  async setup(): Promise<void> {
    await run(['ip', '-batch', '-'], {
      input: [
        `link add ${IpBatchFloor.BRIDGE} type bridge`,
        `addr add ${NET.gateway}/${NET.prefixLen} dev ${IpBatchFloor.BRIDGE}`,
        `link set ${IpBatchFloor.BRIDGE} up`,
      ].join('\n') + '\n',
    });
  }

  private hostIf(c: Ctr): string {
    return `vf${c.index}`;
  }

  async attach(c: Ctr): Promise<void> {
    const nsName = c.ns.split('/').pop() as string;
    const ip = containerIp(c.index);
    await run(['ip', '-batch', '-'], {
      input: [
        `link add ${this.hostIf(c)} master ${IpBatchFloor.BRIDGE} up type veth peer name eth0 address ${MAC.random()} netns ${nsName}`,
        `link set ${this.hostIf(c)} alias netd:${String(c.index).padStart(12, '0')} addrgenmode none`,
      ].join('\n') + '\n',
    });
    await run(['ip', '-n', nsName, '-batch', '-'], {
      input: ['link set lo up', `addr add ${ip}/${NET.prefixLen} dev eth0`, 'link set eth0 addrgenmode none', 'link set eth0 up', `route add default via ${NET.gateway} dev eth0`].join('\n') + '\n',
    });
    c.ip = ip;
  }

  async detach(c: Ctr): Promise<void> {
    await run(['ip', 'link', 'del', this.hostIf(c)]);
  }

  async teardown(): Promise<void> {
    await run(['ip', 'link', 'del', IpBatchFloor.BRIDGE], { allowFail: true });
  }
}

export class RtnlFloor extends Floor implements Impl {
  readonly id = 'rtnl';
  private rtnl?: Rtnl;
  private bridgeIndex = 0;

  async setup(): Promise<void> {
    this.rtnl = Rtnl.open();
    const br = await this.rtnl.createBridge({ name: 'brfloor1', mac: MAC.random(), alias: 'netd:bench' });
    this.bridgeIndex = br.index;
    await this.rtnl.addAddress(br.index, InterfaceAddress.parse(`${NET.gateway}/${NET.prefixLen}`));
    await this.rtnl.setLink(br.index, { up: true });
  }

  private hostIf(c: Ctr): string {
    return `vr${c.index}`;
  }

  /** What BridgeDriver.join does in the kernel, request for request (pipelined the same way). */
  async attach(c: Ctr): Promise<void> {
    const host = this.rtnl as Rtnl;
    const ip = containerIp(c.index);
    const ns = Netns.open(c.ns);
    try {
      await host.createVeth({
        name: this.hostIf(c),
        alias: `netd:${String(c.index).padStart(12, '0')}`,
        master: this.bridgeIndex,
        up: true,
        ipv6LinkLocal: false,
        peer: { name: 'eth0', netns: ns, mac: MAC.random() },
      });
      const inside = Rtnl.open(ns);
      try {
        const [, eth0] = await Promise.all([inside.setLink(LOOPBACK_IFINDEX, { up: true }), inside.linkByName('eth0')]);
        if (!eth0) throw new Error(`eth0 missing in ${c.ns}`);
        await Promise.all([
          inside.addAddress(eth0.index, InterfaceAddress.parse(`${ip}/${NET.prefixLen}`)),
          inside.setLink(eth0.index, { ipv6LinkLocal: false }),
          inside.setLink(eth0.index, { up: true }),
          inside.addRoute({ dst: 'default', family: 4, gateway: IPAddress.parse(NET.gateway), oif: eth0.index }),
        ]);
      } finally {
        inside.close();
      }
    } finally {
      ns.close();
    }
    c.ip = ip;
  }

  /** What BridgeDriver.leave does: look the host end up, delete it. */
  async detach(c: Ctr): Promise<void> {
    const host = this.rtnl as Rtnl;
    const link = await host.linkByName(this.hostIf(c));
    if (!link) throw new Error(`${this.hostIf(c)} is gone`);
    await host.deleteLink(link.index);
  }

  async teardown(): Promise<void> {
    if (this.bridgeIndex) await this.rtnl?.deleteLink(this.bridgeIndex).catch(() => undefined);
    this.rtnl?.close();
  }
}
