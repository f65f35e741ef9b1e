/**
 * MarkStore on MongoDB (official driver).
 *
 * Layout (builders and field list in ./mongo-updates.ts):
 * - `conversations`: one document per (owner, type, conversation id), unique index
 *   {owner: 1, type: 1, cid: 1}; index {owner: 1, position: -1} for newest-first lists and cursors;
 *   partial index {owner: 1, vendorCid: 1} for lookups by a vendor's conversation ID.
 * - `owners`: {_id: owner, position: last stream position used, marked: marked conversations}.
 *
 * Sharding (production): shard `conversations` on {owner: 1} and `owners` on {_id: 1}. The owner is a
 * prefix of both conversation indexes, so the unique index stays enforceable and every query and
 * write of this store targets a single shard per collection. A batch's transaction touches one owner,
 * i.e. at most one shard of each collection; if the two collections' chunks of an owner sit on
 * different shards the commit becomes a two-phase (cross-shard) commit, which is correct but slower
 * (zone the two collections alike to avoid it).
 *
 * Consistency: applyUpdates groups a batch by owner and runs each group (in chunks) as one
 * multi-document transaction (snapshot read concern, majority write concern), so transactions
 * need a replica set or a sharded cluster: a standalone mongod is refused at open (a single-node
 * replica set is fine for development: `mongod --replSet rs0` then `rs.initiate()`).
 * Inside the transaction the owner document and the affected conversations are read, every update
 * is computed in order with the shared domain applyUpdate (planOwnerBatch), failures (cap, labels)
 * are decided per item, and only then are the delta update documents written with one ordered
 * bulkWrite followed by the owners update. Every effective change writes the owners document, so
 * two transactions of one owner that both change something always write-conflict: one commits,
 * the other is retried by withTransaction on a fresh snapshot. That serializes the owner's stream
 * (strictly increasing positions without gaps or duplicates) and makes the marked-conversation cap
 * hold across concurrent callers and processes. No-op batches read only and write nothing.
 * Deletes go through the same planner: the conversation document is removed and a `tombstones`
 * document (key, version, deletion time, position) written in the same transaction.
 *
 * Feed, one owner: the conversations and tombstones with position > cursor (index {owner, position}),
 * read in one snapshot session.
 *
 * Feed, every owner (decision; the pure parts and the value layout are ./mongo-feed.ts): MongoDB
 * keeps no store-wide sequence (one counter every transaction writes would serialize all owners
 * and every shard), so the every-owner feed is the change stream of `conversations` and
 * `tombstones` itself, with post-images (`changeStreamPreAndPostImages`, MongoDB 6.0+, enabled at
 * open). Its order is the resume-token order: cluster time, then a fixed order among events of one
 * cluster time (one transaction's oplog entry; on a sharded cluster, and from 8.0 on any deployment,
 * unrelated events may share a cluster time too). A cursor holds (cluster time T, ordinal k of the
 * event among those of T): resuming opens the stream at startAtOperationTime T (inclusive) and skips
 * the first k+1 events of T, so it is exact even inside a transaction, across restarts (the point
 * is the server's, not this process's) and on any server of the deployment. A resume token would
 * be exact too but is variable-length opaque bytes; the ordinal keeps the cursor a number every
 * reader derives alike (the live reader and each catch-up count events of T from the first one).
 * - Sync/Watch catch-up (changes()): one short-lived change stream per page (tryNext, batchSize
 *   limit+1, maxAwaitTimeMS 25); caught up when the stream runs dry on an awaited getMore; then the
 *   cursor moves to the postBatchResumeToken's cluster time (a high-water mark: every event before
 *   it was returned) so an idle feed does not fall out of the oplog window. That token's layout
 *   (hex `_data` opening with 0x82 and the 8-byte cluster time) is the server's, not documented;
 *   when it does not parse the cursor stays at the last event, which is always safe.
 * - From the beginning: a scan of the current state (both collections, owners descending, each
 *   owner's positions ascending) whose cursor also holds the majority cluster time T0 taken before
 *   it, then the stream from T0. Whatever changes during the scan also comes through the stream, so
 *   the final state is exact; such a conversation may be sent more than once meanwhile.
 * - Head / "from now": the operationTime of a majority read (every commit at or before it is in the
 *   stream, every later one has a later cluster time).
 * - Reset (Sync reset: true, Watch FAILED_PRECONDITION): ChangeStreamHistoryLost (286; 280 on older
 *   servers) when the oplog no longer holds the point, a point beyond the head, or one older than
 *   the tombstone retention (in server cluster time). A cursor of another store or feed is
 *   INVALID_ARGUMENT.
 * - An update event whose post-image expired (changeStreamOptions.preAndPostImages.expireAfterSeconds
 *   shorter than the oplog) is sent with the document's current state (looked up), or skipped when
 *   it is gone (its tombstone follows).
 * Live delivery: one change stream per process from the majority cluster time of open, each server
 * batch handed to the subscribers as one batch (each conversation once in it), every change carrying
 * its every-owner feed value; one owner's watchers filter by position as before.
 * Sources (2026-12-02): MongoDB manual, change events (`clusterTime`: "events staged in a given
 * oplog entry share the same clusterTime ... Starting in MongoDB 8.0, [events with the same
 * clusterTime may not relate to the same transaction] on any deployment"; lsid+txnNumber identify a
 * transaction) https://www.mongodb.com/docs/upcoming/reference/change-events/shardCollection/ ;
 * changeStreamOptions.preAndPostImages.expireAfterSeconds (images kept until their oplog entry goes
 * by default) https://www.mongodb.com/docs/manual/reference/cluster-parameters/changestreamoptions/ ;
 * high-water-mark postBatchResumeToken on empty batches, SERVER-35740
 * https://jira.mongodb.org/browse/SERVER-35740 ; ChangeStreamHistoryLost, SERVER-112253; the driver
 * (mongodb 6.22, node_modules/mongodb/mongodb.d.ts and lib/cursor/change_stream_cursor.js):
 * ChangeStream.tryNext, resumeToken (the postBatchResumeToken once a batch is consumed),
 * ChangeStreamOptions.startAtOperationTime/resumeAfter/fullDocument/batchSize/maxAwaitTimeMS,
 * ClientSession.operationTime (advanced on causally consistent sessions).
 * Not verified here: none of this has run against a MongoDB server (none can run on this machine);
 * test/store/mongo.test.ts runs the contract, feed cases included, wherever MONGODB_URI is set.
 */
import { Code } from "@connectrpc/connect";
import { dbNameFromUri } from "../config.js";
import {
  Long,
  MongoClient,
  MongoError,
  MongoServerError,
  Timestamp,
  type ChangeStream,
  type Collection,
  type Document,
  type TransactionOptions,
} from "mongodb";
import { keyString, type ConvKey, type ConversationRecord, type ValidUpdate } from "../domain/conversation.js";
import { opKey, type WriteOp } from "./planner.js";
import { failure } from "../domain/validate.js";
import {
  CONVERSATIONS,
  OWNERS,
  TOMBSTONES,
  buildListFilter,
  toBigInt,
  tombstoneToRecord,
  conversationFilter,
  docToRecord,
  ownerKeysFilter,
  ownerStateOf,
  planOwnerBatch,
  type OwnerPlan,
} from "./mongo-updates.js";
import {
  ALL_OF_TIME,
  FEED_PIPELINE,
  Ordinals,
  SCAN_SORT,
  clusterTimeOf,
  decodeFeedPoint,
  feedEventOf,
  isHistoryLost,
  lookedUpChange,
  needsReset,
  resetPage,
  scanFilter,
  scanPageOf,
  readStreamPage,
  streamValue,
  timestampParts,
  collapseChanges,
  type FeedEvent,
  type FeedPoint,
} from "./mongo-feed.js";
import {
  DEFAULT_TOMBSTONE_RETENTION_MS,
  type ApplyOutcome,
  type Change,
  type ChangePage,
  type ChangeQuery,
  type DeleteOutcome,
  type FeedOptions,
  type ListPage,
  type ListQuery,
  type MarkStore,
  type StoreLimits,
} from "./store.js";

export interface MongoStoreOptions extends FeedOptions {
  /** Connection string; ignored for connecting when `client` is given. */
  readonly uri: string;
  /** Database name; defaults to the database in the URI path, else "convmark". */
  readonly dbName?: string;
  readonly limits: StoreLimits;
  /** Clock in milliseconds since the epoch (tests inject it). */
  readonly now?: () => number;
  /** An already created client to use; the store then does not close it. */
  readonly client?: MongoClient;
  /** Updates per transaction within one owner's group (default 500). */
  readonly maxUpdatesPerTransaction?: number;
  /** Owner groups of one batch run concurrently, at most this many at once (default 8). */
  readonly ownerConcurrency?: number;
}

interface OwnerDoc {
  _id: string;
  position: unknown;
  marked: unknown;
  purgedPosition?: unknown;
}

const TXN_OPTIONS: TransactionOptions = {
  readConcern: { level: "snapshot" },
  writeConcern: { w: "majority" },
  readPreference: "primary",
};

const IDLE = Symbol("idle");
const idle = (): Promise<typeof IDLE> => new Promise((resolve) => setImmediate(() => resolve(IDLE)));

/** How long a catch-up read of the every-owner stream waits on an empty getMore before it counts as caught up. */
const STREAM_PAGE_AWAIT_MS = 25;

/** Extra whole-transaction attempts for errors withTransaction does not retry itself. */
const MAX_EXTRA_ATTEMPTS = 5;

/** Re-exported for the directory adapter (the rule lives with the configuration). */
export { dbNameFromUri };

/** Creates the indexes (idempotent) after checking the deployment supports transactions. */
export async function openMongoStore(opts: MongoStoreOptions): Promise<MarkStore> {
  const owned = opts.client === undefined;
  const client = opts.client ?? new MongoClient(opts.uri);
  try {
    if (owned) await client.connect();
    await assertTransactionsSupported(client);
    const db = client.db(opts.dbName ?? dbNameFromUri(opts.uri) ?? "convmark");
    // useBigInt64: int64 fields (marks, version, position) come back as bigint.
    const conversations = db.collection<Document>(CONVERSATIONS, { useBigInt64: true });
    const owners = db.collection<OwnerDoc>(OWNERS, { useBigInt64: true });
    const tombstones = db.collection<Document>(TOMBSTONES, { useBigInt64: true });
    await conversations.createIndex({ owner: 1, type: 1, cid: 1 }, { unique: true, name: "owner_type_cid" });
    await conversations.createIndex({ owner: 1, position: -1 }, { name: "owner_position" });
    await conversations.createIndex(
      { owner: 1, vendorCid: 1 },
      { name: "owner_vendor_cid", partialFilterExpression: { vendorCid: { $exists: true } } },
    );
    await tombstones.createIndex({ owner: 1, type: 1, cid: 1 }, { unique: true, name: "owner_type_cid" });
    await tombstones.createIndex({ owner: 1, position: 1 }, { name: "owner_position" });
    await tombstones.createIndex({ updateTime: 1 }, { name: "update_time" });
    // The every-owner feed's initial scan reads owners descending, positions ascending (SCAN_SORT);
    // `conversations` serves it with owner_position read backwards.
    await tombstones.createIndex({ owner: -1, position: 1 }, { name: "owner_desc_position" });
    // Post-images let the change stream carry each document as that change left it.
    for (const coll of [CONVERSATIONS, TOMBSTONES]) {
      await db.command({ collMod: coll, changeStreamPreAndPostImages: { enabled: true } });
    }
    // Create `owners` up front: creating a collection implicitly inside a transaction needs 4.4+ and
    // is refused in cross-shard transactions; `conversations` exists through its indexes.
    await db.createCollection(OWNERS).catch((e: unknown) => {
      if (!(e instanceof MongoServerError && e.code === 48)) throw e; // NamespaceExists
    });
    // The majority-committed cluster time now: the live change stream starts here, so no commit
    // after open is missed.
    const startAt = await majorityTime(client, owners);
    return new MongoStore(client, owned, conversations, owners, tombstones, opts, startAt);
  } catch (e) {
    if (owned) await client.close().catch(() => undefined);
    throw e;
  }
}

/**
 * The cluster time of the majority-committed snapshot (the operationTime of a majority read: every
 * write at or before it is majority-committed, so a change stream returns all of them, and every
 * later commit has a later cluster time).
 */
async function majorityTime(client: MongoClient, owners: Collection<OwnerDoc>): Promise<bigint> {
  const session = client.startSession(); // causally consistent: the driver records operationTime
  try {
    await owners.findOne({ _id: "" }, { session, readConcern: { level: "majority" }, projection: { _id: 1 } });
    const t = session.operationTime;
    if (!t) throw new Error("MongoDB returned no operationTime for a majority read (needs a replica set or a sharded cluster)");
    return clusterTimeOf(t);
  } finally {
    await session.endSession().catch(() => undefined);
  }
}

async function assertTransactionsSupported(client: MongoClient): Promise<void> {
  const admin = client.db("admin");
  let hello: Document;
  try {
    hello = await admin.command({ hello: 1 });
  } catch (e) {
    // Servers before 4.4.2 only know the legacy name.
    if (e instanceof MongoServerError && e.code === 59) hello = await admin.command({ isMaster: 1 });
    else throw e;
  }
  if (hello.msg === "isdbgrid" || typeof hello.setName === "string") return;
  throw new Error(
    "MongoDB mark store needs multi-document transactions, which need a replica set or a sharded cluster, " +
      "but the server is a standalone mongod (its hello response has no setName and it is not a mongos). " +
      "For development run a single-node replica set: start mongod with --replSet rs0 and run rs.initiate() once.",
  );
}

class MongoStore implements MarkStore {
  private readonly now: () => number;
  private readonly chunk: number;
  private readonly concurrency: number;

  constructor(
    private readonly client: MongoClient,
    private readonly ownsClient: boolean,
    private readonly conversations: Collection<Document>,
    private readonly owners: Collection<OwnerDoc>,
    private readonly tombstones: Collection<Document>,
    private readonly opts: MongoStoreOptions,
    private readonly startAt: bigint,
  ) {
    this.now = opts.now ?? Date.now;
    this.chunk = Math.max(1, opts.maxUpdatesPerTransaction ?? 500);
    this.concurrency = Math.max(1, opts.ownerConcurrency ?? 8);
    this.retentionMs = opts.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS;
    this.purgeTimer = setInterval(() => void this.purgeTombstones().catch(() => undefined), Math.min(3_600_000, Math.max(1000, this.retentionMs / 10)));
    this.purgeTimer.unref();
  }

  private readonly retentionMs: number;
  private readonly purgeTimer: NodeJS.Timeout;
  private readonly listeners = new Set<(changes: readonly Change[]) => void>();
  private stream: ChangeStream | undefined;
  private reading: Promise<void> | undefined;
  private closed = false;

  applyUpdates(updates: readonly ValidUpdate[]): Promise<ApplyOutcome[]> {
    return this.apply(updates.map((update) => ({ kind: "update", update }))) as Promise<ApplyOutcome[]>;
  }

  restoreConversations(records: readonly ConversationRecord[]): Promise<ApplyOutcome[]> {
    return this.apply(records.map((record) => ({ kind: "restore", record }))) as Promise<ApplyOutcome[]>;
  }

  deleteConversations(keys: readonly ConvKey[]): Promise<DeleteOutcome[]> {
    return this.apply(keys.map((key) => ({ kind: "delete", key }))) as Promise<DeleteOutcome[]>;
  }

  private async apply(ops: readonly WriteOp[]): Promise<(ApplyOutcome | DeleteOutcome)[]> {
    const updates = ops;
    const ownerOf = (op: WriteOp) => opKey(op).owner;
    const outcomes: (ApplyOutcome | DeleteOutcome)[] = new Array(updates.length);
    const groups = new Map<string, number[]>();
    updates.forEach((u, i) => {
      let g = groups.get(ownerOf(u));
      if (!g) groups.set(ownerOf(u), (g = []));
      g.push(i);
    });
    const work = [...groups];
    let next = 0;
    const worker = async () => {
      while (next < work.length) {
        const [owner, indexes] = work[next++]!;
        for (let s = 0; s < indexes.length; s += this.chunk) {
          const idx = indexes.slice(s, s + this.chunk);
          const res = await this.applyOwnerChunk(owner, idx.map((i) => updates[i]!));
          idx.forEach((i, j) => (outcomes[i] = res[j]!));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, work.length) }, worker));
    return outcomes;
  }

  /** One transaction; a driver/server error fails every item of the chunk (nothing was applied). */
  private async applyOwnerChunk(owner: string, updates: WriteOp[]): Promise<(ApplyOutcome | DeleteOutcome)[]> {
    const keys = updates.map(opKey);
    for (let attempt = 0; ; attempt++) {
      const session = this.client.startSession();
      try {
        const plan = await session.withTransaction(async (): Promise<OwnerPlan> => {
          const ownerDoc = await this.owners.findOne({ _id: owner }, { session });
          const docs = await this.conversations.find(ownerKeysFilter(owner, keys), { session }).toArray();
          const current = new Map<string, ConversationRecord>();
          for (const d of docs) {
            const r = docToRecord(d);
            current.set(keyString(r.key), r);
          }
          const p = planOwnerBatch(owner, ownerStateOf(ownerDoc), current, updates, this.opts.limits, this.now());
          if (p.writes.length > 0 && p.ownerUpdate) {
            await this.conversations.bulkWrite(p.writes, { session, ordered: true });
            if (p.tombstoneWrites.length > 0) await this.tombstones.bulkWrite(p.tombstoneWrites, { session, ordered: true });
            await this.owners.updateOne({ _id: owner }, p.ownerUpdate, { session, upsert: true });
          }
          return p;
        }, TXN_OPTIONS);
        return plan.outcomes;
      } catch (e) {
        // Racing upserts of a brand-new owner or conversation can surface as a duplicate key error
        // rather than a (transient, retried) write conflict; a fresh transaction then sees the
        // committed document.
        if (attempt < MAX_EXTRA_ATTEMPTS && isRetryable(e)) continue;
        const message = `MongoDB: ${e instanceof Error ? e.message : String(e)}`;
        return updates.map(() => ({ ok: false, failure: failure(Code.Internal, message) }));
      } finally {
        await session.endSession().catch(() => undefined);
      }
    }
  }

  async get(key: ConvKey): Promise<ConversationRecord | undefined> {
    const doc = await this.conversations.findOne(conversationFilter(key));
    return doc ? docToRecord(doc) : undefined;
  }

  async batchGet(keys: readonly ConvKey[]): Promise<(ConversationRecord | undefined)[]> {
    const byOwner = new Map<string, ConvKey[]>();
    for (const k of keys) {
      let g = byOwner.get(k.owner);
      if (!g) byOwner.set(k.owner, (g = []));
      g.push(k);
    }
    const found = new Map<string, ConversationRecord>();
    await Promise.all(
      [...byOwner].map(async ([owner, ks]) => {
        const docs = await this.conversations.find(ownerKeysFilter(owner, ks)).toArray();
        for (const d of docs) {
          const r = docToRecord(d);
          found.set(keyString(r.key), r);
        }
      }),
    );
    return keys.map((k) => found.get(keyString(k)));
  }

  async list(query: ListQuery): Promise<ListPage> {
    if (query.limit <= 0) return { records: [] }; // limit(0) would mean "no limit" to MongoDB
    const docs = await this.conversations
      .find(buildListFilter(query))
      .sort({ position: -1 })
      .limit(query.limit + 1) // one extra to know whether another page exists
      .toArray();
    const records = docs.slice(0, query.limit).map(docToRecord);
    if (docs.length > query.limit) return { records, nextBefore: records[records.length - 1]!.position };
    return { records };
  }

  async changes(q: ChangeQuery): Promise<ChangePage> {
    if (q.owner === undefined) return this.everyOwnerChanges(q.after, Math.max(1, q.limit));
    const owner = q.owner;
    const limit = Math.max(1, q.limit);
    const session = this.client.startSession({ snapshot: true });
    try {
      const o = await this.owners.findOne({ _id: owner }, { session });
      const head = o ? toBigInt(o.position) : 0n;
      const purged = o ? toBigInt(o.purgedPosition) : 0n;
      if (q.after > head || (q.after > 0n && q.after < purged)) return { changes: [], last: head, hasMore: false, reset: true };
      const filter = { owner, position: { $gt: Long.fromBigInt(q.after) } };
      // One after the other: a session is not for concurrent operations.
      const live = await this.conversations.find(filter, { session }).sort({ owner: 1, position: 1 }).limit(limit + 1).toArray();
      const dead = await this.tombstones.find(filter, { session }).sort({ owner: 1, position: 1 }).limit(limit + 1).toArray();
      const all: Change[] = [
        ...live.map((d) => ({ record: docToRecord(d), deleted: false, seq: 0n })),
        ...dead.map((d) => ({ record: tombstoneToRecord(d), deleted: true, seq: 0n })),
      ].sort((a, b) => (a.record.position < b.record.position ? -1 : 1));
      const changes = all.slice(0, limit);
      return { changes, last: changes.at(-1)?.record.position ?? q.after, hasMore: all.length > limit, reset: false };
    } finally {
      await session.endSession().catch(() => undefined);
    }
  }

  /** Every owner's feed: the initial scan (from the beginning), then the change stream (see mongo-feed.ts). */
  private async everyOwnerChanges(after: bigint, limit: number): Promise<ChangePage> {
    const point = decodeFeedPoint(after); // INVALID_ARGUMENT for another store's value
    const head = await majorityTime(this.client, this.owners);
    if (needsReset(point, head, this.retentionMs)) return resetPage(head);
    if (point.kind === "begin") return this.scanPage(head, undefined, limit);
    if (point.kind === "scan") return this.scanPage(point.time, point, limit);
    try {
      return await this.streamPage(point, limit);
    } catch (e) {
      if (isHistoryLost(e)) return resetPage(head);
      throw e;
    }
  }

  /**
   * A page of the current state, as of (at least) cluster time `time`: the stream from `time` on
   * brings whatever changed during the scan, so the client's final state is exact.
   */
  private async scanPage(time: bigint, after: Extract<FeedPoint, { kind: "scan" }> | undefined, limit: number): Promise<ChangePage> {
    const filter = scanFilter(after);
    const live = await this.conversations.find(filter).sort(SCAN_SORT).limit(limit + 1).toArray();
    const dead = await this.tombstones.find(filter).sort(SCAN_SORT).limit(limit + 1).toArray();
    return scanPageOf(live, dead, limit, time);
  }

  /**
   * A page of the change stream after a point: opened at the point's cluster time (inclusive), the
   * events up to the point skipped by ordinal, then up to `limit` events; caught up when the stream
   * runs dry on an awaited getMore (a first, non-awaiting, empty batch is not enough).
   */
  private async streamPage(point: Extract<FeedPoint, { kind: "stream" }>, limit: number): Promise<ChangePage> {
    const stream = this.conversations.db.watch(FEED_PIPELINE, {
      startAtOperationTime: new Timestamp(timestampParts(point.time)),
      fullDocument: "whenAvailable",
      useBigInt64: true,
      batchSize: Math.min(limit + 1, 1000),
      maxAwaitTimeMS: STREAM_PAGE_AWAIT_MS,
    });
    try {
      return await readStreamPage(stream, point, limit, (e) => this.changeOf(e));
    } finally {
      await stream.close().catch(() => undefined);
    }
  }

  /** The change of an event; an update whose post-image expired is looked up (its current state). */
  private async changeOf(e: FeedEvent): Promise<Change | undefined> {
    if (e.change) return e.change;
    if (e.documentId === undefined) return undefined;
    return lookedUpChange(e, await this.conversations.findOne({ _id: e.documentId } as Document));
  }

  async head(owner?: string): Promise<bigint> {
    if (owner === undefined) return streamValue(await majorityTime(this.client, this.owners), ALL_OF_TIME);
    const o = await this.owners.findOne({ _id: owner });
    return o ? toBigInt(o.position) : 0n;
  }

  subscribe(listener: (changes: readonly Change[]) => void): () => void {
    this.listeners.add(listener);
    if (!this.reading) this.reading = this.readLive().finally(() => (this.reading = undefined));
    return () => void this.listeners.delete(listener);
  }

  /**
   * The one live reader of this process: the change stream from the store's opening, each server
   * batch handed to the subscribers at once, each conversation once in it (an update that adds and
   * removes labels is two events of one transaction), every change with its every-owner feed value.
   * It runs from the first subscribe until close(). A stream error other than those the driver
   * resumes itself reopens the stream after the last resume token a second later.
   */
  private async readLive(): Promise<void> {
    const ordinals = new Ordinals();
    let token: unknown;
    while (!this.closed) {
      const stream = this.conversations.db.watch(FEED_PIPELINE, {
        fullDocument: "whenAvailable",
      useBigInt64: true,
        ...(token !== undefined ? { resumeAfter: token } : { startAtOperationTime: new Timestamp(timestampParts(this.startAt)) }),
      });
      this.stream = stream;
      // next() of an event already in the driver's buffer settles within microtasks, before a
      // setImmediate; one that needs a getMore does not: that is where a server batch ends.
      let pending = stream.next();
      try {
        while (!this.closed) {
          const batch: Change[] = [];
          for (let ev: Document | typeof IDLE = await pending; ev !== IDLE; ev = await Promise.race([pending, idle()])) {
            pending = stream.next();
            const c = await this.changeOf(feedEventOf(ev, ordinals));
            if (c) batch.push(c);
          }
          token = stream.resumeToken;
          if (batch.length === 0) continue;
          const changes = collapseChanges(batch);
          for (const l of [...this.listeners]) {
            try {
              l(changes);
            } catch {
              // a listener's failure is its own
            }
          }
        }
      } catch {
        pending.catch(() => undefined);
        token = stream.resumeToken ?? token;
        if (!this.closed) await new Promise((r) => setTimeout(r, 1000).unref());
      } finally {
        pending.catch(() => undefined); // settles (rejects) when the stream closes
        this.stream = undefined;
        await stream.close().catch(() => undefined);
      }
    }
  }

  async purgeTombstones(): Promise<number> {
    const cutoff = new Date(this.now() - this.retentionMs);
    const old = await this.tombstones.find({ updateTime: { $lt: cutoff } }, { projection: { owner: 1, position: 1 } }).toArray();
    if (old.length === 0) return 0;
    // Raise each owner's purgedPosition before deleting, so a reader never misses a tombstone unnoticed.
    const byOwner = new Map<string, bigint>();
    for (const d of old) {
      const p = toBigInt(d.position);
      if ((byOwner.get(String(d.owner)) ?? 0n) < p) byOwner.set(String(d.owner), p);
    }
    await this.owners.bulkWrite(
      [...byOwner].map(([owner, p]) => ({ updateOne: { filter: { _id: owner }, update: { $max: { purgedPosition: Long.fromBigInt(p) } } } })),
    );
    // Still old: a conversation deleted again meanwhile has a fresh tombstone under the same _id.
    const res = await this.tombstones.deleteMany({ _id: { $in: old.map((d) => d._id) }, updateTime: { $lt: cutoff } });
    return res.deletedCount;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.purgeTimer);
    this.listeners.clear();
    await this.stream?.close().catch(() => undefined);
    if (this.ownsClient) await this.client.close();
  }
}

/**
 * Errors worth a fresh transaction that withTransaction does not retry itself. Transient errors are
 * not among them: when one reaches us, withTransaction has already retried for its 120 s budget.
 */
function isRetryable(e: unknown): boolean {
  return e instanceof MongoError && !e.hasErrorLabel("TransientTransactionError") && e.code === 11000; // DuplicateKey
}
