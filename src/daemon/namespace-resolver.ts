/**
 * Locates a container's network namespace from a PID or a namespace path, for the controller. Refuses
 * the daemon's own namespace: attaching "a container" that shares it would reconfigure the host.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { createPersistentNetns, deletePersistentNetns } from '../kernel/netns.js';
import { bringLoopbackUp } from '../kernel/loopback.js';
import { ForbiddenError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { PENDING_NAMESPACE, type NamespaceCreatePoint, type NamespaceResolver, type ResolvedNamespace, type SandboxRecord, type SandboxTarget } from '../cnm/sandbox.js';

/** How long a sandbox joined before its namespace existed may wait for it (dockerd binds it within a second). */
const PENDING_GRACE_MS = 60_000;

export class ProcNamespaceResolver implements NamespaceResolver {
  /** The daemon's own namespace, and the device every nsfs file lives on. */
  private readonly own = statSync('/proc/self/ns/net');

  /** @param netnsDir where namespaces netd creates are bind-mounted (like /run/netns for `ip netns`). */
  constructor(private readonly netnsDir: string) {}

  resolve(target: SandboxTarget, opts: { allowHost?: boolean; allowMissing?: boolean } = {}): ResolvedNamespace {
    let key: string;
    let pid: number | undefined;
    if (target.pid !== undefined) {
      if (!Number.isSafeInteger(target.pid) || target.pid <= 0) throw new InvalidArgumentError(`invalid PID ${JSON.stringify(target.pid)}: a PID is a whole number from 1`);
      pid = target.pid;
      key = `/proc/${pid}/ns/net`;
      if (!existsSync(`/proc/${pid}`)) throw new NotFoundError(`no process with PID ${pid}`);
    } else if (typeof target.path === 'string' && target.path !== '') {
      if (!isAbsolute(target.path) || target.path.includes('\0')) throw new InvalidArgumentError(`namespace path must be absolute: ${JSON.stringify(target.path)}`);
      key = target.path;
    } else {
      throw new InvalidArgumentError('a target needs a PID or a namespace path');
    }
    let st;
    try {
      st = statSync(key);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && opts.allowMissing && pid === undefined) return { key, nsId: PENDING_NAMESPACE + key, host: false };
      throw new NotFoundError(`cannot open the network namespace ${key}: ${code}`);
    }
    if (st.dev !== this.own.dev) {
      // dockerd's setkey makes an empty file at the path, then binds the namespace onto it.
      if (opts.allowMissing && pid === undefined && st.isFile() && st.size === 0) return { key, nsId: PENDING_NAMESPACE + key, host: false };
      throw new InvalidArgumentError(`${key} is not a network namespace`);
    }
    const host = st.ino === this.own.ino;
    if (host && !opts.allowHost) {
      throw new ForbiddenError(`${pid !== undefined ? `PID ${pid}` : key} is in netd's own (the host's) network namespace; attaching would reconfigure the host (use the host network instead)`);
    }
    return { key, pid, nsId: `${st.dev}:${st.ino}`, host };
  }

  keyOf(name: string): string {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/.test(name)) throw new InvalidArgumentError(`invalid sandbox name ${JSON.stringify(name)}`);
    return join(this.netnsDir, name);
  }

  async create(name: string, checkpoint?: (point: NamespaceCreatePoint) => void): Promise<ResolvedNamespace> {
    const key = this.keyOf(name);
    createPersistentNetns(key, { checkpoint });
    try {
      await bringLoopbackUp(key);
      const st = statSync(key);
      return { key, nsId: `${st.dev}:${st.ino}`, host: false };
    } catch (err) {
      deletePersistentNetns(key);
      throw err;
    }
  }

  destroy(key: string): void {
    deletePersistentNetns(key);
  }

  created(): string[] {
    let entries;
    try {
      entries = readdirSync(this.netnsDir, { withFileTypes: true });
    } catch {
      return []; // nothing created yet
    }
    return entries.filter((e) => !e.isDirectory() && !e.name.startsWith('.')).map((e) => join(this.netnsDir, e.name));
  }

  alive(sandbox: SandboxRecord): boolean {
    const pending = sandbox.nsId.startsWith(PENDING_NAMESPACE);
    const waiting = pending && Date.now() - Date.parse(sandbox.created) < PENDING_GRACE_MS;
    try {
      const st = statSync(sandbox.key);
      if (!pending) return `${st.dev}:${st.ino}` === sandbox.nsId;
      // The namespace is there, or the empty file dockerd binds it onto is (within the grace period).
      if (st.dev === this.own.dev) return st.ino !== this.own.ino;
      return waiting && st.isFile() && st.size === 0;
    } catch {
      return waiting;
    }
  }
}
