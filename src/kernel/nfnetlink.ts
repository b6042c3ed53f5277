/**
 * nfnetlink batches (NETLINK_NETFILTER): the transport nf_tables changes take. A batch is one datagram,
 *
 *   NFNL_MSG_BATCH_BEGIN (res_id NFNL_SUBSYS_NFTABLES) · message 1 · … · message n · NFNL_MSG_BATCH_END
 *
 * which the kernel applies as ONE transaction while it handles the send: every message or none (any
 * error aborts the whole batch). Each message asks for an ACK, so every one is answered, with 0 or its
 * errno; the begin/end markers are answered only when they fail (e.g. EPERM without CAP_NET_ADMIN).
 * Sequence numbers tie the answers to the messages.
 *
 * Layout per message: nlmsghdr (type = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*), struct nfgenmsg
 * (u8 family, u8 version 0, be16 res_id), attributes (nlattr.ts).
 */
import { KernelError } from '../errors.js';
import { errnoName, errnoOf, message, NetlinkExchange, type Reply } from './netlink-exchange.js';

export const NETLINK_NETFILTER = 12;
export const NFNL_SUBSYS_NFTABLES = 10;
/** The multicast group of nf_tables change notifications. */
export const NFNLGRP_NFTABLES = 7;
export const NFNL_MSG_BATCH_BEGIN = 0x10;
export const NFNL_MSG_BATCH_END = 0x11;
/** nfgenmsg families (NFPROTO_*). */
export const NFPROTO = { inet: 1, ip: 2, arp: 3, netdev: 5, bridge: 7, ip6: 10 } as const;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
const NLMSG_ERROR = 2;
const NLMSG_HDRLEN = 16;
/** What a netlink socket's sendmsg refuses beyond (sk_sndbuf - 32: the kernel's skb overhead). */
const SEND_OVERHEAD = 32;

/** nf_tables message types (include/uapi/linux/netfilter/nf_tables.h, enum nf_tables_msg_types). */
export const NFT_MSG = {
  NEWTABLE: 0,
  DELTABLE: 2,
  NEWCHAIN: 3,
  DELCHAIN: 5,
  NEWRULE: 6,
  DELRULE: 8,
  NEWSET: 9,
  DELSET: 11,
  NEWSETELEM: 12,
  DELSETELEM: 14,
  NEWGEN: 15,
  DESTROYTABLE: 26,
  DESTROYCHAIN: 27,
  DESTROYRULE: 28,
  DESTROYSET: 29,
  DESTROYSETELEM: 30,
} as const;

/** struct nfgenmsg: family, version NFNETLINK_V0, res_id (big-endian). */
export function nfgenmsg(family: number, resId = 0): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt8(family, 0);
  b.writeUInt16BE(resId, 2);
  return b;
}

/** One nf_tables message of a batch: NFT_MSG_* type, extra nlmsg flags, nfgenmsg family, attributes. */
export interface NftMessage {
  type: number;
  flags: number;
  family: number;
  attrs: Buffer;
  /** Names the message in errors (e.g. "add to set ports"). */
  what: string;
}

/** The whole batch as one datagram, its messages numbered from `firstSeq` (begin) to firstSeq + n + 1 (end). */
export function encodeBatch(msgs: readonly NftMessage[], firstSeq: number): Buffer {
  const marker = nfgenmsg(0, NFNL_SUBSYS_NFTABLES);
  const parts = [message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, firstSeq, marker)];
  msgs.forEach((m, i) => {
    const payload = Buffer.concat([nfgenmsg(m.family), m.attrs]);
    parts.push(message((NFNL_SUBSYS_NFTABLES << 8) | m.type, NLM_F_REQUEST | NLM_F_ACK | m.flags, firstSeq + 1 + i, payload));
  });
  parts.push(message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, firstSeq + msgs.length + 1, marker));
  return Buffer.concat(parts);
}

/** The bytes encodeBatch gives for these messages. */
export function batchBytes(msgs: readonly NftMessage[]): number {
  return 2 * (NLMSG_HDRLEN + 4) + msgs.reduce((n, m) => n + NLMSG_HDRLEN + 4 + ((m.attrs.length + 3) & ~3), 0);
}

/**
 * One NETLINK_NETFILTER socket, opened in the calling thread's network namespace, sending nf_tables
 * batches one at a time (calls queue).
 */
export class NfnetlinkBatches {
  private readonly ex: NetlinkExchange;
  private seq = Math.floor(Math.random() * 0x3fffffff);
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly op = 'nf_tables batch',
    timeoutMs = 10_000,
  ) {
    this.ex = new NetlinkExchange(NETLINK_NETFILTER, op, timeoutMs);
  }

  /** The largest batch (bytes) one send can carry. */
  get maxBatchBytes(): number {
    return this.ex.sendBufferBytes() - SEND_OVERHEAD;
  }

  close(): void {
    this.ex.close();
  }

  /**
   * Sends the messages as one transaction. Resolves when every message was ACKed (committed); rejects
   * with a KernelError naming the first failing message and its errno (the kernel aborted the whole
   * batch). A batch larger than maxBatchBytes is refused before anything is sent.
   */
  send(msgs: readonly NftMessage[]): Promise<void> {
    const run = this.queue.then(() => this.sendNow(msgs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async sendNow(msgs: readonly NftMessage[]): Promise<void> {
    if (msgs.length === 0) return;
    const bytes = batchBytes(msgs);
    if (bytes > this.maxBatchBytes) throw new KernelError(this.op, 'EMSGSIZE', `batch of ${bytes} bytes exceeds the socket's ${this.maxBatchBytes}; nothing was sent`);
    const first = this.seq;
    this.seq = (this.seq + msgs.length + 2) % 0x7fffffff;
    const last = first + msgs.length + 1;
    let acked = 0;
    await this.ex.exchange([encodeBatch(msgs, first)], (r: Reply) => {
      if (r.type !== NLMSG_ERROR || r.seq < first || r.seq > last) return false;
      const errno = errnoOf(r);
      if (errno !== 0) {
        const what = r.seq === first ? 'batch begin' : r.seq === last ? 'batch end' : msgs[r.seq - first - 1].what;
        throw new KernelError(this.op, errnoName(errno), `${what}; the whole batch was rolled back`);
      }
      return ++acked === msgs.length;
    });
  }
}
