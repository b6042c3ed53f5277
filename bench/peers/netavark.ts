/**
 * Podman's network backend, netavark (Debian `netavark`), run as podman runs it: `netavark --config DIR
 * setup NETNS` / `teardown NETNS` with the network and the container's options as JSON on stdin.
 *
 * netavark does no IPAM itself (podman allocates and passes `static_ips`): the benchmark hands out
 * addresses in order, so the netavark rows do not include an allocator. DNS (aardvark-dns) is off.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NET, containerIp, firstExisting, newContainerNs, run } from '../env.js';
import { Unavailable, type Ctr, type Impl, type PortMap } from '../harness.js';

const BINARIES = ['/usr/lib/podman/netavark', '/usr/libexec/podman/netavark', '/usr/local/libexec/podman/netavark', '/usr/bin/netavark'];

export function netavarkBinary(): string | undefined {
  return firstExisting(BINARIES);
}

export class NetavarkImpl implements Impl {
  readonly id = 'netavark';
  private bin = '';
  private readonly configDir: string;
  private readonly networkId = randomBytes(32).toString('hex');

  constructor(work: string) {
    this.configDir = join(work, 'netavark');
  }

  async setup(): Promise<void> {
    const bin = netavarkBinary();
    if (!bin) throw new Unavailable('netavark not installed (apt-get install netavark)');
    this.bin = bin;
    mkdirSync(this.configDir, { recursive: true });
  }

  async portSupport(): Promise<true | string> {
    return true;
  }

  async makeContainer(name: string, index: number, ports: PortMap[]): Promise<Ctr> {
    return { name, index, ns: newContainerNs(name), ports, state: randomBytes(32).toString('hex') };
  }

  private options(c: Ctr): Record<string, unknown> {
    return {
      container_id: c.state as string,
      container_name: c.name,
      port_mappings: c.ports.map((p) => ({ host_ip: '', container_port: p.containerPort, host_port: p.hostPort, range: 1, protocol: p.protocol })),
      networks: { bench: { static_ips: [containerIp(c.index)], interface_name: 'eth0' } },
      network_info: {
        bench: {
          name: 'bench',
          id: this.networkId,
          driver: 'bridge',
          network_interface: 'nvbench0',
          subnets: [{ subnet: NET.subnet, gateway: NET.gateway }],
          ipv6_enabled: false,
          internal: false,
          dns_enabled: false,
          ipam_options: { driver: 'host-local' },
        },
      },
    };
  }

  /**
   * podman never runs two netavark commands at once (libnetwork holds its network lock around each
   * setup/teardown); without that, concurrent teardowns race on removing the bridge with its last port.
   * The benchmark serialises them the same way.
   */
  private queue: Promise<unknown> = Promise.resolve();

  private exec(command: 'setup' | 'teardown', c: Ctr): Promise<void> {
    const next = this.queue.then(() => this.execNow(command, c));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async execNow(command: 'setup' | 'teardown', c: Ctr): Promise<void> {
    const r = await run([this.bin, '--config', this.configDir, command, c.ns], { input: JSON.stringify(this.options(c)), allowFail: true, timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`netavark ${command} for ${c.name}: exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 400)}`);
  }

  async attach(c: Ctr): Promise<void> {
    await this.exec('setup', c);
    c.ip = containerIp(c.index);
  }

  async detach(c: Ctr): Promise<void> {
    await this.exec('teardown', c);
  }

  async teardown(): Promise<void> {
    await run(['ip', 'link', 'del', 'nvbench0'], { allowFail: true });
  }
}
