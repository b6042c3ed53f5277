/**
 * Routes of the main table over rtnetlink: add, delete, list. Destinations are Prefix values (or
 * 'default'), gateways IPAddress values.
 */
import { FlagsNew } from 'netlink';
import { InvalidArgumentError } from '../errors.js';
import { IPAddress, Prefix, parseFamily, type Family } from '../net/index.js';
import { afOf } from './af.js';
import { checkIndex, type RtnlSocket } from './rtnl-socket.js';

const RT_TABLE_MAIN = 254;

export interface RouteSpec {
  /** Destination network, or 'default'. */
  dst: Prefix | 'default';
  /** Needed only for a default route without a gateway. */
  family?: Family;
  gateway?: IPAddress;
  /** Output interface index. */
  oif?: number;
}

export interface RouteInfo {
  dst: Prefix | 'default';
  gateway?: IPAddress;
  oif?: number;
  table: number;
  /** Route protocol name as iproute2 prints it: 'kernel', 'boot', 'static', ... (or the number). */
  protocol: string;
  /** 'universe', 'link', 'host', ... (or the number). */
  scope: string;
}

/** A validated route: what both addRoute and deleteRoute send. */
interface ParsedRoute {
  family: Family;
  dst?: Prefix;
  gateway?: IPAddress;
  oif?: number;
  text: string;
}

function parseRoute(spec: RouteSpec): ParsedRoute {
  if (typeof spec !== 'object' || spec === null) throw new InvalidArgumentError('route must be an object');
  if (spec.dst !== 'default' && !(spec.dst instanceof Prefix)) throw new InvalidArgumentError(`invalid route destination ${JSON.stringify(spec.dst)}: a Prefix or 'default'`);
  if (spec.gateway !== undefined && !(spec.gateway instanceof IPAddress)) throw new InvalidArgumentError(`invalid gateway ${JSON.stringify(spec.gateway)}: an IPAddress`);
  const dst = spec.dst === 'default' ? undefined : spec.dst;
  const gateway = spec.gateway;
  if (spec.family !== undefined) parseFamily(spec.family);
  const family = dst?.family ?? gateway?.family ?? spec.family;
  if (family === undefined) throw new InvalidArgumentError('a default route without a gateway needs a family (4 or 6)');
  for (const f of [dst?.family, gateway?.family, spec.family]) {
    if (f !== undefined && f !== family) throw new InvalidArgumentError(`route ${spec.dst} mixes IPv${family} and IPv${f}`);
  }
  const oif = spec.oif === undefined ? undefined : checkIndex(spec.oif, 'output interface index');
  if (gateway === undefined && oif === undefined) throw new InvalidArgumentError(`route ${spec.dst} needs a gateway or an output interface`);
  const text = `${dst?.toString() ?? `default (IPv${family})`}${gateway ? ` via ${gateway}` : ''}${oif ? ` dev #${oif}` : ''}`;
  return { family, dst, gateway, oif, text };
}

function enumName(v: unknown): string {
  return typeof v === 'string' ? v.toLowerCase() : String(v ?? 0);
}

/** Adds a route to the main table. KernelError 'EEXIST' if it is already there. */
export async function addRoute(sock: RtnlSocket, spec: RouteSpec): Promise<void> {
  const r = parseRoute(spec);
  await sock.call(`add route ${r.text}`, (s, timeout) =>
    s.newRoute(
      {
        family: afOf(r.family),
        dstLen: r.dst?.length ?? 0,
        table: RT_TABLE_MAIN,
        protocol: 'BOOT', // what `ip route add` uses
        // Without a gateway the destination is directly on the link (ip route add X dev Y).
        scope: r.gateway ? 'UNIVERSE' : 'LINK',
        type: 'UNICAST',
      },
      { dst: r.dst?.address.toNetlink(), gateway: r.gateway?.toNetlink(), oif: r.oif, table: RT_TABLE_MAIN },
      { flags: FlagsNew.CREATE | FlagsNew.EXCL, timeout },
    ),
  );
}

/** Deletes a route from the main table, matched on destination and the gateway/oif given. KernelError 'ESRCH' if absent. */
export async function deleteRoute(sock: RtnlSocket, spec: RouteSpec): Promise<void> {
  const r = parseRoute(spec);
  await sock.call(`delete route ${r.text}`, (s, timeout) =>
    s.delRoute(
      // Scope NOWHERE and protocol/type 0 match any, as `ip route del` does.
      { family: afOf(r.family), dstLen: r.dst?.length ?? 0, table: RT_TABLE_MAIN, scope: 'NOWHERE' },
      { dst: r.dst?.address.toNetlink(), gateway: r.gateway?.toNetlink(), oif: r.oif, table: RT_TABLE_MAIN },
      { timeout },
    ),
  );
}

/** Routes of the main table for one family. */
export async function listRoutes(sock: RtnlSocket, family: Family): Promise<RouteInfo[]> {
  parseFamily(family);
  const msgs = await sock.call(`list IPv${family} routes`, (s, timeout) => s.getRoutes({ family: afOf(family) }, undefined, { timeout }), true);
  const out: RouteInfo[] = [];
  for (const m of msgs) {
    const table = m.attrs.table ?? m.data.table ?? 0;
    if (table !== RT_TABLE_MAIN || m.data.family !== afOf(family)) continue;
    const dstLen = m.data.dstLen ?? 0;
    const info: RouteInfo = {
      // The kernel keeps destinations with host bits clear; lenient all the same, a dump must not fail.
      dst: dstLen === 0 || !m.attrs.dst ? 'default' : Prefix.of(IPAddress.fromBytes(m.attrs.dst), dstLen),
      table,
      protocol: enumName(m.data.protocol),
      scope: enumName(m.data.scope),
    };
    if (m.attrs.gateway) info.gateway = IPAddress.fromBytes(m.attrs.gateway);
    if (m.attrs.oif !== undefined) info.oif = m.attrs.oif;
    out.push(info);
  }
  return out;
}
