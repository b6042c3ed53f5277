/**
 * Healing without polling: the kernel's nf_tables notifications (kernel/nftables-monitor.ts) tell when a
 * transaction deleted something in one of the firewall's watched tables (a flushed ruleset, a deleted table,
 * a flushed chain) or created or updated a chain there (a FORWARD policy reset). Unless netd made that
 * transaction itself (its own pid, or a command it spawned: exec.ts), the firewall's rules may be gone or
 * overridden and the caller is told to reload. A lost notification
 * (receive queue overrun) is an unknown change: reload too.
 *
 * iptables-legacy changes no nf_tables state (no notifications): there the timed check stays.
 */
import { realpathSync } from 'node:fs';
import { basename } from 'node:path';
import type { Logger } from '../log.js';
import { NftablesMonitor, type NftChange, type NftTransaction } from '../kernel/nftables-monitor.js';
import { isOwnProcess } from './exec.js';
import type { Firewall } from './firewall.js';
import { findTool } from './tools.js';

/** The change of `tx` that can have removed netd's rules, or undefined (nothing deleted there, or netd's own). */
export function harmfulChange(tx: NftTransaction, watched: Firewall['watchedTables'], isOwn: (pid: number) => boolean = isOwnProcess): NftChange | undefined {
  if (tx.pid !== 0 && isOwn(tx.pid)) return undefined;
  // A chain "created" may be an existing one updated: its policy reset (FORWARD back to ACCEPT) comes so.
  return tx.changes.find((c) => (c.deleted || c.object === 'chain') && watched.some((w) => w.family === c.family && w.name === c.table));
}

/** Why the firewall's changes cannot be watched through nf_tables notifications, or undefined when they can. */
export function unwatchable(firewall: Firewall): string | undefined {
  if (firewall.watchedTables.length === 0) return 'the firewall names no nf_tables tables';
  if (firewall.backend !== 'iptables') return undefined;
  const tool = findTool('iptables');
  let target = '';
  try {
    target = tool ? basename(realpathSync(tool)) : '';
  } catch {
    /* a dangling link: treated as unknown below */
  }
  return /legacy/.test(target) ? `iptables is ${target} (iptables-legacy makes no nf_tables notifications)` : undefined;
}

/**
 * Watches the current network namespace; calls `notify(reason)` when netd's rules may be gone. Returns a
 * stop function, or undefined (with the reason logged) when nf_tables cannot be watched.
 */
export function watchFirewallTables(firewall: Firewall, log: Logger, notify: (reason: string) => void): (() => void) | undefined {
  const why = unwatchable(firewall);
  if (why) {
    log.info({ op: 'firewall-watch', reason: why }, 'not watching nf_tables notifications; the timed firewall check runs');
    return undefined;
  }
  let monitor: NftablesMonitor;
  try {
    monitor = new NftablesMonitor({
      transaction(tx) {
        const c = harmfulChange(tx, firewall.watchedTables);
        if (!c) return;
        log.warn({ op: 'firewall-watch', pid: tx.pid, process: tx.procName, generation: tx.genId, object: c.object, family: c.family, table: c.table, changes: tx.changes.length }, `another process (${tx.procName || 'unknown'}, pid ${tx.pid}) changed netd's firewall tables; re-applying`);
        notify('kernel-event');
      },
      lost(reason) {
        log.warn({ op: 'firewall-watch', reason }, 'nf_tables notifications were lost: unknown change; re-applying');
        notify('kernel-event');
      },
    });
  } catch (err) {
    log.warn({ op: 'firewall-watch', err }, 'cannot watch nf_tables notifications; the timed firewall check runs');
    return undefined;
  }
  return () => monitor.close();
}
