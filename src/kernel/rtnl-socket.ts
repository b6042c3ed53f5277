/**
 * RtnlSocket: one rtnetlink socket of the `netlink` package, with netd's rules for using it.
 *
 * - One socket per instance, bound for life to the network namespace it was opened in (the socket is
 *   created while the main thread is inside that namespace).
 * - Every request has a deadline (default 5 s, counted from the call, queueing included); at most
 *   `maxInFlight` requests are outstanding on the socket, the rest wait in FIFO order. This keeps the
 *   socket's receive buffer from overflowing (ENOBUFS), which the netlink package reports as an 'error'.
 * - Kernel refusals become KernelError(op, errno).
 * - If the socket reports an error or closes, every pending request is rejected with it and the next call
 *   opens a fresh socket in the same namespace. Callers that cache kernel state should resync then.
 *
 * What is sent lives elsewhere: links (link-messages.ts, rtnetlink.ts), addresses (addresses.ts), routes
 * (routes.ts).
 */
import { constants as osConstants } from 'node:os';
import { createRtNetlink, FlagsGet, rt, type RtNetlinkSocket } from 'netlink';
import { InvalidArgumentError, KernelError, NetdError } from '../errors.js';
import { Netns } from './netns.js';

export interface RtnlOptions {
  /** Per-request deadline in ms, queueing included. Default 5000. */
  timeoutMs?: number;
  /** Requests outstanding on the socket at once. Default 32. */
  maxInFlight?: number;
  /** SO_RCVBUF to ask for (the kernel caps it at net.core.rmem_max). Default 4 MiB. */
  recvBufferSize?: number;
}

interface Waiter {
  op: string;
  exclusive: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Linux errno names; Node's table lacks a few the kernel's networking code returns. */
const ERRNO_NAMES = new Map<number, string>([
  ...Object.entries(osConstants.errno).map(([name, num]): [number, string] => [num, name]),
  [54, 'EXFULL'], // e.g. a bridge that has all its 1023 ports
]);

/** Maps whatever the netlink package threw to a KernelError naming the operation. */
export function toKernelError(op: string, err: unknown): NetdError {
  if (err instanceof NetdError) return err;
  const message = err instanceof Error ? err.message : String(err);
  // The package names the errno when libuv knows it, else says "Unknown system error -N".
  const rejected = /^Request rejected: (?:(E[A-Z0-9]+)|-?(\d+)|Unknown system error -(\d+))$/.exec(message);
  if (rejected) {
    const num = rejected[2] ?? rejected[3];
    const code = rejected[1] ?? ERRNO_NAMES.get(Number(num)) ?? `errno ${num}`;
    return new KernelError(op, code, undefined, { cause: err });
  }
  if (message === 'Timeout has been reached') return new KernelError(op, 'ETIMEDOUT', 'no answer from the kernel', { cause: err });
  // libuv reports POLLERR as EBADF. On a netlink socket the pending socket error is, in practice, a
  // receive-queue overrun (the kernel sets ENOBUFS); answers were lost and the socket is reopened.
  if ((err as { syscall?: unknown } | undefined)?.syscall === 'poll') {
    return new KernelError(op, 'ENOBUFS', 'rtnetlink socket failed (POLLERR: receive buffer overrun); it will be reopened, resync state', { cause: err });
  }
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return new KernelError(op, code, message, { cause: err });
  return new KernelError(op, 'EIO', message, { cause: err });
}

export function checkIndex(index: unknown, what = 'interface index'): number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index <= 0 || index > 0x7fffffff) {
    throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(index)}`);
  }
  return index;
}

export class RtnlSocket {
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  private readonly recvBufferSize: number;
  /** Our own handle on the namespace, so the socket can be reopened there whatever the caller closes. */
  private readonly netns: Netns;
  private sock: RtNetlinkSocket | undefined;
  private isClosed = false;
  private inFlight = 0;
  /** A dump is on the socket: nothing else may be sent until it completes. */
  private exclusiveActive = false;
  private readonly queue: Waiter[] = [];
  /** Rejecters of requests currently on the socket. */
  private readonly pending = new Set<(err: Error) => void>();
  private opened = 0;

  protected constructor(netns: Netns, opts: RtnlOptions) {
    this.netns = netns;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.maxInFlight = opts.maxInFlight ?? 32;
    this.recvBufferSize = opts.recvBufferSize ?? 4 << 20;
    if (!(this.timeoutMs > 0) || !Number.isInteger(this.maxInFlight) || this.maxInFlight < 1) {
      throw new InvalidArgumentError('Rtnl: timeoutMs must be > 0 and maxInFlight a positive integer');
    }
  }

  /** How many sockets this Rtnl has opened (1 + reopens after errors); for tests and diagnostics. */
  get socketsOpened(): number {
    return this.opened;
  }

  /** The namespace this Rtnl acts in (its dev/ino identify it). */
  get namespace(): { path: string; dev: number; ino: number } {
    return { path: this.netns.path, dev: this.netns.dev, ino: this.netns.ino };
  }

  /** Closes the socket; pending and queued requests are rejected. Idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const w of this.queue.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new KernelError(w.op, 'EBADF', 'rtnetlink handle closed'));
    }
    // Mapped by toKernelError to KernelError(op, 'EBADF') for each request still on the socket.
    if (this.sock) this.drop(this.sock, Object.assign(new Error('rtnetlink handle closed'), { code: 'EBADF' }));
    this.netns.close();
  }

  // ---- socket lifecycle ----

  protected socket(op: string): RtNetlinkSocket {
    if (this.isClosed) throw new KernelError(op, 'EBADF', 'rtnetlink handle closed');
    if (this.sock) return this.sock;
    let sock: RtNetlinkSocket;
    try {
      sock = this.netns.run(() => createRtNetlink({ recvBufferSize: this.recvBufferSize, sendBufferSize: 1 << 20 }));
    } catch (err) {
      throw toKernelError(`${op}: open rtnetlink socket in ${this.netns.path}`, err);
    }
    this.opened++;
    // The NetlinkSocket re-emits the raw socket's events. Without an 'error' listener an error event
    // would be thrown from the event loop; with one, it invalidates this socket.
    sock.socket.on('error', (err) => this.drop(sock, err));
    sock.socket.on('close', () => this.drop(sock, new Error('rtnetlink socket closed')));
    this.sock = sock;
    return sock;
  }

  /** Forgets a broken (or closing) socket: rejects what is pending on it and closes it. */
  private drop(sock: RtNetlinkSocket, err: Error): void {
    if (this.sock !== sock) return;
    this.sock = undefined;
    for (const reject of [...this.pending]) reject(err);
    this.pending.clear();
    try {
      sock.socket.close();
    } catch {
      /* already closed by the native side */
    }
  }

  // ---- request scheduling ----
  //
  // Plain requests (one answer each) may share the socket, up to maxInFlight at once. A dump must have
  // the socket to itself: the kernel runs one dump per socket at a time (a second one gets EBUSY), and
  // any other answer arriving between the parts of a multipart reply breaks the package's reassembly.
  // Waiters are served strictly in FIFO order so a dump is never starved by a stream of plain requests.

  private canGrant(exclusive: boolean): boolean {
    return exclusive ? this.inFlight === 0 : !this.exclusiveActive && this.inFlight < this.maxInFlight;
  }

  private grant(exclusive: boolean): void {
    this.inFlight++;
    if (exclusive) this.exclusiveActive = true;
  }

  private acquire(op: string, deadline: number, exclusive: boolean): Promise<void> {
    if (this.queue.length === 0 && this.canGrant(exclusive)) {
      this.grant(exclusive);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        op,
        exclusive,
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) this.queue.splice(i, 1);
          reject(new KernelError(op, 'ETIMEDOUT', `still queued after ${this.timeoutMs} ms (${this.inFlight} requests in flight)`));
          this.pump(); // the waiter behind it may be grantable now
        }, Math.max(0, deadline - Date.now())),
      };
      this.queue.push(waiter);
    });
  }

  private release(exclusive: boolean): void {
    this.inFlight--;
    if (exclusive) this.exclusiveActive = false;
    this.pump();
  }

  /** Grants waiting requests from the head of the queue while the socket has room for them. */
  private pump(): void {
    while (this.queue.length > 0 && this.canGrant(this.queue[0].exclusive)) {
      const next = this.queue.shift() as Waiter;
      clearTimeout(next.timer);
      this.grant(next.exclusive);
      next.resolve();
    }
  }

  /**
   * Runs one request under the scheduling rules and deadline. `send` gets the socket and the time left;
   * its errors are mapped to KernelError(op, ...). `exclusive` marks dumps.
   */
  /** For the request builders of links, addresses and routes; not for other callers. */
  async call<T>(op: string, send: (sock: RtNetlinkSocket, timeout: number) => Promise<T>, exclusive = false): Promise<T> {
    if (this.isClosed) throw new KernelError(op, 'EBADF', 'rtnetlink handle closed');
    const deadline = Date.now() + this.timeoutMs;
    await this.acquire(op, deadline, exclusive);
    try {
      const sock = this.socket(op);
      const timeout = Math.max(1, deadline - Date.now());
      return await new Promise<T>((resolve, reject) => {
        // drop() calls this from the socket's 'error' event, i.e. inside the addon: defer (see below).
        const fail = (err: Error) => setImmediate(reject, err);
        this.pending.add(fail);
        const settle = () => this.pending.delete(fail);
        let sent: Promise<T>;
        try {
          sent = send(sock, timeout);
        } catch (err) {
          settle();
          reject(err);
          return;
        }
        // Settle from setImmediate, outside the netlink addon's native callback. Otherwise the caller's
        // continuation runs inside that callback's scope, and any exception thrown later in the same
        // tick by unrelated code (an 'error' event without listener, emitted via process.nextTick) is
        // rethrown by the addon as a C++ exception it never catches: the process aborts, bypassing
        // 'uncaughtException' handlers.
        sent.then(
          (v) => {
            settle();
            setImmediate(resolve, v);
          },
          (e) => {
            settle();
            setImmediate(reject, e);
          },
        );
      });
    } catch (err) {
      throw toKernelError(op, err);
    } finally {
      this.release(exclusive);
    }
  }

  /** Sends a raw rtnetlink message (payload after nlmsghdr) and waits for the kernel's answer. */
  raw(op: string, type: rt.MessageType, payload: Buffer[], flags = 0): Promise<rt.Message[]> {
    const dump = (flags & FlagsGet.DUMP) === FlagsGet.DUMP;
    return this.call(op, (s, timeout) => s.request(type, payload, { flags, timeout }), dump);
  }
}
