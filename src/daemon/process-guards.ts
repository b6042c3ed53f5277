/**
 * The daemon's policy for errors nothing caught. Every request and every controller operation runs inside a
 * try that answers or rolls back, so these are bugs; what is safe differs:
 * - an unhandled promise rejection: the failed operation already ended (its awaiting caller, if any, saw
 *   it); no synchronous code was cut short. Logged, and the daemon keeps serving.
 * - an uncaught exception: synchronous code stopped half-way, state in memory may be inconsistent. Logged,
 *   and the daemon exits; the next start recovers from the journal and reconciles the kernel.
 */
import type { Logger } from '../log.js';

export function installProcessGuards(log: Logger): void {
  process.on('unhandledRejection', (reason) => {
    log.error({ op: 'process', err: reason }, 'unhandled promise rejection (a bug); the daemon keeps running');
  });
  process.on('uncaughtException', (err) => {
    log.fatal({ op: 'process', err }, 'uncaught exception (a bug); exiting, the next start recovers from the journal');
    process.exit(70);
  });
}
