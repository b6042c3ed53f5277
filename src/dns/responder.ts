/**
 * Turns one query from one client into one response: netd's own names answered from the directory,
 * everything else forwarded upstream (or refused, for containers that have no way out). Shared by the
 * UDP and TCP listeners. Local answers are computed synchronously; only forwarding returns a promise.
 */
import type { Answer } from 'dns-packet';
import type { Logger } from '../log.js';
import type { NameDirectory, Resolution } from './directory.js';
import type { Forwarder } from './forwarder.js';
import type { Upstream } from './resolv-conf.js';
import { RCODE, decodeQuery, encodeAnswer, encodeError, encodeTruncated, udpLimit, type Query } from './wire.js';
import { dottedName, readQuestion, udpLimitOf, wireNameKey } from './question.js';
import { AnswerCache, answerKey } from './answer-cache.js';
import { EncodedAnswer, wireName, type LocalRecord } from './local-answer.js';
import { IPAddress } from '../net/index.js';

/** Time to live of netd's own records: short, since names come and go with containers. */
export const LOCAL_TTL = 60;

export interface QueryContext {
  networkId: string;
  /** The client's source address. */
  client: string;
  transport: 'udp' | 'tcp';
}

export interface ResponderOptions {
  directory: NameDirectory;
  forwarder: Forwarder;
  /** The upstream resolvers in force now (they follow the host's resolv.conf). */
  upstreams: () => Upstream[];
  log: Logger;
}

/** A response to send, nothing (drop the packet), or a forward under way. */
export type Reply = Buffer | undefined | Promise<Buffer | undefined>;

const TYPE = { A: 1, PTR: 12, AAAA: 28, ANY: 255 } as const;
const CLASS_IN = 1;

export class Responder {
  private readonly cache: AnswerCache;

  constructor(private readonly opts: ResponderOptions) {
    this.cache = new AnswerCache(opts.directory);
  }

  respond(raw: Buffer, ctx: QueryContext): Reply {
    return this.respondLocal(raw, ctx) ?? this.respondDecoded(raw, ctx);
  }

  /**
   * The fast path: an ordinary question about one of netd's own names, answered from the cache or
   * encoded by hand (and cached). Undefined for anything else: the full decoder takes it.
   */
  private respondLocal(raw: Buffer, ctx: QueryContext): Buffer | undefined {
    const q = readQuestion(raw);
    if (!q || q.qclass !== CLASS_IN) return undefined;
    const scope = this.opts.directory.scopeKey(ctx.networkId, ctx.client);
    if (scope === undefined) return undefined;
    const limit = ctx.transport === 'udp' ? udpLimitOf(q) : undefined;
    const key = answerKey(scope, q, wireNameKey(raw, q));
    const cached = this.cache.get(key);
    if (cached) return cached.reply(raw, q, limit);
    const name = dottedName(raw, q);
    const resolution = this.opts.directory.resolve(ctx.networkId, ctx.client, name, /\.arpa$/.test(name));
    if (resolution.kind === 'miss') return undefined;
    const records = localRecords(resolution, q.qtype);
    if (!records) return undefined;
    const answer = EncodedAnswer.build(raw, q, resolution.kind === 'nxdomain' ? RCODE.NXDOMAIN : RCODE.NOERROR, records, LOCAL_TTL);
    // Several records come in a random order (round robin): those answers are made afresh each time.
    if (records.length <= 1) this.cache.set(key, answer);
    return answer.reply(raw, q, limit);
  }

  private respondDecoded(raw: Buffer, ctx: QueryContext): Reply {
    const decoded = decodeQuery(raw);
    if (!decoded.ok) return decoded.id === undefined ? undefined : encodeError(decoded.id, decoded.rcode);
    const query = decoded.query;
    const limit = ctx.transport === 'udp' ? udpLimit(query) : undefined;
    const question = query.questions[0];
    if ((question.class ?? 'IN') === 'IN') {
      const name = question.name;
      const resolution = this.opts.directory.resolve(ctx.networkId, ctx.client, name, /\.arpa\.?$/i.test(name));
      if (resolution.kind !== 'miss') return local(query, resolution, limit);
    }
    if (!this.opts.directory.mayForward(ctx.networkId, ctx.client)) return encodeAnswer(query, { rcode: RCODE.REFUSED });
    return this.forward(raw, query, ctx, limit);
  }

  private async forward(raw: Buffer, query: Query, ctx: QueryContext, limit: number | undefined): Promise<Buffer> {
    const result = await this.opts.forwarder.forward(raw, this.opts.upstreams(), ctx.transport === 'tcp');
    if (!result.ok) {
      this.opts.log.debug({ op: 'dns-forward', network: ctx.networkId, name: query.questions[0].name, reason: result.reason }, 'forward failed; SERVFAIL');
      return encodeAnswer(query, { rcode: RCODE.SERVFAIL });
    }
    // An upstream that ignored the client's buffer size: the client would drop it; tell it to use TCP.
    if (limit !== undefined && result.response.length > limit) return encodeTruncated(query);
    return result.response;
  }
}

function local(query: Query, resolution: Exclude<Resolution, { kind: 'miss' }>, limit: number | undefined): Buffer {
  if (resolution.kind === 'nxdomain') return encodeAnswer(query, { rcode: RCODE.NXDOMAIN, authoritative: true, limit });
  const question = query.questions[0];
  const type = question.type as string;
  const answers: Answer[] = [];
  if (resolution.kind === 'ptr') {
    if (type === 'PTR' || type === 'ANY') answers.push({ type: 'PTR', name: question.name, ttl: LOCAL_TTL, class: 'IN', data: resolution.target });
  } else {
    // Several containers may share an alias: all of them, in a random order (round robin).
    const entries = shuffled(resolution.entries);
    if (type === 'A' || type === 'ANY') {
      for (const e of entries) if (e.ipv4) answers.push({ type: 'A', name: question.name, ttl: LOCAL_TTL, class: 'IN', data: e.ipv4 });
    }
    if (type === 'AAAA' || type === 'ANY') {
      for (const e of entries) if (e.ipv6) answers.push({ type: 'AAAA', name: question.name, ttl: LOCAL_TTL, class: 'IN', data: e.ipv6 });
    }
  }
  // No record of the asked type for a name that exists: NOERROR with no answer (NODATA).
  return encodeAnswer(query, { rcode: RCODE.NOERROR, answers, authoritative: true, limit });
}

/** The records answering `qtype` for a local resolution, shuffled; undefined when one cannot be encoded here. */
function localRecords(resolution: Exclude<Resolution, { kind: 'miss' }>, qtype: number): LocalRecord[] | undefined {
  const records: LocalRecord[] = [];
  if (resolution.kind === 'ptr') {
    if (qtype !== TYPE.PTR && qtype !== TYPE.ANY) return records;
    const target = wireName(resolution.target);
    return target ? [{ type: TYPE.PTR, rdata: target }] : undefined;
  }
  if (resolution.kind !== 'found') return records;
  const entries = shuffled(resolution.entries);
  if (qtype === TYPE.A || qtype === TYPE.ANY) {
    for (const e of entries) if (e.ipv4) records.push({ type: TYPE.A, rdata: IPAddress.parse(e.ipv4).bytes });
  }
  if (qtype === TYPE.AAAA || qtype === TYPE.ANY) {
    for (const e of entries) if (e.ipv6) records.push({ type: TYPE.AAAA, rdata: IPAddress.parse(e.ipv6).bytes });
  }
  return records;
}

function shuffled<T>(list: readonly T[]): T[] {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
