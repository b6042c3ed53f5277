/**
 * Sandboxes beyond their endpoints: the persistent ones netd creates (`netd sandbox create`, journaled:
 * a crash midway is undone at start), containers sharing another's (`container:` mode, the sandbox's
 * members), and handing a sandbox on to a member when its container goes. Membership changes are one
 * atomic rewrite of the sandbox's record (no kernel change): a crash leaves the old record or the new
 * one, so they need no journal entry; they are still transactions, for their fault points.
 */
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { operation } from '../transaction/fault.js';
import { Transaction } from '../transaction/transaction.js';
import { newId, type CoreContext } from './context.js';
import { isValidName } from './validation.js';
import type { AttachRequest, AttachResult, EndpointRecord, SharedAttachResult } from './endpoint.js';
import type { NetworkRecord } from './network.js';
import { NAMESPACE_CREATE_POINTS, PENDING_NAMESPACE, type SandboxMember, type SandboxRecord } from './sandbox.js';

const SANDBOX_CREATE = operation('sandbox-create', ['journal', 'create namespace', 'persist sandbox'], NAMESPACE_CREATE_POINTS);
const SANDBOX_RM = operation('sandbox-rm', ['journal', 'release endpoints', 'destroy namespace', 'delete record']);
/** Membership changes: synchronous (a promotion happens inside the dead-container checks), so points by hand. */
const JOIN_SHARED = operation('join-shared', [], ['before:persist member', 'after:persist member']);
const LEAVE_SHARED = operation('leave-shared', [], ['before:persist members', 'after:persist members']);
const PROMOTE = operation('promote', [], ['before:persist promotion', 'after:persist promotion']);

export class Sandboxes {
  constructor(
    private readonly ctx: CoreContext,
    /** How an endpoint is reported (endpoints.ts). */
    private readonly describe: (network: NetworkRecord, ep: EndpointRecord) => AttachResult,
    /** Removes a sandbox's endpoints, keeping its record (endpoints.ts). */
    private readonly releaseEndpoints: (sandbox: SandboxRecord, reason: string) => Promise<string[]>,
  ) {}

  /** `netd sandbox create NAME`: a persistent network namespace (lo up), kept until removed. */
  async create(name: string): Promise<SandboxRecord> {
    const { registry, resolver, journal } = this.ctx;
    if (!isValidName(name)) throw new InvalidArgumentError(`invalid sandbox name ${JSON.stringify(name)}`);
    this.ctx.targets.checkNameFree(name);
    const id = newId();
    const key = resolver.keyOf(name);
    // A file there that is not netd's (e.g. `ip netns add` with --exec-root /run): refused before the
    // journal names it, so that a crash can never have it removed as an interrupted create's.
    if (resolver.created().includes(key)) throw new ConflictError(`${key} already exists and is not a sandbox of netd`);
    const tx = new Transaction(SANDBOX_CREATE, this.ctx.log);
    await tx.step('journal', () => journal.write(id, { op: 'sandbox-create', sandboxId: id, key }), () => journal.done(id));
    const ns = await tx.step(
      'create namespace',
      () => resolver.create(name, (point) => SANDBOX_CREATE.reach(point)),
      () => resolver.destroy(key),
    );
    const record: SandboxRecord = { id, name, key: ns.key, nsId: ns.nsId, created: new Date().toISOString(), endpoints: [], persistent: true };
    await tx.step('persist sandbox', () => registry.persistSandbox(record));
    journal.done(id);
    registry.sandboxesById.set(id, record);
    return record;
  }

  /** `netd sandbox rm`: its endpoints are detached, then the namespace and the record go. Journaled. */
  async remove(sandbox: SandboxRecord): Promise<string[]> {
    const { registry, resolver, journal } = this.ctx;
    const tx = new Transaction(SANDBOX_RM, this.ctx.log);
    await tx.step('journal', () => journal.write(sandbox.id, { op: 'sandbox-rm', sandboxId: sandbox.id }));
    const removed = await tx.step('release endpoints', () => this.releaseEndpoints(sandbox, 'sandbox removed'));
    await tx.step('destroy namespace', () => resolver.destroy(sandbox.key));
    await tx.step('delete record', () => registry.forgetSandbox(sandbox));
    journal.done(sandbox.id);
    return removed;
  }

  /** `--mode container:<other>`: the container shares another's sandbox; no endpoint of its own. */
  joinShared(req: AttachRequest, ref: string): SharedAttachResult {
    const { registry, targets } = this.ctx;
    const owner = targets.findSandbox(ref);
    if (!owner) throw new NotFoundError(`no attached container ${ref} to share a network namespace with`);
    if (owner.host) throw new InvalidArgumentError(`container ${owner.name} uses the host network: use --mode host`);
    const name = req.name ?? newId().slice(0, 12);
    let pid: number | undefined;
    if (req.target.pid !== undefined || req.target.path !== undefined) {
      const ns = this.ctx.resolver.resolve(req.target);
      if (ns.nsId !== owner.nsId) {
        throw new InvalidArgumentError(`the target is not in the network namespace of container ${owner.name}; start it in ${owner.key}`);
      }
      pid = ns.pid;
    }
    if (req.ip !== undefined || req.ip6 !== undefined || req.mac !== undefined || req.network !== undefined) {
      throw new InvalidArgumentError('a container sharing another\'s namespace takes no network, address or MAC of its own');
    }
    const result = (): SharedAttachResult => ({
      name,
      sandboxId: owner.id,
      sharedWith: owner.name,
      endpoints: registry.endpointsOfSandbox(owner).map((ep) => this.describe(registry.networkOf(ep).record, ep)),
    });
    // Already a member, as the same process: a retry (e.g. after a crash that came before the answer).
    if (owner.members?.some((m) => m.name === name && m.pid === pid)) return result();
    targets.checkNameFree(name);
    const members = [...(owner.members ?? []), { name, ...(pid !== undefined ? { pid } : {}) }];
    JOIN_SHARED.reach('before:persist member');
    registry.persistSandbox({ ...owner, members });
    JOIN_SHARED.reach('after:persist member');
    owner.members = members;
    return result();
  }

  /** A container sharing another's namespace leaves it; the namespace's endpoints stay. */
  removeMember(sandbox: SandboxRecord, member: SandboxMember): void {
    LEAVE_SHARED.reach('before:persist members');
    sandbox.members = sandbox.members!.filter((m) => m !== member);
    this.ctx.registry.persistSandbox(sandbox);
    LEAVE_SHARED.reach('after:persist members');
  }

  /** The sandbox's named container is gone; the first member sharing it becomes its container. */
  promoteMember(sandbox: SandboxRecord): void {
    PROMOTE.reach('before:persist promotion');
    const [next, ...rest] = sandbox.members!;
    sandbox.name = next.name;
    sandbox.pid = next.pid;
    if (next.pid !== undefined) sandbox.key = `/proc/${next.pid}/ns/net`;
    sandbox.members = rest;
    this.ctx.registry.persistSandbox(sandbox);
    PROMOTE.reach('after:persist promotion');
  }

  /** A sandbox whose key died may live on in a member's process. */
  revive(sandbox: SandboxRecord): boolean {
    while (sandbox.members && sandbox.members.length > 0) {
      const next = sandbox.members[0];
      if (next.pid !== undefined && this.ctx.resolver.alive({ ...sandbox, key: `/proc/${next.pid}/ns/net` })) {
        this.promoteMember(sandbox);
        return true;
      }
      sandbox.members = sandbox.members.slice(1);
    }
    return false;
  }

  /** Whether a sandbox's container is gone (a persistent sandbox never is). */
  isGone(sb: SandboxRecord): boolean {
    if (sb.persistent) return false;
    if (sb.host) return sb.pid !== undefined && !this.ctx.targets.pidAlive(sb.pid);
    return !this.ctx.resolver.alive(sb);
  }

  /** The namespace that has appeared where a sandbox joined before it existed waited for it (PENDING_NAMESPACE). */
  arrivedNamespace(sb: SandboxRecord): string | undefined {
    if (!sb.nsId.startsWith(PENDING_NAMESPACE)) return undefined;
    try {
      return this.ctx.resolver.resolve({ path: sb.key }).nsId;
    } catch {
      return undefined; // not there yet
    }
  }

  /** Under the lock: such a sandbox is known by its namespace from now on. */
  settle(sb: SandboxRecord): void {
    const nsId = this.arrivedNamespace(sb);
    if (nsId === undefined) return;
    sb.nsId = nsId;
    this.ctx.registry.persistSandbox(sb);
  }
}
