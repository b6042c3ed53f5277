/**
 * The `null` driver (network `none`): the container keeps its own namespace with only loopback, up, and
 * can be on no other network at once.
 */
import type { Capabilities, Driver, JoinResult } from '../driverapi/driver.js';
import type { DriverSandbox } from '../driverapi/model.js';
import { bringLoopbackUp } from '../kernel/loopback.js';

export class NullDriver implements Driver {
  readonly type = 'null';
  readonly capabilities: Capabilities = { interface: false, exclusive: true, singleInstance: true };
  async createNetwork(): Promise<Record<string, unknown>> {
    return {};
  }
  async deleteNetwork(): Promise<void> {}
  async join(_n: unknown, _e: unknown, sandbox: DriverSandbox): Promise<JoinResult> {
    await bringLoopbackUp(sandbox.key);
    return { state: {} };
  }
  async leave(): Promise<void> {}
  async restore(): Promise<void> {}
}
