/**
 * Running iptables for the backend: one iptables-save per family, parsed; restore scripts applied with
 * `iptables-restore -w --noflush` (and/or `ip6tables-restore`), one per family, the families in parallel.
 * iptables-restore commits each table at its COMMIT line, so a batch is atomic per table only. When a
 * later table, or the other family, fails, the tables already committed are reverted with the inverse
 * script (see RestoreScript.inverse): each apply is all-or-nothing as seen from iptables-save.
 */
import type { NetdError } from '../errors.js';
import type { Logger } from '../log.js';
import { commandError, runChecked, type CommandRunner } from './exec.js';
import type { Family, Table } from './model.js';
import { parseSave, type SavedState } from './iptables-save.js';
import type { RestoreScript } from './restore-script.js';

/** The line iptables-restore reports as failed, if it says. */
export function failedLine(stderr: string): number | undefined {
  const m = /line (\d+) failed/.exec(stderr) ?? /Error occurred at line: (\d+)/.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

const SAVE_CMD: Record<Family, string> = { 4: 'iptables-save', 6: 'ip6tables-save' };
const RESTORE_CMD: Record<Family, string> = { 4: 'iptables-restore', 6: 'ip6tables-restore' };

/** The programs this backend runs for these families: the ones it cannot work without, and the rest. */
export function iptablesTools(families: readonly Family[]): { required: string[]; optional: string[] } {
  return { required: families.flatMap((f) => [SAVE_CMD[f], RESTORE_CMD[f]]), optional: ['conntrack'] };
}

export class IptablesCommands {
  constructor(
    private readonly exec: CommandRunner,
    private readonly log: Logger,
  ) {}

  async read(family: Family): Promise<SavedState> {
    const res = await runChecked(this.exec, [SAVE_CMD[family]]);
    return parseSave(res.stdout);
  }

  /**
   * Runs one restore per non-empty script, the families in parallel (a table commit that deletes rules
   * waits for the kernel, ~10 ms here, so this halves dual-stack times). If any fails, whatever any of
   * them committed is reverted, then the first error is thrown.
   */
  async apply(op: string, scripts: readonly RestoreScript[]): Promise<void> {
    const results = await Promise.all(
      scripts
        .filter((s) => !s.isEmpty)
        .map(async (script) => {
          const { text, commits } = script.render();
          const argv = [RESTORE_CMD[script.family], '-w', '--noflush'];
          this.log.debug({ op, family: script.family, script: text }, 'iptables-restore');
          return { script, text, commits, argv, res: await this.exec(argv, text) };
        }),
    );
    const committed: { script: RestoreScript; tables: Table[] }[] = [];
    let failure: NetdError | undefined;
    for (const { script, text, commits, argv, res } of results) {
      if (res.code === 0) {
        committed.push({ script, tables: script.tables });
        continue;
      }
      failure ??= commandError(argv, res);
      const line = failedLine(res.stderr);
      // Tables whose COMMIT came before the failing line are in the kernel already.
      const partial = line === undefined ? [] : commits.filter((c) => c.line < line).map((c) => c.table);
      if (partial.length > 0) committed.push({ script, tables: partial });
      this.log.error(
        { op, family: script.family, line, text: line ? text.split('\n')[line - 1] : undefined, stderr: res.stderr.trim() },
        line === undefined
          ? 'iptables-restore failed without naming a line; assuming nothing was applied (reconcile repairs any leftover)'
          : 'iptables-restore failed',
      );
    }
    if (failure) {
      await this.revert(op, committed);
      throw failure;
    }
  }

  private async revert(op: string, committed: readonly { script: RestoreScript; tables: Table[] }[]): Promise<void> {
    await Promise.all(
      committed.map(async ({ script, tables }) => {
        const inverse = script.inverse(tables);
        if (inverse.isEmpty) return;
        const res = await this.exec([RESTORE_CMD[script.family], '-w', '--noflush'], inverse.render().text);
        if (res.code === 0) {
          this.log.warn({ op, family: script.family, tables }, 'reverted the part of the operation already applied');
        } else {
          this.log.error(
            { op, family: script.family, tables, stderr: res.stderr.trim() },
            'could not revert a partly applied operation; reconcile will repair it',
          );
        }
      }),
    );
  }
}
