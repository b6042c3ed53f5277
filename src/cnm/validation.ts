/**
 * Checks of what callers send, before anything changes: names, aliases, string maps, MACs, modes.
 */
import { InvalidArgumentError, ForbiddenError } from '../errors.js';

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;

/** Network, container and sandbox names: 1-64 of [a-zA-Z0-9_.-], starting with a letter or digit. */
export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME.test(name);
}

/** An attached container's name may be longer (CNI container ids have no length limit; netd keeps 1024). */
const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,1023}$/;

/** A network, endpoint or sandbox id as netd and Docker make them: 64 lowercase hex digits. */
export function isValidId(id: unknown): id is string {
  return typeof id === 'string' && /^[0-9a-f]{64}$/.test(id);
}

/**
 * An object another program manages (`managedBy`, e.g. docker) is changed only when that program asks:
 * anyone else is told to go through it (`how`, e.g. "docker network rm").
 */
export function checkManager(owner: string | undefined, caller: string | undefined, what: string, how: string): void {
  if (owner !== undefined && owner !== caller) throw new ForbiddenError(`${what} is managed by ${owner}; use \`${how}\``);
}

export function isValidContainerName(name: unknown): name is string {
  return typeof name === 'string' && CONTAINER_NAME.test(name);
}

export function checkStringMap(value: unknown, what: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new InvalidArgumentError(`${what}s must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new InvalidArgumentError(`${what} ${k} must be a string`);
    if (k === '' || k.length > 256 || v.length > 4096) throw new InvalidArgumentError(`${what} ${k} is empty or too long`);
    out[k] = v;
  }
  return out;
}

export function checkAliases(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidArgumentError('aliases must be a list of names');
  for (const a of value) {
    if (typeof a !== 'string' || !/^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,252})$/.test(a)) throw new InvalidArgumentError(`invalid alias ${JSON.stringify(a)}`);
  }
  return [...new Set(value as string[])];
}

/** Endpoint options: an object whose keys the driver interprets (checked against its capabilities later). */
export function checkEndpointOptions(value: unknown): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new InvalidArgumentError('endpoint options must be an object');
  return { ...(value as Record<string, unknown>) };
}

/**
 * How a container is attached: to a network (`--network`, else the default one), to one of the other
 * predefined networks by its name (`host`, `none`), or into another container's sandbox.
 */
export type Mode = { kind: 'network' } | { kind: 'predefined'; network: string } | { kind: 'container'; ref: string };

/**
 * `mode`: empty, `default` or the default network's name: `network`; the name of another predefined
 * network: that one; `container:<ref>`.
 */
export function parseMode(mode: unknown, predefined: readonly string[]): Mode {
  const [defaultNetwork, ...others] = predefined;
  if (mode === undefined || mode === null || mode === '' || mode === 'default' || mode === defaultNetwork) return { kind: 'network' };
  if (typeof mode === 'string' && others.includes(mode)) return { kind: 'predefined', network: mode };
  if (typeof mode === 'string' && mode.startsWith('container:') && mode.length > 'container:'.length) return { kind: 'container', ref: mode.slice('container:'.length) };
  throw new InvalidArgumentError(`invalid mode ${JSON.stringify(mode)}: use ${predefined.join(', ')} or container:<name|id|pid>`);
}
