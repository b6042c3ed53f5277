/**
 * The names of one network: every endpoint's container name, aliases and short ids, pointing at the
 * endpoint's addresses on that network, and the reverse (PTR) entries of those addresses. Names are
 * matched case-insensitively (RFC 4343); an endpoint joins and leaves the table in one step.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface NameEntry {
  endpointId: string;
  sandboxId: string;
  /** The container's name: what PTR answers point at. */
  name: string;
  ipv4?: string;
  ipv6?: string;
}

/** What an endpoint contributes to its network's table. */
export interface EndpointNames extends NameEntry {
  /** Every name the endpoint answers to (container name, aliases, short ids). */
  names: string[];
}

const SHORT_ID = 12;

/** The names an endpoint answers to on its network: name, aliases, short endpoint and container ids. */
export function namesOf(ep: { id: string; name: string; sandboxId: string; aliases: string[] }): string[] {
  return unique([ep.name, ...ep.aliases, ep.id.slice(0, SHORT_ID), ep.sandboxId.slice(0, SHORT_ID)].map(normalise).filter((n) => n !== ''));
}

/** Lower case, without the trailing dot of a fully qualified name. */
export function normalise(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

/** `in-addr.arpa` / `ip6.arpa` name of an address, normalised. */
export function reverseName(address: string): string {
  if (isIPv4(address)) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  if (isIPv6(address)) return `${expandIPv6(address).split('').reverse().join('.')}.ip6.arpa`;
  throw new Error(`not an IP address: ${address}`);
}

/** A map key for an address: IPv4 as written, IPv6 as its 32 hex digits (so that any spelling matches). */
function addressKey(address: string): string {
  return address.includes(':') ? expandIPv6(address) : address;
}

/** The 32 hex digits of an IPv6 address. */
function expandIPv6(address: string): string {
  let text = address.toLowerCase();
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1].split('.').map(Number);
    text = text.slice(0, -v4[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((g) => g.padStart(4, '0')).join('');
}

export class NameTable {
  private readonly byName = new Map<string, NameEntry[]>();
  private readonly byReverse = new Map<string, NameEntry>();
  private readonly byAddressKey = new Map<string, NameEntry>();
  private readonly byEndpoint = new Map<string, EndpointNames>();

  /** Adds (or replaces) an endpoint's names. */
  add(ep: EndpointNames): void {
    this.remove(ep.endpointId);
    const entry: NameEntry = { endpointId: ep.endpointId, sandboxId: ep.sandboxId, name: ep.name, ipv4: ep.ipv4, ipv6: ep.ipv6 };
    const names = unique(ep.names.map(normalise));
    for (const n of names) {
      const list = this.byName.get(n);
      if (list) list.push(entry);
      else this.byName.set(n, [entry]);
    }
    for (const a of [ep.ipv4, ep.ipv6]) {
      if (!a) continue;
      this.byReverse.set(reverseName(a), entry);
      this.byAddressKey.set(addressKey(a), entry);
    }
    this.byEndpoint.set(ep.endpointId, { ...ep, names });
  }

  remove(endpointId: string): void {
    const ep = this.byEndpoint.get(endpointId);
    if (!ep) return;
    for (const n of ep.names) {
      const rest = (this.byName.get(n) ?? []).filter((e) => e.endpointId !== endpointId);
      if (rest.length > 0) this.byName.set(n, rest);
      else this.byName.delete(n);
    }
    for (const a of [ep.ipv4, ep.ipv6]) {
      if (a && this.byReverse.get(reverseName(a))?.endpointId === endpointId) this.byReverse.delete(reverseName(a));
      if (a && this.byAddressKey.get(addressKey(a))?.endpointId === endpointId) this.byAddressKey.delete(addressKey(a));
    }
    this.byEndpoint.delete(endpointId);
  }

  /** Endpoints answering to a (normalised) name; empty when the name is unknown. */
  lookup(name: string): readonly NameEntry[] {
    return this.byName.get(name) ?? [];
  }

  /** The endpoint owning the address whose reverse name this is. */
  reverse(name: string): NameEntry | undefined {
    return this.byReverse.get(name);
  }

  endpoint(endpointId: string): EndpointNames | undefined {
    return this.byEndpoint.get(endpointId);
  }

  /** The endpoint holding an address on this network. */
  byAddress(address: string): NameEntry | undefined {
    return this.byAddressKey.get(addressKey(address));
  }

  get size(): number {
    return this.byEndpoint.size;
  }
}

function unique<T>(list: T[]): T[] {
  return [...new Set(list)];
}
