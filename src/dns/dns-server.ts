/**
 * One network's DNS listeners: UDP and TCP on each of its gateway addresses, port 53, in the daemon's
 * namespace. Only clients on the network are served: a source outside its subnets gets REFUSED (UDP)
 * or a closed connection (TCP).
 *
 * Flood protection, so that the daemon's API (same event loop) keeps answering:
 * - every packet is read, answered or dropped without blocking; libuv reads at most 32 datagrams per
 *   wakeup, so the API socket gets its turn however fast packets arrive;
 * - queries that cannot be decoded, responses, and oversized packets are dropped or answered with a
 *   bare error, never forwarded; a UDP client's retransmission of a query still being forwarded is
 *   dropped, not forwarded again;
 * - forwards are capped globally (see Forwarder);
 * - TCP: at most MAX_TCP_CONNECTIONS per listener, an idle timeout, frames over MAX_QUERY_BYTES close
 *   the connection, at most MAX_TCP_PIPELINE queries in progress per connection (reading pauses
 *   beyond), and a client that does not read its answers is disconnected.
 * Dropped packets are counted and reported in one log line per interval, never one per packet.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import { IPAddress } from '../net/index.js';
import type { Logger } from '../log.js';
import type { NameDirectory } from './directory.js';
import type { Responder, Reply } from './responder.js';
import { MAX_QUERY_BYTES, RCODE, TcpFrameReader, decodeQuery, encodeAnswer, messageId, tcpFrame } from './wire.js';

export const DNS_PORT = 53;
const MAX_TCP_CONNECTIONS = 128;
const TCP_IDLE_MS = 10_000;
const MAX_TCP_PIPELINE = 16;
const MAX_TCP_UNREAD = 256 * 1024;
const UDP_RECV_BUFFER = 1 << 20;
const REPORT_INTERVAL_MS = 30_000;

export interface NetworkDnsServerOptions {
  networkId: string;
  networkName: string;
  /** Gateway addresses to listen on. */
  addresses: IPAddress[];
  port?: number;
  directory: NameDirectory;
  responder: Responder;
  log: Logger;
}

export interface BindOutcome {
  address: string;
  transport: 'udp' | 'tcp';
  error?: string;
}

/**
 * The sockets' address look-up: every address they see is already literal (the listener's, a client's),
 * so the answer is given at once, where dns.lookup would defer each send to the next tick.
 */
function literalLookup(address: string, family: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  callback(null, address, isIP(address));
}

/** A UDP query being forwarded: its client's address, port and id. */
function forwardingKey(address: string, port: number, msg: Buffer): string {
  return `${address}|${port}|${messageId(msg)}`;
}

export class NetworkDnsServer {
  private readonly udp: UdpSocket[] = [];
  private readonly tcp: Server[] = [];
  private readonly connections = new Set<Socket>();
  /** UDP queries being forwarded, by client address, port and id. */
  private readonly forwarding = new Set<string>();
  private readonly dropped = { malformed: 0, foreign: 0, duplicate: 0, tcpRefused: 0 };
  private reportTimer?: NodeJS.Timeout;
  private closed = false;
  /** Addresses with both a UDP and a TCP listener. */
  readonly listening: string[] = [];

  constructor(private readonly opts: NetworkDnsServerOptions) {}

  private get port(): number {
    return this.opts.port ?? DNS_PORT;
  }

  /** Binds every listener it can; what failed is reported, not thrown (the daemon goes on without it). */
  async start(): Promise<BindOutcome[]> {
    const outcomes: BindOutcome[] = [];
    for (const address of this.opts.addresses) {
      const udp = await this.bindUdp(address).then(
        () => undefined,
        (err: Error) => err.message,
      );
      const tcp = await this.bindTcp(address).then(
        () => undefined,
        (err: Error) => err.message,
      );
      const text = address.toString();
      outcomes.push({ address: text, transport: 'udp', error: udp }, { address: text, transport: 'tcp', error: tcp });
      if (udp === undefined && tcp === undefined) this.listening.push(text);
    }
    this.reportTimer = setInterval(() => this.report(), REPORT_INTERVAL_MS);
    this.reportTimer.unref();
    return outcomes;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.reportTimer);
    for (const s of this.udp) {
      try {
        s.close();
      } catch {
        /* not bound */
      }
    }
    for (const c of this.connections) c.destroy();
    await Promise.all(this.tcp.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.udp.length = 0;
    this.tcp.length = 0;
  }

  // ---------------------------------------------------------------- UDP

  private bindUdp(address: IPAddress): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: address.family === 6 ? 'udp6' : 'udp4', reuseAddr: false, lookup: literalLookup });
      const onBindError = (err: Error): void => {
        socket.close();
        reject(err);
      };
      socket.once('error', onBindError);
      socket.bind({ address: address.toString(), port: this.port, exclusive: true }, () => {
        socket.off('error', onBindError);
        // Errors after binding (e.g. ICMP noise on send) concern one packet, never the listener.
        socket.on('error', (err) => this.opts.log.debug({ op: 'dns', network: this.opts.networkId, error: err.message }, 'UDP socket error'));
        try {
          socket.setRecvBufferSize(UDP_RECV_BUFFER);
        } catch {
          /* the kernel's maximum applies */
        }
        socket.on('message', (msg, rinfo) => this.onDatagram(socket, msg, rinfo));
        this.udp.push(socket);
        resolve();
      });
    });
  }

  private onDatagram(socket: UdpSocket, msg: Buffer, rinfo: RemoteInfo): void {
    if (this.closed) return;
    const { address, port } = rinfo;
    if (!this.opts.directory.isClient(this.opts.networkId, address)) {
      this.dropped.foreign++;
      // REFUSED is no larger than the query, so it cannot amplify; a garbled packet gets nothing.
      const decoded = decodeQuery(msg);
      if (decoded.ok) this.sendUdp(socket, encodeAnswer(decoded.query, { rcode: RCODE.REFUSED }), port, address);
      return;
    }
    if (msg.length < 2) {
      this.dropped.malformed++;
      return;
    }
    if (this.forwarding.size > 0 && this.forwarding.has(forwardingKey(address, port, msg))) {
      this.dropped.duplicate++;
      return;
    }
    const reply = this.answer(msg, address, 'udp');
    if (reply instanceof Promise) {
      const key = forwardingKey(address, port, msg);
      this.forwarding.add(key);
      reply.then(
        (r) => this.sendUdp(socket, r, port, address),
        () => undefined,
      ).finally(() => this.forwarding.delete(key));
    } else {
      this.sendUdp(socket, reply, port, address);
    }
  }

  /**
   * No callback: node then sends at once (uv_udp_try_send) instead of queueing a request per answer; a
   * failed send is an 'error' event, logged at debug.
   */
  private sendUdp(socket: UdpSocket, reply: Buffer | undefined, port: number, address: string): void {
    if (reply && !this.closed) socket.send(reply, port, address);
  }

  /** Asks the responder; anything it throws (it should not) is a dropped packet, never a dead listener. */
  private answer(msg: Buffer, client: string, transport: 'udp' | 'tcp'): Reply {
    try {
      const reply = this.opts.responder.respond(msg, { networkId: this.opts.networkId, client, transport });
      if (reply === undefined) this.dropped.malformed++;
      return reply;
    } catch (err) {
      this.dropped.malformed++;
      this.opts.log.debug({ op: 'dns', network: this.opts.networkId, error: (err as Error).message }, 'query failed');
      return undefined;
    }
  }

  // ---------------------------------------------------------------- TCP

  private bindTcp(address: IPAddress): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer({ noDelay: true }, (conn) => this.onConnection(conn));
      server.once('error', reject);
      server.listen({ host: address.toString(), port: this.port, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', (err) => this.opts.log.warn({ op: 'dns', network: this.opts.networkId, error: err.message }, 'TCP listener error'));
        this.tcp.push(server);
        resolve();
      });
    });
  }

  private onConnection(conn: Socket): void {
    conn.on('error', () => undefined);
    const client = conn.remoteAddress ?? '';
    if (this.closed || !this.opts.directory.isClient(this.opts.networkId, client) || this.connections.size >= MAX_TCP_CONNECTIONS) {
      this.dropped.tcpRefused++;
      conn.destroy();
      return;
    }
    this.connections.add(conn);
    conn.on('close', () => this.connections.delete(conn));
    conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
    const reader = new TcpFrameReader(MAX_QUERY_BYTES);
    let inProgress = 0;
    const write = (reply: Buffer | undefined): void => {
      if (!reply || conn.destroyed) return;
      conn.write(tcpFrame(reply));
      if (conn.writableLength > MAX_TCP_UNREAD) conn.destroy();
    };
    conn.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch {
        this.dropped.malformed++;
        conn.destroy();
        return;
      }
      for (const frame of frames) {
        const reply = this.answer(frame, client, 'tcp');
        if (!(reply instanceof Promise)) {
          write(reply);
          continue;
        }
        inProgress++;
        if (inProgress >= MAX_TCP_PIPELINE) conn.pause();
        reply
          .then(write, () => undefined)
          .finally(() => {
            inProgress--;
            if (inProgress < MAX_TCP_PIPELINE && !conn.destroyed) conn.resume();
          });
      }
    });
  }

  private report(): void {
    const d = this.dropped;
    const total = d.malformed + d.foreign + d.duplicate + d.tcpRefused;
    if (total === 0) return;
    this.opts.log.warn({ op: 'dns', network: this.opts.networkId, name: this.opts.networkName, ...d }, 'DNS packets dropped or refused');
    d.malformed = d.foreign = d.duplicate = d.tcpRefused = 0;
  }
}
