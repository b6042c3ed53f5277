/**
 * Raw HTTP on a daemon's unix socket: bytes no well-behaved client would send, and what came back.
 */
import { connect } from 'node:net';

export interface RawReply {
  /** The status of the first response, if one came. */
  status?: number;
  /** Everything the server sent. */
  text: string;
  /** The server closed the connection (rather than the exchange timing out). */
  closed: boolean;
  ms: number;
}

export interface RawOptions {
  /** Half-close after sending, as a client with nothing more to say (default true). */
  end?: boolean;
  timeoutMs?: number;
}

export function rawExchange(socketPath: string, data: string | Buffer, opts: RawOptions = {}): Promise<RawReply> {
  const start = Date.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect(socketPath);
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : undefined, text, closed, ms: Date.now() - start });
    };
    const timer = setTimeout(() => finish(false), opts.timeoutMs ?? 5_000);
    socket.on('connect', () => {
      socket.write(data);
      if (opts.end !== false) socket.end();
    });
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
  });
}

/** The JSON object of a raw reply's body (plain or in one chunk), or undefined. */
export function rawJson(reply: RawReply): { message?: string } | undefined {
  const body = reply.text.split('\r\n\r\n').slice(1).join('\r\n\r\n');
  const json = body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1);
  try {
    return json ? (JSON.parse(json) as { message?: string }) : undefined;
  } catch {
    return undefined;
  }
}
