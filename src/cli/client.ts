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

/** Why the daemon could not be reached, in terms of what the user can do about it. */
function unreachable(host: string, err: NodeJS.ErrnoException): string {
  if (err.code === 'EACCES' || err.code === 'EPERM') {
    return `permission denied on netd's socket ${host}: only root and the group the daemon was started with (netd daemon --group GID) may use it`;
  }
  return `cannot reach netd at ${host} (${err.code ?? err.message}); is the daemon running?`;
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
      req.on('error', (err: NodeJS.ErrnoException) => reject(new ApiError(unreachable(this.host, err), 0)));
      req.end(payload);
    });
  }
}
