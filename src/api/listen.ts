/**
 * Where the API listens (daemon) or connects (client): `unix:///absolute/path` or `tcp://HOST:PORT`.
 * A leaf module, so the CLI client loads none of the server's code.
 */
import { lstatSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { ConflictError, InvalidArgumentError } from '../errors.js';

export type Listen = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export function parseHost(host: string): Listen {
  if (host.startsWith('unix://')) {
    const path = host.slice('unix://'.length);
    if (!path.startsWith('/')) throw new InvalidArgumentError(`--host ${host}: the socket path must be absolute`);
    return { kind: 'unix', path };
  }
  const m = /^tcp:\/\/([^:]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(host);
  if (m && Number(m[2]) > 0 && Number(m[2]) < 65536) return { kind: 'tcp', host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  throw new InvalidArgumentError(`--host ${host}: expected unix:///path or tcp://HOST:PORT`);
}

const PROBE_TIMEOUT_MS = 2000;

/**
 * Makes a unix socket path free for the daemon to listen on. A socket someone answers on (another netd,
 * whatever its data root) is refused; a stale one, left by a daemon that died (connecting is refused), is
 * removed; anything else at the path is refused.
 */
export async function claimUnixSocket(path: string): Promise<void> {
  try {
    if (!lstatSync(path).isSocket()) throw new ConflictError(`cannot listen on ${path}: it exists and is not a socket`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const outcome = await new Promise<'live' | 'stale' | NodeJS.ErrnoException>((resolve) => {
    const socket = connect(path);
    const done = (result: 'live' | 'stale' | NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    // No answer in time (a full backlog): someone is there.
    const timer = setTimeout(() => done('live'), PROBE_TIMEOUT_MS);
    socket.once('connect', () => done('live'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'stale' : err));
  });
  if (outcome === 'live') {
    throw new ConflictError(`another daemon is listening on ${path}: stop it, or give this one another --host`);
  }
  if (outcome !== 'stale') throw new ConflictError(`cannot check the socket ${path}: ${outcome.message}`);
  rmSync(path, { force: true });
}
