/**
 * The Docker Engine API's network routes, with its JSON shapes and status codes, so that a stock
 * `docker -H unix://... network ls|create|inspect|rm|connect|disconnect|prune` works against netd.
 * A "container" here is a netd sandbox, named by its name, id, PID or namespace path.
 */
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { Prefix } from '../net/index.js';
import type { Controller } from '../cnm/controller.js';
import type { NetworkRecord } from '../cnm/network.js';
import { API_VERSION, MIN_API_VERSION, bool, ipField, macField, obj, prefixField, str, strList, strMap, type Router } from './http.js';
import { attachTargetOf } from './netd-api.js';

export function networkJson(controller: Controller, n: NetworkRecord): Record<string, unknown> {
  const containers: Record<string, unknown> = {};
  for (const ep of controller.endpointsOf(n.id)) {
    // Keyed by container, as Docker does; a container on the network twice (CNI interfaces, Multus) shows its
    // further endpoints under their endpoint ids rather than hiding them.
    containers[ep.sandboxId in containers ? ep.id : ep.sandboxId] = {
      Name: ep.name,
      EndpointID: ep.id,
      MacAddress: ep.mac?.toString() ?? '',
      IPv4Address: ep.ipv4?.toString() ?? '',
      IPv6Address: ep.ipv6?.toString() ?? '',
    };
  }
  const config = [...n.ipv4, ...n.ipv6].map((c) => ({ Subnet: c.subnet.toString(), Gateway: c.gateway.toString(), ...(c.ipRange ? { IPRange: c.ipRange.toString() } : {}) }));
  return {
    Name: n.name,
    Id: n.id,
    Created: n.created,
    Scope: n.scope ?? 'local',
    Driver: n.driver,
    EnableIPv4: n.ipv4.length > 0,
    EnableIPv6: n.enableIPv6,
    IPAM: { Driver: 'default', Options: {}, Config: config },
    Internal: n.internal,
    Attachable: n.attachable,
    Ingress: false,
    ConfigFrom: { Network: '' },
    ConfigOnly: false,
    Containers: containers,
    Options: n.options,
    Labels: n.labels,
  };
}

/** Docker's `filters` query parameter: `{"name":{"x":true}}` or the older `{"name":["x"]}`. */
function parseFilters(raw: string | null): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!raw) return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new InvalidArgumentError('invalid filters: not JSON');
  }
  for (const [key, value] of Object.entries(obj(parsed, 'filters'))) {
    if (Array.isArray(value)) out.set(key, value.map(String));
    else out.set(key, Object.keys(obj(value, `filter ${key}`)));
  }
  return out;
}

function matchesFilters(controller: Controller, n: NetworkRecord, filters: Map<string, string[]>): boolean {
  for (const [key, values] of filters) {
    const any = (pred: (v: string) => boolean) => values.some(pred);
    switch (key) {
      case 'name':
        if (!any((v) => n.name.includes(v))) return false;
        break;
      case 'id':
        if (!any((v) => n.id.startsWith(v))) return false;
        break;
      case 'driver':
        if (!any((v) => n.driver === v)) return false;
        break;
      case 'scope':
        if (!any((v) => v === 'local')) return false;
        break;
      case 'type':
        if (!any((v) => (v === 'builtin' ? n.predefined : v === 'custom' ? !n.predefined : false))) return false;
        break;
      case 'label':
        if (
          !values.every((v) => {
            const eq = v.indexOf('=');
            return eq < 0 ? v in n.labels : n.labels[v.slice(0, eq)] === v.slice(eq + 1);
          })
        )
          return false;
        break;
      case 'dangling':
        if (!any((v) => (v === 'true' || v === '1') === (controller.endpointsOf(n.id).length === 0 && !n.predefined))) return false;
        break;
      default:
        throw new InvalidArgumentError(`invalid filter '${key}'`);
    }
  }
  return true;
}

export function addDockerRoutes(router: Router, controller: Controller): void {
  const ping = () => ({ status: 200, text: 'OK' });
  router.add('GET', '/_ping', ping);
  router.add('HEAD', '/_ping', ping);
  router.add('GET', '/version', () => ({
    status: 200,
    body: { Version: '0.1.0-netd', ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, Os: 'linux', Arch: process.arch === 'x64' ? 'amd64' : process.arch, Components: [{ Name: 'netd', Version: '0.1.0' }] },
  }));

  router.add('GET', '/networks', (req) => {
    const filters = parseFilters(req.query.get('filters'));
    const list = controller.networks().filter((n) => matchesFilters(controller, n, filters));
    return { status: 200, body: list.map((n) => networkJson(controller, n)) };
  });

  router.add('GET', '/networks/{id}', (req) => ({ status: 200, body: networkJson(controller, controller.network(req.params.id)) }));

  router.add('POST', '/networks/create', async (req) => {
    const body = obj(await req.body(), 'request body');
    const name = str(body, 'Name');
    if (!name) throw new InvalidArgumentError('Name is required');
    const ipam = obj(body.IPAM, 'IPAM');
    const ipamDriver = str(ipam, 'Driver');
    if (ipamDriver && ipamDriver !== 'default') throw new InvalidArgumentError(`IPAM driver ${ipamDriver} is not supported (only "default")`);
    const configs = ipam.Config === undefined || ipam.Config === null ? [] : ipam.Config;
    if (!Array.isArray(configs)) throw new InvalidArgumentError('IPAM.Config must be a list');
    let v4: Record<string, unknown> | undefined;
    let v6: Record<string, unknown> | undefined;
    for (const c of configs.map((x, i) => obj(x, `IPAM.Config[${i}]`))) {
      const subnet = str(c, 'Subnet', 'IPAM.Config.Subnet');
      if (!subnet) throw new InvalidArgumentError('IPAM.Config entries need a Subnet');
      if (c.AuxiliaryAddresses !== undefined && c.AuxiliaryAddresses !== null && Object.keys(obj(c.AuxiliaryAddresses, 'AuxiliaryAddresses')).length > 0) {
        throw new InvalidArgumentError('AuxiliaryAddresses are not supported');
      }
      const slot = Prefix.parse(subnet, 'subnet').family === 6 ? 'v6' : 'v4';
      if ((slot === 'v4' ? v4 : v6) !== undefined) throw new InvalidArgumentError(`netd supports one IPv4 and one IPv6 subnet per network`);
      if (slot === 'v4') v4 = c;
      else v6 = c;
    }
    const enableIPv6 = bool(body, 'EnableIPv6');
    if (v6 && str(v6, 'IPRange', 'IPRange')) throw new InvalidArgumentError('IPRange is not supported for IPv6 subnets');
    if (bool(body, 'Ingress')) throw new InvalidArgumentError('ingress networks are not supported');
    if (bool(body, 'ConfigOnly')) throw new InvalidArgumentError('config-only networks are not supported');
    const warnings: string[] = [];
    const record = await controller.createNetwork({
      name,
      driver: str(body, 'Driver'),
      subnet: v4 ? prefixField(v4, 'Subnet', 'subnet') : undefined,
      gateway: v4 ? ipField(v4, 'Gateway', 'gateway') : undefined,
      ipRange: v4 ? prefixField(v4, 'IPRange', 'ip-range') : undefined,
      subnet6: v6 ? prefixField(v6, 'Subnet', 'subnet') : undefined,
      gateway6: v6 ? ipField(v6, 'Gateway', 'gateway') : undefined,
      enableIPv6: enableIPv6 || Boolean(v6),
      internal: bool(body, 'Internal'),
      attachable: bool(body, 'Attachable'),
      options: strMap(body, 'Options'),
      labels: strMap(body, 'Labels'),
    }, (w) => warnings.push(w));
    return { status: 201, body: { Id: record.id, Warning: warnings.join('; ') } };
  });

  router.add('DELETE', '/networks/{id}', async (req) => {
    await controller.deleteNetwork(req.params.id);
    return { status: 204 };
  });

  router.add('POST', '/networks/prune', async () => ({ status: 200, body: { NetworksDeleted: await controller.prune() } }));

  router.add('POST', '/networks/{id}/connect', async (req) => {
    const body = obj(await req.body(), 'request body');
    const container = str(body, 'Container');
    if (!container) throw new InvalidArgumentError('Container is required');
    const network = controller.network(req.params.id);
    const ec = obj(body.EndpointConfig, 'EndpointConfig');
    const ipamConfig = obj(ec.IPAMConfig, 'EndpointConfig.IPAMConfig');
    const existing = controller.findSandbox(container);
    const target = existing ? (existing.pid !== undefined ? { pid: existing.pid } : { path: existing.key }) : attachTargetOf(container);
    if (!target) throw new NotFoundError(`no such container: ${container} (give a PID or a namespace path to attach a new one)`);
    await controller.attach({
      target,
      network: network.id,
      name: existing ? existing.name : undefined,
      ip: ipField(ipamConfig, 'IPv4Address'),
      ip6: ipField(ipamConfig, 'IPv6Address'),
      mac: macField(ec, 'MacAddress'),
      aliases: strList(ec, 'Aliases'),
    });
    return { status: 200 };
  });

  router.add('POST', '/networks/{id}/disconnect', async (req) => {
    const body = obj(await req.body(), 'request body');
    const container = str(body, 'Container');
    if (!container) throw new InvalidArgumentError('Container is required');
    const network = controller.network(req.params.id);
    await controller.detach(container, network.id);
    return { status: 200 };
  });
}
