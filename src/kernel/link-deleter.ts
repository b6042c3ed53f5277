/**
 * Deleting links without stopping the daemon. The kernel handles an rtnetlink request inside the sendmsg
 * that carries it, and deleting a veth waits there for an RCU grace period (~20 ms): sent from the main
 * thread, that wait freezes the event loop, and every request arriving meanwhile with it. LinkDeleter
 * sends deletions from a worker thread with its own socket (link-deleter-worker.ts) in the same namespace,
 * started on first use. Where the thread cannot start, or finds itself in another namespace, the
 * deletions go through the main thread's socket as before.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { KernelError } from '../errors.js';
import type { Rtnl } from './rtnetlink.js';

export type DeleterRequest = { id: number; op: 'group'; group: number } | { id: number; op: 'link'; index: number } | { id: number; op: 'close' };
export type DeleterReply = { ready: { dev: number; ino: number } } | { id: number; found: boolean } | { id: number; errno: string; message: string };

interface Waiter {
  op: string;
  resolve: (found: boolean) => void;
  reject: (err: Error) => void;
}

export class LinkDeleter {
  private worker: Worker | undefined;
  private started: Promise<boolean> | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();

  /** `rtnl`: the socket whose namespace the links are in (and the fallback). */
  constructor(private readonly rtnl: Rtnl) {}

  /** Deletes every link of a device group in one request (Rtnl.deleteLinkGroup); false when it held none. */
  async deleteGroup(group: number): Promise<boolean> {
    if (!(await this.start())) return this.rtnl.deleteLinkGroup(group);
    return this.send(`delete link group ${group}`, (id) => ({ id, op: 'group', group }));
  }

  /** Deletes one link (Rtnl.deleteLink). */
  async deleteLink(index: number): Promise<void> {
    if (!(await this.start())) return this.rtnl.deleteLink(index);
    await this.send(`delete link #${index}`, (id) => ({ id, op: 'link', index }));
  }

  /** Stops the thread (its socket closed first); later deletions start it again. */
  async close(): Promise<void> {
    const started = this.started;
    this.started = undefined;
    if (!started || !(await started)) return;
    await this.send('close link deleter', (id) => ({ id, op: 'close' })).catch(() => undefined);
    this.worker = undefined;
  }

  private start(): Promise<boolean> {
    if (this.started) return this.started;
    const started: Promise<boolean> = new Promise<boolean>((resolve) => {
      let worker: Worker;
      try {
        worker = new Worker(join(__dirname, 'link-deleter-worker.js'));
      } catch {
        resolve(false);
        return;
      }
      worker.unref();
      const fail = (err: Error) => {
        resolve(false);
        for (const [id, w] of this.waiting) {
          this.waiting.delete(id);
          w.reject(new KernelError(w.op, 'EIO', `link deleter thread: ${err.message}`));
        }
        if (this.worker === worker) this.worker = undefined;
        if (this.started === started) this.started = undefined;
      };
      worker.on('error', fail);
      worker.on('exit', () => fail(new Error('exited')));
      worker.on('message', (m: DeleterReply) => {
        if ('ready' in m) {
          const ns = this.rtnl.namespace;
          const same = m.ready.dev === ns.dev && m.ready.ino === ns.ino;
          if (same) this.worker = worker;
          else worker.postMessage({ id: 0, op: 'close' } satisfies DeleterRequest);
          resolve(same);
          return;
        }
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        if ('errno' in m) w.reject(new KernelError(w.op, m.errno, m.message));
        else w.resolve(m.found);
      });
    });
    this.started = started;
    return started;
  }

  private send(op: string, request: (id: number) => DeleterRequest): Promise<boolean> {
    const worker = this.worker;
    if (!worker) return Promise.reject(new KernelError(op, 'EIO', 'link deleter thread not running'));
    const id = this.nextId++;
    return new Promise<boolean>((resolve, reject) => {
      this.waiting.set(id, { op, resolve, reject });
      worker.postMessage(request(id));
    });
  }
}
