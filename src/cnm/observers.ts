/**
 * Fan-out to the controller's observers (observer.ts): each is told in turn, with the network as
 * observers see it (its driver's capabilities included); one that fails is logged and goes no further.
 */
import { InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Registry } from './registry.js';
import type { NetworkRecord } from './network.js';
import type { EndpointRecord } from './endpoint.js';
import type { SandboxRecord } from './sandbox.js';
import type { AttachExtras, NetworkObserver, ObservedNetwork } from './observer.js';

export class Observers {
  constructor(
    private readonly list: readonly NetworkObserver[],
    private readonly registry: Registry,
    private readonly log: Logger,
  ) {}

  networkCreated(network: NetworkRecord): Promise<void> {
    return this.notify('networkCreated', network, (o, n) => o.networkCreated?.(n));
  }

  networkRemoved(network: NetworkRecord): Promise<void> {
    return this.notify('networkRemoved', network, (o, n) => o.networkRemoved?.(n));
  }

  endpointJoined(network: NetworkRecord, ep: EndpointRecord, sandbox: SandboxRecord, extras: AttachExtras): Promise<void> {
    return this.notify('endpointJoined', network, (o, n) => o.endpointJoined?.(n, ep, sandbox, extras));
  }

  endpointLeft(network: NetworkRecord, ep: EndpointRecord, reason: string): Promise<void> {
    return this.notify('endpointLeft', network, (o, n) => o.endpointLeft?.(n, ep, reason));
  }

  /**
   * Before an attach: its extras are refused (400) unless some observer reads each key and every observer
   * accepts them. Unlike the notifications, a refusal here stops the attach before it changes anything.
   */
  checkAttach(network: NetworkRecord, extras: AttachExtras): void {
    const keys = Object.keys(extras);
    if (keys.length === 0) return;
    const unknown = keys.find((k) => !this.list.some((o) => o.extrasKeys?.includes(k)));
    if (unknown !== undefined) throw new InvalidArgumentError(`unknown attach extra ${JSON.stringify(unknown)}`);
    const observed = this.observed(network);
    for (const o of this.list) o.checkAttach?.(observed, extras);
  }

  /** The fields observers add to what is reported of an endpoint (e.g. `dns`). */
  describe(network: NetworkRecord, ep: EndpointRecord): Record<string, unknown> {
    const extra: Record<string, unknown> = {};
    if (this.list.length === 0) return extra;
    const observed = this.observed(network);
    for (const o of this.list) Object.assign(extra, o.describeEndpoint?.(observed, ep));
    return extra;
  }

  private observed(network: NetworkRecord): ObservedNetwork {
    // A network whose driver is not loaded provides nothing.
    return { ...network, capabilities: this.registry.drivers.get(network.driver)?.capabilities ?? { interface: false } };
  }

  private async notify(event: string, network: NetworkRecord, call: (o: NetworkObserver, n: ObservedNetwork) => unknown): Promise<void> {
    if (this.list.length === 0) return;
    const observed = this.observed(network);
    for (const o of this.list) {
      try {
        await call(o, observed);
      } catch (err) {
        this.log.error({ op: 'observer', event, err }, 'observer failed');
      }
    }
  }
}
