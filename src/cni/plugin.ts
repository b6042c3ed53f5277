#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
/**
 * `netd-cni`: the CNI plugin executable, a pure forwarder (README: "Use netd from podman / containerd / Kubernetes (CNI)").
 * It reads the CNI_* environment and the network configuration on stdin, POSTs them to the daemon's
 * `/netd/v1/cni` on its unix socket, prints the reply's body to stdout and exits 0 (2xx) or 1.
 * Only VERSION and the errors that need no daemon (50 unreachable, 11 no answer, 6 stdin not JSON,
 * 4 no CNI_COMMAND, 7 bad `host` or a config whose escaped request exceeds the daemon's 1 MiB) are answered here.
 *
 * Start-up is the cost here (a runtime execs the plugin for every ADD/DEL): this file imports only
 * node:net and node:fs, speaks a minimal HTTP/1.1 by hand (node:http costs ~4 ms more to load), and its
 * shebang drops NODE_EXTRA_CA_CERTS, which node otherwise parses at start (~40 ms) though nothing here
 * uses TLS. native/netd-cni-shim.c is the same program in C, byte for byte in its output.
 */
import { connect } from 'node:net';
import { readSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';

const SUPPORTED = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];
const DEFAULT_VERSION = '1.1.0';
const DEFAULT_HOST = 'unix:///run/netd/netd.sock';
const MAX_STDIN = 1 << 20;
/** The daemon refuses request bodies over 1 MiB (src/api/http.ts); the escaped config must fit in it. */
const MAX_BODY = 1 << 20;
const MAX_REPLY = 16 << 20;
const MAX_TIMEOUT_MS = 2 ** 31 - 1; // setTimeout's limit (beyond, node fires after 1 ms)
const TIMEOUT_MS = timeoutMs(process.env.NETD_CNI_TIMEOUT_MS);

/** NETD_CNI_TIMEOUT_MS: decimal digits (blanks around allowed), clamped to 1..2^31-1 ms; else (or 0) 120 s. */
function timeoutMs(text: string | undefined): number {
  const m = /^[ \t\n\v\f\r]*(\d+)[ \t\n\v\f\r]*$/.exec(text ?? '');
  const digits = m?.[1].replace(/^0+/, '') ?? '';
  if (digits === '') return 120_000;
  return digits.length > 10 ? MAX_TIMEOUT_MS : Math.min(Number(digits), MAX_TIMEOUT_MS);
}

let cniVersion = DEFAULT_VERSION;

function finish(text: string, code: number): never {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n', () => process.exit(code));
  // process.exit runs in the write callback; keep the types happy and the loop busy until then.
  return undefined as never;
}

function fail(code: number, msg: string, details?: string): never {
  const err: Record<string, unknown> = { cniVersion, code, msg };
  if (details !== undefined) err.details = details;
  return finish(JSON.stringify(err), 1);
}

/**
 * stdin, whole; undefined if it exceeds MAX_STDIN. Read synchronously (the common case: the runtime wrote
 * it all into a pipe); a non-blocking stdin with nothing in it yet (EAGAIN) is waited on through node's
 * event loop (process.stdin, epoll), never by spinning on read.
 */
async function readStdin(): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  const add = (data: Buffer): boolean => {
    total += data.length;
    chunks.push(data);
    return total <= MAX_STDIN;
  };
  const buf = Buffer.allocUnsafe(65536);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        for await (const data of process.stdin) if (!add(data as Buffer)) return undefined;
        break;
      }
      if (code === 'EOF' || code === 'EBADF') break;
      throw e;
    }
    if (n === 0) break;
    if (!add(Buffer.from(buf.subarray(0, n)))) return undefined;
  }
  return Buffer.concat(chunks);
}

/** The socket path of a `unix:///path` host, or undefined. */
function socketPath(host: string): string | undefined {
  return host.startsWith('unix:///') ? host.slice('unix://'.length) : undefined;
}

interface Reply {
  status: number;
  body: string;
}

/** How many bytes the reply must reach before parsing it again can tell more (no re-parse per read). */
let need = 0;

/** Trims HTTP blanks (ASCII only, as the shim does). */
function trimBlanks(text: string): string {
  return text.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '');
}

/** Decodes a chunked body; undefined while incomplete or malformed. */
function unchunk(raw: Buffer, offset: number): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = parseInt(raw.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size < 0) return undefined;
    if (size === 0) return Buffer.concat(parts);
    need = offset + eol + 2 + size + 2;
    if (eol + 2 + size + 2 > raw.length) return undefined;
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** The reply once `raw` holds all of it (Content-Length, chunked, or closed), else undefined. */
function parseReply(raw: Buffer, closed: boolean): Reply | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0]);
  if (!m) return { status: 0, body: '' };
  const headers = new Map<string, string>();
  for (const line of head.slice(1)) {
    const c = line.indexOf(':');
    if (c > 0) headers.set(trimBlanks(line.slice(0, c)).toLowerCase(), trimBlanks(line.slice(c + 1)));
  }
  const rest = raw.subarray(end + 4);
  const status = Number(m[1]);
  let body: Buffer | undefined;
  if (status === 204 || status === 304) body = Buffer.alloc(0);
  else if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) body = unchunk(rest, end + 4);
  else if (headers.has('content-length')) {
    // Decimal digits only (no sign, hex or exponent); anything else waits for a close that cannot complete it.
    const text = headers.get('content-length')!;
    const len = /^\d+$/.test(text) ? Number(text) : NaN;
    need = end + 4 + (len >= 0 ? len : Infinity);
    body = len >= 0 && rest.length >= len ? rest.subarray(0, len) : undefined;
  } else body = closed ? rest : undefined;
  return body && { status, body: body.toString('utf8') };
}

function post(path: string, payload: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    // A failed write (EPIPE/ECONNRESET: the daemon refused the request and hung up) must not close the
    // socket: the reply it sent first (a 413) is still to be read, up to EOF.
    // (Node marks the readable side errored on a write error and stops delivering data; undo that.)
    const states = sock as unknown as { _writableState?: { autoDestroy: boolean }; _readableState?: { autoDestroy: boolean; errored: unknown } };
    for (const state of [states._writableState, states._readableState]) if (state) state.autoDestroy = false;
    let sendError: string | undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const settle = (closed: boolean): boolean => {
      if (done) return true;
      if (!closed && size < need) return false;
      const r = parseReply(Buffer.concat(chunks), closed);
      if (!r && !closed) return false;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (r) resolve(r);
      else reject(Object.assign(new Error('closed'), { code: size === 0 && sendError ? sendError : 'EPIPE', answered: size > 0 }));
      return true;
    };
    const timer = setTimeout(() => {
      done = true;
      sock.destroy();
      reject(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }));
    }, TIMEOUT_MS);
    sock.on('connect', () => {
      const body = Buffer.from(payload, 'utf8');
      sock.write(`POST /netd/v1/cni HTTP/1.1\r\nHost: netd\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      sock.write(body);
    });
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      size += d.length;
      if (size > MAX_REPLY) {
        done = true;
        clearTimeout(timer);
        sock.destroy();
        reject(Object.assign(new Error('reply too large'), { code: 'EMSGSIZE', answered: true }));
      } else settle(false);
    });
    sock.on('end', () => settle(true));
    sock.on('close', () => settle(true));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (done) return;
      if (!sendError && (e.code === 'EPIPE' || e.code === 'ECONNRESET') && e.syscall === 'write') {
        sendError = e.code;
        if (states._readableState) states._readableState.errored = null;
        return;
      }
      // An error after the daemon answered part of a reply is a broken reply, not an unreachable daemon.
      if (size > 0 && settle(true)) return;
      done = true;
      clearTimeout(timer);
      reject(Object.assign(e, { answered: size > 0 }));
    });
  });
}

/** A daemon's error reply: its body if that is a CNI error object, else one made from the status. */
function errorReply(r: Reply): never {
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.body);
  } catch {
    parsed = undefined;
  }
  const obj = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  if (obj && Number.isInteger(obj.code) && typeof obj.msg === 'string') return finish(r.body, 1);
  const message = typeof obj?.message === 'string' ? obj.message : undefined;
  if (r.status === 503) return fail(11, 'netd is busy, try again later', message ?? `HTTP ${r.status}`);
  if (r.status === 413) return fail(7, 'network configuration too large', message ?? `HTTP ${r.status}`);
  return fail(100, message ?? `netd answered HTTP ${r.status}`, message ? `HTTP ${r.status}` : undefined);
}

async function main(): Promise<void> {
  const raw = await readStdin();
  if (raw === undefined) return fail(7, 'network configuration too large', `stdin exceeds ${MAX_STDIN} bytes`);
  let stdin = '';
  let config: unknown;
  let parseError: string | undefined;
  if (!isUtf8(raw)) parseError = 'not valid UTF-8';
  else {
    stdin = raw.toString('utf8');
    try {
      config = JSON.parse(stdin);
    } catch {
      parseError = 'not valid JSON';
    }
  }
  const obj = config !== null && typeof config === 'object' && !Array.isArray(config) ? (config as Record<string, unknown>) : undefined;
  if (obj && typeof obj.cniVersion === 'string') cniVersion = obj.cniVersion;

  const command = process.env.CNI_COMMAND;
  if (!command) return fail(4, 'CNI_COMMAND is not set');
  if (command === 'VERSION') {
    if (parseError !== undefined && !/^[ \t\r\n]*$/.test(raw.toString('latin1'))) return fail(6, 'cannot decode the network configuration on stdin', parseError);
    return finish(JSON.stringify({ cniVersion, supportedVersions: SUPPORTED }), 0);
  }
  if (parseError !== undefined) return fail(6, 'cannot decode the network configuration on stdin', parseError);

  let host = process.env.NETD_HOST || DEFAULT_HOST;
  if (obj && 'host' in obj) {
    if (typeof obj.host !== 'string') return fail(7, 'invalid network configuration', '"host" must be a string "unix:///path"');
    host = obj.host;
  }
  const path = socketPath(host);
  if (!path || path.includes('\0')) return fail(7, 'invalid network configuration', `host ${JSON.stringify(host)}: only unix:///path is supported`);

  const env: Record<string, string> = {};
  for (const k of ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_ARGS', 'CNI_PATH']) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  const payload = JSON.stringify({ env, stdin });
  if (Buffer.byteLength(payload) > MAX_BODY) return fail(7, 'network configuration too large', `the request to netd exceeds ${MAX_BODY} bytes`);
  // libuv would silently connect to the path cut to sun_path's 108 bytes.
  if (Buffer.byteLength(path) >= 108) return fail(50, 'netd is not available', `cannot connect to ${path}: ENAMETOOLONG`);
  let reply: Reply;
  try {
    reply = await post(path, payload);
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { answered?: boolean };
    if (err.code === 'ETIMEDOUT') return fail(11, 'netd did not answer in time, try again later', `no reply on ${path} within ${TIMEOUT_MS / 1000} s`);
    if (err.code === 'EAGAIN') return fail(11, 'netd is busy, try again later', `cannot connect to ${path}: EAGAIN`);
    if (err.answered || err.code === 'EPIPE' || err.code === 'ECONNRESET') return fail(11, 'netd closed the connection before answering, try again later', `${path}: ${err.code}`);
    return fail(50, 'netd is not available', `cannot connect to ${path}: ${err.code ?? 'error'}`);
  }
  if (reply.status >= 200 && reply.status < 300 && reply.body === '') return process.exit(0);
  if (reply.status >= 200 && reply.status < 300) return finish(reply.body, 0);
  return errorReply(reply);
}

main().catch((e: unknown) => fail(100, 'netd-cni failed', String(e instanceof Error ? e.message : e)));
