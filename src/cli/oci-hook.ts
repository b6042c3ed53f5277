/**
 * `netd oci-hook`: netd as an OCI runtime hook (runc, crun, podman's and CRI-O's hooks.d). The runtime writes
 * the container's state (`{ociVersion, id, status, pid, bundle, annotations}`) on the hook's stdin:
 * - createRuntime / prestart (status `creating`/`created`, with the PID of the container's init): attach that
 *   PID under the name = the state's `id`; an attachment of that name already there (a runtime that ran the
 *   hook again, a restarted container) is detached first, so a replay replaces instead of failing.
 * - poststop (status `stopped`, no PID): detach the container by its `id`; none attached is success, and
 *   this stage never fails (the container is gone; netd's sweep of dead containers frees what is left).
 * Options come from flags or, when a flag is absent, from the container's annotations (io.netd.*).
 * A client command: it loads no daemon code (test/unit/cli-modules.test.ts).
 */
import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ApiError, Client } from './client.js';
import { ConflictError, InvalidArgumentError } from '../errors.js';
import { parsePublishSpec } from '../portmap/parse.js';
import { toDockerPortBinding } from '../portmap/types.js';

/** The largest state read from stdin (a real one is a few KiB; annotations make it grow). */
export const MAX_STATE_BYTES = 256 * 1024;
/** A runtime writes the state at once and closes stdin; a hook left waiting longer gives up. */
const STDIN_TIMEOUT_MS = 10_000;
/** PID_MAX_LIMIT on 64-bit Linux: no PID is larger. */
const PID_MAX = 4_194_304;
/** netd's container names (the daemon checks them too): the state's `id` becomes one. */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;

export const ANNOTATIONS = {
  network: 'io.netd.network',
  publish: 'io.netd.publish',
  ip: 'io.netd.ip',
  aliases: 'io.netd.aliases',
} as const;

export const STAGES = ['createRuntime', 'prestart', 'poststop'] as const;
export type Stage = (typeof STAGES)[number];

/** The OCI runtime state, as far as the hook uses it. */
export interface OciState {
  id: string;
  status?: string;
  pid?: number;
  annotations: Record<string, string>;
}

const STATUSES = ['creating', 'created', 'running', 'stopped'];

function bad(why: string): never {
  throw new InvalidArgumentError(`invalid OCI state on stdin: ${why}`);
}

/** Parses and checks the state a runtime sends; anything else is refused before netd is asked. */
export function parseOciState(text: string): OciState {
  if (text.trim() === '') bad('empty (a runtime writes the container state JSON on the hook\'s stdin)');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    bad(`not JSON (${(err as Error).message.replace(/\s+/g, ' ').slice(0, 120)})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('not a JSON object');
  const o = value as Record<string, unknown>;
  if (typeof o.id !== 'string' || !NAME.test(o.id)) {
    bad(`id ${JSON.stringify(o.id)?.slice(0, 80)} must be 1-64 of [a-zA-Z0-9_.-], starting with a letter or digit`);
  }
  if (o.status !== undefined && (typeof o.status !== 'string' || !STATUSES.includes(o.status))) {
    bad(`status ${JSON.stringify(o.status)?.slice(0, 40)} is not one of ${STATUSES.join(', ')}`);
  }
  // Go's encoding/json leaves out a zero pid (omitempty): 0 means none, as absent does.
  if (o.pid !== undefined && o.pid !== 0 && !(Number.isSafeInteger(o.pid) && (o.pid as number) > 0 && (o.pid as number) <= PID_MAX)) {
    bad(`pid ${JSON.stringify(o.pid)?.slice(0, 40)} is not a positive integer (at most ${PID_MAX})`);
  }
  const annotations: Record<string, string> = {};
  if (o.annotations !== undefined && o.annotations !== null) {
    if (typeof o.annotations !== 'object' || Array.isArray(o.annotations)) bad('annotations must be an object of strings');
    for (const [k, v] of Object.entries(o.annotations as Record<string, unknown>)) {
      if (typeof v !== 'string') bad(`annotation ${JSON.stringify(k).slice(0, 80)} is not a string`);
      annotations[k] = v;
    }
  }
  return { id: o.id, status: o.status as string | undefined, pid: o.pid ? (o.pid as number) : undefined, annotations };
}

/** What the hook does for this state: attach (a live container being created) or detach (it stopped). */
export function actionOf(state: OciState, stage: Stage | undefined): 'attach' | 'detach' {
  const gone = state.status === 'stopped' || state.pid === undefined;
  if (stage === 'poststop') return 'detach';
  if (stage !== undefined && gone) {
    throw new InvalidArgumentError(`a ${stage} hook needs a live container: the state has ${state.pid === undefined ? 'no pid' : `status ${state.status}`}`);
  }
  return gone ? 'detach' : 'attach';
}

/** Reads the whole of `stream`, refusing more than `max` bytes or a writer that never closes it. */
export function readBounded(stream: NodeJS.ReadStream, max = MAX_STATE_BYTES, timeoutMs = STDIN_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (err?: Error) => {
      clearTimeout(timer);
      stream.removeAllListeners('data');
      if (err) {
        stream.destroy();
        reject(err);
      } else {
        resolve(Buffer.concat(chunks).toString('utf8'));
      }
    };
    const timer = setTimeout(() => finish(new InvalidArgumentError(`no OCI state on stdin within ${timeoutMs / 1000} s`)), timeoutMs);
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) return finish(new InvalidArgumentError(`the OCI state on stdin is larger than ${max} bytes`));
      chunks.push(chunk);
    });
    stream.once('end', () => finish());
    stream.once('error', (err) => finish(new InvalidArgumentError(`cannot read the OCI state from stdin: ${err.message}`)));
  });
}

/** Comma-separated annotation values: `8080:80, 53:53/udp` → two items. */
function listOf(value: string | undefined): string[] {
  return (value ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function publishSpec(spec: string, fromFlag: boolean): ReturnType<typeof parsePublishSpec> {
  try {
    return parsePublishSpec(spec);
  } catch (err) {
    throw fromFlag ? err : new InvalidArgumentError(`annotation ${ANNOTATIONS.publish}: ${(err as Error).message}`);
  }
}

interface HookOptions {
  network?: string;
  publish: string[];
  ip?: string;
  alias: string[];
  stage?: Stage;
}

/** The attach request: each option from its flag, else from its annotation. */
export function attachRequest(state: OciState, opts: HookOptions, pid: number): Record<string, unknown> {
  const a = state.annotations;
  const fromFlags = opts.publish.length > 0;
  const publish = fromFlags ? opts.publish : listOf(a[ANNOTATIONS.publish]);
  const aliases = opts.alias.length > 0 ? opts.alias : listOf(a[ANNOTATIONS.aliases]);
  const ip = opts.ip ?? (a[ANNOTATIONS.ip]?.trim() || undefined);
  const network = opts.network ?? (a[ANNOTATIONS.network]?.trim() || undefined);
  return {
    target: { pid },
    network,
    name: state.id,
    // One address: IPv6 if it has a colon (the daemon checks it).
    ...(ip === undefined ? {} : ip.includes(':') ? { ip6: ip } : { ip }),
    aliases: aliases.length > 0 ? aliases : undefined,
    // Parsed here, as `netd attach -p` does: a bad spec fails before the daemon is asked.
    ports: publish.length > 0 ? publish.flatMap((spec) => publishSpec(spec, fromFlags)).map(toDockerPortBinding) : undefined,
    labels: { ...HOOK_ORIGIN },
  };
}

/** The label on every endpoint the hook makes: it replaces and detaches only those. */
export const HOOK_ORIGIN = { 'io.netd.origin': 'oci-hook' } as const;

interface SandboxInfo {
  id: string;
  name: string;
  key: string;
  persistent?: boolean;
  members?: { name: string }[];
}

/** Who holds the container name `name`: nobody, a sandbox the hook may detach (by id), or something else (said). */
type Holder = { kind: 'none' } | { kind: 'hook'; id: string } | { kind: 'other'; what: string };

/**
 * Looked up by exact name (a bare `detach NAME` would also take a PID or an id prefix). The hook's own
 * attachment (every endpoint labelled io.netd.origin=oci-hook) is its to replace or detach; when
 * `deadToo`, so is any attachment whose namespace is gone; a live CLI, CNI or `container:` one is not.
 */
async function holderOf(client: Client, name: string, deadToo: boolean): Promise<Holder> {
  const sandboxes = await client.call<SandboxInfo[]>('GET', '/netd/v1/sandboxes');
  const own = sandboxes.find((s) => s.name === name);
  if (!own) {
    const host = sandboxes.find((s) => s.members?.some((m) => m.name === name));
    return host ? { kind: 'other', what: `a container sharing the namespace of ${host.name}` } : { kind: 'none' };
  }
  const endpoints = await client.call<{ sandboxId: string; labels?: Record<string, string> }[]>('GET', '/netd/v1/endpoints');
  const mine = endpoints.filter((e) => e.sandboxId === own.id);
  const hookMade = !own.persistent && !own.members?.length && mine.length > 0 && mine.every((e) => e.labels?.['io.netd.origin'] === HOOK_ORIGIN['io.netd.origin']);
  if (hookMade || (deadToo && !own.persistent && !existsSync(own.key))) return { kind: 'hook', id: own.id };
  return { kind: 'other', what: own.persistent ? 'a netd sandbox' : 'a live container netd attached otherwise (CLI, CNI or Docker API)' };
}

/** Detaches a sandbox by its id from every network; a sandbox gone meanwhile is fine. */
async function detachSandbox(client: Client, id: string): Promise<void> {
  try {
    await client.call('POST', '/netd/v1/detach', { container: id });
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  }
}

async function runHook(client: Client, opts: HookOptions, onStage: (action: 'attach' | 'detach') => void): Promise<void> {
  const state = parseOciState(await readBounded(process.stdin));
  const action = actionOf(state, opts.stage);
  onStage(action);
  if (action === 'detach') {
    const holder = await holderOf(client, state.id, false);
    if (holder.kind === 'hook') await detachSandbox(client, holder.id);
    else if (holder.kind === 'other') process.stderr.write(`netd: oci-hook poststop: ${state.id} is ${holder.what}, not the hook's: left attached\n`);
    return;
  }
  const request = attachRequest(state, opts, state.pid!);
  // Checked before an attachment of the same name is replaced: a state naming no live process changes nothing.
  if (!existsSync(`/proc/${state.pid}/ns/net`)) throw new InvalidArgumentError(`no process ${state.pid} (the state's pid) on this host`);
  if (typeof request.network === 'string') await client.call('GET', `/networks/${encodeURIComponent(request.network)}`);
  const holder = await holderOf(client, state.id, true);
  if (holder.kind === 'other') throw new ConflictError(`the name ${state.id} is taken by ${holder.what}; the hook replaces only its own attachments`);
  if (holder.kind === 'hook') await detachSandbox(client, holder.id);
  let result: { files?: { problems?: string[] } };
  try {
    result = await client.call('POST', '/netd/v1/attach', request);
  } catch (err) {
    throw new Error(`cannot attach container ${state.id} (pid ${state.pid}): ${(err as Error).message}`);
  }
  process.stdout.write(JSON.stringify(result) + '\n');
  // The runtime bind-mounts its own resolv.conf; netd's copies are extras here, not a reason to fail the start.
  for (const problem of result.files?.problems ?? []) process.stderr.write(`netd: oci-hook: warning: ${problem}\n`);
}

export function addOciHookCommand(program: Command): void {
  program
    .command('oci-hook')
    .description('OCI runtime hook: attach the container in the state on stdin (createRuntime/prestart), detach it (poststop)')
    .option('-n, --network <network>', `network to attach to (default: annotation ${ANNOTATIONS.network}, else the default network)`)
    .option('-p, --publish <spec>', `publish a port, as netd attach -p (repeatable; default: annotation ${ANNOTATIONS.publish}, comma-separated)`, (v: string, prev: string[]) => [...prev, v], [])
    .option('--ip <address>', `the container's address, IPv4 or IPv6 (default: annotation ${ANNOTATIONS.ip})`)
    .option('--alias <name>', `network-scoped alias (repeatable; default: annotation ${ANNOTATIONS.aliases}, comma-separated)`, (v: string, prev: string[]) => [...prev, v], [])
    .addOption(new Option('--stage <stage>', 'the hook stage (default: from the state: stopped or no pid is poststop)').choices(STAGES))
    .action(async (opts: HookOptions, cmd: Command) => {
      const client = new Client(cmd.optsWithGlobals().host as string);
      let poststop = opts.stage === 'poststop';
      try {
        await runHook(client, opts, (action) => (poststop = action === 'detach'));
      } catch (err) {
        if (!poststop) throw err;
        // The container is already gone: failing would only make the runtime log an error for nothing.
        process.stderr.write(`netd: oci-hook poststop: ${(err as Error).message} (ignored; netd frees a dead container's endpoints by itself)\n`);
      }
    });
}
