/**
 * NetlinkExchange: a raw netlink socket of any protocol (the `netlink` package's RawNetlinkSocket),
 * opened in the calling thread's network namespace, for short bulk conversations: one dump, or many
 * requests sent together (several messages per send, the kernel answering each with an ACK or an error).
 *
 * netd's long-lived rtnetlink handle is RtnlSocket; this one is opened for one job and closed after it.
 * Messages are built here (nlmsghdr in host byte order); payloads come from the caller.
 */
import { constants as osConstants, endianness } from 'node:os';
import { RawNetlinkSocket } from 'netlink';
import { KernelError } from '../errors.js';

const LE = endianness() === 'LE';
const NLMSG_HDRLEN = 16;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP = 0x300;
/** Bytes of requests per send: below the send buffer the kernel grants (net.core.wmem_max, ~208 KiB). */
const BATCH_BYTES = 64 << 10;
/** Receive buffer per datagram: a dump part (at most 32 KiB) or an error echoing one request. */
const RECV_BYTES = 64 << 10;

export interface NetlinkRequest {
  type: number;
  payload: Buffer;
}

function u32(b: Buffer, off: number): number {
  return LE ? b.readUInt32LE(off) : b.readUInt32BE(off);
}

function header(len: number, type: number, flags: number, seq: number): Buffer {
  const h = Buffer.alloc(NLMSG_HDRLEN);
  if (LE) {
    h.writeUInt32LE(len, 0);
    h.writeUInt16LE(type, 4);
    h.writeUInt16LE(flags, 6);
    h.writeUInt32LE(seq, 8);
  } else {
    h.writeUInt32BE(len, 0);
    h.writeUInt16BE(type, 4);
    h.writeUInt16BE(flags, 6);
    h.writeUInt32BE(seq, 8);
  }
  return h;
}

/** One message, padded to 4 bytes. */
export function message(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const len = NLMSG_HDRLEN + payload.length;
  return Buffer.concat([header(len, type, flags, seq), payload, Buffer.alloc((4 - (len % 4)) % 4)]);
}

export interface Reply {
  type: number;
  seq: number;
  payload: Buffer;
}

/** Splits one datagram into its messages. */
export function replies(buf: Buffer): Reply[] {
  const out: Reply[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = u32(buf, off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    const type = LE ? buf.readUInt16LE(off + 4) : buf.readUInt16BE(off + 4);
    out.push({ type, seq: u32(buf, off + 8), payload: buf.subarray(off + NLMSG_HDRLEN, off + len) });
    off += (len + 3) & ~3;
  }
  return out;
}

/** The errno of an NLMSG_ERROR or NLMSG_DONE payload (0: success). */
export function errnoOf(r: Reply): number {
  if (r.payload.length < 4) return 0;
  return -(LE ? r.payload.readInt32LE(0) : r.payload.readInt32BE(0));
}

export class NetlinkExchange {
  private readonly sock: RawNetlinkSocket;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private onReply: ((r: Reply) => void) | undefined;
  private onFail: ((err: Error) => void) | undefined;

  /** Opens a socket of `protocol` (e.g. NETLINK_NETFILTER = 12) in the current network namespace. */
  constructor(
    protocol: number,
    private readonly op: string,
    private readonly timeoutMs = 10_000,
  ) {
    try {
      this.sock = new RawNetlinkSocket(protocol, {
        recvBufferSize: 4 << 20,
        sendBufferSize: 1 << 20,
        // One recvmsg per datagram into a fixed buffer (no peeking): the kernel sizes a dump's parts to the
        // largest buffer seen (up to 32 KiB), so a dump takes several times fewer round trips.
        messagePeeking: false,
        msgBufferSize: RECV_BYTES,
      });
    } catch (err) {
      throw new KernelError(op, (err as { code?: string }).code ?? 'EIO', `cannot open netlink socket: ${(err as Error).message}`);
    }
    // Handled outside the addon's native callback (see rtnl-socket.ts on exceptions thrown inside it).
    this.sock.on('message', (buf) => setImmediate(() => replies(buf).forEach((r) => this.onReply?.(r))));
    this.sock.on('error', (err) => setImmediate(() => this.onFail?.(new KernelError(this.op, err.code ?? 'EIO', err.message))));
  }

  close(): void {
    this.onReply = this.onFail = undefined;
    try {
      this.sock.close();
    } catch {
      /* already closed */
    }
  }

  /** A dump: each answer's payload is given to `each` as it arrives (a view into the datagram). */
  async dump(type: number, payload: Buffer, each: (payload: Buffer) => void): Promise<void> {
    const seq = ++this.seq;
    await this.exchange([message(type, NLM_F_REQUEST | NLM_F_DUMP, seq, payload)], (r) => {
      if (r.seq !== seq) return false;
      if (r.type === NLMSG_ERROR || r.type === NLMSG_DONE) {
        const errno = errnoOf(r);
        if (errno !== 0) throw new KernelError(this.op, errnoName(errno));
        return true;
      }
      each(r.payload);
      return false;
    });
  }

  /**
   * Sends the requests, many per send; resolves with each one's errno (0: done), in order. Only the last
   * request of a send asks for an ACK: the kernel handles a send's messages in order and answers the
   * others only when they fail, so that ACK means every error of the send has arrived before it. One
   * datagram back per send, not one per request.
   */
  async requests(reqs: readonly NetlinkRequest[]): Promise<number[]> {
    const result = new Array<number>(reqs.length).fill(0);
    const size = (r: NetlinkRequest) => NLMSG_HDRLEN + ((r.payload.length + 3) & ~3);
    let i = 0;
    while (i < reqs.length) {
      const first = this.seq + 1;
      let end = i;
      for (let bytes = 0; end < reqs.length && (end === i || bytes + size(reqs[end]) <= BATCH_BYTES); end++) bytes += size(reqs[end]);
      const chunk = reqs.slice(i, end).map((r, k) => message(r.type, NLM_F_REQUEST | (i + k === end - 1 ? NLM_F_ACK : 0), ++this.seq, r.payload));
      i = end;
      const base = i - chunk.length;
      await this.exchange(chunk, (r) => {
        const k = r.seq - first;
        if (r.type !== NLMSG_ERROR || k < 0 || k >= chunk.length) return false;
        result[base + k] = errnoOf(r);
        return k === chunk.length - 1;
      });
    }
    return result;
  }

  /** The send buffer the kernel granted: one send (e.g. an nfnetlink batch) must stay below it. */
  sendBufferBytes(): number {
    return this.sock.getSendBufferSize();
  }

  /**
   * Sends `msgs` in one datagram and gives every reply to `take` until it returns true (done) or throws
   * (the error rejects). One exchange at a time per socket.
   */
  exchange(msgs: Buffer[], take: (r: Reply) => boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => finish(new KernelError(this.op, 'ETIMEDOUT', `no complete answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      const finish = (err?: Error) => {
        clearTimeout(timer);
        this.onReply = this.onFail = undefined;
        if (err) reject(err);
        else resolve();
      };
      this.onFail = finish;
      this.onReply = (r) => {
        let over: boolean;
        try {
          over = take(r);
        } catch (err) {
          finish(err as Error);
          return;
        }
        if (over) finish();
      };
      this.sock.send(Buffer.concat(msgs), undefined, (err) => {
        if (err) setImmediate(() => finish(new KernelError(this.op, err.code ?? 'EIO', err.message)));
      });
    });
  }
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, num]): [number, string] => [num, name]));

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}
