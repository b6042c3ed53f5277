/**
 * GET /netd/v1/info: what the daemon is and what it found wrong around it — its instance, its firewall
 * backend and that backend's warnings (another table dropping netd's traffic, with the rule to add). The
 * daemon gathers it (daemon.ts); this route only answers it.
 */
import type { FirewallWarning } from '../firewall/firewall.js';
import type { Router } from './http.js';

export interface DaemonInfo {
  /** The daemon instance (in its firewall marks and its nftables table's name). */
  instance: string;
  firewall: {
    backend: string;
    warnings: FirewallWarning[];
  };
}

export function addInfoRoutes(router: Router, info: () => Promise<DaemonInfo>): void {
  router.add('GET', '/netd/v1/info', async () => ({ status: 200, body: await info() }));
}
