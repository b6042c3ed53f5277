import pino from 'pino';

export type Logger = pino.Logger;

/** The daemon's structured logger: JSON lines on stderr, one event per operation. */
export function createLogger(level: string = process.env.NETD_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'netd', level, base: { pid: process.pid } }, pino.destination(2));
}

/** A logger that discards everything, for library use and unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
