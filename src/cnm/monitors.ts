/**
 * Background checks while the daemon runs: containers whose namespace died without a detach are released
 * (their addresses, rules and names), and firewall rules someone flushed are put back.
 */
import type { Logger } from '../log.js';
import type { CoreContext } from './context.js';
import type { Endpoints } from './endpoints.js';
import type { Sandboxes } from './sandboxes.js';

export interface MonitorIntervals {
  /** Dead-container sweep (ms; default 1000; 0: never). */
  sweepMs?: number;
  /** Timed firewall check (ms; default 3000; 0: never), when the kernel's firewall changes cannot be watched. */
  firewallMs?: number;
  /**
   * Watches the kernel for changes that may have removed the firewall's rules (nf_tables notifications),
   * calling `notify` for each; returns a stop function, or undefined when it cannot watch.
   */
  watchFirewall?: (notify: (reason: string) => void) => (() => void) | undefined;
}

/** After a kernel event, the reload waits this long for more (one flush is many notifications). */
export const FIREWALL_EVENT_DEBOUNCE_MS = 20;

export interface MonitorTasks {
  sweepDeadContainers(): Promise<void>;
  reloadFirewall(reason: string): Promise<void>;
  /** The timed check: reloads only when something is missing (default: reloadFirewall('watchdog')). */
  checkFirewall?(): Promise<void>;
}

/**
 * Runs `fn` `delayMs` after a trigger, never two runs at once: triggers during the wait join it, and a
 * trigger during a run schedules one more run after it.
 */
export function debounced(fn: () => Promise<void>, delayMs: number, log: Logger): { trigger(): void; stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  const schedule = () => {
    if (timer || stopped) return;
    timer = setTimeout(start, delayMs);
  };
  const start = () => {
    timer = undefined;
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = fn()
      .catch((err) => log.error({ op: 'monitor', err }, 'monitor failed'))
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          schedule();
        }
      });
  };
  return {
    trigger: schedule,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

/**
 * Runs the checks at their intervals, never two runs of one at once; firewall changes are watched in the
 * kernel where possible (the timed check is the fallback). Returns a stop function, which waits for a
 * firewall reload under way.
 */
export function startMonitors(tasks: MonitorTasks, log: Logger, opts: MonitorIntervals = {}): () => Promise<void> {
  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, fn: () => Promise<unknown>) => {
    if (ms <= 0) return;
    let running = false;
    const t = setInterval(() => {
      if (running) return;
      running = true;
      fn()
        .catch((err) => log.error({ op: 'monitor', err }, 'monitor failed'))
        .finally(() => (running = false));
    }, ms);
    t.unref();
    timers.push(t);
  };
  every(opts.sweepMs ?? 1000, () => tasks.sweepDeadContainers());
  const heal = debounced(() => tasks.reloadFirewall('kernel-event'), FIREWALL_EVENT_DEBOUNCE_MS, log);
  const stopWatch = opts.watchFirewall?.(() => heal.trigger());
  if (!stopWatch) every(opts.firewallMs ?? 3000, () => (tasks.checkFirewall ? tasks.checkFirewall() : tasks.reloadFirewall('watchdog')));
  return async () => {
    timers.forEach((t) => clearInterval(t));
    stopWatch?.();
    await heal.stop();
  };
}

export interface SweepDeps {
  ctx: CoreContext;
  sandboxes: Sandboxes;
  endpoints: Endpoints;
  /** Runs an operation under the controller's lock. */
  exclusive(op: string, fn: () => Promise<void>): Promise<void>;
}

/** Releases the endpoints of containers whose namespace is gone. Takes the lock only when there is work. */
export async function sweepDeadContainers({ ctx, sandboxes, endpoints, exclusive }: SweepDeps): Promise<void> {
  const { registry } = ctx;
  // Work to do: a dead container, or a namespace that appeared where a sandbox waited for it.
  if (![...registry.sandboxesById.values()].some((sb) => sandboxes.isGone(sb) || sandboxes.arrivedNamespace(sb) !== undefined)) return;
  await exclusive('sweep', async () => {
    for (const sb of [...registry.sandboxesById.values()]) {
      sandboxes.settle(sb);
      if (!sandboxes.isGone(sb) || (!sb.host && sandboxes.revive(sb))) continue;
      await endpoints.removeFromSandbox(sb, undefined, 'container gone');
      if (registry.sandboxesById.has(sb.id)) registry.forgetSandbox(sb);
    }
  });
}

/**
 * Runs the dead-container sweep now when the container named `name`, or the one recorded for the namespace at
 * `path` (the kernel reuses a dead namespace's inode), is gone: its id or namespace reused before the sweep ran.
 * A failure of the sweep (some other dead container) is logged, not the caller's: the attach that follows
 * says plainly if the name is still taken.
 */
export async function sweepIfGone(deps: SweepDeps, name: string, path?: string): Promise<void> {
  const { registry, targets, log } = deps.ctx;
  const byName = [...registry.sandboxesById.values()].find((s) => s.name === name);
  const byPath = path ? targets.findSandbox(path) : undefined;
  if (![byName, byPath].some((sb) => sb !== undefined && deps.sandboxes.isGone(sb))) return;
  try {
    await sweepDeadContainers(deps);
  } catch (err) {
    log.warn({ op: 'sweep', err }, 'sweep before an attach failed');
  }
}
