/**
 * Where the API listens (daemon) or connects (client): `unix:///absolute/path` or `tcp://HOST:PORT`.
 * A leaf module, so the CLI client loads none of the server's code.
 */
import { InvalidArgumentError } from '../errors.js';

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
