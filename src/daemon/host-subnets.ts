/**
 * What a new network's subnet must not overlap on this host: its addresses, its routes (but the default
 * ones) and the nameservers of its resolv.conf.
 */
import { readFile } from 'node:fs/promises';
import { Subnet, parseAddress } from '../ipam/ip.js';
import type { Rtnl } from '../kernel/rtnetlink.js';

export async function hostSubnets(rtnl: Rtnl, resolvConf = '/etc/resolv.conf'): Promise<Subnet[]> {
  const out: Subnet[] = [];
  const add = (cidr: string) => {
    try {
      const s = Subnet.parse(cidr, 'host subnet', false);
      if (s.prefix > 0) out.push(s);
    } catch {
      /* not an address family IPAM deals with */
    }
  };
  for (const a of await rtnl.addresses()) add(a.cidr.toString());
  for (const family of [4, 6] as const) {
    for (const r of await rtnl.routes(family)) if (r.dst !== 'default') add(r.dst.toString());
  }
  for (const ns of await nameservers(resolvConf)) {
    const { family, value } = parseAddress(ns);
    out.push(Subnet.of(family, value, family === 4 ? 32 : 128));
  }
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
    try {
      parseAddress(m[1]);
      out.push(m[1]);
    } catch {
      /* an unparsable nameserver line is ignored, as resolvers do */
    }
  }
  return out;
}
