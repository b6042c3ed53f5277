/**
 * The Docker plugin's socket (`netd daemon --docker-plugin unix:///run/docker/plugins/netd.sock`): libnetwork's
 * remote plugin protocol over HTTP, on a unix socket of its own, with the API's limits (limits.ts). dockerd
 * POSTs `/Plugin.Activate`, `/NetworkDriver.<Call>` and `/IpamDriver.<Call>` with JSON bodies whatever its
 * Content-Type says (it sends none), `null` or nothing for calls without arguments; every answer is JSON as
 * `application/vnd.docker.plugins.v1.2+json`, errors in the protocol's `{"Err": ...}` shape (plugin.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isAbsolute, normalize } from 'node:path';
import { InvalidArgumentError, MethodNotAllowedError, type NetdError, asNetdError } from '../errors.js';
import type { Logger } from '../log.js';
import { errorReply, type DockerPlugin, type PluginReply } from '../docker-plugin/plugin.js';
import { readBodyText, refuseOversizedBody } from './http.js';
import { SERVER_OPTIONS, applyLimits } from './limits.js';
import { listenUnix } from './server.js';

export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

/** `--docker-plugin`: `unix:///absolute/path` or the absolute path itself. */
export function parsePluginAddress(address: string): string {
  const path = address.startsWith('unix://') ? address.slice('unix://'.length) : address;
  if (!isAbsolute(path) || path.includes('\0') || normalize(path) !== path || path.endsWith('/')) {
    throw new InvalidArgumentError(`--docker-plugin ${address}: expected unix:///absolute/path.sock or /absolute/path.sock`);
  }
  return path;
}

async function answer(plugin: DockerPlugin, req: IncomingMessage): Promise<PluginReply> {
  let name = '';
  try {
    name = new URL(req.url ?? '/', 'http://netd').pathname.slice(1);
  } catch {
    /* an unknown call below */
  }
  const ipam = name.startsWith('IpamDriver.');
  const refuse = (e: NetdError) => plugin.refused(name, errorReply(e, ipam));
  // Every plugin call is a POST; whether the path is a call at all is the plugin's to say (404).
  if (req.method !== 'POST') return refuse(new MethodNotAllowedError(`plugin calls are POSTs, not ${String(req.method).slice(0, 20)}`));
  let body: unknown;
  try {
    refuseOversizedBody(req);
    const text = await readBodyText(req);
    body = text === '' ? null : JSON.parse(text);
  } catch (err) {
    return refuse(err instanceof SyntaxError ? new InvalidArgumentError(`malformed JSON in request body: ${err.message}`) : asNetdError(err));
  }
  return plugin.handle(name, body);
}

function send(res: ServerResponse, reply: PluginReply, req: IncomingMessage): void {
  if (res.headersSent || res.destroyed) return;
  // A body netd refused to read is not worth draining: the connection closes.
  const close = !req.complete ? { Connection: 'close' } : {};
  res.writeHead(reply.status, { 'Content-Type': PLUGIN_CONTENT_TYPE, ...close });
  res.end(JSON.stringify(reply.body) + '\n');
}

/** Starts serving the plugin on `path` (a socket already claimed for this daemon). */
export async function startDockerPluginServer(opts: { path: string; plugin: DockerPlugin; log: Logger; group?: number }): Promise<Server> {
  const server = createServer(SERVER_OPTIONS, (req, res) => {
    answer(opts.plugin, req)
      .then((reply) => send(res, reply, req))
      .catch((err: unknown) => {
        opts.log.error({ op: 'docker-plugin', err }, 'plugin request handler failed');
        res.destroy();
      });
  });
  applyLimits(server, opts.log);
  await listenUnix(server, opts.path, opts.group);
  return server;
}
