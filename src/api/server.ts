/**
 * The API server: HTTP on a unix socket (mode 0660, so only root and the socket's group can use it), or
 * on TCP only when a tcp:// address is given explicitly.
 */
import { createServer, type Server } from 'node:http';
import { chmodSync, chownSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import type { Controller } from '../cnm/controller.js';
import { Router } from './http.js';
import { addDockerRoutes } from './docker-api.js';
import { addNetdRoutes } from './netd-api.js';
import { addCniRoutes } from './cni-api.js';
import { parseHost } from './listen.js';
import { SERVER_OPTIONS, applyLimits } from './limits.js';

export async function startApiServer(opts: { host: string; controller: Controller; log: Logger; group?: number }): Promise<Server> {
  const router = new Router(opts.log);
  addDockerRoutes(router, opts.controller);
  addNetdRoutes(router, opts.controller);
  addCniRoutes(router, opts.controller, opts.log);
  const server = createServer(SERVER_OPTIONS, (req, res) => {
    // handle() answers every failure itself; this is the last line, should it ever reject.
    router.handle(req, res).catch((err: unknown) => {
      opts.log.error({ op: 'api', err }, 'request handler failed');
      res.destroy();
    });
  });
  applyLimits(server, opts.log);
  const listen = parseHost(opts.host);
  if (listen.kind === 'unix') {
    mkdirSync(dirname(listen.path), { recursive: true, mode: 0o755 });
    // The path was claimed by the daemon before any kernel change (a live daemon's socket refused there).
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.path, () => resolve());
    });
    chmodSync(listen.path, 0o660);
    if (opts.group !== undefined) chownSync(listen.path, 0, opts.group);
  } else {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => resolve());
    });
    opts.log.warn({ op: 'listen', host: opts.host }, 'the API is reachable over TCP without authentication');
  }
  return server;
}
