/**
 * `--trace`: loaded into netd's daemon with `node --require`, it times what each attach and detach
 * spends its time on — every rtnetlink request (by kind), netlink sockets opened in containers, child
 * processes (iptables-restore, conntrack...), state-file writes — and writes one record per operation
 * to $NETD_BENCH_TRACE when the daemon exits. The rest of an operation's time is JavaScript and waiting.
 *
 * It wraps methods of netd's compiled classes from outside (prototype patching), so netd's sources stay
 * untouched; a method that no longer exists is simply not timed. Operations must be sequential for the
 * attribution to hold (the attach phase issues them one at a time).
 */
import childProcess from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

interface OpRecord {
  op: string;
  ok: boolean;
  totalMs: number;
  parts: Record<string, { ms: number; n: number }>;
}

const out = process.env.NETD_BENCH_TRACE;
const records: OpRecord[] = [];
let current: OpRecord | undefined;

function charge(label: string, ms: number): void {
  if (!current) return;
  const p = (current.parts[label] ??= { ms: 0, n: 0 });
  p.ms += ms;
  p.n += 1;
}

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

type AnyFn = (this: unknown, ...args: unknown[]) => unknown;

/** Replaces proto[name] with a timed version; `label` derives the category from the arguments. */
function wrap(proto: Record<string, unknown> | undefined, name: string, label: (args: unknown[]) => string): void {
  const orig = proto?.[name];
  if (!proto || typeof orig !== 'function') return;
  proto[name] = function (this: unknown, ...args: unknown[]) {
    const start = now();
    const result = (orig as AnyFn).apply(this, args);
    if (result instanceof Promise) return result.finally(() => charge(label(args), now() - start));
    charge(label(args), now() - start);
    return result;
  };
}

/** The operation boundary: attach/detach of the controller. */
function wrapOp(proto: Record<string, unknown> | undefined, name: string): void {
  const orig = proto?.[name];
  if (!proto || typeof orig !== 'function') return;
  proto[name] = async function (this: unknown, ...args: unknown[]) {
    const rec: OpRecord = { op: name, ok: false, totalMs: 0, parts: {} };
    current = rec;
    const start = now();
    try {
      const r = await (orig as AnyFn).apply(this, args);
      rec.ok = true;
      return r;
    } finally {
      rec.totalMs = now() - start;
      records.push(rec);
      if (current === rec) current = undefined;
    }
  };
}

function load(rel: string): Record<string, { prototype: Record<string, unknown> } & Record<string, unknown>> | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(join(__dirname, '..', 'src', rel)) as Record<string, { prototype: Record<string, unknown> } & Record<string, unknown>>;
  } catch {
    return undefined;
  }
}

if (out && process.argv.includes('daemon')) {
  const rtnl = load('kernel/rtnetlink.js')?.Rtnl;
  // Every request goes through Rtnl#call(op, send): "create veth vethab12cd3" → "netlink: create veth".
  wrap(rtnl?.prototype, 'call', (args) => `netlink: ${String(args[0]).split(' ').slice(0, 2).join(' ')}`);
  if (rtnl && typeof rtnl.open === 'function') {
    const open = rtnl.open as AnyFn;
    rtnl.open = function (this: unknown, ...args: unknown[]) {
      const start = now();
      try {
        return open.apply(this, args);
      } finally {
        charge('netlink: open a socket in a netns', now() - start);
      }
    };
  }
  wrap(load('store/store.js')?.Store?.prototype, 'put', () => 'state file: write + fsync + rename');
  wrap(load('store/store.js')?.Store?.prototype, 'delete', () => 'state file: delete');
  const controller = load('cnm/controller.js')?.Controller?.prototype;
  wrapOp(controller, 'attach');
  wrapOp(controller, 'detach');

  // Child processes, from spawn to exit.
  const spawn = childProcess.spawn as unknown as AnyFn;
  (childProcess as unknown as Record<string, unknown>).spawn = function (this: unknown, ...args: unknown[]) {
    const start = now();
    const label = `exec: ${basename(String(args[0]))}`;
    const op = current;
    const child = spawn.apply(this, args) as childProcess.ChildProcess;
    child.once('close', () => {
      if (op === current) charge(label, now() - start);
    });
    return child;
  };

  process.on('exit', () => {
    try {
      writeFileSync(out, JSON.stringify(records));
    } catch {
      /* nowhere to report */
    }
  });
}
