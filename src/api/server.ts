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
import { addInfoRoutes, type DaemonInfo } from './info-api.js';
import { addClusterRoutes } from './cluster-api.js';
import type { ClusterStatus } from '../cluster/cluster.js';
import { parseHost } from './listen.js';
import { SERVER_OPTIONS, applyLimits } from './limits.js';

export async function startApiServer(opts: { host: string; controller: Controller; log: Logger; group?: number; info?: () => Promise<DaemonInfo>; cluster?: () => ClusterStatus }): Promise<Server> {
  const router = new Router(opts.log);
  addDockerRoutes(router, opts.controller);
  addNetdRoutes(router, opts.controller);
  addCniRoutes(router, opts.controller, opts.log);
  if (opts.info) addInfoRoutes(router, opts.info); // the daemon's; in-process harnesses (bench) go without
  addClusterRoutes(router, opts.cluster);
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
    // The path was claimed by the daemon before any kernel change (a live daemon's socket refused there).
    await listenUnix(server, listen.path, opts.group);
  } else {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host, () => resolve());
    });
    opts.log.warn({ op: 'listen', host: opts.host }, 'the API is reachable over TCP without authentication');
  }
  return server;
}

/** Listens on a unix socket (its directory made 0755 if missing), mode 0660, owned by root and `group`. */
export async function listenUnix(server: Server, path: string, group?: number): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o660);
  if (group !== undefined) chownSync(path, 0, group);
}
