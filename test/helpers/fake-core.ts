/**
 * In-memory stand-ins for what the controller drives (a driver that records its calls, namespaces that
 * exist by name only), for unit tests of the CNM core.
 */
import { MAC, type InterfaceAddress } from '../../src/net/index.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller, type AttachRequest } from '../../src/cnm/controller.js';
import { Ipam } from '../../src/ipam/ipam.js';
import { DEFAULT_ADDRESS_POOLS, parseAddressPool } from '../../src/ipam/default-pools.js';
import { Store } from '../../src/store/store.js';
import { silentLogger } from '../../src/log.js';
import type { Capabilities, Driver } from '../../src/driverapi/driver.js';
import type { NamespaceResolver, SandboxRecord, SandboxTarget } from '../../src/cnm/sandbox.js';
import type { AttachResult } from '../../src/cnm/endpoint.js';
import { ForbiddenError } from '../../src/errors.js';

/** Attach to a network (not `container:` mode), typed as such. */
export function att(c: Controller, req: AttachRequest): Promise<AttachResult> {
  return c.attach(req) as Promise<AttachResult>;
}

export class RecordingDriver implements Driver {
  constructor(
    readonly type = 'bridge',
    readonly capabilities: Capabilities = { interface: true, dnsNames: true },
  ) {}
  calls: string[] = [];
  failJoin = false;
  async createNetwork(n: { name: string }) {
    this.calls.push(`create ${n.name}`);
    return { bridge: `br-${n.name}` };
  }
  async deleteNetwork(n: { name: string }) {
    this.calls.push(`delete ${n.name}`);
  }
  async join(_n: unknown, e: { ifname: string; ipv4?: InterfaceAddress }) {
    if (this.failJoin) throw new Error('veth creation failed');
    this.calls.push(`join ${e.ifname} ${e.ipv4}`);
    return { state: { hostIfname: 'vethtest', mac: '02:00:00:00:00:01' }, mac: MAC.parse('02:00:00:00:00:01') };
  }
  async leave(_n: unknown, e: { ifname: string }) {
    this.calls.push(`leave ${e.ifname}`);
  }
  async restore(nets: unknown[], eps: unknown[]) {
    this.calls.push(`restore ${nets.length} ${eps.length}`);
  }
}

export class FakeNamespaces implements NamespaceResolver {
  dead = new Set<string>();
  /** The files in the directory where `create` keeps namespaces (netd's and any other). */
  files = new Set<string>();
  resolve(t: SandboxTarget) {
    if (t.pid === 1) throw new ForbiddenError('host namespace');
    const key = t.pid !== undefined ? `/proc/${t.pid}/ns/net` : t.path!;
    return { key, pid: t.pid, nsId: `ns:${t.pid ?? t.path}`, host: false };
  }
  keyOf(name: string) {
    return `/run/test/${name}`;
  }
  async create(name: string) {
    this.files.add(this.keyOf(name));
    return { key: this.keyOf(name), nsId: `ns:${name}`, host: false };
  }
  destroy(key: string) {
    this.files.delete(key);
  }
  created() {
    return [...this.files];
  }
  alive(s: SandboxRecord) {
    return !this.dead.has(s.nsId);
  }
}

export function withDir(fn: (dir: string) => Promise<void>) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'netd-ctl-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** A controller on a fresh store in `dir` with `driver` for its default `bridge` network and a `none` network. */
export function controllerWith(dir: string, driver: RecordingDriver): Controller {
  return new Controller({
    store: new Store(dir),
    ipam: new Ipam(DEFAULT_ADDRESS_POOLS.map(parseAddressPool)),
    drivers: [driver, new RecordingDriver('null', { interface: false, exclusive: true, singleInstance: true })],
    resolver: new FakeNamespaces(),
    log: silentLogger(),
    hostSubnets: async () => [],
    predefined: [
      { name: 'bridge', driver: 'bridge' },
      { name: 'none', driver: 'null' },
    ],
  });
}
