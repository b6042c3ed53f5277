import pino from 'pino';

export type Logger = pino.Logger;

/**
 * The daemon's structured logger: JSON lines on stderr (or `file`), one event per operation.
 *
 * Lines are written off the answer path: a log call formats its line and queues it, and the write happens
 * on libuv's thread pool (sonic-boom's asynchronous mode, the default of `pino.destination`, made explicit
 * here), so a reader that stops reading (journald, a pipe) does not stop the daemon. The lines keep their
 * order, and what is queued is written out when the process exits (pino flushes its destination on `exit`,
 * which the daemon's uncaught-exception guard goes through too). test/unit/log.test.ts holds it to that.
 */
export function createLogger(level: string = process.env.NETD_LOG_LEVEL ?? 'info', file?: string): Logger {
  return pino({ name: 'netd', level, base: { pid: process.pid } }, pino.destination({ dest: file ?? 2, sync: false }));
}

/** A logger that discards everything, for library use and unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
