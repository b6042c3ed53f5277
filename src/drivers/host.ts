/**
 * The `host` driver: the container uses the host's network stack. Nothing is changed in any namespace;
 * the endpoint exists only so that inspect shows the container on the `host` network.
 */
import type { Capabilities, Driver, JoinResult } from '../driverapi/driver.js';

export class HostDriver implements Driver {
  readonly type = 'host';
  readonly capabilities: Capabilities = { interface: false, hostNamespace: true, singleInstance: true };
  async createNetwork(): Promise<Record<string, unknown>> {
    return {};
  }
  async deleteNetwork(): Promise<void> {}
  async join(): Promise<JoinResult> {
    return { state: {} };
  }
  async leave(): Promise<void> {}
  async restore(): Promise<void> {}
}
