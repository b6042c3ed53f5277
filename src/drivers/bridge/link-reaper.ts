/**
 * Cutting endpoints' host ends off at once, deleting them later and together.
 *
 * Deleting a veth costs the kernel an RCU grace period (~20 ms) during which the request waits; the link
 * being down and out of its bridge is what stops traffic, and that is one quick request. `cutOff` does it
 * and puts the link in this daemon's device group; `reap` deletes the group's links in ONE RTM_DELLINK
 * (IFLA_GROUP): the kernel unregisters them together, under one grace period. Requests to reap that come
 * while a deletion runs are served by the next one, so a burst of detaches costs about one wait.
 *
 * Only links netd verified as its own (by their mark, link-owner.ts) are put in the group. The group
 * number is derived from the instance id, so two netd daemons in one namespace do not share it. Should a
 * link of another owner sit in the group anyway (the kernel then refuses the whole request with
 * EOPNOTSUPP), the links are deleted one by one by index.
 */
import { createHash } from 'node:crypto';
import { KernelError } from '../../errors.js';
import type { Rtnl } from '../../kernel/rtnetlink.js';
import { LinkDeleter } from '../../kernel/link-deleter.js';

interface Waiter {
  index: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** This instance's device group for cut-off links: a number in 0x6e640000..0x6e64ffff ("nd"), from its id. */
export function reapGroup(instanceId: string | undefined): number {
  const h = createHash('sha256').update(`netd-reap:${instanceId ?? ''}`).digest();
  return 0x6e640000 | h.readUInt16BE(0);
}

export class LinkReaper {
  private waiting: Waiter[] = [];
  private running = false;
  /** Deletions go from a thread of their own: the kernel's wait would freeze the event loop (link-deleter.ts). */
  private readonly deleter: LinkDeleter;

  constructor(
    private readonly rtnl: Rtnl,
    readonly group: number,
  ) {
    this.deleter = new LinkDeleter(rtnl);
  }

  /** Stops the deletion thread (the daemon's stop, once nothing is pending). */
  close(): Promise<void> {
    return this.deleter.close();
  }

  /**
   * The link goes down, out of its bridge, into the reaper's group: one request. False when the link is gone
   * already (a deletion of the group, or its namespace's end, took it meanwhile).
   */
  async cutOff(index: number): Promise<boolean> {
    try {
      await this.rtnl.setLink(index, { up: false, master: 0, group: this.group });
      return true;
    } catch (err) {
      if (err instanceof KernelError && err.errno === 'ENODEV') return false;
      throw err;
    }
  }

  /** Deletes the cut-off link `index` (with every other cut-off link); resolves once it is gone. */
  reap(index: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ index, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running || this.waiting.length === 0) return;
    this.running = true;
    const batch = this.waiting.splice(0);
    this.deleteAll(batch).finally(() => {
      this.running = false;
      this.kick();
    });
  }

  private async deleteAll(batch: Waiter[]): Promise<void> {
    try {
      await this.deleter.deleteGroup(this.group);
      for (const w of batch) w.resolve();
    } catch (err) {
      if (!(err instanceof KernelError && err.errno === 'EOPNOTSUPP')) {
        for (const w of batch) w.reject(err as Error);
        return;
      }
      // Something else is in the group: each of ours by its index (gone already is fine).
      await Promise.all(
        batch.map((w) =>
          this.deleter.deleteLink(w.index).then(w.resolve, (e: unknown) => {
            if (e instanceof KernelError && e.errno === 'ENODEV') w.resolve();
            else w.reject(e as Error);
          }),
        ),
      );
    }
  }
}
