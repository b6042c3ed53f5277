/**
 * A small router over node:http: JSON in, JSON out, typed errors mapped to `{"message": ...}` with their
 * status. The Docker Engine API's optional `/vX.Y` prefix is accepted on every route.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { IPAddress, MAC, Prefix } from '../net/index.js';
import { InvalidArgumentError, NetdError, asNetdError } from '../errors.js';
import type { Logger } from '../log.js';

export const API_VERSION = '1.41';
export const MIN_API_VERSION = '1.24';
const MAX_BODY = 1 << 20;

export interface Request {
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  body: () => Promise<unknown>;
}

export interface Reply {
  status: number;
  body?: unknown;
  /** Plain text instead of JSON (the Docker `/_ping` answers "OK"). */
  text?: string;
}

export type Handler = (req: Request) => Promise<Reply> | Reply;

interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
}

export class Router {
  private readonly routes: Route[] = [];

  constructor(private readonly log: Logger) {}

  /** `path` may hold `{name}` segments; each matches one URL-decoded path segment. */
  add(method: string, path: string, handler: Handler): void {
    const keys: string[] = [];
    const pattern = new RegExp(
      '^' +
        path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{(\w+)\\?\}/g, (_m, key: string) => {
          keys.push(key);
          return '([^/]+)';
        }) +
        '/?$',
    );
    this.routes.push({ method, pattern, keys, handler });
  }

  /**
   * Answers one request. Never rejects: whatever the request holds (an unparsable URL, bad percent-encoding,
   * a body too large, a handler that throws), the client gets a status and `{"message": ...}`.
   */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    let path = req.url ?? '/';
    let reply: Reply;
    try {
      const target = parseTarget(req.url);
      path = target.path;
      refuseOversizedBody(req);
      reply = await this.dispatch(method, path, target.query, req);
    } catch (err) {
      const e = asNetdError(err);
      if (e.status >= 500) this.log.error({ op: 'api', method, path, err }, e.message);
      reply = { status: e.status, body: { message: e.message } };
      // The rest of a body netd refused to read is not worth reading: close instead of draining it.
      if ((e.status === 413 || !req.complete) && !res.headersSent) res.setHeader('Connection', 'close');
    }
    send(res, method, reply);
  }

  private async dispatch(method: string, path: string, query: URLSearchParams, req: IncomingMessage): Promise<Reply> {
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) continue;
      const params: Record<string, string> = {};
      route.keys.forEach((k, i) => (params[k] = decodeSegment(m[i + 1])));
      return await route.handler({ method, path, params, query, body: () => readJson(req) });
    }
    if (pathMatched) return { status: 405, body: { message: `method ${method} not allowed on ${path}` } };
    return { status: 404, body: { message: `page not found: ${path}` } };
  }
}

function send(res: ServerResponse, method: string, reply: Reply): void {
  if (res.headersSent || res.destroyed) return;
  res.setHeader('Api-Version', API_VERSION);
  res.setHeader('Server', 'netd');
  if (reply.text !== undefined) {
    res.writeHead(reply.status, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(method === 'HEAD' ? undefined : reply.text);
  } else if (reply.body === undefined) {
    res.writeHead(reply.status);
    res.end();
  } else {
    const json = JSON.stringify(reply.body);
    res.writeHead(reply.status, { 'Content-Type': 'application/json' });
    res.end(method === 'HEAD' ? undefined : json + '\n');
  }
}

/**
 * The request target: origin form (`/path?query`) as clients send it, or absolute form (`http://host/path`),
 * which HTTP/1.1 servers must accept. The Docker API's `/vX.Y` prefix is dropped here.
 */
function parseTarget(raw: string | undefined): { path: string; query: URLSearchParams } {
  let url: URL;
  try {
    url = new URL(raw ?? '/', 'http://netd');
  } catch {
    throw new InvalidArgumentError(`malformed request target ${JSON.stringify(String(raw).slice(0, 200))}`);
  }
  return { path: url.pathname.replace(/^\/v\d+\.\d+(?=\/)/, ''), query: url.searchParams };
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new InvalidArgumentError(`malformed percent-encoding in path segment ${JSON.stringify(segment.slice(0, 200))}`);
  }
}

/** A declared body over the limit is refused before a byte of it is read. */
export function refuseOversizedBody(req: IncomingMessage): void {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY) throw new PayloadTooLargeError();
}

/**
 * The request body as JSON, as the Docker Engine reads it: a body needs `Content-Type: application/json`,
 * an empty body is `{}`, anything after the JSON value is refused.
 */
async function readJson(req: IncomingMessage): Promise<unknown> {
  // Checked before a byte is read (a body declared as anything but JSON is refused at once); a request
  // without a body needs no type.
  const declared = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  const type = req.headers['content-type'];
  if (declared && (!type || type.split(';')[0].trim().toLowerCase() !== 'application/json')) {
    throw new InvalidArgumentError(`Content-Type specified (${type ?? ''}) must be 'application/json'`);
  }
  const text = await readBodyText(req);
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`malformed JSON in request body: ${(err as Error).message}`);
  }
}

/**
 * The request body as text (whitespace trimmed), refused (413) past the API's limit.
 *
 * A small body arrives with its headers, and node's parser has buffered all of it by the time a handler
 * asks: it is taken at once (no stream iterator, no turn of the event loop). A body still arriving is read
 * as it comes.
 */
export function readBodyText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  const take = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > MAX_BODY) throw new PayloadTooLargeError();
    chunks.push(chunk);
  };
  const text = () => (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString('utf8').trim();
  if (req.complete && !req.readableFlowing) {
    try {
      for (let chunk = req.read() as Buffer | null; chunk !== null; chunk = req.read() as Buffer | null) take(chunk);
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve(text());
  }
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      req.off('data', onData).off('end', onEnd).off('error', done).off('close', onClose);
      if (err) reject(err);
      else resolve(text());
    };
    const onData = (chunk: Buffer) => {
      try {
        take(chunk);
      } catch (err) {
        // Nothing more is read: the answer (413) closes the connection.
        req.pause();
        done(err as Error);
      }
    };
    const onEnd = () => done();
    // Closed before the end (the client went away): no body to act on.
    const onClose = () => done(new InvalidArgumentError('request body incomplete: the connection closed before its end'));
    req.on('data', onData).on('end', onEnd).on('error', done).on('close', onClose);
  });
}

class PayloadTooLargeError extends NetdError {
  constructor() {
    super(`request body too large (limit ${MAX_BODY} bytes)`, 413, 'too_large');
  }
}

/** Field readers that reject wrong types with a clear message. */
export function obj(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new InvalidArgumentError(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * An object whose keys must all be known: netd's own routes refuse a misspelt field instead of ignoring it
 * (the Docker routes ignore unknown fields, as the Docker Engine does).
 */
export function strictObj(value: unknown, what: string, known: readonly string[]): Record<string, unknown> {
  const o = obj(value, what);
  const unknown = Object.keys(o).filter((k) => !known.includes(k));
  if (unknown.length > 0) throw new InvalidArgumentError(`${what}: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k.slice(0, 100))).join(', ')}`);
  return o;
}

export function str(o: Record<string, unknown>, key: string, what = key): string | undefined {
  const v = o[key];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new InvalidArgumentError(`${what} must be a string`);
  return v;
}

export function bool(o: Record<string, unknown>, key: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`${key} must be true or false`);
  return v;
}

export function strList(o: Record<string, unknown>, key: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InvalidArgumentError(`${key} must be a list of strings`);
  return v as string[];
}

export function strMap(o: Record<string, unknown>, key: string): Record<string, string> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const m = obj(v, key);
  for (const [k, x] of Object.entries(m)) if (typeof x !== 'string') throw new InvalidArgumentError(`${key}.${k} must be a string`);
  return m as Record<string, string>;
}

/** An IP address field, parsed into its value here, at the edge (`what` names it in errors). */
export function ipField(o: Record<string, unknown>, key: string, what = key): IPAddress | undefined {
  const text = str(o, key, what);
  return text === undefined ? undefined : IPAddress.parse(text, what);
}

/** A subnet field (`address/length`, host bits zero), parsed into its value. */
export function prefixField(o: Record<string, unknown>, key: string, what = key): Prefix | undefined {
  const text = str(o, key, what);
  return text === undefined ? undefined : Prefix.parse(text, what);
}

/** A MAC address field, parsed into its value. */
export function macField(o: Record<string, unknown>, key: string, what = key): MAC | undefined {
  const text = str(o, key, what);
  return text === undefined ? undefined : MAC.parse(text);
}
