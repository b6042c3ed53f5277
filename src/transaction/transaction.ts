/**
 * A sequence of named steps with undo actions. If a step fails, the undo actions of the steps already
 * done run in reverse order, and the error says which step failed. Used by every mutating operation so
 * that a failure leaves no trace.
 */
import type { Logger } from '../log.js';
import { NetdError } from '../errors.js';
import type { Operation } from './fault.js';

type Undo = () => unknown | Promise<unknown>;

export class StepError extends NetdError {
  constructor(
    readonly step: string,
    readonly original: unknown,
  ) {
    const inner = original instanceof NetdError ? original : undefined;
    const message = original instanceof Error ? original.message : String(original);
    super(inner ? message : `${step}: ${message}`, inner?.status ?? 500, inner?.code ?? 'internal', { cause: original });
  }
}

export class Transaction<Step extends string = string> {
  private readonly undos: { step: string; undo: Undo }[] = [];
  private readonly op: string;
  constructor(
    /** The operation's declared steps (fault.ts): only those can run, each with its two fault points. */
    private readonly operation: Operation<Step, string>,
    private readonly log: Logger,
  ) {
    this.op = operation.op;
  }

  /** Runs `action`; on success remembers `undo` for rollback. */
  async step<T>(step: Step, action: () => T | Promise<T>, undo?: Undo): Promise<T> {
    if (!this.operation.declares(step)) throw new Error(`${this.op}: step ${JSON.stringify(step)} is not declared`);
    let result: T;
    this.operation.reach(`before:${step}`);
    try {
      result = await action();
    } catch (err) {
      await this.rollback();
      if (err instanceof StepError) throw err;
      throw new StepError(step, err);
    }
    if (undo) this.undos.push({ step, undo });
    this.operation.reach(`after:${step}`);
    return result;
  }

  /** Registers an undo for something already done outside a step. */
  onRollback(step: Step, undo: Undo): void {
    this.undos.push({ step, undo });
  }

  async rollback(): Promise<void> {
    while (this.undos.length > 0) {
      const { step, undo } = this.undos.pop()!;
      try {
        await undo();
      } catch (err) {
        // An undo that fails leaves something behind: say so loudly; restart reconciliation removes it.
        this.log.error({ op: this.op, step, err }, 'rollback step failed');
      }
    }
  }
}
