/**
 * Encoded local answers, kept per (scope of the asker, EDNS or not, question type, class, name in lower
 * case), so that a repeated question costs a copy and a few patched bytes (see local-answer.ts) instead
 * of a decode, a look-up and an encode. The scope is what the asker may see (the networks its container
 * is on, the listening network first; NameDirectory.scopeKey), so two networks never share an answer.
 *
 * Any change to the names (network added or removed, endpoint joined, left or re-joined with other
 * aliases) moves the directory's generation, and the whole cache is dropped at the next question: names
 * change at container speed, questions at packet speed. Answers whose order is random (an alias shared by
 * several containers: round robin) are not cached. The cache is bounded: full, it starts over.
 */
import type { EncodedAnswer } from './local-answer.js';
import type { QuestionView } from './question.js';

export const MAX_CACHED_ANSWERS = 10_000;

export interface Generational {
  /** Moves on every change that can change an answer. */
  readonly generation: number;
}

export class AnswerCache {
  private readonly entries = new Map<string, EncodedAnswer>();
  private generation = -1;

  constructor(
    private readonly source: Generational,
    private readonly max = MAX_CACHED_ANSWERS,
  ) {}

  get(key: string): EncodedAnswer | undefined {
    this.sync();
    return this.entries.get(key);
  }

  set(key: string, answer: EncodedAnswer): void {
    this.sync();
    if (this.entries.size >= this.max) this.entries.clear();
    this.entries.set(key, answer);
  }

  get size(): number {
    this.sync();
    return this.entries.size;
  }

  private sync(): void {
    if (this.source.generation === this.generation) return;
    this.entries.clear();
    this.generation = this.source.generation;
  }
}

/** The cache key of a question asked in a scope; `name` is question.ts's wireNameKey. */
export function answerKey(scope: string, q: QuestionView, name: string): string {
  return `${scope}|${q.edns ? 'e' : 'n'}|${q.qtype}|${q.qclass}|${name}`;
}
