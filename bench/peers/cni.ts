/**
 * The CNI reference plugins (Debian `containernetworking-plugins`), run the way a runtime runs them:
 * the plugin binary executed with CNI_* environment variables and the network configuration on stdin.
 *
 * - attach without a port: `bridge` ADD (which itself executes `host-local` for the address), with
 *   ipMasq and hairpin mode on, the usual runtime configuration (containerd's and podman's defaults);
 * - attach with a port: then `portmap` ADD with the bridge's result as prevResult and the mapping in
 *   runtimeConfig.portMappings (what libcni does for a conflist [bridge, portmap]);
 * - detach: `portmap` DEL (if it published) then `bridge` DEL, both with the cached result, as libcni.
 * The no-port row deliberately leaves portmap out (a runtime with the conflist would also exec portmap
 * with no mappings), which favours CNI.
 * host-local keeps its allocations on disk (in the run's work directory), as in production.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NET, newContainerNs, run } from '../env.js';
import { Unavailable, type Ctr, type Impl, type PortMap } from '../harness.js';

const CNI_VERSION = '1.0.0';
const PLUGIN_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];

/** The directory holding bridge, host-local and portmap, or undefined. */
export function cniPluginDir(): string | undefined {
  return PLUGIN_DIRS.find((d) => ['bridge', 'host-local', 'portmap'].every((p) => existsSync(join(d, p))));
}

interface CniState {
  id: string;
  result: unknown;
}

export class CniImpl implements Impl {
  readonly id = 'cni';
  private dir = '';
  private readonly ipamDir: string;

  constructor(work: string) {
    this.ipamDir = join(work, 'cni-ipam');
  }

  async setup(): Promise<void> {
    const dir = cniPluginDir();
    if (!dir) throw new Unavailable(`CNI plugins not installed (bridge, host-local, portmap in ${PLUGIN_DIRS.join(' or ')}; apt-get install containernetworking-plugins)`);
    this.dir = dir;
    mkdirSync(this.ipamDir, { recursive: true });
  }

  async portSupport(): Promise<true | string> {
    return true;
  }

  async makeContainer(name: string, index: number, ports: PortMap[]): Promise<Ctr> {
    return { name, index, ns: newContainerNs(name), ports };
  }

  private bridgeConf(): Record<string, unknown> {
    return {
      cniVersion: CNI_VERSION,
      name: 'bench',
      type: 'bridge',
      bridge: 'cnibench0',
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ipam: {
        type: 'host-local',
        ranges: [[{ subnet: NET.subnet, gateway: NET.gateway }]],
        routes: [{ dst: '0.0.0.0/0' }],
        dataDir: this.ipamDir,
      },
    };
  }

  private portmapConf(c: Ctr, prevResult: unknown): Record<string, unknown> {
    return {
      cniVersion: CNI_VERSION,
      name: 'bench',
      type: 'portmap',
      capabilities: { portMappings: true },
      snat: true,
      runtimeConfig: { portMappings: c.ports.map((p) => ({ hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol })) },
      prevResult,
    };
  }

  /** Executes one plugin; returns its parsed stdout. */
  private async exec(plugin: string, command: 'ADD' | 'DEL', c: Ctr, id: string, conf: unknown): Promise<unknown> {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: c.ns,
      CNI_IFNAME: 'eth0',
      CNI_PATH: this.dir,
    };
    const r = await run([join(this.dir, plugin)], { input: JSON.stringify(conf), env, allowFail: true, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`CNI ${plugin} ${command} for ${c.name}: exit ${r.code}: ${(r.stdout || r.stderr).trim().slice(0, 400)}`);
    return r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
  }

  async attach(c: Ctr): Promise<void> {
    const id = randomBytes(32).toString('hex');
    let result = await this.exec('bridge', 'ADD', c, id, this.bridgeConf());
    if (c.ports.length > 0) result = await this.exec('portmap', 'ADD', c, id, this.portmapConf(c, result));
    const ips = (result as { ips?: { address: string }[] }).ips ?? [];
    c.ip = ips[0]?.address.split('/')[0];
    c.state = { id, result } satisfies CniState;
  }

  async detach(c: Ctr): Promise<void> {
    const st = c.state as CniState;
    if (c.ports.length > 0) await this.exec('portmap', 'DEL', c, st.id, this.portmapConf(c, st.result));
    await this.exec('bridge', 'DEL', c, st.id, { ...this.bridgeConf(), prevResult: st.result });
    c.state = undefined;
  }

  async teardown(): Promise<void> {
    await run(['ip', 'link', 'del', 'cnibench0'], { allowFail: true });
  }
}
