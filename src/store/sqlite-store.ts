import Database from "better-sqlite3";
import { Code } from "@connectrpc/connect";
import {
  applyUpdate,
  exceedsLabelLimit,

  isMarked,
  type ConvKey,
  type ConvType,
  type ConversationRecord,
  type ReceiveOpt,
  type Settings,
  type ValidUpdate,
} from "../domain/conversation.js";
import { fromSigned64, toSigned64 } from "../domain/marks.js";
import { Reason } from "../domain/reasons.js";
import { failure } from "../domain/validate.js";
import type { ApplyOutcome, ListFilter, ListPage, ListQuery, MarkStore, StoreLimits } from "./store.js";

export interface SqliteStoreOptions {
  /** Database file, or ":memory:". */
  readonly path: string;
  readonly limits: StoreLimits;
  readonly now?: () => number;
  /** Updates per write transaction; between chunks the event loop gets a turn. */
  readonly chunkSize?: number;
}

const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS conversations (
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
  PRIMARY KEY (owner, type, conv_id)
) WITHOUT ROWID;
-- Lists walk an owner's stream newest first; marks in the index let the mark filters skip rows
-- without reading them from the table.
CREATE UNIQUE INDEX IF NOT EXISTS conversations_owner_position_marks ON conversations (owner, position, marks);
CREATE TABLE IF NOT EXISTS owners (
  owner        TEXT    PRIMARY KEY,
  position     INTEGER NOT NULL,             -- last stream position handed out
  marked_count INTEGER NOT NULL
) WITHOUT ROWID;
`;

interface Row {
  owner: string;
  type: bigint;
  conv_id: string;
  marks: bigint;
  custom_mark: string;
  labels: string;
  pinned: bigint | null;
  receive_option: bigint | null;
  private_chat: bigint | null;
  burn_duration: bigint | null;
  attached_info: string | null;
  ex: string | null;
  version: bigint;
  update_time: bigint;
  position: bigint;
}

interface OwnerState {
  position: bigint;
  markedCount: number;
  dirty: boolean;
}

function rowToRecord(r: Row): ConversationRecord {
  const settings: Settings = {};
  if (r.pinned !== null) settings.pinned = r.pinned !== 0n;
  if (r.receive_option !== null) settings.receiveOption = Number(r.receive_option) as ReceiveOpt;
  if (r.private_chat !== null) settings.privateChat = r.private_chat !== 0n;
  if (r.burn_duration !== null) settings.burnDurationSeconds = Number(r.burn_duration);
  if (r.attached_info !== null) settings.attachedInfo = r.attached_info;
  if (r.ex !== null) settings.ex = r.ex;
  return {
    key: { owner: r.owner, type: Number(r.type) as ConvType, conversationId: r.conv_id },
    marks: fromSigned64(r.marks),
    customMark: r.custom_mark,
    labels: JSON.parse(r.labels) as string[],
    settings,
    version: r.version,
    updateTimeMs: Number(r.update_time),
    position: r.position,
  };
}

const boolInt = (b: boolean | undefined) => (b === undefined ? null : b ? 1 : 0);

/** The embedded default store: one SQLite file in WAL mode, safe for several processes sharing it. */
export function openSqliteStore(opts: SqliteStoreOptions): MarkStore {
  const db = new Database(opts.path);
  db.pragma("journal_mode = WAL");
  // NORMAL in WAL mode survives process crashes; a power loss may drop the last commits.
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  const userVersion = db.pragma("user_version", { simple: true }) as number;
  if (userVersion > SCHEMA_VERSION) {
    db.close();
    throw new Error(`${opts.path} has schema version ${userVersion}, newer than this convmark (${SCHEMA_VERSION})`);
  }
  db.exec(SCHEMA);
  // Version 1 had the same index without marks.
  if (userVersion < 2) db.exec("DROP INDEX IF EXISTS conversations_owner_position");
  db.pragma(`user_version = ${SCHEMA_VERSION}`);

  const now = opts.now ?? Date.now;
  const chunkSize = opts.chunkSize ?? 1000;
  const { maxMarkedPerOwner, maxLabelsPerConversation } = opts.limits;

  const selectOne = db
    .prepare<[string, number, string], Row>("SELECT * FROM conversations WHERE owner = ? AND type = ? AND conv_id = ?")
    .safeIntegers(true);
  const selectOwner = db
    .prepare<[string], { position: bigint; marked_count: bigint }>("SELECT position, marked_count FROM owners WHERE owner = ?")
    .safeIntegers(true);
  const upsertOwner = db.prepare(
    `INSERT INTO owners (owner, position, marked_count) VALUES (?, ?, ?)
     ON CONFLICT (owner) DO UPDATE SET position = excluded.position, marked_count = excluded.marked_count`,
  );
  const upsertConversation = db.prepare(
    `INSERT INTO conversations (owner, type, conv_id, marks, custom_mark, labels, pinned, receive_option, private_chat,
       burn_duration, attached_info, ex, version, update_time, position, marked)
     VALUES (@owner, @type, @conv_id, @marks, @custom_mark, @labels, @pinned, @receive_option, @private_chat,
       @burn_duration, @attached_info, @ex, @version, @update_time, @position, @marked)
     ON CONFLICT (owner, type, conv_id) DO UPDATE SET
       marks = excluded.marks, custom_mark = excluded.custom_mark, labels = excluded.labels,
       pinned = excluded.pinned, receive_option = excluded.receive_option, private_chat = excluded.private_chat,
       burn_duration = excluded.burn_duration, attached_info = excluded.attached_info, ex = excluded.ex,
       version = excluded.version, update_time = excluded.update_time, position = excluded.position,
       marked = excluded.marked`,
  );

  const ownerState = (owners: Map<string, OwnerState>, owner: string): OwnerState => {
    let s = owners.get(owner);
    if (!s) {
      const row = selectOwner.get(owner);
      s = { position: row?.position ?? 0n, markedCount: Number(row?.marked_count ?? 0n), dirty: false };
      owners.set(owner, s);
    }
    return s;
  };

  const applyOne = (u: ValidUpdate, owners: Map<string, OwnerState>, nowMs: number): ApplyOutcome => {
    const row = selectOne.get(u.key.owner, u.key.type, u.key.conversationId);
    const cur = row ? rowToRecord(row) : undefined;
    const { next, changed } = applyUpdate(cur, u, nowMs);
    if (!changed) return { ok: true, record: next, changed: false };
    if (exceedsLabelLimit(cur, next, maxLabelsPerConversation)) {
      return {
        ok: false,
        failure: failure(Code.ResourceExhausted, `a conversation carries at most ${maxLabelsPerConversation} labels`, Reason.LabelLimit),
      };
    }
    const owner = ownerState(owners, u.key.owner);
    const wasMarked = cur !== undefined && isMarked(cur);
    const nowMarked = isMarked(next);
    if (nowMarked && !wasMarked && owner.markedCount >= maxMarkedPerOwner) {
      return {
        ok: false,
        failure: failure(
          Code.ResourceExhausted,
          `user ${u.key.owner} already has ${owner.markedCount} marked conversations (limit ${maxMarkedPerOwner})`,
          Reason.OwnerMarkedLimit,
        ),
      };
    }
    owner.position += 1n;
    owner.markedCount += Number(nowMarked) - Number(wasMarked);
    owner.dirty = true;
    const record: ConversationRecord = { ...next, position: owner.position };
    const s = record.settings;
    upsertConversation.run({
      owner: u.key.owner,
      type: u.key.type,
      conv_id: u.key.conversationId,
      marks: toSigned64(record.marks),
      custom_mark: record.customMark,
      labels: JSON.stringify(record.labels),
      pinned: boolInt(s.pinned),
      receive_option: s.receiveOption ?? null,
      private_chat: boolInt(s.privateChat),
      burn_duration: s.burnDurationSeconds ?? null,
      attached_info: s.attachedInfo ?? null,
      ex: s.ex ?? null,
      version: record.version,
      update_time: record.updateTimeMs,
      position: record.position,
      marked: nowMarked ? 1 : 0,
    });
    return { ok: true, record, changed: true };
  };

  // IMMEDIATE takes the write lock up front, so concurrent processes serialize instead of failing.
  const applyChunk = db.transaction((chunk: readonly ValidUpdate[]): ApplyOutcome[] => {
    const owners = new Map<string, OwnerState>();
    const nowMs = now();
    const out = chunk.map((u) => applyOne(u, owners, nowMs));
    for (const [owner, s] of owners) {
      if (s.dirty) upsertOwner.run(owner, s.position, s.markedCount);
    }
    return out;
  });

  const listStatements = new Map<string, Database.Statement<unknown[], Row>>();
  const listStatement = (f: ListFilter, hasBefore: boolean): Database.Statement<unknown[], Row> => {
    const shape = [hasBefore, f.marksAll !== 0n, f.marksAny !== 0n, f.marksNone !== 0n, f.type ?? 0, f.pinned ?? "-", f.labelsAny.length].join(",");
    let stmt = listStatements.get(shape);
    if (!stmt) {
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
      stmt = db
        .prepare<unknown[], Row>(`SELECT * FROM conversations WHERE ${where.join(" AND ")} ORDER BY position DESC LIMIT ?`)
        .safeIntegers(true);
      if (listStatements.size < 512) listStatements.set(shape, stmt);
    }
    return stmt;
  };

  let closed = false;
  const ensureOpen = () => {
    if (closed) throw new Error("store is closed");
  };

  // Group commit: calls arriving in the same event-loop turn share transactions of up to chunkSize
  // updates, so a single-update request does not pay a whole BEGIN/COMMIT of its own. Each update is
  // still applied atomically and independently; only a database error fails a whole transaction.
  interface Pending {
    readonly updates: readonly ValidUpdate[];
    taken: number;
    readonly out: ApplyOutcome[];
    resolve(out: ApplyOutcome[]): void;
    reject(e: unknown): void;
  }
  const queue: Pending[] = [];
  let scheduled = false;
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      setImmediate(drain);
    }
  };
  const drain = () => {
    scheduled = false;
    const parts: { p: Pending; from: number; to: number }[] = [];
    for (let room = chunkSize; room > 0 && queue.length > 0; ) {
      const p = queue[0]!;
      const from = p.taken;
      const to = Math.min(p.updates.length, from + room);
      parts.push({ p, from, to });
      room -= to - from;
      p.taken = to;
      if (to === p.updates.length) queue.shift();
    }
    try {
      if (closed) throw new Error("store is closed");
      const outcomes = applyChunk.immediate(parts.flatMap(({ p, from, to }) => p.updates.slice(from, to)));
      let i = 0;
      for (const { p, from, to } of parts) {
        for (let k = from; k < to; k++) p.out.push(outcomes[i++]!);
        if (p.out.length === p.updates.length) p.resolve(p.out);
      }
    } catch (e) {
      for (const { p } of parts) {
        const at = queue.indexOf(p);
        if (at >= 0) queue.splice(at, 1);
        p.reject(e);
      }
    }
    if (queue.length > 0) schedule();
  };

  return {
    applyUpdates(updates) {
      if (closed) return Promise.reject(new Error("store is closed"));
      if (updates.length === 0) return Promise.resolve([]);
      return new Promise<ApplyOutcome[]>((resolve, reject) => {
        queue.push({ updates, taken: 0, out: [], resolve, reject });
        schedule();
      });
    },

    async get(key: ConvKey) {
      ensureOpen();
      const row = selectOne.get(key.owner, key.type, key.conversationId);
      return row ? rowToRecord(row) : undefined;
    },

    async batchGet(keys) {
      ensureOpen();
      return db.transaction(() =>
        keys.map((k) => {
          const row = selectOne.get(k.owner, k.type, k.conversationId);
          return row ? rowToRecord(row) : undefined;
        }),
      )();
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
      params.push(q.limit + 1);
      const rows = listStatement(f, q.before !== undefined).all(...params);
      const more = rows.length > q.limit;
      const records = rows.slice(0, q.limit).map(rowToRecord);
      const last = records.at(-1);
      return more && last ? { records, nextBefore: last.position } : { records };
    },

    async close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}

