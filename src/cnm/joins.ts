/**
 * Attaches whose kernel work runs outside the controller's lock. An attach is prepared under the lock
 * (checks, the sandbox found or named, addresses from IPAM, the journal's intent); then the driver's join
 * — a veth, the container's side, published ports: work on objects of that container alone — runs while
 * the next operations are prepared; then the attach is committed (record, registry, observers), commits
 * one at a time.
 *
 * What an attach in flight holds — its container's namespace, its name, its endpoint id — makes another
 * attach needing one of them wait for it (`settle`). Every other operation under the lock waits until no
 * attach is in flight (`drain`), so it sees the model as after sequential attaches. Drivers opt in
 * (Capabilities.parallelJoin); the others join under the lock as before.
 */
import { InFlight } from './in-flight.js';
import { Mutex } from './mutex.js';

export interface JoinClaims {
  endpointId: string;
  networkId: string;
  /** Identity of the container's namespace. */
  nsId: string;
  /** The sandbox's name (a new sandbox's name is taken only when it is committed). */
  name: string;
}

export class Joins {
  private readonly inFlight = new InFlight<JoinClaims>();
  private readonly commits = new Mutex();

  get size(): number {
    return this.inFlight.size;
  }

  /** Runs `work` (the join and its commit), tracked under `claims` until it settles. */
  run<T>(claims: JoinClaims, work: () => Promise<T>): Promise<T> {
    return this.inFlight.add(claims, work());
  }

  /** Commits run one at a time (records, the registry, observers such as DNS and container files). */
  commit<T>(fn: () => Promise<T>): Promise<T> {
    return this.commits.run(fn);
  }

  settle(holds: (c: JoinClaims) => boolean): Promise<void> {
    return this.inFlight.settle(holds);
  }

  drain(): Promise<void> {
    return this.inFlight.drain();
  }
}
