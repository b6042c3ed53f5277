/**
 * What the tests read of netd's endpoint list: `GET /netd/v1/endpoints` and `netd endpoints --format json`
 * give the same objects (the controller's EndpointRecord with the network's name added).
 */
import type { TestDaemon } from './daemon.js';

export interface EndpointJson {
  id: string;
  /** The container's name on the network (for CNI: CNI_CONTAINERID; for the OCI hook: the state's id). */
  name: string;
  network: string;
  networkId: string;
  sandboxId: string;
  /** The interface inside the sandbox (CNI_IFNAME for CNI attachments). */
  ifname: string;
  /** `address/prefix`. */
  ipv4?: string;
  ipv6?: string;
  mac?: string;
  aliases?: string[];
  labels?: Record<string, string>;
  driverState: { hostIfname?: string };
}

/** The daemon's endpoints as the CLI lists them (`netd endpoints --format json`). */
export async function listEndpoints(daemon: TestDaemon): Promise<EndpointJson[]> {
  return JSON.parse((await daemon.cli(['endpoints', '--format', 'json'])).stdout) as EndpointJson[];
}
