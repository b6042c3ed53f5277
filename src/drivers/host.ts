/**
 * The `host` driver: the container uses the host's network stack. Nothing is changed in any namespace;
 * the endpoint exists only so that inspect shows the container on the `host` network.
 */
import type { Driver } from './driver.js';

export class HostDriver implements Driver {
  readonly type = 'host';
  readonly providesInterface = false;
  async createNetwork(): Promise<Record<string, unknown>> {
    return {};
  }
  async deleteNetwork(): Promise<void> {}
  async join(): Promise<Record<string, unknown>> {
    return {};
  }
  async leave(): Promise<void> {}
  async restore(): Promise<void> {}
}
