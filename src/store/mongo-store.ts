/**
 * MarkStore on MongoDB (official driver).
 *
 * Layout (builders and field list in ./mongo-updates.ts):
 * - `conversations`: one document per (owner, type, conversation id), unique index
 *   {owner: 1, type: 1, cid: 1}; index {owner: 1, position: -1} for newest-first lists and cursors.
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
 */
import { Code } from "@connectrpc/connect";
import { dbNameFromUri } from "../config.js";
import { MongoClient, MongoError, MongoServerError, type Collection, type Document, type TransactionOptions } from "mongodb";
import { keyString, type ConvKey, type ConversationRecord, type ValidUpdate } from "../domain/conversation.js";
import { failure } from "../domain/validate.js";
import {
  CONVERSATIONS,
  OWNERS,
  buildListFilter,
  conversationFilter,
  docToRecord,
  ownerKeysFilter,
  ownerStateOf,
  planOwnerBatch,
  type OwnerPlan,
} from "./mongo-updates.js";
import type { ApplyOutcome, ListPage, ListQuery, MarkStore, StoreLimits } from "./store.js";

export interface MongoStoreOptions {
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
}

const TXN_OPTIONS: TransactionOptions = {
  readConcern: { level: "snapshot" },
  writeConcern: { w: "majority" },
  readPreference: "primary",
};

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
    await conversations.createIndex({ owner: 1, type: 1, cid: 1 }, { unique: true, name: "owner_type_cid" });
    await conversations.createIndex({ owner: 1, position: -1 }, { name: "owner_position" });
    // Create `owners` up front: creating a collection implicitly inside a transaction needs 4.4+ and
    // is refused in cross-shard transactions; `conversations` exists through its indexes.
    await db.createCollection(OWNERS).catch((e: unknown) => {
      if (!(e instanceof MongoServerError && e.code === 48)) throw e; // NamespaceExists
    });
    return new MongoStore(client, owned, conversations, owners, opts);
  } catch (e) {
    if (owned) await client.close().catch(() => undefined);
    throw e;
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
    private readonly opts: MongoStoreOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.chunk = Math.max(1, opts.maxUpdatesPerTransaction ?? 500);
    this.concurrency = Math.max(1, opts.ownerConcurrency ?? 8);
  }

  async applyUpdates(updates: readonly ValidUpdate[]): Promise<ApplyOutcome[]> {
    const outcomes: ApplyOutcome[] = new Array(updates.length);
    const groups = new Map<string, number[]>();
    updates.forEach((u, i) => {
      let g = groups.get(u.key.owner);
      if (!g) groups.set(u.key.owner, (g = []));
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
  private async applyOwnerChunk(owner: string, updates: ValidUpdate[]): Promise<ApplyOutcome[]> {
    const keys = updates.map((u) => u.key);
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

  async close(): Promise<void> {
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
