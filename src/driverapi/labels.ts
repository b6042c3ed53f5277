/**
 * Well-known endpoint option keys (libnetwork's netlabel): the API layer puts them in an attach's
 * endpoint options, drivers that declare them in `capabilities.endpointOptions` interpret them. The core
 * only carries them.
 */

/** Ports to publish: a list of portmap/types.ts PortRequest. */
export const PORT_MAP = 'com.docker.network.portmap';

const PURPOSE: Record<string, string> = { [PORT_MAP]: 'publish ports' };

/** What an endpoint option asks a driver to do, in words for a refusal ("... cannot publish ports"). */
export function optionPurpose(key: string): string {
  return PURPOSE[key] ?? `take the endpoint option ${key}`;
}
