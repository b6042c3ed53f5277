/**
 * PeerTable: the remote endpoints one overlay network's vxlan device forwards to, kept equal to the
 * kernel's entries on that device (vxlan FDB MAC → VTEP, NTF_SELF, permanent; neighbour IP → MAC,
 * permanent), written over rtnetlink with create-or-replace.
 *
 * - set(peer) writes the peer's 2-3 entries (no dump); when the endpoint was known with another MAC or
 *   address, the entries it no longer stands for are deleted (by MAC without a remote, by IP) or, when
 *   another peer claims them, given back to that peer. A changed VTEP is one FDB replace, which rewrites the
 *   remote in place (never a second remote: flannel#1036, moby#52661).
 * - remove(endpointId) deletes its entries (the FDB entry only if no other peer has the MAC).
 * - resync(peers) makes the device's tables equal to `peers` exactly, from a dump (start, after an etcd
 *   re-list, after a failure).
 *
 * Calls are serialised. A failed request leaves its entry "pending": the next call re-applies it from the
 * table, and the error (a KernelError with the errno) goes to the caller. When the device is made again
 * (ensureSegment's `created`), use a new table and resync it.
 */
import { Mutex } from '../../cnm/mutex.js';
import type { Rtnl } from '../../kernel/rtnetlink.js';
import { checkPeer, claims, desiredEntries, fdbKey, keysOf, neighbourKey, planResync, type EntryKey, type Peer } from './peer.js';

export type { Peer } from './peer.js';

/** The Rtnl methods a table uses (a fake in unit tests). */
export type PeerKernel = Pick<Rtnl, 'replaceFdb' | 'deleteFdb' | 'fdb' | 'replaceNeighbour' | 'deleteNeighbour' | 'neighbours'>;

export interface ResyncReport {
  /** Stale FDB remotes and permanent neighbour entries deleted. */
  deletedFdb: number;
  deletedNeighbours: number;
  /** Entries written because they were missing or different. */
  written: number;
}

export class PeerTable {
  /** In the order they were set (the later one wins a shared MAC or IP). */
  private readonly peers = new Map<string, Peer>();
  /** Entries whose last write or delete failed: re-applied by the next call. */
  private readonly pending = new Map<string, EntryKey>();
  private readonly mutex = new Mutex();

  constructor(
    private readonly kernel: PeerKernel,
    /** ifindex of the vxlan device. */
    readonly ifindex: number,
  ) {}

  get size(): number {
    return this.peers.size;
  }

  get(endpointId: string): Peer | undefined {
    return this.peers.get(endpointId);
  }

  list(): Peer[] {
    return [...this.peers.values()];
  }

  /** Programs a remote endpoint (or its new MAC, addresses or VTEP). */
  async set(peer: Peer): Promise<void> {
    const p = checkPeer(peer);
    return this.mutex.run(async () => {
      const old = this.peers.get(p.endpointId);
      this.peers.delete(p.endpointId);
      this.peers.set(p.endpointId, p);
      await this.apply([...keysOf(p), ...keysOf(old)], p);
    });
  }

  /** Forgets a remote endpoint and deletes its entries; false if the table did not have it. */
  remove(endpointId: string): Promise<boolean> {
    return this.mutex.run(async () => {
      const old = this.peers.get(endpointId);
      this.peers.delete(endpointId);
      await this.apply(keysOf(old));
      return old !== undefined;
    });
  }

  /** Makes the table `peers` and the device's entries exactly those (see planResync). */
  async resync(peers: readonly Peer[]): Promise<ResyncReport> {
    const checked = peers.map(checkPeer);
    return this.mutex.run(async () => {
      this.peers.clear();
      this.pending.clear();
      for (const p of checked) {
        this.peers.delete(p.endpointId);
        this.peers.set(p.endpointId, p);
      }
      const { kernel, ifindex } = this;
      const [fdb, n4, n6] = await Promise.all([kernel.fdb(ifindex), kernel.neighbours(4, ifindex), kernel.neighbours(6, ifindex)]);
      const plan = planResync(desiredEntries(this.peers.values()), fdb, [...n4, ...n6]);
      // Deletes first: a stale remote of a MAC that is also wanted goes before the wanted one is written.
      await settle([
        ...plan.deleteFdb.map((e) => ({ key: undefined, run: () => kernel.deleteFdb({ ifindex, mac: e.mac, dst: e.dst }) })),
        ...plan.deleteNeighbours.map((address) => ({ key: undefined, run: () => kernel.deleteNeighbour({ ifindex, address }) })),
      ]);
      await this.settleKeys([
        ...plan.writeFdb.map((e) => ({ key: fdbKey(e.mac), run: () => kernel.replaceFdb({ ifindex, mac: e.mac, dst: e.vtep }) })),
        ...plan.writeNeighbours.map((e) => ({ key: neighbourKey(e.address), run: () => kernel.replaceNeighbour({ ifindex, address: e.address, mac: e.mac }) })),
      ]);
      return { deletedFdb: plan.deleteFdb.length, deletedNeighbours: plan.deleteNeighbours.length, written: plan.writeFdb.length + plan.writeNeighbours.length };
    });
  }

  /** Makes each entry (and each pending one) what the table says: the claiming peer's value, or absent. */
  private async apply(keys: EntryKey[], latest?: Peer): Promise<void> {
    const all = new Map(this.pending);
    this.pending.clear();
    for (const k of keys) all.set(k.id, k);
    await this.settleKeys([...all.values()].map((key) => ({ key, run: () => this.applyKey(key, latest) })));
  }

  private applyKey(key: EntryKey, latest: Peer | undefined): Promise<unknown> {
    const owner = latest && claims(latest, key) ? latest : this.claimant(key);
    const { kernel, ifindex } = this;
    if (key.kind === 'fdb') {
      return owner ? kernel.replaceFdb({ ifindex, mac: owner.mac, dst: owner.vtep }) : kernel.deleteFdb({ ifindex, mac: key.mac });
    }
    return owner ? kernel.replaceNeighbour({ ifindex, address: key.address, mac: owner.mac }) : kernel.deleteNeighbour({ ifindex, address: key.address });
  }

  /** The peer set last among those that claim the entry. */
  private claimant(key: EntryKey): Peer | undefined {
    let found: Peer | undefined;
    for (const p of this.peers.values()) if (claims(p, key)) found = p;
    return found;
  }

  /** Runs the requests together; a failed one's entry becomes pending; the first error is thrown. */
  private async settleKeys(jobs: Job[]): Promise<void> {
    await settle(jobs, (key) => this.pending.set(key.id, key));
  }
}

interface Job {
  key: EntryKey | undefined;
  run: () => Promise<unknown>;
}

async function settle(jobs: Job[], onFail?: (key: EntryKey) => void): Promise<void> {
  const results = await Promise.allSettled(jobs.map((j) => j.run()));
  let first: unknown;
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') return;
    first ??= r.reason;
    const key = jobs[i].key;
    if (key && onFail) onFail(key);
  });
  if (first !== undefined) throw first;
}
