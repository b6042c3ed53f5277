/**
 * Fault points, for crash tests. Every operation that changes the kernel or the records declares its
 * steps (and any point inside a step) where it is written, with `operation()`: the declaration fills a
 * registry of every point in the program, and `Transaction` (and `reach`) accept only declared names —
 * a step added later that is not declared does not compile, so the crash test, which iterates over the
 * registry, cannot miss it. Whatever changes the kernel or the records belongs inside a step (or between
 * two declared points), so that a crash can be injected on both sides of it.
 *
 * With `NETD_FAULT_AT=<op>:<point>` in the daemon's environment, the daemon kills itself (SIGKILL: no
 * cleanup, no flushing, as a crash or an OOM kill would) when that point of that operation is reached.
 * With `NETD_FAULT_TRACE=<file>`, every point reached is appended to the file (one `<op>:<point>` a
 * line), so a test can tell which scenario reaches which point. Unset — the default — both do nothing.
 */
import { appendFileSync } from 'node:fs';

const target = process.env.NETD_FAULT_AT;
const trace = process.env.NETD_FAULT_TRACE;

/** op -> its points, in declaration order. */
const registry = new Map<string, Set<string>>();

/** The points of a step: the kernel and the records as they are before it runs and after it succeeded. */
export type StepPoint<Step extends string> = `before:${Step}` | `after:${Step}`;

/** The step names of a declared operation (for a function that takes its transaction). */
export type StepOf<O> = O extends Operation<infer Step, string> ? Step : never;

/** An operation's declared steps and inner points. */
export class Operation<Step extends string, Point extends string = never> {
  private readonly stepNames: ReadonlySet<string>;

  constructor(
    readonly op: string,
    steps: readonly Step[],
    points: readonly Point[],
  ) {
    this.stepNames = new Set(steps);
    const known = registry.get(op) ?? new Set<string>();
    for (const s of steps) {
      known.add(`before:${s}`);
      known.add(`after:${s}`);
    }
    for (const p of points) known.add(p);
    registry.set(op, known);
  }

  /** Whether `step` was declared (Transaction refuses undeclared steps, also from untyped callers). */
  declares(step: string): boolean {
    return this.stepNames.has(step);
  }

  /** The point is reached: dies here if the fault is armed for it. */
  reach(point: StepPoint<Step> | Point): void {
    const name = `${this.op}:${point}`;
    if (trace !== undefined) appendFileSync(trace, `${name}\n`);
    if (target !== undefined && target === name) {
      process.stderr.write(`netd: fault injected at ${target}\n`);
      process.kill(process.pid, 'SIGKILL');
    }
  }
}

/**
 * Declares an operation's steps (each gets a `before:` and an `after:` point) and the points inside its
 * steps (full names, e.g. `after:create veth`). Several declarations may share an op (a driver's part
 * of the controller's operation).
 */
export function operation<const Step extends string, const Point extends string = never>(
  op: string,
  steps: readonly Step[],
  points: readonly Point[] = [],
): Operation<Step, Point> {
  return new Operation(op, steps, points);
}

/** Every declared point: op -> points. Complete once the modules that declare them are loaded (the daemon's). */
export function declaredFaultPoints(): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [op, points] of registry) out[op] = [...points];
  return out;
}
