/**
 * Running firewall commands: argv arrays and stdin, never a shell string. The runner is injectable so
 * tests can prefix every command with `ip netns exec NAME` (or record calls without running anything).
 */
import { spawn } from 'node:child_process';
import { CommandError, type NetdError } from '../errors.js';
import { missingTool } from './tools.js';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The program does not exist (spawn's ENOENT): nothing ran. */
  missing?: boolean;
}

export type CommandRunner = (argv: string[], stdin?: string) => Promise<CommandResult>;

const DEFAULT_TIMEOUT_MS = 60_000;
/** How long a child is remembered after it exited: its nf_tables notifications may still be on their way. */
const REMEMBER_EXITED_MS = 60_000;
/** Children this process spawned: pid → when it exited (0: running). */
const children = new Map<number, number>();

function forgetOldChildren(now: number): void {
  for (const [pid, exited] of children) if (exited !== 0 && now - exited > REMEMBER_EXITED_MS) children.delete(pid);
}

/**
 * True for this process and the commands it ran recently (iptables-restore, nft, …): a firewall change
 * the kernel reports as made by one of them is netd's own.
 */
export function isOwnProcess(pid: number): boolean {
  return pid === process.pid || children.has(pid);
}

/** Spawns argv directly (no shell), feeds stdin, collects output. Never rejects: failures are a result. */
export const spawnRunner: CommandRunner = (argv, stdin) =>
  new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let settled = false;
    const finish = (code: number | null, extra = '', missing = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, stdout, stderr: stderr + extra, ...(missing ? { missing } : {}) });
    };
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const pid = child.pid;
    if (pid !== undefined) {
      forgetOldChildren(Date.now());
      children.set(pid, 0);
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(null, `\n${argv[0]}: killed after ${DEFAULT_TIMEOUT_MS} ms`);
    }, DEFAULT_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err: NodeJS.ErrnoException) => {
      const missing = err.code === 'ENOENT';
      finish(null, missing ? missingTool(argv[0]).message : `${argv[0]}: ${err.message}`, missing);
    });
    child.on('close', (code) => {
      if (pid !== undefined) children.set(pid, Date.now());
      finish(code);
    });
    // A child that exits before reading all of stdin makes the write fail with EPIPE: its exit status
    // and stderr tell the story, so the write error itself is ignored.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin ?? '');
  });

/** The error for a command that did not exit 0: MissingToolError when the program does not exist. */
export function commandError(argv: readonly string[], res: CommandResult): NetdError {
  return res.missing ? missingTool(argv[0]) : new CommandError(argv.join(' '), res.code, res.stderr);
}

/** Runs a command and throws CommandError (MissingToolError) unless it exits 0. */
export async function runChecked(exec: CommandRunner, argv: string[], stdin?: string): Promise<CommandResult> {
  const res = await exec(argv, stdin);
  if (res.code !== 0) throw commandError(argv, res);
  return res;
}
