/**
 * The Docker remote plugin: one object serving libnetwork's `/Plugin.Activate`, `/NetworkDriver.*` and
 * `/IpamDriver.*` calls on the controller. It exists before the controller is ready (the socket is made
 * early in start-up, so a dockerd started first finds it, moby/libnetwork#813): calls wait until `ready`
 * has run. Calls that change something run one at a time, in arrival order (the controller serialises
 * its own work too; this keeps the plugin's reference counts and records consistent with it). Every call
 * logs one event: `op: "docker-plugin"`, the call, its ids, its duration and outcome.
 */
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { NetdError, NotFoundError, asNetdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { NetworkObserver, ObservedNetwork } from '../cnm/observer.js';
import type { EndpointRecord } from '../cnm/endpoint.js';
import { Mutex } from '../cnm/mutex.js';
import type { PluginCore } from './core.js';
import { MANAGED_BY } from './core.js';
import { PluginState } from './state.js';
import type { Answer } from './answer.js';
import { IpamDriver } from './ipam-driver.js';
import { NetworkDriver } from './network-driver.js';

/** What a call answers: a status and the JSON body (errors: `{"Err"}`, or `{"Error"}` for IPAM calls). */
export interface PluginReply {
  status: number;
  body: Record<string, unknown>;
}

type Call = (body: unknown) => Promise<Answer> | Answer;

export class DockerPlugin {
  /** Set last in `ready`: calls wait for it. */
  private controller?: PluginCore;
  /** The controller while `ready` recovers (the drivers use it; calls still wait). */
  private recovering?: PluginCore;
  private readonly readyWaiters: (() => void)[] = [];
  private readonly mutex = new Mutex();
  private readonly state: PluginState;
  private readonly network: NetworkDriver;
  private readonly ipam: IpamDriver;
  private readonly calls: Record<string, { run: Call; kind: 'static' | 'read' | 'write' }>;

  constructor(
    stateDir: string,
    private readonly log: Logger,
  ) {
    this.state = PluginState.open(stateDir);
    for (const p of this.state.problems) log.warn({ op: 'docker-plugin', file: p.file, error: p.error }, 'unreadable plugin state set aside');
    const core = () => (this.controller ?? this.recovering)!;
    this.network = new NetworkDriver(core, this.state, log);
    this.ipam = new IpamDriver(core, this.state, log, (id) => this.network.deleteNetwork({ NetworkID: id }));
    const n = this.network;
    const i = this.ipam;
    // static: answered at once, even before the controller is ready; read: waits for it; write: also one at a time.
    const fixed = (run: Call) => ({ run, kind: 'static' as const });
    const read = (run: Call) => ({ run, kind: 'read' as const });
    const write = (run: Call) => ({ run, kind: 'write' as const });
    this.calls = {
      'Plugin.Activate': fixed(() => ({ Implements: ['NetworkDriver', 'IpamDriver'] })),
      'NetworkDriver.GetCapabilities': fixed(() => n.capabilities()),
      'NetworkDriver.CreateNetwork': write((b) => n.createNetwork(b)),
      'NetworkDriver.DeleteNetwork': write((b) => n.deleteNetwork(b)),
      'NetworkDriver.CreateEndpoint': write((b) => n.createEndpoint(b)),
      'NetworkDriver.EndpointOperInfo': read((b) => n.endpointOperInfo(b)),
      'NetworkDriver.DeleteEndpoint': write((b) => n.deleteEndpoint(b)),
      'NetworkDriver.Join': write((b) => n.join(b)),
      'NetworkDriver.Leave': write((b) => n.leave(b)),
      'NetworkDriver.ProgramExternalConnectivity': write((b) => n.programExternalConnectivity(b)),
      'NetworkDriver.RevokeExternalConnectivity': write((b) => n.revokeExternalConnectivity(b)),
      'NetworkDriver.DiscoverNew': fixed(() => ({})),
      'NetworkDriver.DiscoverDelete': fixed(() => ({})),
      'NetworkDriver.AllocateNetwork': fixed(() => ({ Options: {} })),
      'NetworkDriver.FreeNetwork': fixed(() => ({})),
      'IpamDriver.GetCapabilities': fixed(() => i.capabilities()),
      'IpamDriver.GetDefaultAddressSpaces': fixed(() => i.defaultAddressSpaces()),
      'IpamDriver.RequestPool': write((b) => i.requestPool(b)),
      'IpamDriver.ReleasePool': write((b) => i.releasePool(b)),
      'IpamDriver.RequestAddress': write((b) => i.requestAddress(b)),
      'IpamDriver.ReleaseAddress': write((b) => i.releaseAddress(b)),
    };
  }

  /**
   * Hears endpoints leave: when one of dockerd's is released by anything but the plugin (the dead-container
   * sweep: its namespace is gone), its record and holds go too, as dockerd may never call for it again.
   */
  readonly observer: NetworkObserver = {
    endpointLeft: (network: ObservedNetwork, endpoint: EndpointRecord, reason?: string) => {
      if (reason === MANAGED_BY || !this.state.endpoints.has(endpoint.id)) return;
      // Not from inside the controller's operation (its lock is held): after it, in the plugin's own turn,
      // and not before `ready` (the sweep of the controller's start: ready's recovery may drop it first).
      setImmediate(() => {
        this.whenReady()
          .then(() =>
            this.mutex.run(async () => {
              if (!this.state.endpoints.has(endpoint.id)) return;
              await this.network.forgetOrphan(endpoint.id);
              this.log.info({ op: 'docker-plugin', endpoint: endpoint.id, network: network.id, reason }, 'endpoint released without dockerd: its record and holds dropped');
            }),
          )
          .catch((err: unknown) => this.log.warn({ op: 'docker-plugin', endpoint: endpoint.id, err }, 'could not drop a released endpoint\'s record'));
      });
    },
  };

  /**
   * The controller is started: re-applies the holds persisted, drops the records of endpoints the
   * controller released while netd was down (their namespaces died) and of endpoints whose network is gone,
   * and lets waiting calls through. Under the plugin's lock; the controller is set last, so no call runs
   * before the recovery is over.
   */
  async ready(controller: PluginCore): Promise<void> {
    await this.mutex.run(async () => {
      this.recovering = controller;
      for (const problem of await controller.held.restore(this.state.heldPools())) this.log.warn({ op: 'docker-plugin' }, problem);
      const networks = new Set(controller.networks().map((n) => n.id));
      for (const id of [...this.state.networks.keys()].filter((n) => !networks.has(n))) this.state.dropNetworkHolds(id);
      for (const entry of [...this.state.endpoints.values()]) {
        // Its network is gone (dockerd removed it while a CreateEndpoint was never followed by a Delete): the
        // holds were in that network's subnet, which went with it.
        if (!networks.has(entry.networkId)) {
          this.state.dropEndpoint(entry.id);
          this.log.info({ op: 'docker-plugin', endpoint: entry.id, network: entry.networkId }, 'endpoint record of a removed network dropped');
          continue;
        }
        // Joined, but its netd endpoint is gone: released at start, its namespace dead. dockerd may never ask again.
        if (entry.sandboxKey === undefined || controller.endpoint(entry.id)) continue;
        await this.network.forgetOrphan(entry.id);
        this.log.info({ op: 'docker-plugin', endpoint: entry.id }, 'endpoint released while netd was down: its record and holds dropped');
      }
      // The driver's own holds are in networks' subnets: held again, unless an endpoint has the address (it
      // claimed it at Join) or the network is gone.
      for (const h of this.state.driverHolds((id) => !controller.endpoint(id))) {
        if (controller.held.addressHeld(h.subnet, h.address)) continue;
        try {
          await controller.held.holdAddress(h.subnet, h.address);
        } catch (err) {
          this.log.warn({ op: 'docker-plugin', subnet: h.subnet.toString(), address: h.address.toString(), error: (err as Error).message }, 'hold not re-applied');
        }
      }
      this.controller = controller;
      this.recovering = undefined;
      for (const wake of this.readyWaiters.splice(0)) wake();
    });
  }

  private whenReady(): Promise<void> {
    return this.controller ? Promise.resolve() : new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** One call. Never throws: errors are answered in the protocol's shape. */
  async handle(name: string, body: unknown): Promise<PluginReply> {
    const started = performance.now();
    const ipamCall = name.startsWith('IpamDriver.');
    const ids = idsOf(body);
    // The one place an unknown path is told apart: the only 404 the plugin answers (dockerd reads a 404 as
    // "call not implemented" and carries on, e.g. without the ports of ProgramExternalConnectivity).
    if (!Object.hasOwn(this.calls, name)) return this.done(name, ids, started, errorReply(new NotFoundError(`unknown plugin call ${JSON.stringify(name.slice(0, 100))}`), ipamCall));
    const call = this.calls[name];
    try {
      if (call.kind !== 'static') await this.whenReady();
      const answer = call.kind === 'write' ? await this.mutex.run(async () => call.run(body)) : await call.run(body);
      return this.done(name, ids, started, { status: 200, body: answer });
    } catch (err) {
      return this.done(name, ids, started, errorReply(callFailure(err), ipamCall));
    }
  }

  /** A request refused before it became a call (unknown path, wrong method, a body that is not JSON): logged as one. */
  refused(call: string, reply: PluginReply): PluginReply {
    return this.done(call, {}, performance.now(), reply);
  }

  private done(call: string, ids: Record<string, string>, started: number, reply: PluginReply): PluginReply {
    const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    const ok = reply.status < 300;
    const error = ok ? undefined : String(reply.body.Err ?? reply.body.Error);
    this.log[ok ? 'info' : 'warn']({ op: 'docker-plugin', call: call.slice(0, 100), ...ids, durationMs, outcome: ok ? 'ok' : 'error', ...(error ? { error } : {}) }, call.slice(0, 100));
    return reply;
  }
}

/**
 * The error body: network-driver calls read `Err`; IPAM calls read `Error` from a 200, and dockerd's
 * plugin client reads `Err` from any other status, so an IPAM error carries both.
 */
export function errorReply(e: NetdError, ipam: boolean): PluginReply {
  const status = e.status >= 400 && e.status < 600 ? e.status : 500;
  return { status, body: ipam ? { Error: e.message, Err: e.message } : { Err: e.message } };
}

/**
 * A known call's own failure: never 404, which dockerd's plugin client takes for "not implemented" and
 * ignores (moby libnetwork/drivers/remote: `plugins.IsNotFound(err)` → success). An object the call names
 * that does not exist is a failure of the call (500); other statuses (400, 403, 409, ...) stay.
 */
function callFailure(err: unknown): NetdError {
  const e = asNetdError(err);
  return e.status === 404 ? new NetdError(e.message, 500, e.code, { cause: e }) : e;
}

/** The ids of a call, for its log event (only well-formed ones; a bad body is logged by its error). */
function idsOf(body: unknown): Record<string, string> {
  if (typeof body !== 'object' || body === null) return {};
  const out: Record<string, string> = {};
  for (const [key, field] of [['NetworkID', 'network'], ['EndpointID', 'endpoint'], ['PoolID', 'pool']] as const) {
    const v = (body as Record<string, unknown>)[key];
    if (typeof v === 'string' && v.length <= 128) out[field] = v;
  }
  return out;
}
