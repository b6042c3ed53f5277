/**
 * What the drivers that make no interface share (host, null): networks and endpoints without kernel
 * state, so nothing to create, remove or restore.
 */
import type { Capabilities, Driver, JoinResult } from '../driverapi/driver.js';
import type { DriverEndpoint, DriverNetwork, DriverSandbox } from '../driverapi/model.js';

export abstract class InterfacelessDriver implements Driver {
  abstract readonly type: string;
  abstract readonly capabilities: Capabilities;
  async createNetwork(): Promise<Record<string, unknown>> {
    return {};
  }
  async deleteNetwork(): Promise<void> {}
  async join(_network: DriverNetwork, _endpoint: DriverEndpoint, _sandbox: DriverSandbox): Promise<JoinResult> {
    return { state: {} };
  }
  async leave(): Promise<void> {}
  async restore(): Promise<void> {}
}
