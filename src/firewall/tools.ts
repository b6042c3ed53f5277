/**
 * The programs the firewall runs, the Debian packages that provide them, and finding them in PATH the
 * way spawn does: a missing one is a MissingToolError naming its package, at start or when it is run,
 * never a bare `spawn … ENOENT`.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { MissingToolError } from '../errors.js';

/** Program → Debian package. */
const PACKAGES: Readonly<Record<string, string>> = {
  'iptables-restore': 'iptables',
  'iptables-save': 'iptables',
  'ip6tables-restore': 'iptables',
  'ip6tables-save': 'iptables',
  iptables: 'iptables',
  ip6tables: 'iptables',
  conntrack: 'conntrack',
  nft: 'nftables',
  ip: 'iproute2',
};

/** The error for a program that could not be started because it does not exist. */
export function missingTool(tool: string): MissingToolError {
  const name = tool.slice(tool.lastIndexOf('/') + 1);
  return new MissingToolError(tool, PACKAGES[name] ?? name);
}

/** Where execvp looks when PATH is unset (libuv's default). */
const DEFAULT_PATH = '/usr/local/bin:/usr/bin:/bin';

/** Whether `tool` is an executable file in `path` (or, with a slash, at that path). */
export function findTool(tool: string, path = process.env.PATH ?? DEFAULT_PATH): string | undefined {
  const candidates = tool.includes('/') ? [tool] : path.split(':').map((dir) => join(dir || '.', tool));
  for (const file of candidates) {
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Throws MissingToolError for the first of `tools` that is not in PATH. */
export function requireTools(tools: readonly string[], path?: string): void {
  for (const tool of tools) if (!findTool(tool, path)) throw missingTool(tool);
}
