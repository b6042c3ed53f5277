/**
 * What one client may hold of the API server: how long it may take to send a request, how long an idle
 * connection stays open, how many connections and header bytes it may use. A request that breaks the HTTP
 * grammar or a limit is answered with a 4xx in netd's `{"message": ...}` form (or its connection closed);
 * the daemon goes on serving everyone else.
 */
import { STATUS_CODES, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import { API_VERSION } from './http.js';

/** A limit shortened by the tests (an environment variable no operator needs); the default otherwise. */
function testKnob(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : fallback;
}

export const LIMITS = {
  /** A request's header section must arrive within this (slow-header clients, idle new connections). */
  headersTimeoutMs: 5_000,
  /** The whole request, body included, must arrive within this (slow-body clients). Replies may take longer. */
  requestTimeoutMs: 15_000,
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: 5_000,
  /** A connection with no traffic either way for this long is closed (a request being answered is not idle). */
  idleTimeoutMs: testKnob('NETD_TEST_IDLE_TIMEOUT_MS', 120_000),
  /** How often the timeouts above are checked. */
  checkIntervalMs: 1_000,
  /** Bytes of request line and headers. */
  maxHeaderBytes: 16 * 1024,
  maxHeaders: 100,
  /** Open connections; beyond this new ones are closed at once (idle ones leave within headersTimeoutMs). */
  maxConnections: 4096,
} as const;

export const SERVER_OPTIONS: ServerOptions = {
  headersTimeout: LIMITS.headersTimeoutMs,
  requestTimeout: LIMITS.requestTimeoutMs,
  keepAliveTimeout: LIMITS.keepAliveTimeoutMs,
  connectionsCheckingInterval: LIMITS.checkIntervalMs,
  maxHeaderSize: LIMITS.maxHeaderBytes,
};

const STATUS_OF: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'request header fields too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request timeout: the request did not arrive in time'],
  HPE_HEADERS_TIMEOUT: [408, 'request timeout: the headers did not arrive in time'],
};

/** Applies the limits that are not constructor options, and answers malformed requests itself. */
export function applyLimits(server: Server, log: Logger): void {
  server.maxHeadersCount = LIMITS.maxHeaders;
  server.maxConnections = LIMITS.maxConnections;
  server.timeout = LIMITS.idleTimeoutMs;
  // Node reports a connection idle while its reply is still being worked on (an attach queued behind the
  // controller lock, a big prune): only a connection with no request in flight is closed.
  const inFlight = new WeakMap<Socket, number>();
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    res.once('close', () => inFlight.set(socket, (inFlight.get(socket) ?? 1) - 1));
  });
  server.on('timeout', (socket: Socket) => {
    if (!inFlight.get(socket)) socket.destroy();
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const [status, message] = STATUS_OF[err.code ?? ''] ?? [400, `bad request: ${err.message}`];
    log.debug({ op: 'api', code: err.code, status }, message);
    // Nothing can be answered on a connection already reset or half-written (or after the reply began).
    if (err.code === 'ECONNRESET' || !socket.writable || (socket as Socket & { _httpMessage?: unknown })._httpMessage) {
      socket.destroy();
      return;
    }
    const body = JSON.stringify({ message }) + '\n';
    const head = `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nApi-Version: ${API_VERSION}\r\nServer: netd\r\nContent-Type: application/json\r\n`;
    // Closed for good once written (or after a second, for a client that does not read): a half-closed
    // socket would otherwise stay open for as long as the client keeps its end.
    socket.end(`${head}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`, () => socket.destroy());
    setTimeout(() => socket.destroy(), 1000).unref();
  });
}
