/**
 * netd's own routes, under /netd/v1: attach a container by PID or namespace path, detach it, list
 * endpoints and sandboxes.
 */
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import type { Controller } from '../cnm/controller.js';
import type { SandboxTarget } from '../cnm/sandbox.js';
import { parsePortRequests } from '../portmap/parse.js';
import { familyOf, type PortBinding } from '../portmap/types.js';
import { PORT_MAP } from '../driverapi/labels.js';
import { ipField, macField, obj, str, strList, strMap, strictObj, type Router } from './http.js';

/** A PID (digits) or an absolute namespace path; anything else is not a new attach target. */
export function attachTargetOf(ref: string): SandboxTarget | undefined {
  if (/^\d+$/.test(ref)) return { pid: Number(ref) };
  if (ref.startsWith('/')) return { path: ref };
  return undefined;
}

const ATTACH_FIELDS = ['target', 'network', 'name', 'ip', 'ip6', 'mac', 'aliases', 'mode', 'ports', 'extras', 'ifname', 'labels'] as const;

/** A PID is a JSON number here; which numbers are PIDs the namespace resolver says (one check, not two). */
function pidOf(value: unknown, what: string): number {
  if (typeof value !== 'number') throw new InvalidArgumentError(`invalid PID ${JSON.stringify(value)?.slice(0, 40)}: ${what} must be a number`);
  return value;
}

function targetOf(value: unknown): SandboxTarget {
  if (typeof value === 'number') return { pid: pidOf(value, 'target') };
  if (typeof value === 'string') {
    const t = attachTargetOf(value);
    if (t) return t;
  }
  const o = strictObj(value, 'target', ['pid', 'path', 'sandbox']);
  if (o.pid !== undefined) return { pid: pidOf(o.pid, 'target.pid') };
  const path = str(o, 'path', 'target.path');
  if (path) return { path };
  const sandbox = str(o, 'sandbox', 'target.sandbox');
  if (sandbox) return { sandbox };
  throw new InvalidArgumentError('target must be a PID, a namespace path or a sandbox name');
}

/**
 * The endpoint options of an attach, for the network's driver: `ports` (libnetwork's
 * com.docker.network.portmap entries ({Proto, Port, HostIP, HostPort}) or "-p" strings), parsed here.
 */
function endpointOptions(body: Record<string, unknown>): Record<string, unknown> | undefined {
  const ports = parsePortRequests(body.ports);
  return ports.length > 0 ? { [PORT_MAP]: ports } : undefined;
}

export function addNetdRoutes(router: Router, controller: Controller): void {
  router.add('POST', '/netd/v1/attach', async (req) => {
    const body = strictObj(await req.body(), 'request body', ATTACH_FIELDS);
    const result = await controller.attach({
      target: targetOf(body.target),
      network: str(body, 'network'),
      name: str(body, 'name'),
      ip: ipField(body, 'ip', 'IP address'),
      ip6: ipField(body, 'ip6', 'IP address'),
      mac: macField(body, 'mac'),
      aliases: strList(body, 'aliases'),
      ifname: str(body, 'ifname'),
      labels: strMap(body, 'labels'),
      mode: str(body, 'mode'),
      options: endpointOptions(body),
      // Observer fields (links, resolv.conf/hosts paths under --files-root): checked by them before anything is attached.
      extras: body.extras === undefined || body.extras === null ? undefined : obj(body.extras, 'extras'),
    });
    return { status: 201, body: result };
  });

  router.add('POST', '/netd/v1/detach', async (req) => {
    const body = strictObj(await req.body(), 'request body', ['container', 'network']);
    const container = body.container;
    if (typeof container !== 'string' && typeof container !== 'number') throw new InvalidArgumentError('container must be a PID, name, id or namespace path');
    const removed = await controller.detach(String(container), str(body, 'network'));
    return { status: 200, body: { removed } };
  });

  router.add('GET', '/netd/v1/endpoints', () => {
    const byId = new Map(controller.networks().map((n) => [n.id, n.name]));
    return {
      status: 200,
      body: controller.endpoints().map((e) => ({ ...e, ...controller.endpointInfo(e), network: byId.get(e.networkId) })),
    };
  });

  router.add('GET', '/netd/v1/sandboxes', () => ({ status: 200, body: controller.sandboxes() }));

  // A container's published ports, on every network it is attached to (`netd port`).
  router.add('GET', '/netd/v1/containers/{container}/ports', (req) => {
    const sandbox = controller.findSandbox(req.params.container);
    if (!sandbox) throw new NotFoundError(`no attached container ${req.params.container}`);
    const names = new Map(controller.networks().map((n) => [n.id, n.name]));
    const body = controller
      .endpoints()
      .filter((e) => e.sandboxId === sandbox.id)
      .flatMap((e) =>
        ((controller.endpointInfo(e).ports as PortBinding[] | undefined) ?? []).map((p) => ({
          network: names.get(e.networkId),
          endpointId: e.id,
          containerIp: (familyOf(p.hostIp) === 6 ? e.ipv6 : e.ipv4)?.address.toString(),
          ...p,
        })),
      );
    return { status: 200, body };
  });

  router.add('POST', '/netd/v1/firewall/reload', async () => {
    await controller.reloadFirewall('request');
    return { status: 204 };
  });

  router.add('POST', '/netd/v1/sandboxes', async (req) => {
    const body = strictObj(await req.body(), 'request body', ['name']);
    const name = str(body, 'name');
    if (!name) throw new InvalidArgumentError('name is required');
    return { status: 201, body: await controller.createSandbox(name) };
  });

  router.add('DELETE', '/netd/v1/sandboxes/{name}', async (req) => ({ status: 200, body: { removed: await controller.removeSandbox(req.params.name) } }));
}
