/**
 * A sandbox: a container's network stack, i.e. one network namespace, identified by the namespace's
 * device and inode so that a second attach of the same container finds it again.
 */

export interface SandboxRecord {
  id: string;
  name: string;
  /** Path that opens the namespace: /proc/PID/ns/net or a bind-mounted netns file. */
  key: string;
  pid?: number;
  /** `dev:ino` of the namespace. */
  nsId: string;
  created: string;
  endpoints: string[];
}

/** Where a caller points netd at a container's namespace. */
export interface SandboxTarget {
  pid?: number;
  path?: string;
}

/** A namespace located by the kernel layer. */
export interface ResolvedNamespace {
  key: string;
  nsId: string;
  pid?: number;
}

/**
 * How the controller finds namespaces without knowing the kernel: the daemon supplies an implementation
 * that stats /proc and refuses the daemon's own namespace.
 */
export interface NamespaceResolver {
  resolve(target: SandboxTarget): ResolvedNamespace;
  /** Whether a sandbox's namespace still exists and is the same one. */
  alive(sandbox: SandboxRecord): boolean;
}
