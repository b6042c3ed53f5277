/**
 * The `null` driver (network `none`): the container keeps its own namespace with only loopback, up.
 */
import type { Driver } from './driver.js';
import type { SandboxRecord } from '../cnm/sandbox.js';
import { Netns } from '../kernel/netns.js';
import { Rtnl } from '../kernel/rtnetlink.js';

export class NullDriver implements Driver {
  readonly type = 'null';
  readonly providesInterface = false;
  async createNetwork(): Promise<Record<string, unknown>> {
    return {};
  }
  async deleteNetwork(): Promise<void> {}
  async join(_n: unknown, _e: unknown, sandbox: SandboxRecord): Promise<Record<string, unknown>> {
    const ns = Netns.open(sandbox.key);
    try {
      const rtnl = Rtnl.open(ns);
      try {
        const lo = await rtnl.linkByName('lo');
        if (lo && !lo.up) await rtnl.setLink(lo.index, { up: true });
      } finally {
        rtnl.close();
      }
    } finally {
      ns.close();
    }
    return {};
  }
  async leave(): Promise<void> {}
  async restore(): Promise<void> {}
}
