/**
 * The two netd-cni executables (the JS reference and the native shim) run as a CNI runtime runs a plugin:
 * the CNI_* environment, the network configuration on stdin, stdout and the exit code collected as bytes.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './daemon.js';

export interface PluginBin {
  name: 'js' | 'shim';
  path: string;
}

export const PLUGINS: PluginBin[] = [
  { name: 'js', path: join(REPO, 'dist/src/cni/plugin.js') },
  { name: 'shim', path: join(REPO, 'build/Release/netd-cni-shim') },
];

/** Fails loudly when an executable is missing (the shim is built by `npm ci` / node-gyp). */
export function requirePlugins(): void {
  for (const p of PLUGINS) if (!existsSync(p.path)) throw new Error(`${p.path} missing: run \`npm run build\` (js) and \`npm ci\` or node-gyp rebuild (shim)`);
}

export interface PluginRun {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs one executable with exactly `env` (plus PATH) and `stdin`; `prefix` wraps it (e.g. `ip netns exec NS`). */
export function runPlugin(bin: PluginBin, env: Record<string, string>, stdin: string | Buffer, timeoutMs = 30_000, prefix: string[] = []): Promise<PluginRun> {
  return new Promise((resolve, reject) => {
    const argv = [...prefix, bin.path];
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
  });
}

/** stdout parsed as JSON (undefined when empty). */
export function jsonOut<T = any>(r: PluginRun): T { // eslint-disable-line @typescript-eslint/no-explicit-any
  const text = r.stdout.toString('utf8');
  return (text.trim() === '' ? undefined : JSON.parse(text)) as T;
}

/**
 * A value serialised the way libcni does (Go's encoding/json of map[string]interface{}): keys sorted at
 * every level, no spaces.
 */
export function goJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]));
    return v;
  };
  return JSON.stringify(sort(value));
}
