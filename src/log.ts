import pino from 'pino';

export type Logger = pino.Logger;

/**
 * The daemon's structured logger: JSON lines on stderr (or `file`), one event per operation.
 *
 * Lines are written off the answer path: a log call formats its line and queues it, and the write happens
 * on libuv's thread pool (pino's asynchronous destination), so an API answer never waits for whoever reads
 * the log (journald, a pipe) to be scheduled, and a reader that stops reading does not stop the daemon. The
 * lines keep their order, and what is queued is written out when the process exits (pino flushes its
 * destination on `exit`, which the daemon's uncaught-exception guard goes through too).
 */
export function createLogger(level: string = process.env.NETD_LOG_LEVEL ?? 'info', file?: string): Logger {
  return pino({ name: 'netd', level, base: { pid: process.pid } }, pino.destination({ dest: file ?? 2, sync: false }));
}

/** A logger that discards everything, for library use and unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
