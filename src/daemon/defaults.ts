/**
 * What the daemon can be told, and what it assumes when it is not. No dependencies: the command line
 * shows these defaults in its help without loading the daemon.
 */
export interface DaemonConfig {
  host: string;
  dataRoot: string;
  /**
   * Runtime files: the namespaces netd creates live in `<execRoot>/netns`, containers' resolv.conf and
   * hosts in `<execRoot>/containers/<sandbox-id>/`.
   */
  execRoot: string;
  logLevel: string;
  bridge: string;
  defaultAddressPools: string[];
  /** Group allowed to use the socket (gid). */
  group?: number;
  /** How often to look for containers that died without a detach (ms; 0: never). */
  sweepIntervalMs?: number;
  /** How often to check that netd's firewall rules are still there (ms; 0: never). */
  firewallCheckIntervalMs?: number;
  /** Upstream DNS servers for the embedded DNS (`--dns`); default: the host's resolv.conf nameservers. */
  dns?: string[];
  /** The only directory under which clients may name files for netd to write (`--files-root`); none by default. */
  filesRoot?: string;
  /** When netd turns IP forwarding on, leave the FORWARD policy alone (default: set it to DROP). */
  ipForwardNoDrop?: boolean;
  /** Serve the Docker remote network + IPAM plugin on this unix socket (`--docker-plugin`); off when unset. */
  dockerPlugin?: string;
  /** Which firewall backend programs netd's rules (`--firewall-backend`): iptables (the default) or nftables. */
  firewallBackend?: string;
  /** Cluster mode: the etcd endpoints (`--cluster-store etcd://H:P[,H:P…]`); off when unset. */
  clusterStore?: string;
  /** TLS for etcd: the CA, client certificate and key files. */
  clusterStoreCacert?: string;
  clusterStoreCert?: string;
  clusterStoreKey?: string;
  /** This host's address on the underlay, where the other hosts' VXLAN traffic arrives (`--advertise-address`). */
  advertiseAddress?: string;
  /** Seconds this host's records outlive it in etcd (its lease's TTL; default 10). */
  clusterLeaseTtl?: number;
  /** Seconds after a host died before its address blocks go back to the pool (default 600). */
  clusterBlockGrace?: number;
}

/** The firewall backends `--firewall-backend` accepts (src/firewall/factory.ts has them); the first is the default. */
export const FIREWALL_BACKEND_NAMES = ['iptables', 'nftables'] as const;

export const DEFAULTS: DaemonConfig = {
  host: 'unix:///run/netd/netd.sock',
  dataRoot: '/var/lib/netd',
  execRoot: '/run/netd',
  logLevel: 'info',
  bridge: 'netd0',
  defaultAddressPools: [],
};
