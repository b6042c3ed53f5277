/**
 * The CNI environment: the CNI_* variables the plugin forwards (SPEC.md, "Parameters"), checked for the
 * command at hand, and CNI_ARGS (`K=V;K2=V2`). A missing or malformed variable is code 4.
 */
import { parseIfName } from '../net/index.js';
import { CNI_CODE, CniError } from './errors.js';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'] as const;
export type CniCommand = (typeof COMMANDS)[number];

export interface CniEnv {
  command: CniCommand;
  /** CNI_CONTAINERID: '' when the command needs none. */
  containerId: string;
  /** CNI_NETNS: '' when absent (DEL without a namespace, as containerd sends when it is gone). */
  netns: string;
  /** CNI_IFNAME: '' when the command needs none. */
  ifname: string;
  /** CNI_ARGS as key → value. */
  args: Map<string, string>;
  path: string;
}

/** Which variables each command needs (SPEC.md: CNI_NETNS is optional for DEL). */
const REQUIRED: Readonly<Record<CniCommand, readonly string[]>> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  VERSION: [],
  GC: [],
  STATUS: [],
};

/** The spec's container id: alphanumerics plus `_ . -`, starting with an alphanumeric. */
const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** The spec sets no length; this only bounds what netd stores. */
export const MAX_CONTAINER_ID = 1024;

function invalid(msg: string, details?: string): CniError {
  return new CniError(CNI_CODE.INVALID_ENVIRONMENT, msg, details);
}

/** `K=V;K2=V2` (empty parts ignored); a part without `=` is refused. */
export function parseCniArgs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw invalid(`invalid CNI_ARGS: ${JSON.stringify(part.slice(0, 100))} is not KEY=VALUE`);
    out.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return out;
}

/**
 * Reads and checks the forwarded variables (an object of strings) for their command. DEL is read leniently:
 * only CNI_CONTAINERID and CNI_IFNAME must be there; a malformed CNI_ARGS, container id or interface name
 * cannot name an attachment netd made, so DEL finds nothing and succeeds rather than stranding the pod.
 */
export function parseEnv(raw: unknown): CniEnv {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('env must be an object of CNI_* variables');
  const vars = raw as Record<string, unknown>;
  const get = (key: string): string => {
    const v = vars[key];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw invalid(`${key} must be a string`);
    return v;
  };
  const command = get('CNI_COMMAND');
  if (command === '') throw invalid('CNI_COMMAND is not set');
  if (!(COMMANDS as readonly string[]).includes(command)) throw invalid(`unknown CNI_COMMAND ${JSON.stringify(command.slice(0, 40))}`, `expected one of ${COMMANDS.join(', ')}`);
  const cmd = command as CniCommand;
  for (const key of REQUIRED[cmd]) if (get(key) === '') throw invalid(`${key} is required for ${cmd}`);
  const lenient = cmd === 'DEL';
  const args = lenient ? lenientArgs(get('CNI_ARGS')) : parseCniArgs(get('CNI_ARGS'));
  const env: CniEnv = { command: cmd, containerId: get('CNI_CONTAINERID'), netns: get('CNI_NETNS'), ifname: get('CNI_IFNAME'), args, path: get('CNI_PATH') };
  if (REQUIRED[cmd].length > 0 && !lenient) {
    if (!CONTAINER_ID.test(env.containerId) || env.containerId.length > MAX_CONTAINER_ID) {
      throw invalid(`invalid CNI_CONTAINERID ${JSON.stringify(env.containerId.slice(0, 80))}`, `netd takes 1-${MAX_CONTAINER_ID} of [a-zA-Z0-9_.-], starting with a letter or digit`);
    }
    try {
      parseIfName(env.ifname);
    } catch (err) {
      throw invalid(`invalid CNI_IFNAME: ${(err as Error).message}`);
    }
    if (env.netns !== '' && !env.netns.startsWith('/')) throw invalid(`CNI_NETNS must be an absolute path, not ${JSON.stringify(env.netns.slice(0, 100))}`);
  }
  return env;
}

/** CNI_ARGS for DEL: what parses, the rest ignored. */
function lenientArgs(text: string): Map<string, string> {
  try {
    return parseCniArgs(text);
  } catch {
    return new Map();
  }
}
