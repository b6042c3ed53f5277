/**
 * A minimal HTTP/JSON client on a unix socket, as a container runtime talks to netd or dockerd: one
 * keep-alive agent (so a request costs what the daemon does, not a connect), JSON in and out. Used for
 * netd's and dockerd's APIs alike, so both are measured the same way.
 */
import { Agent, request } from 'node:http';

export class HttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(message);
  }
}

export interface HttpReply<T> {
  status: number;
  body: T;
}

export class UnixHttp {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: Infinity });

  constructor(readonly socketPath: string) {}

  /** Any status resolves; only transport errors reject. */
  request<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = 120_000): Promise<HttpReply<T>> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          agent: this.agent,
          method,
          path,
          headers: payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              /* plain text (e.g. /_ping) */
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as T });
          });
          res.on('error', reject);
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Like request, but a status >= 400 rejects with the daemon's message. */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.request<T>(method, path, body);
    if (r.status >= 400) {
      const msg = (r.body as { message?: string } | undefined)?.message ?? JSON.stringify(r.body);
      throw new HttpError(`${method} ${path}: HTTP ${r.status}: ${msg}`, r.status, r.body);
    }
    return r.body;
  }

  close(): void {
    this.agent.destroy();
  }
}
