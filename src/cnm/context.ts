/** What the controller's parts share: the model, its persistence and journal, IPAM, observers, logging. */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import type { Ipam } from '../ipam/ipam.js';
import type { Store } from '../store/store.js';
import type { Registry } from './registry.js';
import type { Journal } from './journal.js';
import type { Observers } from './observers.js';
import type { Targets } from './targets.js';
import type { NamespaceResolver } from './sandbox.js';
import type { TeardownQueue } from './teardown-queue.js';
import type { Joins } from './joins.js';
import type { GlobalScope } from './global-scope.js';

export interface CoreContext {
  registry: Registry;
  store: Store;
  journal: Journal;
  ipam: Ipam;
  observers: Observers;
  targets: Targets;
  resolver: NamespaceResolver;
  /** Detaches' deferred halves, and what they still hold (teardown-queue.ts). */
  teardowns: TeardownQueue;
  /** Attaches whose driver join runs outside the controller's lock (joins.ts). */
  joins: Joins;
  log: Logger;
  /** The cluster that coordinates global networks; none when the daemon runs alone (global-scope.ts). */
  global?: GlobalScope;
}

/** A new id for a network, endpoint or sandbox: 64 hex digits, as Docker's. */
export function newId(): string {
  return randomBytes(32).toString('hex');
}
