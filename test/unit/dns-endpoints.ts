/** Endpoint names for the DNS unit tests: what DnsService hands the directory for an endpoint. */
import { namesOf, type EndpointNames } from '../../src/dns/records.js';

export const EP = (id: string, sandboxId: string, name: string, ipv4?: string, ipv6?: string, aliases: string[] = []): EndpointNames => ({
  endpointId: id,
  sandboxId,
  name,
  ipv4,
  ipv6,
  names: namesOf({ id, name, sandboxId, aliases }),
});
