/**
 * The `null` driver (network `none`): the container keeps its own namespace with only loopback, up, and
 * can be on no other network at once.
 */
import type { Capabilities, JoinResult } from '../driverapi/driver.js';
import type { DriverEndpoint, DriverNetwork, DriverSandbox } from '../driverapi/model.js';
import { bringLoopbackUp } from '../kernel/loopback.js';
import { InterfacelessDriver } from './interfaceless.js';

export class NullDriver extends InterfacelessDriver {
  readonly type = 'null';
  readonly capabilities: Capabilities = { interface: false, exclusive: true, singleInstance: true };
  override async join(_network: DriverNetwork, _endpoint: DriverEndpoint, sandbox: DriverSandbox): Promise<JoinResult> {
    await bringLoopbackUp(sandbox.key);
    return { state: {} };
  }
}
