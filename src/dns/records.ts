/**
 * The names of one network: every endpoint's container name, aliases and short ids, pointing at the
 * endpoint's addresses on that network, and the reverse (PTR) entries of those addresses. Names are
 * matched case-insensitively (RFC 4343); an endpoint joins and leaves the table in one step.
 */
import { IPAddress } from '../net/index.js';

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
  const a = IPAddress.parse(address);
  if (a.family === 4) return `${[...a.bytes].reverse().join('.')}.in-addr.arpa`;
  return `${a.bytes.toString('hex').split('').reverse().join('.')}.ip6.arpa`;
}

/** A map key for an address: its canonical text (so that any spelling matches). */
function addressKey(address: string): string {
  return IPAddress.tryParse(address)?.toString() ?? address;
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
