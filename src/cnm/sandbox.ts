/**
 * A sandbox: a container's network stack, i.e. one network namespace, identified by the namespace's
 * device and inode so that a second attach of the same container finds it again.
 */
import type { DriverSandbox } from '../driverapi/model.js';
import type { NetnsCreatePoint } from '../kernel/netns-create-points.js';

export interface SandboxRecord extends DriverSandbox {
  name: string;
  pid?: number;
  /** `dev:ino` of the namespace. */
  nsId: string;
  created: string;
  endpoints: string[];
  /** A namespace netd created (`netd sandbox create`): kept while it has no endpoints, removed only on request. */
  persistent?: boolean;
  /** Further containers sharing this namespace (`--mode container:<this>`), besides the one named above. */
  members?: SandboxMember[];
  /** A container using the host's own namespace (`--mode host`). */
  host?: boolean;
}

export interface SandboxMember {
  name: string;
  pid?: number;
}

/** The points inside a namespace's creation: declared once by the kernel layer, which reaches them. */
export { NETNS_CREATE_POINTS as NAMESPACE_CREATE_POINTS } from '../kernel/netns-create-points.js';
export type NamespaceCreatePoint = NetnsCreatePoint;

/**
 * The nsId of a sandbox whose namespace did not exist yet when it was joined, followed by its path: dockerd
 * names a container's namespace (its SandboxKey) at Join, and binds the namespace the runtime made there
 * only afterwards (its setkey hook). Such a sandbox is alive while its path holds a namespace, or for a
 * grace period after it was made while its path holds nothing yet.
 */
export const PENDING_NAMESPACE = 'pending:';

/** Where a caller points netd at a container's namespace. */
export interface SandboxTarget {
  pid?: number;
  path?: string;
  /** A sandbox netd already knows, by name or id (e.g. one made with `netd sandbox create`). */
  sandbox?: string;
}

/** A namespace located by the kernel layer. */
export interface ResolvedNamespace {
  key: string;
  nsId: string;
  pid?: number;
  /** The namespace is the daemon's own (the host's). */
  host: boolean;
}

/**
 * How the controller finds namespaces without knowing the kernel: the daemon supplies an implementation
 * that stats /proc and refuses the daemon's own namespace.
 */
export interface NamespaceResolver {
  /**
   * Locates a namespace; the host's own is refused unless `allowHost`. `allowMissing`: a path where nothing
   * is yet resolves to nsId `PENDING_NAMESPACE + path` (see there).
   */
  resolve(target: SandboxTarget, opts?: { allowHost?: boolean; allowMissing?: boolean }): ResolvedNamespace;
  /** Whether a sandbox's namespace still exists and is the same one. */
  alive(sandbox: SandboxRecord): boolean;
  /** Where the namespace `create(name)` makes is kept (its key), known before it exists. */
  keyOf(name: string): string;
  /**
   * Creates a persistent, empty namespace (lo up) named `name`, as `ip netns add` does; `checkpoint` is
   * called at the points inside (fault injection).
   */
  create(name: string, checkpoint?: (point: NamespaceCreatePoint) => void): Promise<ResolvedNamespace>;
  /** Removes a namespace made by `create`. Idempotent: a file without its mount, or nothing, is fine. */
  destroy(key: string): void;
  /** The keys of every namespace (or leftover mount point) where `create` keeps them. */
  created(): string[];
}
