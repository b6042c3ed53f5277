/**
 * Finding containers: an attached one by PID, name, sandbox id (or unique prefix) or namespace path,
 * and the namespace a new attach points at. Also which container names are free.
 */
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { Registry } from './registry.js';
import type { NamespaceResolver, ResolvedNamespace, SandboxMember, SandboxRecord, SandboxTarget } from './sandbox.js';

/** A container: the sandbox it is in and, when it shares another's (`container:` mode), which member it is. */
export interface LocatedContainer {
  sandbox: SandboxRecord;
  member?: SandboxMember;
}

export class Targets {
  constructor(
    private readonly registry: Registry,
    private readonly resolver: NamespaceResolver,
  ) {}

  /** Finds an attached container by PID, name, sandbox id (or unique prefix) or namespace path. */
  locate(ref: string): LocatedContainer | undefined {
    if (typeof ref !== 'string' || ref === '') return undefined;
    const all = [...this.registry.sandboxesById.values()];
    const byMember = (pred: (m: SandboxMember) => boolean) => {
      for (const sandbox of all) {
        const member = sandbox.members?.find(pred);
        if (member) return { sandbox, member };
      }
      return undefined;
    };
    if (/^\d+$/.test(ref)) {
      const pid = Number(ref);
      const byPid = all.find((s) => s.pid === pid);
      if (byPid) return { sandbox: byPid };
      const member = byMember((m) => m.pid === pid);
      if (member) return member;
      const sandbox = this.byNamespace({ pid });
      if (sandbox) return { sandbox };
      // no such process: the digits may still be a name or an id prefix
    }
    const direct = this.registry.sandboxesById.get(ref) ?? all.find((s) => s.name === ref);
    if (direct) return { sandbox: direct };
    const member = byMember((m) => m.name === ref);
    if (member) return member;
    if (ref.startsWith('/')) {
      const sandbox = this.byNamespace({ path: ref });
      return sandbox ? { sandbox } : undefined;
    }
    if (/^[0-9a-f]{1,63}$/.test(ref)) {
      const matches = all.filter((s) => s.id.startsWith(ref));
      if (matches.length === 1) return { sandbox: matches[0] };
    }
    return undefined;
  }

  findSandbox(ref: string): SandboxRecord | undefined {
    return this.locate(ref)?.sandbox;
  }

  private byNamespace(target: SandboxTarget): SandboxRecord | undefined {
    try {
      return this.registry.sandboxOfNamespace(this.resolver.resolve(target).nsId);
    } catch {
      return undefined;
    }
  }

  /** The namespace an attach points at: a sandbox netd knows, or a PID's or path's namespace. */
  resolve(target: SandboxTarget, allowHost: boolean, allowMissing = false): ResolvedNamespace {
    if (target.sandbox !== undefined) {
      const sb = this.findSandbox(String(target.sandbox));
      if (!sb) throw new NotFoundError(`no sandbox ${target.sandbox}`);
      if (sb.host) throw new InvalidArgumentError(`container ${sb.name} uses the host network`);
      return { key: sb.key, nsId: sb.nsId, pid: sb.pid, host: false };
    }
    return this.resolver.resolve(target, { allowHost, allowMissing });
  }

  /**
   * A name is taken only by another container's name (or a full sandbox id): that a name happens to be a
   * prefix of some sandbox id (`c97`, `bad`) does not stop it, as with Docker's container names.
   */
  checkNameFree(name: string): void {
    for (const s of this.registry.sandboxesById.values()) {
      if (s.name === name || s.id === name || s.members?.some((m) => m.name === name)) {
        throw new ConflictError(`the container name ${name} is already in use`);
      }
    }
  }

  pidAlive(pid: number): boolean {
    try {
      this.resolver.resolve({ pid }, { allowHost: true });
      return true;
    } catch {
      return false;
    }
  }
}
