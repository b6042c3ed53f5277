/**
 * Work in flight and what it claims: an operation that needs something a piece of pending work holds
 * waits for that work (`settle`); shutting down waits for all of it (`drain`). Used for detaches' deferred
 * teardowns (teardown-queue.ts) and for attaches whose kernel work runs outside the controller's lock
 * (joins.ts).
 */
interface Entry<C> {
  claims: C;
  done: Promise<unknown>;
}

export class InFlight<C> {
  private readonly entries = new Set<Entry<C>>();

  /** How many are not done yet. */
  get size(): number {
    return this.entries.size;
  }

  /** Tracks `work` under `claims` until it settles; returns it. */
  add<T>(claims: C, work: Promise<T>): Promise<T> {
    const entry: Entry<C> = { claims, done: work };
    this.entries.add(entry);
    const forget = () => this.entries.delete(entry);
    work.then(forget, forget);
    return work;
  }

  /** Waits until every entry whose claims `holds` matches has settled (none: returns at once). */
  async settle(holds: (c: C) => boolean): Promise<void> {
    const waits = [...this.entries].filter((e) => holds(e.claims)).map((e) => e.done.catch(() => undefined));
    if (waits.length > 0) await Promise.all(waits);
  }

  /** Waits until nothing is in flight, including what was added meanwhile. */
  async drain(): Promise<void> {
    while (this.entries.size > 0) await Promise.all([...this.entries].map((e) => e.done.catch(() => undefined)));
  }
}
