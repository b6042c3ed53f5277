/**
 * The `null` driver (network `none`): the container keeps its own namespace with only loopback, up.
 */
import type { Driver } from './driver.js';
import type { SandboxRecord } from '../cnm/sandbox.js';
import { bringLoopbackUp } from '../kernel/loopback.js';

export class NullDriver implements Driver {
  readonly type = 'null';
  readonly providesInterface = false;
  async createNetwork(): Promise<Record<string, unknown>> {
    return {};
  }
  async deleteNetwork(): Promise<void> {}
  async join(_n: unknown, _e: unknown, sandbox: SandboxRecord): Promise<Record<string, unknown>> {
    await bringLoopbackUp(sandbox.key);
    return {};
  }
  async leave(): Promise<void> {}
  async restore(): Promise<void> {}
}
