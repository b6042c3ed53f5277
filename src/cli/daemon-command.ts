/**
 * `netd daemon`: starts the daemon and stops it on SIGTERM/SIGINT. Loaded only when that command runs
 * (see main.ts), so the client commands never load the daemon, the kernel layer or the native addon.
 */
import { startDaemon } from '../daemon/daemon.js';
import type { DaemonConfig } from '../daemon/defaults.js';
import { requireDaemonPrivileges } from '../daemon/privileges.js';
import { installProcessGuards } from '../daemon/process-guards.js';

export async function runDaemon(config: DaemonConfig): Promise<void> {
  requireDaemonPrivileges();
  const daemon = await startDaemon(config);
  installProcessGuards(daemon.log);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await daemon.stop();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
