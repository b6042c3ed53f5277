/**
 * The write-ahead journal: what an operation is about to change, written before it starts and deleted
 * when it is done, so that a crash midway can be undone or completed at the next start (recovery.ts).
 *
 * Entries are not fsync'd (store.ts): they guard kernel objects (links, rules, namespaces and their mounts
 * under the exec root) that a daemon crash leaves in place — and the page cache keeps the entry — while a
 * power cut removes them, leaving an entry nothing to undo. The one durable effect of a journaled
 * operation, a network record, is fsync'd with its directory before the operation answers.
 */
import type { Store, LoadProblem } from '../store/store.js';
import { endpointFromStored, type EndpointRecord } from './endpoint.js';
import { networkFromStored, type NetworkRecord } from './network.js';

export type Intent =
  | { op: 'attach'; endpoint: EndpointRecord }
  | { op: 'create-network'; network: NetworkRecord }
  | { op: 'rm-network'; networkId: string }
  /** `endpoint`: the record, deleted before the deferred teardown is done (teardown-queue.ts); absent in old journals. */
  | { op: 'detach'; endpointId: string; endpoint?: EndpointRecord }
  /** `netd sandbox create`: the namespace kept at `key` is made before the sandbox's record is written. */
  | { op: 'sandbox-create'; sandboxId: string; key: string }
  /** `netd sandbox rm`, once its endpoints are gone: the namespace is removed before the record. */
  | { op: 'sandbox-rm'; sandboxId: string };

export class Journal {
  constructor(private readonly store: Store) {}

  /** Records an intent under the id of the object it is about. */
  write(id: string, intent: Intent): void {
    this.store.put('intents', id, intent);
  }

  done(id: string): void {
    this.store.delete('intents', id);
  }

  pending(problems: LoadProblem[]): Intent[] {
    return this.store.list<Intent>('intents', problems, fromStored);
  }
}

function fromStored(intent: Intent): Intent {
  if (intent.op === 'attach') return { ...intent, endpoint: endpointFromStored(intent.endpoint) };
  if (intent.op === 'detach' && intent.endpoint) return { ...intent, endpoint: endpointFromStored(intent.endpoint) };
  if (intent.op === 'create-network') return { ...intent, network: networkFromStored(intent.network) };
  return intent;
}
