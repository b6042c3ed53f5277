/**
 * What a new network's subnet must not overlap on this host: its addresses, its routes (but the default
 * ones) and the nameservers of its resolv.conf.
 */
import { readFile } from 'node:fs/promises';
import { IPAddress, Prefix } from '../net/index.js';
import type { Rtnl } from '../kernel/rtnetlink.js';

export async function hostSubnets(rtnl: Rtnl, resolvConf = '/etc/resolv.conf'): Promise<Prefix[]> {
  const out: Prefix[] = [];
  const add = (p: Prefix) => {
    if (p.length > 0) out.push(p);
  };
  for (const a of await rtnl.addresses()) add(a.cidr.prefix);
  for (const family of [4, 6] as const) {
    for (const r of await rtnl.routes(family)) if (r.dst !== 'default') add(r.dst);
  }
  for (const ns of await nameservers(resolvConf)) out.push(Prefix.host(IPAddress.parse(ns)));
  return out;
}

export async function nameservers(resolvConf: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(resolvConf, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    // An unparsable nameserver line is ignored, as resolvers do.
    if (IPAddress.tryParse(m[1])) out.push(m[1]);
  }
  return out;
}
