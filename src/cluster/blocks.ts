/**
 * Address blocks (Calico's IPAM blocks): a global network's subnet is cut into blocks (a /26, 64
 * addresses, unless the subnet is smaller), and each host allocates its containers' addresses only inside
 * blocks it claimed. A claim is one create-if-absent transaction on `blocks/<net>/<block>`: two hosts
 * can never hold one block, and an attach waits on etcd only when its host has no free address left in
 * its blocks. The blocks a host holds are also kept in its data root, so that after a restart it goes on
 * allocating in them.
 *
 * A dead host's blocks go back to the pool after a grace period (cluster-view.ts). So a host never
 * allocates in a block it is not sure is still its own (flannel#1289: a host that was away reusing a lease
 * meanwhile given to another):
 * - after a start and after every outage, its blocks are checked against etcd before the next allocation
 *   (`validate`): a block etcd gives to another host is dropped, one etcd lost is claimed again;
 * - while etcd cannot be reached, its blocks are used only until the grace period has passed since they
 *   were last confirmed (`confirmed`, kept in the file across restarts): after that, other hosts may hold them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { ConflictError } from '../errors.js';
import type { Logger } from '../log.js';
import { Prefix } from '../net/index.js';
import { writeFileAtomic } from '../store/atomic-file.js';
import type { EtcdStore } from './etcd-store.js';
import { keys, parseJson, isBlockRecord, type BlockRecord } from './records.js';

/** Addresses per block: 2^(32-26) = 64 (a smaller subnet is one block). */
export const BLOCK_LENGTH = 26;

/** The blocks a subnet is cut into, in order. */
export function blocksOf(subnet: Prefix): Prefix[] {
  const length = Math.max(BLOCK_LENGTH, subnet.length);
  const size = 1n << BigInt(32 - length);
  const count = subnet.size / size;
  const out: Prefix[] = [];
  for (let i = 0n; i < count && i < 65536n; i++) out.push(Prefix.of(subnet.at(i * size), length));
  return out;
}

interface BlockFile {
  /** network id → blocks. */
  blocks: Record<string, string[]>;
  /** When etcd last confirmed them (ms since the epoch). */
  confirmed: number;
}

export class BlockLeases {
  /** network id → the blocks this host holds (as the file has them). */
  private readonly held = new Map<string, Prefix[]>();
  /** Networks whose blocks were checked against etcd since the start or the last outage. */
  private readonly validated = new Set<string>();
  /** When etcd last confirmed this host's blocks (ms since the epoch; 0: never). */
  private confirmed = 0;

  constructor(
    private readonly deps: { store: EtcdStore; hostId: string; file: string; log: Logger; graceMs: number },
  ) {
    if (existsSync(deps.file)) {
      try {
        const raw = JSON.parse(readFileSync(deps.file, 'utf8')) as BlockFile;
        for (const [net, list] of Object.entries(raw.blocks ?? {})) this.held.set(net, list.map((b) => Prefix.parse(b)));
        this.confirmed = typeof raw.confirmed === 'number' ? raw.confirmed : 0;
      } catch (err) {
        deps.log.warn({ err, file: deps.file }, 'unreadable block file; blocks are read back from etcd');
      }
    }
  }

  /** After an outage (a full re-read of etcd): every network's blocks are checked again before use. */
  invalidate(): void {
    this.validated.clear();
  }

  /**
   * Whether this host may allocate in its blocks of a network now: checked against etcd (first use after a
   * start or an outage), or — etcd unreachable — confirmed less than the grace period ago.
   */
  async usable(networkId: string): Promise<boolean> {
    if (this.validated.has(networkId)) return true;
    if (this.deps.store.up) {
      await this.validate(networkId);
      return true;
    }
    return Date.now() - this.confirmed < this.deps.graceMs;
  }

  /** Drops the blocks etcd gives to another host; claims again those it lost. */
  private async validate(networkId: string): Promise<void> {
    const { store, hostId, log } = this.deps;
    const listed = await store.list(keys.blocks(networkId));
    const owners = new Map(listed.kvs.map((kv) => [kv.key, parseJson<BlockRecord>(kv.value, isBlockRecord)?.host]));
    const kept: Prefix[] = [];
    for (const block of this.of(networkId)) {
      const key = keys.block(networkId, block);
      const owner = owners.get(key);
      if (owner === hostId) kept.push(block);
      else if (owner === undefined && (await store.createIfAbsent([{ key, value: JSON.stringify({ host: hostId, claimed: new Date().toISOString() }) }]))) kept.push(block);
      else log.warn({ op: 'validate-blocks', network: networkId, block: block.toString(), owner }, 'an address block this host held is another host\'s now: not used any more');
    }
    this.held.set(networkId, kept);
    this.validated.add(networkId);
    this.confirmed = Date.now();
    this.save();
  }

  /** The blocks this host holds on a network: the same array until they change. */
  of(networkId: string): readonly Prefix[] {
    let list = this.held.get(networkId);
    if (!list) this.held.set(networkId, (list = []));
    return list;
  }

  /** A network is gone: its blocks with it (the cluster deleted its keys). */
  forget(networkId: string): void {
    if (this.held.delete(networkId)) this.save();
  }

  /**
   * Claims one more block of `subnet` for this host: its own blocks etcd has and the file lost first, then
   * the first block nobody holds. ConflictError when every block is held; the store's StoreUnavailableError when etcd
   * does not answer within its call deadline.
   */
  async claim(networkId: string, subnet: Prefix): Promise<Prefix> {
    const { store, hostId } = this.deps;
    for (let attempt = 0; attempt < 5; attempt++) {
      const listed = await store.list(keys.blocks(networkId));
      const taken = new Map<string, BlockRecord | undefined>();
      for (const kv of listed.kvs) taken.set(kv.key, parseJson<BlockRecord>(kv.value, isBlockRecord));
      const mine = this.of(networkId);
      const candidates = blocksOf(subnet).filter((b) => !mine.some((m) => m.equals(b)));
      const ours = candidates.find((b) => taken.get(keys.block(networkId, b))?.host === hostId);
      if (ours) return this.add(networkId, ours);
      const free = candidates.find((b) => !taken.has(keys.block(networkId, b)));
      if (!free) throw new ConflictError(`no free address left on ${subnet}: every address block is held by a host of the cluster`);
      const record: BlockRecord = { host: hostId, claimed: new Date().toISOString() };
      if (await store.createIfAbsent([{ key: keys.block(networkId, free), value: JSON.stringify(record) }])) {
        this.deps.log.info({ op: 'claim-block', network: networkId, block: free.toString() }, 'address block claimed');
        return this.add(networkId, free);
      }
      // Another host claimed it first: list again.
    }
    throw new ConflictError(`could not claim an address block of ${subnet}: other hosts kept claiming the same ones; try again`);
  }

  private add(networkId: string, block: Prefix): Prefix {
    this.held.set(networkId, [...this.of(networkId), block]);
    this.confirmed = Date.now();
    this.save();
    return block;
  }

  private save(): void {
    const out: BlockFile = { blocks: {}, confirmed: this.confirmed };
    for (const [net, list] of this.held) out.blocks[net] = list.map(String);
    writeFileAtomic(this.deps.file, JSON.stringify(out));
  }
}
