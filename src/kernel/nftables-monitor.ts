/**
 * NftablesMonitor: the kernel's nf_tables change notifications (NETLINK_NETFILTER, group NFNLGRP_NFTABLES)
 * in the calling thread's network namespace, grouped per transaction.
 *
 * When a transaction commits, the kernel multicasts one message per object it created or deleted
 * (NFT_MSG_NEWTABLE, DELCHAIN, DELRULE, …; each names the family in nfgenmsg and the table in attribute 1),
 * then NFT_MSG_NEWGEN with the new generation id and the pid and name of the process that committed it.
 * Commits are serialized in the kernel, so the messages between two NEWGENs are one transaction.
 *
 * If the receive queue overruns (ENOBUFS) notifications were lost: the monitor reports that (`lost`), drops
 * the half-seen transaction and reopens its socket.
 */
import { RawNetlinkSocket } from 'netlink';
import { KernelError } from '../errors.js';
import { attrMap, read } from './nlattr.js';
import { replies } from './netlink-exchange.js';
import { Netns } from './netns.js';
import { NETLINK_NETFILTER, NFNL_SUBSYS_NFTABLES, NFNLGRP_NFTABLES, NFPROTO, NFT_MSG } from './nfnetlink.js';

const NFTA_GEN_ID = 1;
const NFTA_GEN_PROC_PID = 2;
const NFTA_GEN_PROC_NAME = 3;
/** NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE: all 1. */
const TABLE_ATTR = 1;
/** Pending notifications: a flush of a big ruleset is thousands of them. */
const RECV_BUFFER = 4 << 20;

export type NftObject = 'table' | 'chain' | 'rule' | 'set' | 'element';

/** One object created or deleted. `family` is the NFPROTO_* name (ip, ip6, inet, …) or the number. */
export interface NftChange {
  deleted: boolean;
  object: NftObject;
  family: string;
  table: string;
}

export interface NftTransaction {
  genId: number;
  /** The process that committed it (0 when the kernel did not say). */
  pid: number;
  procName: string;
  changes: NftChange[];
}

const OBJECTS = new Map<number, [NftObject, boolean]>([
  [NFT_MSG.NEWTABLE, ['table', false]],
  [NFT_MSG.DELTABLE, ['table', true]],
  [NFT_MSG.DESTROYTABLE, ['table', true]],
  [NFT_MSG.NEWCHAIN, ['chain', false]],
  [NFT_MSG.DELCHAIN, ['chain', true]],
  [NFT_MSG.DESTROYCHAIN, ['chain', true]],
  [NFT_MSG.NEWRULE, ['rule', false]],
  [NFT_MSG.DELRULE, ['rule', true]],
  [NFT_MSG.DESTROYRULE, ['rule', true]],
  [NFT_MSG.NEWSET, ['set', false]],
  [NFT_MSG.DELSET, ['set', true]],
  [NFT_MSG.DESTROYSET, ['set', true]],
  [NFT_MSG.DELSETELEM, ['element', true]],
  [NFT_MSG.DESTROYSETELEM, ['element', true]],
]);
const FAMILIES = new Map<number, string>(Object.entries(NFPROTO).map(([name, n]): [number, string] => [n, name]));

export type NftEvent = { kind: 'change'; change: NftChange } | { kind: 'gen'; genId: number; pid: number; procName: string };

/** Decodes one notification (nlmsg type and payload: nfgenmsg + attributes); undefined if not one netd follows. */
export function decodeNftEvent(type: number, payload: Buffer): NftEvent | undefined {
  if (type >> 8 !== NFNL_SUBSYS_NFTABLES || payload.length < 4) return undefined;
  const msg = type & 0xff;
  const attrs = attrMap(payload.subarray(4));
  if (msg === NFT_MSG.NEWGEN) {
    const be32 = (a: number) => (attrs.get(a)?.length ?? 0) >= 4 ? attrs.get(a)!.readUInt32BE(0) : 0;
    const name = attrs.get(NFTA_GEN_PROC_NAME);
    return { kind: 'gen', genId: be32(NFTA_GEN_ID), pid: be32(NFTA_GEN_PROC_PID), procName: name ? read.string(name) : '' };
  }
  const object = OBJECTS.get(msg);
  const table = attrs.get(TABLE_ATTR);
  if (!object || !table) return undefined;
  const family = FAMILIES.get(payload[0]) ?? String(payload[0]);
  return { kind: 'change', change: { object: object[0], deleted: object[1], family, table: read.string(table) } };
}

export interface NftablesMonitorHandlers {
  transaction(tx: NftTransaction): void;
  /** Notifications were lost (receive queue overrun): whatever changed is unknown. */
  lost(reason: string): void;
}

/** Joins NFNLGRP_NFTABLES in the current network namespace; throws KernelError if it cannot. */
export class NftablesMonitor {
  private sock: RawNetlinkSocket;
  private pending: NftChange[] = [];
  private closed = false;
  /** The namespace it watches: a socket reopened after an overrun is opened there again. */
  private readonly ns: Netns;

  /** `recvBufferBytes`: the socket's receive buffer (tests make it small to overrun it). */
  constructor(
    private readonly handlers: NftablesMonitorHandlers,
    private readonly recvBufferBytes = RECV_BUFFER,
  ) {
    this.ns = Netns.current();
    try {
      this.sock = this.open();
    } catch (err) {
      this.ns.close();
      throw err;
    }
  }

  private open(): RawNetlinkSocket {
    let sock: RawNetlinkSocket;
    try {
      sock = new RawNetlinkSocket(NETLINK_NETFILTER, { recvBufferSize: this.recvBufferBytes, sendBufferSize: 4096, messagePeeking: false, msgBufferSize: 64 << 10 });
    } catch (err) {
      throw new KernelError('nftables monitor', (err as { code?: string }).code ?? 'EIO', `cannot open netlink socket: ${(err as Error).message}`);
    }
    try {
      sock.addMembership(NFNLGRP_NFTABLES);
    } catch (err) {
      sock.close();
      throw new KernelError('nftables monitor', (err as { code?: string }).code ?? 'EIO', `cannot join the nf_tables group: ${(err as Error).message}`);
    }
    sock.unref();
    // Handled outside the addon's native callback (see rtnl-socket.ts on exceptions thrown inside it).
    // A socket replaced after an overrun may still report: only the current one counts. The addon reports a
    // POLLERR (the kernel's ENOBUFS on an overrun) through libuv, whose code for it is not the errno (EBADF).
    sock.on('message', (buf) => setImmediate(() => sock === this.sock && this.take(buf)));
    sock.on('error', (err) => setImmediate(() => sock === this.sock && this.overrun(`receive queue overrun (poll error ${err.code ?? 'EIO'})`)));
    return sock;
  }

  private take(buf: Buffer): void {
    if (this.closed) return;
    for (const r of replies(buf)) {
      let ev: NftEvent | undefined;
      try {
        ev = decodeNftEvent(r.type, r.payload);
      } catch {
        continue; // malformed attributes: not something netd can act on
      }
      if (ev?.kind === 'change') this.pending.push(ev.change);
      else if (ev?.kind === 'gen') {
        const changes = this.pending;
        this.pending = [];
        this.handlers.transaction({ genId: ev.genId, pid: ev.pid, procName: ev.procName, changes });
      }
    }
  }

  private overrun(reason: string): void {
    if (this.closed) return;
    this.pending = [];
    try {
      this.sock.close();
    } catch {
      /* already closed */
    }
    this.handlers.lost(reason);
    this.reopen();
  }

  private reopen(): void {
    if (this.closed) return;
    try {
      this.sock = this.ns.run(() => this.open());
    } catch {
      setTimeout(() => this.reopen(), 1000).unref();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ns.close();
    try {
      this.sock.close();
    } catch {
      /* already closed */
    }
  }
}
