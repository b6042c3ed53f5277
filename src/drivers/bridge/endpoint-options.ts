/**
 * What the bridge driver reads from an endpoint's options (driverapi/labels.ts): the ports to publish.
 * Also the upgrade of endpoint records written before endpoint options existed.
 */
import { PORT_MAP } from '../../driverapi/labels.js';
import type { DriverEndpoint } from '../../driverapi/model.js';
import type { PortRequest } from '../../portmap/types.js';

/** The ports an endpoint asks to publish: its PORT_MAP option, as the API layer parsed it. */
export function portRequestsOf(endpoint: DriverEndpoint): PortRequest[] {
  const raw = endpoint.options?.[PORT_MAP];
  return Array.isArray(raw) ? (raw as PortRequest[]) : [];
}

/**
 * Records written before endpoint options kept the port requests in `portRequests` and a copy of the
 * published bindings in `ports` (the bindings live in driverState): the requests move to the PORT_MAP
 * option, the copy goes. In memory, at restore; the file follows at the endpoint's next write.
 */
export function upgradeLegacyEndpoint(endpoint: DriverEndpoint): void {
  const legacy = endpoint as DriverEndpoint & { portRequests?: unknown; ports?: unknown };
  if (Array.isArray(legacy.portRequests) && legacy.portRequests.length > 0 && endpoint.options?.[PORT_MAP] === undefined) {
    endpoint.options = { ...endpoint.options, [PORT_MAP]: legacy.portRequests };
  }
  delete legacy.portRequests;
  delete legacy.ports;
}
