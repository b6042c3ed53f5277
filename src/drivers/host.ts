/**
 * The `host` driver: the container uses the host's network stack. Nothing is changed in any namespace;
 * the endpoint exists only so that inspect shows the container on the `host` network.
 */
import type { Capabilities } from '../driverapi/driver.js';
import { InterfacelessDriver } from './interfaceless.js';

export class HostDriver extends InterfacelessDriver {
  readonly type = 'host';
  readonly capabilities: Capabilities = { interface: false, hostNamespace: true, singleInstance: true };
}
