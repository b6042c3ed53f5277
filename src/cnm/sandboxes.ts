/**
 * Sandboxes beyond their endpoints: the persistent ones netd creates (`netd sandbox create`), containers
 * sharing another's (`container:` mode, the sandbox's members), and handing a sandbox on to a member when
 * its container goes.
 */
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { newId, type CoreContext } from './context.js';
import { isValidName } from './validation.js';
import type { AttachRequest, AttachResult, EndpointRecord, SharedAttachResult } from './endpoint.js';
import type { NetworkRecord } from './network.js';
import type { SandboxMember, SandboxRecord } from './sandbox.js';

export class Sandboxes {
  constructor(
    private readonly ctx: CoreContext,
    /** How an endpoint is reported (endpoints.ts). */
    private readonly describe: (network: NetworkRecord, ep: EndpointRecord) => AttachResult,
  ) {}

  /** `netd sandbox create NAME`: a persistent network namespace (lo up), kept until removed. */
  async create(name: string): Promise<SandboxRecord> {
    if (!isValidName(name)) throw new InvalidArgumentError(`invalid sandbox name ${JSON.stringify(name)}`);
    this.ctx.targets.checkNameFree(name);
    const ns = await this.ctx.resolver.create(name);
    const record: SandboxRecord = { id: newId(), name, key: ns.key, nsId: ns.nsId, created: new Date().toISOString(), endpoints: [], persistent: true };
    try {
      this.ctx.registry.persistSandbox(record);
    } catch (err) {
      this.ctx.resolver.destroy(ns.key);
      throw err;
    }
    this.ctx.registry.sandboxesById.set(record.id, record);
    return record;
  }

  /** `--mode container:<other>`: the container shares another's sandbox; no endpoint of its own. */
  joinShared(req: AttachRequest, ref: string): SharedAttachResult {
    const { registry, targets } = this.ctx;
    const owner = targets.findSandbox(ref);
    if (!owner) throw new NotFoundError(`no attached container ${ref} to share a network namespace with`);
    if (owner.host) throw new InvalidArgumentError(`container ${owner.name} uses the host network: use --mode host`);
    const name = req.name ?? newId().slice(0, 12);
    targets.checkNameFree(name);
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
    const members = [...(owner.members ?? []), { name, ...(pid !== undefined ? { pid } : {}) }];
    registry.persistSandbox({ ...owner, members });
    owner.members = members;
    return {
      name,
      sandboxId: owner.id,
      sharedWith: owner.name,
      endpoints: registry.endpointsOfSandbox(owner).map((ep) => this.describe(registry.networkOf(ep).record, ep)),
    };
  }

  /** A container sharing another's namespace leaves it; the namespace's endpoints stay. */
  removeMember(sandbox: SandboxRecord, member: SandboxMember): void {
    sandbox.members = sandbox.members!.filter((m) => m !== member);
    this.ctx.registry.persistSandbox(sandbox);
  }

  /** The sandbox's named container is gone; the first member sharing it becomes its container. */
  promoteMember(sandbox: SandboxRecord): void {
    const [next, ...rest] = sandbox.members!;
    sandbox.name = next.name;
    sandbox.pid = next.pid;
    if (next.pid !== undefined) sandbox.key = `/proc/${next.pid}/ns/net`;
    sandbox.members = rest;
    this.ctx.registry.persistSandbox(sandbox);
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
}
