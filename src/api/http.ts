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

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://netd');
    const path = url.pathname.replace(/^\/v\d+\.\d+(?=\/)/, '');
    const method = req.method ?? 'GET';
    res.setHeader('Api-Version', API_VERSION);
    res.setHeader('Server', 'netd');
    let reply: Reply;
    try {
      reply = await this.dispatch(method, path, url.searchParams, req);
    } catch (err) {
      const e = asNetdError(err);
      if (e.status >= 500) this.log.error({ op: 'api', method, path, err }, e.message);
      reply = { status: e.status, body: { message: e.message } };
    }
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

  private async dispatch(method: string, path: string, query: URLSearchParams, req: IncomingMessage): Promise<Reply> {
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) continue;
      const params: Record<string, string> = {};
      route.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1])));
      return route.handler({ method, path, params, query, body: () => readJson(req) });
    }
    if (pathMatched) return { status: 405, body: { message: `method ${method} not allowed on ${path}` } };
    return { status: 404, body: { message: `page not found: ${path}` } };
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new NetdError('request body too large', 413, 'too_large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`malformed JSON in request body: ${(err as Error).message}`);
  }
}

/** Field readers that reject wrong types with a clear message. */
export function obj(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new InvalidArgumentError(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
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
