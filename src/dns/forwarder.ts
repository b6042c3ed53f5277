/**
 * Forwards queries netd does not answer itself to upstream resolvers, from the daemon's (host)
 * namespace, so loopback resolvers such as systemd-resolved's 127.0.0.53 work too.
 *
 * - The query is relayed as received (EDNS and all), under a fresh random id, from a fresh connected
 *   UDP socket: the kernel picks a random source port, and ICMP errors (port or host unreachable) reach
 *   that one query, so an unreachable upstream fails it at once instead of at the deadline.
 * - No answer within `attemptMs`: the query goes to the next upstream (or again to the only one); the
 *   first valid answer wins. Every upstream failing, or the deadline passing, is a failure: the caller
 *   answers SERVFAIL, long before a client's own timeout (5 s in glibc).
 * - A truncated UDP answer to a query that came over TCP is fetched again over TCP. A UDP client gets
 *   the truncated answer and comes back over TCP itself.
 * - At most `maxInFlight` forwards at once (as Docker's 1024): beyond that a query fails immediately,
 *   so a flood cannot pile up sockets and timers.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect as tcpConnect } from 'node:net';
import { randomInt } from 'node:crypto';
import type { Logger } from '../log.js';
import { formatUpstream, type Upstream } from './resolv-conf.js';
import { TcpFrameReader, isResponse, isTruncated, messageId, tcpFrame, withId } from './wire.js';

export interface ForwarderOptions {
  log: Logger;
  /** Overall time for one query, all attempts included. */
  timeoutMs?: number;
  /** Time before the next attempt (next upstream, or a resend). */
  attemptMs?: number;
  maxInFlight?: number;
}

export const DEFAULT_TIMEOUT_MS = 4000;
const DEFAULT_ATTEMPT_MS = 1000;
const DEFAULT_MAX_IN_FLIGHT = 1024;
/** Sockets one query may open over UDP, resends included. */
const MAX_UDP_ATTEMPTS = 4;
const MAX_TCP_RESPONSE = 65_535;

export type ForwardFailure = 'no-upstream' | 'busy' | 'timeout' | 'unreachable';
export type ForwardResult = { ok: true; response: Buffer; upstream: Upstream } | { ok: false; reason: ForwardFailure };

export class Forwarder {
  private inFlight = 0;
  /** The upstream that answered last: tried first next time, so a dead first upstream costs one attempt, not every query. */
  private preferred?: string;
  private readonly timeoutMs: number;
  private readonly attemptMs: number;
  private readonly maxInFlight: number;

  constructor(private readonly opts: ForwarderOptions) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.attemptMs = opts.attemptMs ?? DEFAULT_ATTEMPT_MS;
    this.maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  }

  get pending(): number {
    return this.inFlight;
  }

  /** Forwards a raw query; the response carries the query's own id. */
  async forward(query: Buffer, upstreams: Upstream[], overTcp: boolean): Promise<ForwardResult> {
    if (upstreams.length === 0) return { ok: false, reason: 'no-upstream' };
    if (this.inFlight >= this.maxInFlight) return { ok: false, reason: 'busy' };
    this.inFlight++;
    try {
      const deadline = Date.now() + this.timeoutMs;
      const order = this.ordered(upstreams);
      const udp = await this.exchangeUdp(query, order, deadline);
      if (!udp.ok) return udp;
      this.preferred = formatUpstream(udp.upstream);
      if (overTcp && isTruncated(udp.response)) {
        const tcp = await this.exchangeTcp(query, [udp.upstream, ...order.filter((u) => u !== udp.upstream)], deadline);
        // Without TCP the truncated answer is still the best there is.
        if (tcp.ok) return tcp;
      }
      return udp;
    } finally {
      this.inFlight--;
    }
  }

  private ordered(upstreams: Upstream[]): Upstream[] {
    const i = upstreams.findIndex((u) => formatUpstream(u) === this.preferred);
    return i <= 0 ? upstreams : [...upstreams.slice(i), ...upstreams.slice(0, i)];
  }

  private exchangeUdp(query: Buffer, order: Upstream[], deadline: number): Promise<ForwardResult> {
    return new Promise((resolve) => {
      const clientId = messageId(query);
      const id = randomInt(0, 0x10000);
      const wire = withId(query, id);
      const sockets: UdpSocket[] = [];
      const failed = new Set<Upstream>();
      let attempts = 0;
      let done = false;
      let attemptTimer: NodeJS.Timeout | undefined;

      const finish = (result: ForwardResult): void => {
        if (done) return;
        done = true;
        clearTimeout(deadlineTimer);
        clearTimeout(attemptTimer);
        for (const s of sockets) closeQuietly(s);
        resolve(result);
      };
      const deadlineTimer = setTimeout(() => finish({ ok: false, reason: 'timeout' }), Math.max(0, deadline - Date.now()));

      const launch = (): void => {
        if (done) return;
        clearTimeout(attemptTimer);
        const alive = order.filter((u) => !failed.has(u));
        if (alive.length === 0) return finish({ ok: false, reason: 'unreachable' });
        if (attempts >= MAX_UDP_ATTEMPTS) return; // the deadline ends it
        const upstream = alive[attempts % alive.length];
        attempts++;
        const socket = createSocket(upstream.family === 6 ? 'udp6' : 'udp4');
        sockets.push(socket);
        let broken = false;
        const fail = (err: Error): void => {
          if (broken || done) return;
          broken = true;
          failed.add(upstream);
          this.opts.log.debug({ op: 'dns-forward', upstream: formatUpstream(upstream), error: err.message }, 'upstream failed');
          launch();
        };
        socket.on('error', fail);
        socket.on('message', (msg) => {
          // The socket is connected: only the upstream's address and port reach it.
          if (!isResponse(msg) || messageId(msg) !== id) return;
          finish({ ok: true, response: withId(msg, clientId), upstream });
        });
        socket.connect(upstream.port, upstream.address, () => {
          if (done) return;
          socket.send(wire, (err) => err && fail(err));
        });
        attemptTimer = setTimeout(launch, this.attemptMs);
      };
      launch();
    });
  }

  private async exchangeTcp(query: Buffer, order: Upstream[], deadline: number): Promise<ForwardResult> {
    for (const upstream of order) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      const response = await this.tcpOnce(query, upstream, remaining);
      if (response) return { ok: true, response, upstream };
    }
    return { ok: false, reason: Date.now() >= deadline ? 'timeout' : 'unreachable' };
  }

  private tcpOnce(query: Buffer, upstream: Upstream, timeoutMs: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const clientId = messageId(query);
      const id = randomInt(0, 0x10000);
      const reader = new TcpFrameReader(MAX_TCP_RESPONSE);
      const socket = tcpConnect({ host: upstream.address, port: upstream.port, family: upstream.family });
      let done = false;
      const finish = (response: Buffer | undefined): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(response);
      };
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      socket.setNoDelay(true);
      socket.on('connect', () => socket.write(tcpFrame(withId(query, id))));
      socket.on('data', (chunk: Buffer) => {
        let frames: Buffer[];
        try {
          frames = reader.push(chunk);
        } catch {
          return finish(undefined);
        }
        for (const f of frames) if (isResponse(f) && messageId(f) === id) return finish(withId(f, clientId));
      });
      socket.on('error', (err) => {
        this.opts.log.debug({ op: 'dns-forward', upstream: formatUpstream(upstream), tcp: true, error: err.message }, 'upstream failed');
        finish(undefined);
      });
      socket.on('close', () => finish(undefined));
    });
  }
}

function closeQuietly(socket: UdpSocket): void {
  try {
    socket.close();
  } catch {
    /* already closed */
  }
}
