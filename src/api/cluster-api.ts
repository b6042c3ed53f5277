/**
 * GET /netd/v1/cluster: the hosts of the cluster this daemon is in (their addresses, whether their lease
 * is alive, their endpoints per network) and whether etcd answers. 404 when the daemon runs alone.
 */
import { NotFoundError } from '../errors.js';
import type { ClusterStatus } from '../cluster/cluster.js';
import type { Router } from './http.js';

export function addClusterRoutes(router: Router, status: (() => ClusterStatus) | undefined): void {
  router.add('GET', '/netd/v1/cluster', async () => {
    if (!status) throw new NotFoundError('this daemon is not in a cluster (start it with --cluster-store and --advertise-address)');
    return { status: 200, body: status() };
  });
}
