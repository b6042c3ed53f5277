/** The CLI's HTTP client for the daemon's socket. */
import { request } from 'node:http';
import { parseHost } from '../api/listen.js';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export class Client {
  constructor(readonly host: string) {}

  call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const listen = parseHost(this.host);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          ...(listen.kind === 'unix' ? { socketPath: listen.path } : { host: listen.host, port: listen.port }),
          method,
          path,
          headers: payload ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = undefined;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = text;
            }
            if ((res.statusCode ?? 500) >= 400) {
              const msg = (parsed as { message?: string } | undefined)?.message ?? `HTTP ${res.statusCode}`;
              reject(new ApiError(msg, res.statusCode ?? 500));
            } else {
              resolve(parsed as T);
            }
          });
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        reject(new ApiError(`cannot reach netd at ${this.host} (${err.code ?? err.message}); is the daemon running?`, 0));
      });
      req.end(payload);
    });
  }
}
