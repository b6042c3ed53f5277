/**
 * iptables-restore scripts: one section per table, built op by op, rendered to the text fed to
 * `iptables-restore --noflush`, and inverted so that a table already committed can be undone.
 */
import { InvalidArgumentError } from '../errors.js';
import { checkChain, ruleArgs, TABLES, validateChainName, type Family, type Rule, type Table } from './model.js';
import type { SavedRule } from './iptables-save.js';

/** One operation in a restore script. Every op knows its inverse, so a committed table can be undone. */
export type RestoreOp =
  | { readonly kind: 'new-chain'; readonly chain: string }
  | { readonly kind: 'add'; readonly rule: Rule; readonly top: boolean }
  | { readonly kind: 'delete-saved'; readonly saved: SavedRule }
  /** `-D` by specification; `top` says where the inverse puts it back. */
  | { readonly kind: 'delete-rule'; readonly rule: Rule; readonly top?: boolean }
  | { readonly kind: 'insert-saved'; readonly saved: SavedRule; readonly position: number }
  /**
   * `-F CHAIN`. Its contents, for the inverse: `rules` (known, in order) or `saved` (as read, with their
   * positions).
   */
  | { readonly kind: 'flush-chain'; readonly chain: string; readonly rules?: readonly Rule[]; readonly saved?: readonly SavedRule[] }
  | { readonly kind: 'delete-chain'; readonly chain: string }
  /** A built-in chain's policy (`:CHAIN POLICY`, which under --noflush flushes nothing); `previous` for the inverse. */
  | { readonly kind: 'policy'; readonly chain: 'FORWARD'; readonly policy: 'DROP' | 'ACCEPT'; readonly previous: 'DROP' | 'ACCEPT' };

/** Saved text is kernel output, but it is spliced into a line: refuse anything that could end the line. */
function checkRaw(raw: string): string {
  if (/[\n\r\0]/.test(raw)) throw new InvalidArgumentError('refusing a saved rule containing a line break');
  return raw;
}

/**
 * An iptables-restore script for one address family, built op by op, one section per table.
 * iptables-restore commits each table at its COMMIT line: a script is atomic per table, not as a whole,
 * which is why sections stay separate and can be inverted.
 */
export class RestoreScript {
  private readonly sections = new Map<Table, RestoreOp[]>();

  constructor(readonly family: Family) {}

  push(table: Table, op: RestoreOp): void {
    const ops = this.sections.get(table) ?? [];
    this.sections.set(table, ops);
    ops.push(op);
  }

  get isEmpty(): boolean {
    return [...this.sections.values()].every((ops) => ops.length === 0);
  }

  get tables(): Table[] {
    return TABLES.filter((t) => (this.sections.get(t)?.length ?? 0) > 0);
  }

  ops(table: Table): readonly RestoreOp[] {
    return this.sections.get(table) ?? [];
  }

  /** Counts of rules added and deleted, for logs. */
  summary(): { added: number; deleted: number; chains: number } {
    let added = 0;
    let deleted = 0;
    let chains = 0;
    for (const ops of this.sections.values()) {
      for (const op of ops) {
        if (op.kind === 'add' || op.kind === 'insert-saved') added++;
        else if (op.kind === 'delete-saved' || op.kind === 'delete-rule') deleted++;
        else if (op.kind === 'flush-chain') deleted += (op.rules?.length ?? 0) + (op.saved?.length ?? 0);
        else if (op.kind !== 'policy') chains++;
      }
    }
    return { added, deleted, chains };
  }

  /**
   * The text fed to `iptables-restore --noflush`, and the line number of each table's COMMIT (to tell,
   * after a failure at line N, which tables were already committed). New chains come first in each
   * section, as `-N CHAIN`: with --noflush, `:CHAIN` would create a missing chain but FLUSH an existing
   * one, which another netd instance (sharing the base chains) may have made since this one read the
   * tables; `-N` fails the whole batch instead, and the operation plans again from a fresh read.
   */
  render(): { text: string; commits: { table: Table; line: number }[] } {
    const lines: string[] = [];
    const commits: { table: Table; line: number }[] = [];
    for (const table of this.tables) {
      const ops = this.ops(table);
      lines.push(`*${table}`);
      for (const op of ops) if (op.kind === 'policy') lines.push(`:${op.chain} ${op.policy} [0:0]`);
      for (const op of ops) if (op.kind === 'new-chain') lines.push(`-N ${checkChain(table, op.chain)}`);
      for (const op of ops) {
        switch (op.kind) {
          case 'new-chain':
          case 'policy':
            break;
          case 'add':
            lines.push(this.ruleLine(op.top ? 'I' : 'A', op.rule, table, op.top ? 1 : undefined));
            break;
          case 'delete-rule':
            lines.push(this.ruleLine('D', op.rule, table));
            break;
          case 'delete-saved':
            lines.push(`-D ${checkChain(table, op.saved.chain)} ${checkRaw(op.saved.raw)}`.trimEnd());
            break;
          case 'insert-saved':
            lines.push(`-I ${checkChain(table, op.saved.chain)} ${op.position} ${checkRaw(op.saved.raw)}`.trimEnd());
            break;
          case 'flush-chain':
            lines.push(`-F ${validateChainName(op.chain)}`);
            break;
          case 'delete-chain':
            lines.push(`-X ${validateChainName(op.chain)}`);
            break;
        }
      }
      lines.push('COMMIT');
      commits.push({ table, line: lines.length });
    }
    return { text: lines.length ? lines.join('\n') + '\n' : '', commits };
  }

  private ruleLine(op: 'A' | 'I' | 'D', rule: Rule, table: Table, position?: number): string {
    if (rule.table !== table) throw new InvalidArgumentError(`rule for table ${rule.table} placed in section ${table}`);
    const chain = checkChain(table, rule.chain);
    const pos = position === undefined ? [] : [String(position)];
    return [`-${op}`, chain, ...pos, ...ruleArgs(rule, this.family)].join(' ');
  }

  /**
   * The script that undoes the given tables of this one, assuming nothing else changed them meanwhile:
   * recreate deleted chains (declarations render first), delete what was added, put deleted rules back —
   * saved ones at their original positions (ascending, so each position is right once the additions are
   * gone), flushed contents and rules deleted by specification appended in their order (`top` ones
   * inserted first) — then remove chains that were created.
   */
  inverse(tables: readonly Table[]): RestoreScript {
    const inv = new RestoreScript(this.family);
    for (const table of tables) {
      const ops = this.ops(table);
      for (const op of ops) if (op.kind === 'delete-chain') inv.push(table, { kind: 'new-chain', chain: op.chain });
      for (const op of ops) if (op.kind === 'add') inv.push(table, { kind: 'delete-rule', rule: op.rule });
      const deleted = ops.flatMap((op) => (op.kind === 'delete-saved' ? [op.saved] : op.kind === 'flush-chain' ? (op.saved ?? []) : []));
      const byChain = new Map<string, SavedRule[]>();
      for (const s of deleted) byChain.set(s.chain, [...(byChain.get(s.chain) ?? []), s]);
      for (const list of byChain.values()) {
        for (const s of [...list].sort((a, b) => a.index - b.index)) {
          inv.push(table, { kind: 'insert-saved', saved: s, position: s.index });
        }
      }
      for (const op of ops) {
        if (op.kind === 'flush-chain') for (const rule of op.rules ?? []) inv.push(table, { kind: 'add', rule, top: false });
      }
      // Rules deleted by specification: appended back in order; those that stood at the top are inserted
      // at position 1 in reverse order, which restores their relative order.
      const bySpec = ops.flatMap((op) => (op.kind === 'delete-rule' ? [op] : []));
      for (const op of bySpec) if (!op.top) inv.push(table, { kind: 'add', rule: op.rule, top: false });
      for (const op of [...bySpec].reverse()) if (op.top) inv.push(table, { kind: 'add', rule: op.rule, top: true });
      for (const op of ops) if (op.kind === 'new-chain') inv.push(table, { kind: 'delete-chain', chain: op.chain });
      for (const op of ops) if (op.kind === 'policy') inv.push(table, { ...op, policy: op.previous, previous: op.policy });
    }
    return inv;
  }
}
