import Database from "better-sqlite3";
import { Code } from "@connectrpc/connect";
import { keyString, type ConvKey, type ConvType, type ConversationRecord, type ReceiveOpt, type Settings } from "../domain/conversation.js";
import { fromSigned64, toSigned64 } from "../domain/marks.js";
import { withoutStack } from "../domain/stackless.js";
import { failure } from "../domain/validate.js";
import { opKey, planWrites, tombstoneOf, type OwnerCounters, type WriteOp } from "./planner.js";
import type { FeedCommit, FeedPeers } from "./sqlite-feed.js";
import {
  DEFAULT_TOMBSTONE_RETENTION_MS,
  type ApplyOutcome,
  type Change,
  type ChangePage,
  type ChangeQuery,
  type DeleteOutcome,
  type FeedOptions,
  type ListFilter,
  type ListPage,
  type ListQuery,
  type MarkStore,
  type StoreLimits,
} from "./store.js";

export interface SqliteStoreOptions extends FeedOptions {
  /** Database file, or ":memory:". */
  readonly path: string;
  readonly limits: StoreLimits;
  readonly now?: () => number;
  /** Updates per write transaction; between chunks the event loop gets a turn. */
  readonly chunkSize?: number;
  /** How long a write waits for another process's write lock before failing (default 5000 ms). */
  readonly busyTimeoutMs?: number;
  /** How often to look for commits of other processes on the same file (default 5 ms), while anything subscribes. */
  readonly pollIntervalMs?: number;
  /** Processes on the same file that hand each other their commits' changes (cluster workers: clusterFeedPeers). */
  readonly peers?: FeedPeers;
  /** With peers: how long a commit of another process may go unannounced before the reader reads it from the file (default 10 ms). */
  readonly peerWaitMs?: number;
  /** How many conversations' current states the write path keeps between transactions (default 32,768; 0: none). */
  readonly rowCacheSize?: number;
}

const SCHEMA_VERSION = 5;

// Feed: every change takes the owner's next `position` and the next store-wide `seq` (table feed)
// in the write's own IMMEDIATE transaction. SQLite serializes writers, also across processes, so seq
// order is commit order. A row carries the seq of its latest change; a deleted conversation moves
// to `tombstones` until the retention period ends.
//
// `conversations` is a rowid table with the key as a UNIQUE constraint (schema version 5; versions
// 1-4 made it WITHOUT ROWID). Every change rewrites the entries of the two indexes that hold
// position and seq; with a rowid table those entries end in an 8-byte rowid instead of the key's
// strings, and a List or Sync page reaches its rows by rowid. Measured side by side
// (docs/performance.md, "Schema version 5"): the store's UpdateConversations(100) path 7 % less
// CPU, a List page 50 % less, an owner's first Sync page of 1,000 changes 7 % more.
const conversationsTable = (name: string) => `
CREATE TABLE IF NOT EXISTS ${name} (
  owner          TEXT    NOT NULL,
  type           INTEGER NOT NULL,
  conv_id        TEXT    NOT NULL,
  marks          INTEGER NOT NULL,           -- signed form of the unsigned 64-bit mask
  custom_mark    TEXT    NOT NULL,
  labels         TEXT    NOT NULL,           -- JSON array, sorted
  pinned         INTEGER,                    -- settings: NULL means never set
  receive_option INTEGER,
  private_chat   INTEGER,
  burn_duration  INTEGER,
  attached_info  TEXT,
  ex             TEXT,
  version        INTEGER NOT NULL,
  update_time    INTEGER NOT NULL,
  position       INTEGER NOT NULL,           -- owner's stream position of the last change
  marked         INTEGER NOT NULL,           -- counts against the per-owner cap
  seq            INTEGER NOT NULL DEFAULT 0, -- store-wide feed position of the last change
  vendor_conv_id TEXT,                       -- a vendor's conversation ID, verbatim; NULL: none
  UNIQUE (owner, type, conv_id)
);`;
/** Every column of `conversations`, in table order (the version-5 rebuild copies them all). */
const CONVERSATION_COLUMNS =
  "owner, type, conv_id, marks, custom_mark, labels, pinned, receive_option, private_chat, burn_duration, attached_info, ex, version, update_time, position, marked, seq, vendor_conv_id";
const SCHEMA = `
${conversationsTable("conversations")}
CREATE TABLE IF NOT EXISTS owners (
  owner           TEXT    PRIMARY KEY,
  position        INTEGER NOT NULL,          -- last stream position handed out
  marked_count    INTEGER NOT NULL,
  purged_position INTEGER NOT NULL DEFAULT 0 -- highest position of a purged tombstone
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tombstones (
  owner       TEXT    NOT NULL,
  type        INTEGER NOT NULL,
  conv_id     TEXT    NOT NULL,
  version     INTEGER NOT NULL,
  update_time INTEGER NOT NULL,              -- deletion time
  position    INTEGER NOT NULL,
  seq         INTEGER NOT NULL,
  vendor_conv_id TEXT,                       -- the vendor conversation ID the conversation had
  PRIMARY KEY (owner, type, conv_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  seq        INTEGER NOT NULL,               -- last seq handed out
  purged_seq INTEGER NOT NULL                -- highest seq of a purged tombstone
);
`;

// Lists walk an owner's stream newest first; marks in the index let the mark filters skip rows
// without reading them from the table. The same index serves one owner's feed.
const INDEXES = `
CREATE UNIQUE INDEX IF NOT EXISTS conversations_owner_position_marks ON conversations (owner, position, marks);
CREATE INDEX IF NOT EXISTS conversations_seq ON conversations (seq);
CREATE INDEX IF NOT EXISTS conversations_owner_vendor_id ON conversations (owner, vendor_conv_id) WHERE vendor_conv_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS tombstones_owner_position ON tombstones (owner, position);
CREATE INDEX IF NOT EXISTS tombstones_seq ON tombstones (seq);
CREATE INDEX IF NOT EXISTS tombstones_time ON tombstones (update_time);
`;

// Rows are read as arrays (better-sqlite3's raw mode) of the columns they need: a row object with
// named properties costs more to build than the query itself, and the key columns are not read
// back when the caller already has them.
/** The columns every conversation has a value in, then those NULL for most (settings, vendor ID). */
const DENSE = "marks, custom_mark, labels, version, update_time, position";
const SPARSE = "pinned, receive_option, private_chat, burn_duration, attached_info, ex, vendor_conv_id";
/** A conversation's state, in this order, after whatever key columns a statement reads first. */
const STATE = `${DENSE}, ${SPARSE}`;
// Feed reads (Sync pages, the shared reader of new changes) read many rows per query, and each cell
// costs better-sqlite3 about as much to hand over as a small column is worth (~0.1 µs): SPARSE comes
// as one cell there, NULL when all seven are, else a JSON array of them (10 cells a row, not 16).
const PACKED_SPARSE = `CASE WHEN ${SPARSE.split(", ").map((c) => `${c} IS NULL`).join(" AND ")} THEN NULL ELSE json_array(${SPARSE}) END`;
/** What a feed read selects after the key columns: DENSE, seq, PACKED_SPARSE. */
const FEED_STATE = `${DENSE}, seq, ${PACKED_SPARSE}`;
// The write path's read of a transaction's current rows hands over 100 rows per request of
// UpdateConversations(100): packed alike (8 cells a row with conv_id, not 14), 2.5 -> 2.0 µs per row.
/** What the write path's read of the current rows selects after conv_id: DENSE, PACKED_SPARSE. */
const CURRENT_STATE = `${DENSE}, ${PACKED_SPARSE}`;
type Cell = bigint | string | null;
/** A raw row: key columns (if any), then STATE (or FEED_STATE). */
type RawRow = readonly Cell[];

interface TombRow {
  owner: string;
  type: bigint;
  conv_id: string;
  version: bigint;
  update_time: bigint;
  position: bigint;
  seq: bigint;
  vendor_conv_id: string | null;
}

const tombToRecord = (t: TombRow): ConversationRecord =>
  tombstoneOf(
    { owner: t.owner, type: Number(t.type) as ConvType, conversationId: t.conv_id },
    t.version,
    Number(t.update_time),
    t.position,
    t.vendor_conv_id ?? undefined,
  );

/** The DENSE cells of `r` from index `at` on, and the SPARSE ones from `sparse[s]` on (null: all NULL), as the record of `key`. */
function recordOf(key: ConvKey, r: RawRow, at: number, sparse: readonly (Cell | number)[] | null, s: number): ConversationRecord {
  const settings: Settings = {};
  let vendorConversationId: string | null = null;
  if (sparse !== null) {
    const pinned = sparse[s] as bigint | number | null;
    const receiveOption = sparse[s + 1] as bigint | number | null;
    const privateChat = sparse[s + 2] as bigint | number | null;
    const burnDuration = sparse[s + 3] as bigint | number | null;
    const attachedInfo = sparse[s + 4] as string | null;
    const ex = sparse[s + 5] as string | null;
    if (pinned !== null) settings.pinned = Number(pinned) !== 0;
    if (receiveOption !== null) settings.receiveOption = Number(receiveOption) as ReceiveOpt;
    if (privateChat !== null) settings.privateChat = Number(privateChat) !== 0;
    if (burnDuration !== null) settings.burnDurationSeconds = Number(burnDuration);
    if (attachedInfo !== null) settings.attachedInfo = attachedInfo;
    if (ex !== null) settings.ex = ex;
    vendorConversationId = sparse[s + 6] as string | null;
  }
  const labels = r[at + 2] as string;
  const record: ConversationRecord = {
    key,
    marks: fromSigned64(r[at] as bigint),
    customMark: r[at + 1] as string,
    labels: labels === "[]" ? [] : (JSON.parse(labels) as string[]),
    settings,
    version: r[at + 3] as bigint,
    updateTimeMs: Number(r[at + 4] as bigint),
    position: r[at + 5] as bigint,
  };
  return vendorConversationId !== null ? { ...record, vendorConversationId } : record;
}

/** The STATE columns of `r` from index `at` on, as the record of `key`. */
const stateToRecord = (key: ConvKey, r: RawRow, at: number): ConversationRecord => recordOf(key, r, at, r, at + 6);

/** A row of the write path's read (conv_id, then CURRENT_STATE) as the record of `key`. */
function currentRowToRecord(key: ConvKey, r: RawRow): ConversationRecord {
  const packed = r[7] as string | null;
  return recordOf(key, r, 1, packed === null ? null : (JSON.parse(packed) as (number | string | null)[]), 0);
}

/** The FEED_STATE columns of `r` from index `at` on, as a change of `key`. */
function feedRowToChange(key: ConvKey, r: RawRow, at: number): Change {
  const packed = r[at + 7] as string | null;
  return { record: recordOf(key, r, at, packed === null ? null : (JSON.parse(packed) as (number | string | null)[]), 0), deleted: false, seq: r[at + 6] as bigint };
}

const keyOf = (owner: string, type: Cell, conversationId: Cell): ConvKey => ({ owner, type: Number(type) as ConvType, conversationId: conversationId as string });

/** Merges two lists sorted by `by` into the first `limit` entries (and whether more exist). */
function mergeFeed(a: Change[], b: Change[], by: "position" | "seq", limit: number): { changes: Change[]; hasMore: boolean } {
  const val = (c: Change) => (by === "seq" ? c.seq : c.record.position);
  if (b.length === 0) return a.length > limit ? { changes: a.slice(0, limit), hasMore: true } : { changes: a, hasMore: false };
  const out: Change[] = [];
  let i = 0;
  let j = 0;
  while (out.length <= limit && (i < a.length || j < b.length)) {
    if (j >= b.length || (i < a.length && val(a[i]!) < val(b[j]!))) out.push(a[i++]!);
    else out.push(b[j++]!);
  }
  const hasMore = out.length > limit;
  return { changes: hasMore ? out.slice(0, limit) : out, hasMore };
}

const boolInt = (b: boolean | undefined) => (b === undefined ? null : b ? 1 : 0);

/**
 * Every page's LIMIT. A bare `LIMIT ?` makes SQLite 3.51 re-prepare the statement on every call
 * (the bound value may change the plan); the CAST keeps the prepared plan: a vendor-ID lookup
 * 26 → 7 µs, a 50-row page 52 → 40 µs (docs/performance.md, Session 6).
 */
export const LIMIT = "LIMIT CAST(? AS INTEGER)";

/** The SELECT of a list query with this filter's shape (parameters in the order list() pushes them). */
export function listSql(f: ListFilter, hasBefore: boolean): string {
  const where = ["owner = ?"];
  if (hasBefore) where.push("position < ?");
  if (f.marksAll !== 0n) where.push("(marks & ?) = ?");
  if (f.marksAny !== 0n) where.push("(marks & ?) != 0");
  if (f.marksNone !== 0n) where.push("(marks & ?) = 0");
  if (f.type !== undefined) where.push("type = ?");
  if (f.pinned === true) where.push("pinned = 1");
  if (f.pinned === false) where.push("(pinned IS NULL OR pinned = 0)");
  if (f.labelsAny.length > 0) {
    where.push(`EXISTS (SELECT 1 FROM json_each(labels) WHERE value IN (${f.labelsAny.map(() => "?").join(",")}))`);
  }
  // A lookup by vendor IDs: one JSON array parameter (any number of IDs is one statement), and the
  // partial index named, since the planner would otherwise walk the owner's rows for ORDER BY.
  const vendorIds = (f.vendorConversationIds?.length ?? 0) > 0;
  if (vendorIds) where.push("vendor_conv_id IS NOT NULL AND vendor_conv_id IN (SELECT value FROM json_each(?))");
  const from = vendorIds ? "conversations INDEXED BY conversations_owner_vendor_id" : "conversations";
  return `SELECT type, conv_id, ${STATE} FROM ${from} WHERE ${where.join(" AND ")} ORDER BY position DESC ${LIMIT}`;
}

/** The embedded default store: one SQLite file in WAL mode, safe for several processes sharing it. */
export function openSqliteStore(opts: SqliteStoreOptions): MarkStore {
  const db = new Database(opts.path);
  db.pragma("journal_mode = WAL");
  // NORMAL in WAL mode survives process crashes; a power loss may drop the last commits.
  db.pragma("synchronous = NORMAL");
  const busyTimeoutMs = Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000));
  db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  // Schema set-up and migration in one IMMEDIATE transaction, so processes opening the same file at
  // once do not both migrate it.
  try {
    db.transaction(() => {
      const userVersion = db.pragma("user_version", { simple: true }) as number;
      if (userVersion > SCHEMA_VERSION) {
        throw new Error(`${opts.path} has schema version ${userVersion}, newer than this convmark (${SCHEMA_VERSION})`);
      }
      const hadConversations = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'conversations'").get() !== undefined;
      db.exec(SCHEMA);
      if (hadConversations && userVersion < 3) {
        // Versions 1 and 2 had no feed: number the existing rows in update order.
        db.exec("DROP INDEX IF EXISTS conversations_owner_position"); // version 1's index without marks
        db.exec("ALTER TABLE conversations ADD COLUMN seq INTEGER NOT NULL DEFAULT 0");
        db.exec("ALTER TABLE owners ADD COLUMN purged_position INTEGER NOT NULL DEFAULT 0");
        db.exec(`UPDATE conversations SET seq = n.rn FROM (
            SELECT owner AS o, type AS t, conv_id AS c, row_number() OVER (ORDER BY update_time, owner, position) AS rn FROM conversations
          ) AS n WHERE owner = n.o AND type = n.t AND conv_id = n.c`);
      }
      // Version 4 added the vendor conversation ID (NULL for existing rows: none).
      for (const table of ["conversations", "tombstones"]) {
        const columns = db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`).all();
        if (!columns.some((c) => c.name === "vendor_conv_id")) db.exec(`ALTER TABLE ${table} ADD COLUMN vendor_conv_id TEXT`);
      }
      // Version 5: conversations as a rowid table. Older files hold it WITHOUT ROWID: copied into
      // the new table in one statement (dropping the old table drops its indexes; INDEXES below
      // builds them again), inside this transaction, so a failure leaves the file as it was.
      const conversationsSql = db.prepare<[], { sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'conversations'").get()?.sql ?? "";
      if (/WITHOUT\s+ROWID/i.test(conversationsSql)) {
        db.exec(conversationsTable("conversations_v5"));
        db.exec(`INSERT INTO conversations_v5 (${CONVERSATION_COLUMNS}) SELECT ${CONVERSATION_COLUMNS} FROM conversations ORDER BY owner, type, conv_id`);
        db.exec("DROP TABLE conversations");
        db.exec("ALTER TABLE conversations_v5 RENAME TO conversations");
      }
      db.exec(INDEXES);
      db.exec("INSERT OR IGNORE INTO feed (id, seq, purged_seq) SELECT 1, (SELECT count(*) FROM conversations), 0");
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }).immediate();
  } catch (e) {
    db.close();
    throw e;
  }

  const now = opts.now ?? Date.now;
  const chunkSize = opts.chunkSize ?? 1000;
  const limits = opts.limits;
  const retentionMs = opts.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS;

  const selectState = db
    .prepare<[string, number, string], RawRow>(`SELECT ${STATE} FROM conversations WHERE owner = ? AND type = ? AND conv_id = ?`)
    .safeIntegers(true)
    .raw(true);
  const currentOf = (k: ConvKey): ConversationRecord | undefined => {
    const row = selectState.get(k.owner, k.type, k.conversationId);
    return row ? stateToRecord({ owner: k.owner, type: k.type, conversationId: k.conversationId }, row, 0) : undefined;
  };
  const selectOwner = db
    .prepare<[string], { position: bigint; marked_count: bigint; purged_position: bigint }>(
      "SELECT position, marked_count, purged_position FROM owners WHERE owner = ?",
    )
    .safeIntegers(true);
  const selectFeed = db.prepare<[], { seq: bigint; purged_seq: bigint }>("SELECT seq, purged_seq FROM feed WHERE id = 1").safeIntegers(true);
  const updateFeedSeq = db.prepare("UPDATE feed SET seq = ? WHERE id = 1");
  const upsertOwner = db.prepare(
    `INSERT INTO owners (owner, position, marked_count) VALUES (?, ?, ?)
     ON CONFLICT (owner) DO UPDATE SET position = excluded.position, marked_count = excluded.marked_count`,
  );
  // Positional parameters (binding an object by name costs a few µs per row). A conversation the
  // plan read as existing is rewritten by UPDATE (one key lookup; the statement must hit exactly its
  // row); a new one is inserted (as an upsert, though under the write lock nothing can be there).
  const WRITTEN = "marks, custom_mark, labels, pinned, receive_option, private_chat, burn_duration, attached_info, ex, version, update_time, position, marked, seq, vendor_conv_id";
  const updateConversation = db.prepare(
    `UPDATE conversations SET ${WRITTEN.split(", ").map((c) => `${c} = ?`).join(", ")} WHERE owner = ? AND type = ? AND conv_id = ?`,
  );
  // The common change (marks only: custom mark, labels, settings and vendor ID as they were) writes
  // only the columns it changes.
  const updateMarks = db.prepare("UPDATE conversations SET marks = ?, version = ?, update_time = ?, position = ?, marked = ?, seq = ? WHERE owner = ? AND type = ? AND conv_id = ?");
  const upsertConversation = db.prepare(
    `INSERT INTO conversations (${WRITTEN}, owner, type, conv_id)
     VALUES (${Array.from({ length: 18 }, () => "?").join(", ")})
     ON CONFLICT (owner, type, conv_id) DO UPDATE SET
       marks = excluded.marks, custom_mark = excluded.custom_mark, labels = excluded.labels,
       pinned = excluded.pinned, receive_option = excluded.receive_option, private_chat = excluded.private_chat,
       burn_duration = excluded.burn_duration, attached_info = excluded.attached_info, ex = excluded.ex,
       version = excluded.version, update_time = excluded.update_time, position = excluded.position,
       marked = excluded.marked, seq = excluded.seq, vendor_conv_id = excluded.vendor_conv_id`,
  );
  const deleteConversation = db.prepare("DELETE FROM conversations WHERE owner = ? AND type = ? AND conv_id = ?");
  const deleteTombstone = db.prepare("DELETE FROM tombstones WHERE owner = ? AND type = ? AND conv_id = ?");
  const insertTombstone = db.prepare(
    "INSERT OR REPLACE INTO tombstones (owner, type, conv_id, version, update_time, position, seq, vendor_conv_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const ownerConversationsAfter = db
    .prepare<[string, bigint, number], RawRow>(`SELECT type, conv_id, ${FEED_STATE} FROM conversations WHERE owner = ? AND position > ? ORDER BY position ${LIMIT}`)
    .safeIntegers(true)
    .raw(true);
  // A read from the beginning of an owner whose whole stream fits in the page (an app's first sync):
  // every row of the owner, in key order (one range scan of the key's index), then sorted by
  // position here. In the WITHOUT ROWID table of versions 1-4 that was about 25% less than walking
  // the position index; with the rowid table the two measured alike (2.86 and 2.81 µs per change).
  const ownerConversations = db.prepare<[string], RawRow>(`SELECT type, conv_id, ${FEED_STATE} FROM conversations WHERE owner = ?`).safeIntegers(true).raw(true);
  const byPosition = (a: RawRow, b: RawRow) => ((a[7] as bigint) < (b[7] as bigint) ? -1 : 1); // DENSE's position after type, conv_id
  const ownerTombstonesAfter = db
    .prepare<[string, bigint, number], TombRow>(`SELECT * FROM tombstones WHERE owner = ? AND position > ? ORDER BY position ${LIMIT}`)
    .safeIntegers(true);
  const conversationsAfterSeq = db
    .prepare<[bigint, number], RawRow>(`SELECT owner, type, conv_id, ${FEED_STATE} FROM conversations WHERE seq > ? ORDER BY seq ${LIMIT}`)
    .safeIntegers(true)
    .raw(true);
  const tombstonesAfterSeq = db
    .prepare<[bigint, number], TombRow>(`SELECT * FROM tombstones WHERE seq > ? ORDER BY seq ${LIMIT}`)
    .safeIntegers(true);
  const purgeTombstones = db
    .prepare<[number], { owner: string; position: bigint; seq: bigint }>(
      "DELETE FROM tombstones WHERE update_time < ? RETURNING owner, position, seq",
    )
    .safeIntegers(true);
  const raisePurgedPosition = db.prepare("UPDATE owners SET purged_position = max(purged_position, ?) WHERE owner = ?");
  const raisePurgedSeq = db.prepare("UPDATE feed SET purged_seq = max(purged_seq, ?) WHERE id = 1");

  const keyParams = (k: ConvKey) => [k.owner, k.type, k.conversationId] as const;
  /** An UPDATE of a conversation the plan read must hit exactly that row (else the transaction fails). */
  const rewritten = (k: ConvKey, run: Database.RunResult) => {
    if (run.changes !== 1) throw new Error(`conversation ${k.owner}/${k.type}/${k.conversationId} is not where the plan read it`);
  };

  // The current states the write path knows between transactions, by owner. Every change of a
  // conversation moves its owner's stream position (owners.position) in the same transaction, in
  // whichever process writes it (the planner gives each change the owner's next position and
  // applyChunk writes the owner's row): so while an owner's stored position is the one the entry
  // was taken at, none of the owner's conversations has changed since, and the entry's states
  // (null: no live conversation) are what the file holds. applyChunk reads each owner's row in its
  // IMMEDIATE transaction first and drops the owner's entry when the position moved (another
  // process wrote); entries are added only after a COMMIT, and all of them dropped on any failure.
  // The caps, versions and positions still come from the file's owner row (the planner's counters).
  interface KnownOwner {
    position: bigint;
    /** By type (ConvType: 1, 2), then conversation ID: no key string built per lookup. */
    readonly rows: (Map<string, ConversationRecord | null> | undefined)[];
    size: number;
  }
  const knownState = (k: ConvKey): ConversationRecord | null | undefined => known.get(k.owner)?.rows[k.type]?.get(k.conversationId);
  const rowCacheSize = Math.max(0, Math.trunc(opts.rowCacheSize ?? 32_768));
  /** Least recently written owners first. */
  const known = new Map<string, KnownOwner>();
  let knownRows = 0;
  const forgetAll = () => {
    known.clear();
    knownRows = 0;
  };
  /** What a transaction saw and wrote, learnt once it committed: owners' positions after it, then (key, state) pairs in order. */
  interface Learnt {
    readonly positions: Map<string, bigint>;
    readonly rows: (ConvKey | ConversationRecord | null)[];
  }
  let learnt: Learnt | undefined;
  const learn = () => {
    const l = learnt;
    learnt = undefined;
    if (l === undefined || rowCacheSize === 0) return;
    for (const [owner, position] of l.positions) {
      let e = known.get(owner);
      if (e) known.delete(owner); // to the end: most recently written
      else e = { position, rows: [], size: 0 };
      e.position = position;
      known.set(owner, e);
    }
    const rows = l.rows;
    for (let i = 0; i < rows.length; i += 2) {
      const k = rows[i] as ConvKey;
      const e = known.get(k.owner)!;
      const byId = (e.rows[k.type] ??= new Map());
      const n = byId.size;
      byId.set(k.conversationId, rows[i + 1] as ConversationRecord | null);
      if (byId.size !== n) {
        e.size++;
        knownRows++;
      }
    }
    for (const [owner, e] of known) {
      if (knownRows <= rowCacheSize) break;
      known.delete(owner);
      knownRows -= e.size;
    }
  };

  // The current rows of a chunk's conversations, read ahead of the plan: one statement per owner and
  // type for up to READ_BATCH conversations (IN lists of 1, 2, 4 ... READ_BATCH keys, the last one
  // repeated to fill the list, so a handful of statements serve every size) instead of one per key.
  const READ_BATCH = 128;
  const selectStates = new Map<number, Database.Statement<unknown[], RawRow>>();
  const selectStatesOf = (n: number) => {
    let stmt = selectStates.get(n);
    if (!stmt) {
      const list = Array.from({ length: n }, () => "?").join(", ");
      stmt = db.prepare<unknown[], RawRow>(`SELECT conv_id, ${CURRENT_STATE} FROM conversations WHERE owner = ? AND type = ? AND conv_id IN (${list})`).safeIntegers(true).raw(true);
      selectStates.set(n, stmt);
    }
    return stmt;
  };
  /** Rows (conv_id, then CURRENT_STATE) by keyString of the chunk's keys not `known`; a key that is absent has no live conversation. */
  const readCurrent = (chunk: readonly WriteOp[]): Map<string, RawRow> => {
    const groups = new Map<string, { owner: string; type: number; ids: Set<string> }>();
    for (const op of chunk) {
      const k = opKey(op);
      if (knownState(k) !== undefined) continue;
      const g = `${k.owner}\u0000${k.type}`;
      let group = groups.get(g);
      if (!group) groups.set(g, (group = { owner: k.owner, type: k.type, ids: new Set() }));
      group.ids.add(k.conversationId);
    }
    const rows = new Map<string, RawRow>();
    const params: unknown[] = [];
    for (const [g, { owner, type, ids }] of groups) {
      const all = [...ids];
      for (let at = 0; at < all.length; at += READ_BATCH) {
        const part = all.length - at;
        const n = part >= READ_BATCH ? READ_BATCH : 2 ** Math.ceil(Math.log2(part));
        params.length = 0;
        params.push(owner, type);
        for (let i = 0; i < n; i++) params.push(all[Math.min(at + i, all.length - 1)]);
        for (const r of selectStatesOf(n).all(...params)) rows.set(`${g}\u0000${r[0] as string}`, r);
      }
    }
    return rows;
  };

  // Runs inside a write transaction that drain() opened with BEGIN IMMEDIATE (the write lock up
  // front, so concurrent processes serialize instead of failing).
  const applyChunk = (chunk: readonly WriteOp[]): (ApplyOutcome | DeleteOutcome)[] => {
    const owners = new Map<string, OwnerCounters>();
    const ownerOf = (owner: string): OwnerCounters => {
      let c = owners.get(owner);
      if (!c) {
        const row = selectOwner.get(owner);
        c = { position: row?.position ?? 0n, marked: Number(row?.marked_count ?? 0n) };
        owners.set(owner, c);
      }
      return c;
    };
    // Each owner's row first: an owner whose position moved since its states were known has had
    // changes this process did not make, and its known states go.
    for (const op of chunk) {
      const owner = opKey(op).owner;
      if (owners.has(owner)) continue;
      const c = ownerOf(owner);
      const e = known.get(owner);
      if (e !== undefined && e.position !== c.position) {
        known.delete(owner);
        knownRows -= e.size;
      }
    }
    const nowMs = now();
    const stored = readCurrent(chunk);
    const seen: Learnt["rows"] = [];
    const plan = planWrites(
      chunk,
      {
        current(k) {
          const state = knownState(k);
          if (state !== undefined) return state ?? undefined;
          const row = stored.get(keyString(k));
          const record = row ? currentRowToRecord({ owner: k.owner, type: k.type, conversationId: k.conversationId }, row) : undefined;
          seen.push(k, record ?? null);
          return record;
        },
        owner: ownerOf,
      },
      limits,
      nowMs,
    );
    const positions = new Map<string, bigint>();
    for (const [owner, c] of owners) positions.set(owner, plan.owners.get(owner)?.position ?? c.position);
    learnt = { positions, rows: seen };
    if (plan.changes.length === 0) return plan.outcomes;
    let seq = selectFeed.get()!.seq;
    const changes: Change[] = [];
    committed = { after: seq, changes }; // for the feed's listeners (deliverCommitted)
    for (const c of plan.changes) {
      seq += 1n;
      const r = c.record;
      changes.push({ record: r, deleted: c.kind === "delete", seq });
      seen.push(r.key, c.kind === "delete" ? null : r);
      if (c.kind === "delete") {
        deleteConversation.run(...keyParams(r.key));
        insertTombstone.run(...keyParams(r.key), r.version, r.updateTimeMs, r.position, seq, r.vendorConversationId ?? null);
        continue;
      }
      const s = r.settings;
      const k = r.key;
      const b = c.before;
      if (
        b &&
        r.customMark === b.customMark &&
        r.labels === b.labels &&
        s === b.settings &&
        r.vendorConversationId === b.vendorConversationId
      ) {
        rewritten(k, updateMarks.run(toSigned64(r.marks), r.version, r.updateTimeMs, r.position, c.marked ? 1 : 0, seq, k.owner, k.type, k.conversationId));
        continue;
      }
      const columns = [
        toSigned64(r.marks),
        r.customMark,
        r.labels.length === 0 ? "[]" : JSON.stringify(r.labels),
        boolInt(s.pinned),
        s.receiveOption ?? null,
        boolInt(s.privateChat),
        s.burnDurationSeconds ?? null,
        s.attachedInfo ?? null,
        s.ex ?? null,
        r.version,
        r.updateTimeMs,
        r.position,
        c.marked ? 1 : 0,
        seq,
        r.vendorConversationId ?? null,
        k.owner,
        k.type,
        k.conversationId,
      ];
      if (b) {
        rewritten(k, updateConversation.run(columns));
      } else {
        deleteTombstone.run(k.owner, k.type, k.conversationId);
        upsertConversation.run(columns);
      }
    }
    for (const [owner, o] of plan.owners) upsertOwner.run(owner, o.position, o.marked);
    updateFeedSeq.run(seq);
    return plan.outcomes;
  };

  // Taking the write lock without waiting in SQLite's busy handler: that handler sleeps on the
  // event loop's thread, so a worker waiting for another worker's commit could do nothing else
  // (not even parse the requests that would join its next transaction). When the lock is taken,
  // drain() retries on a timer instead, up to the busy timeout; the transaction itself runs with
  // the normal busy timeout.
  const noBusyWait = db.prepare("PRAGMA busy_timeout = 0");
  const busyWait = db.prepare(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
  const beginImmediate = db.prepare("BEGIN IMMEDIATE");
  const commit = db.prepare("COMMIT");
  const rollback = db.prepare("ROLLBACK");
  const isBusy = (e: unknown) => e instanceof Database.SqliteError && (e.code === "SQLITE_BUSY" || e.code.startsWith("SQLITE_BUSY_"));
  /**
   * true: this connection now holds the write lock; false: another connection does. With several
   * workers the lock is often taken, and each refusal is a SqliteError that is dropped: it is made
   * without a stack (capturing one walks the frames); any other error is thrown again with one.
   */
  const tryBeginImmediate = (): boolean => {
    noBusyWait.run();
    try {
      withoutStack(() => beginImmediate.run());
      return true;
    } catch (e) {
      if (isBusy(e)) return false;
      throw new Error(`BEGIN IMMEDIATE failed: ${(e as Error).message}`, { cause: e });
    } finally {
      busyWait.run();
    }
  };

  const listStatements = new Map<string, Database.Statement<unknown[], RawRow>>();
  const listStatement = (f: ListFilter, hasBefore: boolean): Database.Statement<unknown[], RawRow> => {
    const vendorIds = (f.vendorConversationIds?.length ?? 0) > 0;
    const shape = [hasBefore, f.marksAll !== 0n, f.marksAny !== 0n, f.marksNone !== 0n, f.type ?? 0, f.pinned ?? "-", f.labelsAny.length, vendorIds].join(",");
    let stmt = listStatements.get(shape);
    if (!stmt) {
      stmt = db.prepare<unknown[], RawRow>(listSql(f, hasBefore)).safeIntegers(true).raw(true);
      if (listStatements.size < 512) listStatements.set(shape, stmt);
    }
    return stmt;
  };

  let closed = false;
  const ensureOpen = () => {
    if (closed) throw new Error("store is closed");
  };

  // Group commit: calls arriving in the same event-loop turn share transactions of up to chunkSize
  // operations, so a single-update request does not pay a whole BEGIN/COMMIT of its own. Each
  // operation is still applied atomically and independently; a database error fails the operations
  // of its transaction (INTERNAL each, nothing of them applied) and no others.
  interface Pending {
    readonly ops: readonly WriteOp[];
    taken: number;
    readonly out: (ApplyOutcome | DeleteOutcome)[];
    resolve(out: (ApplyOutcome | DeleteOutcome)[]): void;
  }
  const queue: Pending[] = [];
  let scheduled = false;
  /** When drain() first found the write lock taken (undefined: not waiting). */
  let busySince: number | undefined;
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      setImmediate(drain);
    }
  };
  const drain = () => {
    scheduled = false;
    if (queue.length === 0) return;
    let lockError: unknown;
    try {
      if (closed) throw new Error("store is closed");
      if (!tryBeginImmediate()) {
        const t = performance.now();
        busySince ??= t;
        if (t - busySince < busyTimeoutMs) {
          // Requests keep arriving meanwhile and join the queue: the next try commits them together.
          scheduled = true;
          setTimeout(drain, 1);
          return;
        }
        lockError = new Error("database is locked");
      }
    } catch (e) {
      lockError = e;
    }
    busySince = undefined;
    const parts: { p: Pending; from: number; to: number }[] = [];
    for (let room = chunkSize; room > 0 && queue.length > 0; ) {
      const p = queue[0]!;
      const from = p.taken;
      const to = Math.min(p.ops.length, from + room);
      parts.push({ p, from, to });
      room -= to - from;
      p.taken = to;
      if (to === p.ops.length) queue.shift();
    }
    let outcomes: (ApplyOutcome | DeleteOutcome)[];
    const n = parts.reduce((k, { from, to }) => k + to - from, 0);
    try {
      if (lockError !== undefined) throw lockError;
      try {
        outcomes = applyChunk(parts.flatMap(({ p, from, to }) => p.ops.slice(from, to)));
        commit.run();
      } catch (e) {
        committed = undefined;
        learnt = undefined;
        forgetAll();
        if (db.inTransaction) rollback.run();
        throw e;
      }
      learn();
      deliverCommitted();
    } catch (e) {
      const f = failure(Code.Internal, `SQLite: ${e instanceof Error ? e.message : String(e)}`);
      outcomes = Array.from({ length: n }, () => ({ ok: false, failure: f }));
    }
    let i = 0;
    for (const { p, from, to } of parts) {
      for (let k = from; k < to; k++) p.out.push(outcomes[i++]!);
      if (p.out.length === p.ops.length) p.resolve(p.out);
    }
    if (queue.length > 0) schedule();
  };
  const enqueue = (ops: readonly WriteOp[]): Promise<(ApplyOutcome | DeleteOutcome)[]> => {
    if (closed) return Promise.reject(new Error("store is closed"));
    if (ops.length === 0) return Promise.resolve([]);
    return new Promise((resolve) => {
      queue.push({ ops, taken: 0, out: [], resolve });
      schedule();
    });
  };

  const ownerRowChange = (owner: string, r: RawRow): Change => feedRowToChange(keyOf(owner, r[0]!, r[1]!), r, 2);
  const rowChange = (r: RawRow): Change => feedRowToChange(keyOf(r[0] as string, r[1]!, r[2]!), r, 3);
  const tombChange = (t: TombRow): Change => ({ record: tombToRecord(t), deleted: true, seq: t.seq });

  /** One consistent snapshot of the feed after `after` (both tables and the head in one read transaction). */
  const readChanges = db.transaction((q: ChangeQuery): ChangePage => {
    const limit = Math.max(1, q.limit);
    let head: bigint;
    let purged: bigint;
    if (q.owner !== undefined) {
      const o = selectOwner.get(q.owner);
      head = o?.position ?? 0n;
      purged = o?.purged_position ?? 0n;
    } else {
      const f = selectFeed.get()!;
      head = f.seq;
      purged = f.purged_seq;
    }
    // A fresh reader (after 0) needs no tombstones; any other reader needs all of them since `after`.
    if (q.after > head || (q.after > 0n && q.after < purged)) return { changes: [], last: head, hasMore: false, reset: true };
    const owner = q.owner;
    const merged =
      owner !== undefined
        ? mergeFeed(
            (q.after === 0n && head <= BigInt(limit) ? ownerConversations.all(owner).sort(byPosition) : ownerConversationsAfter.all(owner, q.after, limit + 1)).map((r) =>
              ownerRowChange(owner, r),
            ),
            ownerTombstonesAfter.all(owner, q.after, limit + 1).map(tombChange),
            "position",
            limit,
          )
        : mergeFeed(conversationsAfterSeq.all(q.after, limit + 1).map(rowChange), tombstonesAfterSeq.all(q.after, limit + 1).map(tombChange), "seq", limit);
    const lastChange = merged.changes.at(-1);
    const last = lastChange ? (q.owner !== undefined ? lastChange.record.position : lastChange.seq) : q.after;
    return { changes: merged.changes, last, hasMore: merged.hasMore, reset: false };
  });

  // The shared reader: delivers every change committed after the first subscribe to all subscribers
  // of this process, in seq (commit) order, `readSeq` the last seq delivered.
  // - This connection's commits: their changes go out as the transaction wrote them, right after
  //   COMMIT (no query, no turn of the event loop in between), each change of the transaction, also
  //   two of one conversation. Only when another connection committed since the last delivery
  //   (its seqs come first) does the reader query the feed instead, from readSeq on.
  // - Commits of peers (opts.peers: the other workers of a cluster) arrive as their changes, and
  //   are delivered as they are when they follow on readSeq exactly; a commit (own or a peer's)
  //   that comes ahead of one not delivered yet is held until that one comes, or, after
  //   peerWaitMs, the reader reads the file (a message about what it read already is dropped).
  //   Every commit of this process goes to the peers.
  // - Commits of other processes on the file: noticed by polling data_version (a pragma that
  //   changes when another connection commits) every pollIntervalMs, then read (with peers: after
  //   peerWaitMs, unless their messages fill the gap first) with one query per batch of commits;
  //   such a read gives each conversation once, in its latest state.
  const listeners = new Set<(changes: readonly Change[]) => void>();
  let readSeq = 0n;
  let readerScheduled = false;
  let pollTimer: NodeJS.Timeout | undefined;
  let dataVersion = 0;
  const pollIntervalMs = opts.pollIntervalMs ?? 5;
  const peerWaitMs = opts.peerWaitMs ?? 10;
  /** Set by applyChunk for deliverCommitted: the seq before the transaction, and its changes. */
  let committed: { after: bigint; changes: Change[] } | undefined;
  let stopPeers: (() => void) | undefined;
  const emit = (changes: readonly Change[]) => {
    for (const l of [...listeners]) {
      try {
        l(changes);
      } catch {
        // a listener's failure is its own
      }
    }
  };
  /** Commits that came ahead of one not delivered yet, by the seq before them, waiting for it. */
  const held = new Map<bigint, FeedCommit>();
  let gapTimer: NodeJS.Timeout | undefined;
  const lastSeq = (c: FeedCommit) => c.changes.at(-1)!.seq;
  const readNew = () => {
    readerScheduled = false;
    if (closed || listeners.size === 0) return;
    for (;;) {
      const page = readChanges({ after: readSeq, limit: 1000 });
      if (page.reset) {
        readSeq = page.last; // only if the file was replaced under us
        break;
      }
      if (page.changes.length === 0) break;
      readSeq = page.last;
      emit(page.changes);
      if (!page.hasMore) break;
    }
    release();
  };
  function wakeReader() {
    if (!readerScheduled && listeners.size > 0) {
      readerScheduled = true;
      setImmediate(readNew);
    }
  }
  /** Delivers the held commits that now follow on readSeq, drops those the reader has read. */
  function release() {
    for (const [after, c] of held) if (lastSeq(c) <= readSeq) held.delete(after);
    for (let c = held.get(readSeq); c !== undefined; c = held.get(readSeq)) {
      held.delete(c.after);
      readSeq = lastSeq(c);
      emit(c.changes);
    }
    if (held.size === 0 && gapTimer) {
      clearTimeout(gapTimer);
      gapTimer = undefined;
    }
  }
  /** Another process committed what this one has not delivered: read the file, at once without peers, else once their messages had time to come. */
  function behind() {
    if (!opts.peers) return wakeReader();
    gapTimer ??= setTimeout(() => {
      gapTimer = undefined;
      wakeReader();
    }, peerWaitMs);
  }
  function deliverCommitted() {
    const c = committed;
    committed = undefined;
    if (c === undefined || c.changes.length === 0 || closed) return;
    opts.peers?.publish(c);
    deliver(c);
  }
  /** A commit's changes (this process's or a peer's), delivered as they are when they follow on what was delivered. */
  function deliver(c: FeedCommit) {
    if (listeners.size === 0 || c.changes.length === 0 || lastSeq(c) <= readSeq) return;
    if (c.after === readSeq) {
      readSeq = lastSeq(c);
      emit(c.changes);
      release();
    } else if (c.after > readSeq) {
      held.set(c.after, c); // commits this process has not seen came first: wait for them
      behind();
    } else {
      wakeReader(); // overlaps what was read (not expected): read on from readSeq
    }
  }
  const dataVersionOf = db.prepare<[], number>("PRAGMA data_version").pluck();
  const poll = () => {
    if (closed) return;
    const v = dataVersionOf.get()!;
    if (v !== dataVersion) {
      dataVersion = v;
      if (selectFeed.get()!.seq > readSeq) behind();
    }
  };

  const purge = db.transaction((): number => {
    const cutoff = now() - retentionMs;
    const gone = purgeTombstones.all(cutoff);
    const byOwner = new Map<string, bigint>();
    let maxSeq = 0n;
    for (const g of gone) {
      if ((byOwner.get(g.owner) ?? 0n) < g.position) byOwner.set(g.owner, g.position);
      if (g.seq > maxSeq) maxSeq = g.seq;
    }
    for (const [owner, position] of byOwner) raisePurgedPosition.run(position, owner);
    if (maxSeq > 0n) raisePurgedSeq.run(maxSeq);
    return gone.length;
  });
  const purgeNow = () => purge.immediate();
  // At open and then hourly; several processes purging the same file is harmless.
  try {
    purgeNow();
  } catch {
    // a busy file: the next round purges
  }
  const purgeTimer = setInterval(() => {
    try {
      if (!closed) purgeNow();
    } catch {
      // retried next hour
    }
  }, Math.min(3_600_000, Math.max(1000, retentionMs / 10)));
  purgeTimer.unref();

  return {
    async applyUpdates(updates) {
      return (await enqueue(updates.map((update) => ({ kind: "update", update })))) as ApplyOutcome[];
    },

    async restoreConversations(records) {
      return (await enqueue(records.map((record) => ({ kind: "restore", record })))) as ApplyOutcome[];
    },

    async deleteConversations(keys) {
      return (await enqueue(keys.map((key) => ({ kind: "delete", key })))) as DeleteOutcome[];
    },

    async changes(q) {
      ensureOpen();
      return readChanges(q);
    },

    async head(owner) {
      ensureOpen();
      return owner !== undefined ? (selectOwner.get(owner)?.position ?? 0n) : selectFeed.get()!.seq;
    },

    subscribe(listener) {
      ensureOpen();
      if (listeners.size === 0) {
        // Deliver from here on: what is committed now is already visible to a reader that subscribes.
        readSeq = selectFeed.get()!.seq;
        dataVersion = dataVersionOf.get()!;
        pollTimer = setInterval(poll, pollIntervalMs);
        pollTimer.unref();
        stopPeers = opts.peers?.listen((c) => {
          if (!closed) deliver(c);
        });
      }
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0 && pollTimer) {
          clearInterval(pollTimer);
          pollTimer = undefined;
          stopPeers?.();
          stopPeers = undefined;
          held.clear();
          clearTimeout(gapTimer);
          gapTimer = undefined;
        }
      };
    },

    async purgeTombstones() {
      ensureOpen();
      return purgeNow();
    },

    async get(key: ConvKey) {
      ensureOpen();
      return currentOf(key);
    },

    async batchGet(keys) {
      ensureOpen();
      return db.transaction(() => keys.map(currentOf))();
    },

    async list(q: ListQuery): Promise<ListPage> {
      ensureOpen();
      const f = q.filter;
      const params: unknown[] = [q.owner];
      if (q.before !== undefined) params.push(q.before);
      if (f.marksAll !== 0n) params.push(toSigned64(f.marksAll), toSigned64(f.marksAll));
      if (f.marksAny !== 0n) params.push(toSigned64(f.marksAny));
      if (f.marksNone !== 0n) params.push(toSigned64(f.marksNone));
      if (f.type !== undefined) params.push(f.type);
      params.push(...f.labelsAny);
      if ((f.vendorConversationIds?.length ?? 0) > 0) params.push(JSON.stringify(f.vendorConversationIds));
      params.push(q.limit + 1);
      const rows = listStatement(f, q.before !== undefined).all(...params);
      const more = rows.length > q.limit;
      const n = Math.min(rows.length, q.limit);
      const records: ConversationRecord[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const r = rows[i]!;
        records[i] = stateToRecord(keyOf(q.owner, r[0]!, r[1]!), r, 2);
      }
      const last = records.at(-1);
      return more && last ? { records, nextBefore: last.position } : { records };
    },

    async close() {
      if (closed) return;
      closed = true;
      clearInterval(purgeTimer);
      if (pollTimer) clearInterval(pollTimer);
      stopPeers?.();
      clearTimeout(gapTimer);
      listeners.clear();
      // Calls still queued for the group commit are refused rather than left hanging.
      for (const p of queue.splice(0)) {
        const f = failure(Code.Unavailable, "store is closed");
        while (p.out.length < p.ops.length) p.out.push({ ok: false, failure: f });
        p.resolve(p.out);
      }
      db.close();
    },
  };
}
