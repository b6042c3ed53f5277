/**
 * Whether a host process listens on a TCP port, found by trying to listen there ourselves (and closing
 * at once). Reading /proc/net/tcp would be the obvious way, but the kernel walks its machine-wide
 * connection hash to produce it (~5 ms per file here, whatever the namespace); a bind is ~0.4 ms.
 *
 * Node's listen sets SO_REUSEADDR, so sockets in TIME_WAIT do not count; `exclusive` keeps the cluster
 * module out. The bind happens on the main thread, i.e. in the daemon's namespace.
 */
import { createServer } from 'node:net';
import { familyOf } from './types.js';

/** The errno of a failed listen on hostIp:port (EADDRINUSE: someone listens there), or undefined if free. */
export function tcpListenProbe(hostIp: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'EIO'));
    // An IPv6 mapping only shadows IPv6 sockets: probe v6-only (a 0.0.0.0 listener does not conflict).
    server.listen({ host: hostIp, port, exclusive: true, ipv6Only: familyOf(hostIp) === 6 }, () => server.close(() => resolve(undefined)));
  });
}
