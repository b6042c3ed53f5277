/**
 * Cluster mode (`--cluster-store etcd://H:P[,H:P…] --advertise-address IP`): the etcd client, the overlay
 * driver and the cluster (cluster/cluster.ts), wired into the daemon. Without `--cluster-store` none of
 * this exists and netd is the single-host daemon it always was.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log.js';
import { IPAddress } from '../net/index.js';
import type { Ipam } from '../ipam/ipam.js';
import type { Rtnl } from '../kernel/rtnetlink.js';
import type { InstanceIdentity } from '../firewall/marks.js';
import type { BridgeDriver } from '../drivers/bridge/bridge-driver.js';
import { OverlayDriver } from '../drivers/overlay/overlay-driver.js';
import type { DnsService } from '../dns/dns-service.js';
import type { Controller } from '../cnm/controller.js';
import type { Cluster } from '../cluster/cluster.js';
import { loadHostId } from '../cluster/host-id.js';
import type { DaemonConfig } from './defaults.js';

export interface ClusterMode {
  overlay: OverlayDriver;
  cluster: Cluster;
  /** After the controller restored its state: announce this host and follow the cluster. */
  start(controller: Controller): void;
  close(): Promise<void>;
}

export function setUpCluster(config: DaemonConfig, deps: { rtnl: Rtnl; bridge: BridgeDriver; ipam: Ipam; dns: DnsService; log: Logger; instance: InstanceIdentity }): ClusterMode | undefined {
  if (config.clusterStore === undefined) {
    if (config.advertiseAddress !== undefined) throw new InvalidArgumentError('--advertise-address needs --cluster-store');
    return undefined;
  }
  if (config.advertiseAddress === undefined) throw new InvalidArgumentError('--cluster-store needs --advertise-address: the address other hosts reach this one at');
  const advertise = IPAddress.parse(config.advertiseAddress, 'advertise address');
  const grace = config.clusterBlockGrace ?? 600;
  if (!(Number.isSafeInteger(grace) && grace >= 1)) throw new InvalidArgumentError(`--cluster-block-grace must be whole seconds ≥ 1, not ${config.clusterBlockGrace}`);
  if (advertise.family !== 4) throw new InvalidArgumentError('--advertise-address must be an IPv4 address');
  const tls = config.clusterStoreCacert || config.clusterStoreCert || config.clusterStoreKey ? { ca: config.clusterStoreCacert, cert: config.clusterStoreCert, key: config.clusterStoreKey } : undefined;
  // Loaded only in cluster mode: the etcd client (gRPC, protobuf) costs a single-host daemon nothing.
  const { EtcdStore } = require('../cluster/etcd-store.js') as typeof import('../cluster/etcd-store.js');
  const { Cluster } = require('../cluster/cluster.js') as typeof import('../cluster/cluster.js');
  const store = new EtcdStore({ endpoints: EtcdStore.parseUrl(config.clusterStore, tls !== undefined), tls, log: deps.log, leaseTtlSeconds: config.clusterLeaseTtl });
  const overlay = new OverlayDriver({ bridge: deps.bridge, rtnl: deps.rtnl, log: deps.log, advertise, instance: deps.instance });
  const hostId = loadHostId(config.dataRoot);
  const cluster = new Cluster({ store, ipam: deps.ipam, overlay, dns: deps.dns, hostId, advertise, blocksFile: join(config.dataRoot, 'cluster-blocks.json'), blockGraceMs: grace * 1000, log: deps.log });
  deps.log.info({ op: 'start', host: hostname(), hostId, advertise: advertise.toString(), store: config.clusterStore }, 'cluster mode');
  return {
    overlay,
    cluster,
    start: (controller) => cluster.start(controller),
    close: async () => {
      await cluster.close();
      await store.close();
    },
  };
}
