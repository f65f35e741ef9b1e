import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Code } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { ConvType, type ConversationRecord } from "../../src/domain/conversation.js";
import { listSql, openSqliteStore } from "../../src/store/sqlite-store.js";
import type { Change, ListFilter } from "../../src/store/store.js";
import { describeStoreContract, key, upd } from "./contract.js";
import { prng } from "../support/prng.js";

const dir = mkdtempSync(join(tmpdir(), "convmark-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const NO_FILTER_LIST = { marksAll: 0n, marksAny: 0n, marksNone: 0n, labelsAny: [] };

describeStoreContract(
  "sqlite (file, WAL)",
  async ({ limits, now, tombstoneRetentionMs }) =>
    openSqliteStore({ path: join(dir, `t${n++}.db`), limits, now, chunkSize: 2, ...(tombstoneRetentionMs !== undefined ? { tombstoneRetentionMs } : {}) }),
  { storeWideOrder: true },
);

describe("sqlite store", () => {
  it("survives a reopen of the same file", async () => {
    const path = join(dir, "reopen.db");
    const limits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };
    const a = openSqliteStore({ path, limits });
    await a.applyUpdates([upd(key("u", "c"), { set: [1, 64], customMark: "m", addLabels: ["x"], settings: { receiveOption: 2 } })]);
    await a.close();
    const b = openSqliteStore({ path, limits });
    const r = await b.get(key("u", "c"));
    expect(r?.marks).toBe((1n << 63n) | 1n);
    expect(r?.customMark).toBe("m");
    expect(r?.labels).toEqual(["x"]);
    expect(r?.settings).toEqual({ receiveOption: 2 });
    // The stream continues where it stopped.
    const [next] = await b.applyUpdates([upd(key("u", "d"), { set: [2] })]);
    expect(next?.ok && next.record.position).toBe(2n);
    await b.close();
  });

  it("reads every column back alike through get, batchGet, list and both feeds, after marks-only and full rewrites", async () => {
    // Each read statement selects its own columns (raw rows, decoded by position), and a write is a
    // marks-only UPDATE, a full UPDATE or an insert: all must agree with what the write returned.
    const path = join(dir, "columns.db");
    const limits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };
    const s = openSqliteStore({ path, limits });
    const full = key("u", "full", ConvType.Group);
    const plain = key("u", "plain");
    const settings = { pinned: true, receiveOption: 3 as const, privateChat: false, burnDurationSeconds: 30, attachedInfo: "a\u00e9", ex: "{\"x\":1}" };
    await s.applyUpdates([
      upd(full, { set: [1, 64], customMark: "m", addLabels: ["b", "a"], settings, vendorConversationId: "sg_full" }),
      upd(plain, { set: [2] }),
    ]);
    const marksOnly = await s.applyUpdates([upd(full, { set: [3], clear: [1] }), upd(plain, { set: [63] })]);
    const rewritten = await s.applyUpdates([upd(plain, { settings: { pinned: false }, addLabels: ["z"] })]);
    const want = [marksOnly[0], rewritten[0]].map((o) => (o?.ok ? o.record : undefined));
    expect(want[0]).toMatchObject({ marks: (1n << 63n) | 4n, customMark: "m", labels: ["a", "b"], settings, vendorConversationId: "sg_full", version: 2n, position: 3n });
    expect(want[1]).toMatchObject({ marks: (1n << 62n) | 2n, labels: ["z"], settings: { pinned: false }, version: 3n, position: 5n });
    await s.close();

    const again = openSqliteStore({ path, limits });
    expect([await again.get(full), await again.get(plain)]).toEqual(want);
    expect(await again.batchGet([full, key("u", "none"), plain])).toEqual([want[0], undefined, want[1]]);
    expect((await again.list({ owner: "u", filter: NO_FILTER_LIST, limit: 5 })).records).toEqual([want[1], want[0]]);
    const ownerFeed = await again.changes({ owner: "u", after: 0n, limit: 5 });
    expect(ownerFeed.changes.map((c) => c.record)).toEqual([want[0], want[1]]);
    const allFeed = await again.changes({ after: 0n, limit: 5 });
    expect(allFeed.changes.map((c) => [c.record, c.seq])).toEqual([
      [want[0], 3n],
      [want[1], 5n],
    ]);
    expect(ownerFeed.changes.map((c) => c.seq)).toEqual([3n, 5n]);
    await again.close();
  });

  it("reads a large batch's current rows ahead, by owner and type, with the same outcomes as one operation per transaction", async () => {
    // The write path reads the current rows of a transaction's conversations with a few IN-list
    // statements per owner and type (lists of 1, 2, 4 ... 128 keys). A store that writes each
    // operation in its own transaction (chunkSize 1) reads one key at a time: both must agree on
    // every outcome and on what is stored, for groups of every size, existing and new keys,
    // one conversation ID under both types, keys repeated within the batch, and deletes.
    const limits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };
    const t = 1_764_000_000_000;
    const batched = openSqliteStore({ path: join(dir, "ahead-batched.db"), limits, now: () => t });
    const single = openSqliteStore({ path: join(dir, "ahead-single.db"), limits, now: () => t, chunkSize: 1, rowCacheSize: 0 });
    const id = (i: number) => `c${String(i).padStart(4, "0")}`;
    const seed = [
      ...Array.from({ length: 300 }, (_, i) => upd(key("big", id(i)), { set: [1 + (i % 4)], ...(i % 7 === 0 ? { addLabels: ["l"], customMark: `m${i}` } : {}), ...(i % 11 === 0 ? { settings: { pinned: true } } : {}) })),
      ...Array.from({ length: 40 }, (_, i) => upd(key("big", id(i * 3), ConvType.Group), { set: [5], vendorConversationId: `v${i}` })),
      ...[1, 2, 3, 5, 130].flatMap((n) => Array.from({ length: n }, (_, i) => upd(key(`o${n}`, id(i)), { set: [2] }))),
    ];
    const ops = [
      // 400 updates of "big": existing (0..299) and new (300..399) direct conversations, in shuffled order
      ...Array.from({ length: 400 }, (_, i) => (i * 37) % 400).map((i) => upd(key("big", id(i)), { set: [6], clear: [1 + (i % 4)] })),
      // the group conversations with the same IDs, some existing, some new
      ...Array.from({ length: 60 }, (_, i) => upd(key("big", id(i * 3), ConvType.Group), { clear: [5], addLabels: ["g"] })),
      // the same keys again within the batch (after the updates above), and unchanged ones
      ...Array.from({ length: 20 }, (_, i) => upd(key("big", id(i * 13)), { set: [7] })),
      upd(key("big", id(1)), { set: [6] }),
      // every group size of other owners: 1, 2, 3, 5, 130 existing, plus one new each
      ...[1, 2, 3, 5, 130].flatMap((n) => Array.from({ length: n + 1 }, (_, i) => upd(key(`o${n}`, id(i)), { set: [3] }))),
    ];
    const deletes = [key("big", id(2)), key("big", id(999)), key("o130", id(129)), key("big", id(3), ConvType.Group)];
    const outcomes = [];
    for (const s of [batched, single]) {
      expect((await s.applyUpdates(seed)).every((o) => o.ok)).toBe(true);
      const updated = await s.applyUpdates(ops);
      const deleted = await s.deleteConversations(deletes);
      const again = await s.applyUpdates([upd(key("big", id(2)), { set: [1] }), upd(key("big", id(4)), { set: [2] })]);
      const stored = [];
      for (const owner of ["big", "o1", "o2", "o3", "o5", "o130"]) stored.push(...(await s.list({ owner, filter: NO_FILTER_LIST, limit: 1000 })).records);
      outcomes.push({ updated, deleted, again, stored, feed: (await s.changes({ after: 0n, limit: 10_000 })).changes });
    }
    const [a, b] = outcomes as [(typeof outcomes)[0], (typeof outcomes)[0]];
    expect(a.updated.filter((o) => o.ok && o.changed).length).toBeGreaterThan(600);
    expect(a.updated.filter((o) => o.ok && !o.changed).length).toBeGreaterThan(0);
    expect(a.updated).toEqual(b.updated);
    expect(a.deleted).toEqual(b.deleted);
    expect(a.again).toEqual(b.again);
    // big: 400 direct (c0002 deleted and written again), 60 group less the deleted one; 146 of the others less one
    expect(a.stored.length).toBe(400 + 59 + 145);
    expect(a.stored).toEqual(b.stored);
    expect(a.feed).toEqual(b.feed);
    await batched.close();
    await single.close();
  });

  it("keeps the write path's known states only while no other connection changed the owner: same outcomes as a store that reads every row", async () => {
    // Three stores on one file (as three processes would be: two with the default number of known
    // states, one keeping at most 3) write seeded random batches in turn, each batch through one of
    // them; a fourth store on its own file that keeps none (every current row read in its
    // transaction) applies the same batches. Every outcome (versions, positions, the per-owner cap,
    // changed or not), the stored rows and the owners' feeds must be the same.
    const limits = { maxMarkedPerOwner: 4, maxLabelsPerConversation: 2 };
    const t = 1_764_000_000_000;
    const shared = join(dir, "known-shared.db");
    const writers = [
      openSqliteStore({ path: shared, limits, now: () => t }),
      openSqliteStore({ path: shared, limits, now: () => t }),
      openSqliteStore({ path: shared, limits, now: () => t, rowCacheSize: 3 }),
    ];
    const reference = openSqliteStore({ path: join(dir, "known-reference.db"), limits, now: () => t, rowCacheSize: 0 });
    const rand = prng(1207);
    const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const keys = ["u1", "u2"].flatMap((o) => ["a", "b", "c", "d"].flatMap((c) => [key(o, c), key(o, c, ConvType.Group)]));
    const used = new Set<number>();
    for (let round = 0; round < 400; round++) {
      const w = Math.floor(rand() * writers.length);
      used.add(w);
      const writer = writers[w]!;
      const kind = rand();
      const batch = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => pick(keys));
      if (kind < 0.15) {
        const [got, want] = [await writer.deleteConversations(batch), await reference.deleteConversations(batch)];
        expect(got, `round ${round}`).toEqual(want);
      } else if (kind < 0.22) {
        const records: ConversationRecord[] = batch.map((k) => ({ key: k, marks: BigInt(1 + Math.floor(rand() * 4)), customMark: "", labels: [], settings: {}, version: BigInt(Math.floor(rand() * 8)), updateTimeMs: t - 1, position: 0n }));
        const [got, want] = [await writer.restoreConversations(records), await reference.restoreConversations(records)];
        expect(got, `round ${round}`).toEqual(want);
      } else {
        const updates = batch.map((k) =>
          upd(k, {
            set: rand() < 0.6 ? [1 + Math.floor(rand() * 3)] : [],
            clear: rand() < 0.5 ? [1 + Math.floor(rand() * 3)] : [],
            ...(rand() < 0.15 ? { customMark: pick(["", "m"]) } : {}),
            ...(rand() < 0.15 ? { addLabels: [pick(["x", "y", "z"])] } : {}),
            ...(rand() < 0.1 ? { removeLabels: [pick(["x", "y", "z"])] } : {}),
            ...(rand() < 0.1 ? { settings: { pinned: rand() < 0.5 } } : {}),
          }),
        );
        const [got, want] = [await writer.applyUpdates(updates), await reference.applyUpdates(updates)];
        expect(got, `round ${round}`).toEqual(want);
      }
    }
    expect(used.size).toBe(3);
    expect(await writers[0]!.batchGet(keys)).toEqual(await reference.batchGet(keys));
    for (const owner of ["u1", "u2"]) {
      const [got, want] = [await writers[1]!.changes({ owner, after: 0n, limit: 1000 }), await reference.changes({ owner, after: 0n, limit: 1000 })];
      expect(got.changes.map((c) => [c.record, c.deleted])).toEqual(want.changes.map((c) => [c.record, c.deleted]));
    }
    for (const s of [...writers, reference]) await s.close();
  });

  it("fails exactly the items of a transaction that hits a database error, and applies none of them", async () => {
    const path = join(dir, "locked.db");
    const limits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };
    const s = openSqliteStore({ path, limits, busyTimeoutMs: 50, chunkSize: 2 });
    await s.applyUpdates([upd(key("u", "a"), { set: [1] })]);
    const other = new Database(path);
    other.exec("BEGIN IMMEDIATE"); // another process holds the write lock
    const out = await s.applyUpdates([upd(key("u", "b"), { set: [1] }), upd(key("u", "c"), { set: [1] }), upd(key("u", "d"), { set: [1] })]);
    const del = await s.deleteConversations([key("u", "a")]);
    expect([...out, ...del].map((o) => (o.ok ? "ok" : o.failure.code))).toEqual([Code.Internal, Code.Internal, Code.Internal, Code.Internal]);
    other.exec("ROLLBACK");
    other.close();
    expect(await s.batchGet([key("u", "a"), key("u", "b")])).toMatchObject([{ marks: 1n }, undefined]);
    expect(await s.head("u")).toBe(1n);
    // The store keeps working once the lock is gone.
    const [ok] = await s.applyUpdates([upd(key("u", "b"), { set: [1] })]);
    expect(ok?.ok && ok.record.position).toBe(2n);
    await s.close();
  });

  it("waits for another process's write lock without blocking the event loop, then applies the update", async () => {
    const path = join(dir, "waiting.db");
    const limits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };
    const s = openSqliteStore({ path, limits, busyTimeoutMs: 10_000 });
    await s.applyUpdates([upd(key("u", "a"), { set: [1] })]);
    const other = new Database(path);
    other.exec("BEGIN IMMEDIATE"); // another process holds the write lock
    const pending = s.applyUpdates([upd(key("u", "b"), { set: [2] })]);
    // SQLite's own busy handler would sleep on this thread for up to the 10 s timeout (and the
    // lock below could never be released); the store must leave the event loop free meanwhile.
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 50));
    expect(performance.now() - t0).toBeLessThan(2000);
    other.exec("ROLLBACK");
    other.close();
    const [out] = await pending;
    expect(out?.ok && out.record.position).toBe(2n);
    expect((await s.get(key("u", "b")))?.marks).toBe(2n);
    await s.close();
  });

  it("numbers the rows of a version 2 file for the feed when it opens it", async () => {
    const path = join(dir, "v2.db");
    const limits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };
    const s = openSqliteStore({ path, limits });
    await s.applyUpdates([upd(key("u", "a"), { set: [1] }), upd(key("v", "a"), { set: [1] })]);
    await s.close();
    // Turn it back into the version 2 layout (no feed columns or tables).
    const db = new Database(path);
    db.exec(`DROP TABLE feed; DROP TABLE tombstones; DROP INDEX conversations_seq;
      ALTER TABLE conversations DROP COLUMN seq; ALTER TABLE owners DROP COLUMN purged_position; PRAGMA user_version = 2;`);
    db.close();
    const again = openSqliteStore({ path, limits });
    const all = await again.changes({ after: 0n, limit: 10 });
    expect(all.changes.map((c) => [c.record.key.owner, c.seq])).toEqual([["u", 1n], ["v", 2n]]);
    await again.applyUpdates([upd(key("u", "b"), { set: [1] })]);
    expect(await again.head()).toBe(3n);
    await again.close();
  });

  it("adds the vendor conversation ID to a version 3 file when it opens it, keeping every row and tombstone", async () => {
    const path = join(dir, "v3.db");
    const limits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };
    const s = openSqliteStore({ path, limits });
    await s.applyUpdates([upd(key("u", "a"), { set: [1], settings: { pinned: true } }), upd(key("u", "gone"), { set: [2] })]);
    await s.deleteConversations([key("u", "gone")]);
    await s.close();
    // Turn it back into the version 3 layout (no vendor_conv_id columns, no index on them).
    const db = new Database(path);
    db.exec(`DROP INDEX conversations_owner_vendor_id; ALTER TABLE conversations DROP COLUMN vendor_conv_id;
      ALTER TABLE tombstones DROP COLUMN vendor_conv_id; PRAGMA user_version = 3;`);
    expect(db.prepare("SELECT name FROM pragma_table_info('conversations') WHERE name = 'vendor_conv_id'").all()).toEqual([]);
    db.close();
    const again = openSqliteStore({ path, limits });
    expect(await again.get(key("u", "a"))).toMatchObject({ marks: 1n, settings: { pinned: true }, version: 1n });
    expect((await again.get(key("u", "a")))?.vendorConversationId).toBeUndefined();
    const feed = await again.changes({ owner: "u", after: 0n, limit: 10 });
    expect(feed.changes.map((c) => [c.record.key.conversationId, c.deleted, c.record.vendorConversationId])).toEqual([
      ["a", false, undefined],
      ["gone", true, undefined],
    ]);
    const [w] = await again.applyUpdates([upd(key("u", "a"), { vendorConversationId: "si_a_u" })]);
    expect(w?.ok && [w.record.vendorConversationId, w.record.version]).toEqual(["si_a_u", 2n]);
    expect((await again.list({ owner: "u", filter: { ...NO_FILTER_LIST, vendorConversationIds: ["si_a_u"] }, limit: 5 })).records.length).toBe(1);
    await again.close();
    const check = new Database(path, { readonly: true });
    expect(check.pragma("user_version", { simple: true })).toBe(5);
    // The lookup by vendor ID is served by its index, not a scan of the owner's rows.
    const sql = listSql({ ...NO_FILTER_LIST, vendorConversationIds: ["si_a_u"] }, false);
    const plan = check.prepare(`EXPLAIN QUERY PLAN ${sql}`).all("u", '["si_a_u"]', 5) as { detail: string }[];
    expect(plan.map((p) => p.detail).join("\n")).toMatch(/USING INDEX conversations_owner_vendor_id \(owner=\? AND vendor_conv_id=\?\)/);
    check.close();
  });

  it("rebuilds a version 4 file's conversations as a rowid table when it opens it, keeping every row, position and seq", async () => {
    const path = join(dir, "v4.db");
    const limits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };
    const s = openSqliteStore({ path, limits });
    await s.applyUpdates([
      upd(key("u", "a"), { set: [1, 64], addLabels: ["work", "vip"], customMark: "note", settings: { pinned: true, receiveOption: 2 }, vendorConversationId: "si_a_u" }),
      upd(key("u", "g", ConvType.Group), { set: [3] }),
      upd(key("v", "a"), { set: [2] }),
      upd(key("u", "gone"), { set: [2] }),
    ]);
    await s.deleteConversations([key("u", "gone")]);
    await s.applyUpdates([upd(key("u", "a"), { clear: [1] })]);
    const before = await s.changes({ after: 0n, limit: 100 });
    const listed = await s.list({ owner: "u", filter: NO_FILTER_LIST, limit: 10 });
    await s.close();
    // Turn it back into the version 4 layout: conversations WITHOUT ROWID, keyed by its primary key.
    const db = new Database(path);
    db.exec(`CREATE TABLE v4 (owner TEXT NOT NULL, type INTEGER NOT NULL, conv_id TEXT NOT NULL, marks INTEGER NOT NULL, custom_mark TEXT NOT NULL,
        labels TEXT NOT NULL, pinned INTEGER, receive_option INTEGER, private_chat INTEGER, burn_duration INTEGER, attached_info TEXT, ex TEXT,
        version INTEGER NOT NULL, update_time INTEGER NOT NULL, position INTEGER NOT NULL, marked INTEGER NOT NULL, seq INTEGER NOT NULL DEFAULT 0,
        vendor_conv_id TEXT, PRIMARY KEY (owner, type, conv_id)) WITHOUT ROWID;
      INSERT INTO v4 SELECT owner, type, conv_id, marks, custom_mark, labels, pinned, receive_option, private_chat, burn_duration, attached_info, ex,
        version, update_time, position, marked, seq, vendor_conv_id FROM conversations;
      DROP TABLE conversations; ALTER TABLE v4 RENAME TO conversations;
      CREATE UNIQUE INDEX conversations_owner_position_marks ON conversations (owner, position, marks);
      CREATE INDEX conversations_seq ON conversations (seq);
      CREATE INDEX conversations_owner_vendor_id ON conversations (owner, vendor_conv_id) WHERE vendor_conv_id IS NOT NULL;
      PRAGMA user_version = 4;`);
    db.close();
    const again = openSqliteStore({ path, limits });
    expect(await again.changes({ after: 0n, limit: 100 })).toEqual(before);
    expect(await again.list({ owner: "u", filter: NO_FILTER_LIST, limit: 10 })).toEqual(listed);
    expect((await again.list({ owner: "u", filter: { ...NO_FILTER_LIST, vendorConversationIds: ["si_a_u"] }, limit: 5 })).records.map((r) => r.key.conversationId)).toEqual(["a"]);
    // Writes go on from where the file was: the next version, the owner's next position, the next seq.
    const [w] = await again.applyUpdates([upd(key("u", "a"), { set: [5] })]);
    const last = before.changes.at(-1)!;
    expect(w?.ok && [w.record.version, w.record.position]).toEqual([3n, 6n]);
    expect(await again.head()).toBe(last.seq + 1n);
    // The key is still unique: a write of an existing key updates it, it does not add a row.
    await again.applyUpdates([upd(key("v", "a"), { set: [9] })]);
    await again.close();
    const check = new Database(path, { readonly: true });
    expect(check.pragma("user_version", { simple: true })).toBe(5);
    const table = check.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'conversations'").get() as { sql: string };
    expect(table.sql).not.toMatch(/WITHOUT ROWID/i);
    expect(table.sql).toMatch(/UNIQUE \(owner, type, conv_id\)/);
    expect((check.prepare("SELECT count(*) AS n FROM conversations").get() as { n: number }).n).toBe(3);
    const indexes = (check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'conversations' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    expect(indexes).toEqual(expect.arrayContaining(["conversations_owner_position_marks", "conversations_owner_vendor_id", "conversations_seq"]));
    expect(check.prepare("SELECT name FROM sqlite_master WHERE name = 'conversations_v5'").get()).toBeUndefined();
    check.close();
  });

  it("list pages (LIMIT CAST(? AS INTEGER)) equal the bare LIMIT ? query, every filter shape, random data", async () => {
    const path = join(dir, "limit-cast.db");
    const s = openSqliteStore({ path, limits: { maxMarkedPerOwner: 100_000, maxLabelsPerConversation: 32 } });
    let seed = 99;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let b = 0; b < 20; b++) {
      await s.applyUpdates(
        Array.from({ length: 30 }, (_, i) =>
          upd(key(`o${b % 3}`, `c${b}_${i}`, rand() < 0.3 ? ConvType.Group : ConvType.Direct), {
            set: rand() < 0.5 ? [1 + Math.floor(rand() * 4)] : [],
            ...(rand() < 0.4 ? { vendorConversationId: `v${Math.floor(rand() * 40)}` } : {}),
            ...(rand() < 0.3 ? { settings: { pinned: rand() < 0.5 } } : {}),
          }),
        ),
      );
    }
    await s.close();
    const db = new Database(path, { readonly: true });
    const shapes: ListFilter[] = [
      { ...NO_FILTER_LIST },
      { ...NO_FILTER_LIST, type: ConvType.Group },
      { ...NO_FILTER_LIST, marksAny: 3n },
      { ...NO_FILTER_LIST, pinned: true },
      { ...NO_FILTER_LIST, vendorConversationIds: ["v1", "v2", "v3", "v7", "v30"] },
    ];
    let compared = 0;
    for (const f of shapes) {
      for (const hasBefore of [false, true]) {
        const sql = listSql(f, hasBefore);
        expect(sql).toMatch(/LIMIT CAST\(\? AS INTEGER\)$/);
        const bare = sql.replace(/LIMIT CAST\(\? AS INTEGER\)$/, "LIMIT ?");
        for (const owner of ["o0", "o1", "o2"]) {
          for (const limit of [1, 2, 7, 50, 500]) {
            const params: unknown[] = [owner, ...(hasBefore ? [150] : []), ...(f.marksAny ? [3] : []), ...(f.type !== undefined ? [f.type] : [])];
            if (f.vendorConversationIds) params.push(JSON.stringify(f.vendorConversationIds));
            params.push(limit);
            const got = db.prepare(sql).raw().all(...params);
            expect(got).toEqual(db.prepare(bare).raw().all(...params));
            compared += got.length;
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(1000);
    db.close();
  });

  it("hands subscribers the changes of its own commits as written, by the time the write resolves, equal to what the feed reads", async () => {
    const path = join(dir, "own-commits.db");
    const limits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };
    const s = openSqliteStore({ path, limits });
    const got: Change[] = [];
    const unsubscribe = s.subscribe((cs) => got.push(...cs));
    const a = key("u", "a");
    const b = key("u", "b", ConvType.Group);
    // One transaction changing `a` twice: a live subscriber gets both changes, in order.
    await s.applyUpdates([
      upd(a, { set: [1] }),
      upd(a, { set: [64], customMark: "m", settings: { pinned: true, burnDurationSeconds: 5, attachedInfo: "x\u00e9" } }),
      upd(b, { addLabels: ["z", "y"], vendorConversationId: "sg_b" }),
    ]);
    const show = (c: Change) => `${c.deleted ? "-" : ""}${c.record.key.conversationId}@${c.record.position}#${c.seq}`;
    expect(got.map(show)).toEqual(["a@1#1", "a@2#2", "b@3#3"]);
    await s.deleteConversations([a]);
    await s.restoreConversations([{ ...(got[2]!.record as ConversationRecord), key: key("u", "c"), version: 9n, position: 0n }]);
    expect(got.map(show)).toEqual(["a@1#1", "a@2#2", "b@3#3", "-a@4#4", "c@5#5"]);
    // Each conversation's last live change is what the feed reads for it.
    const read = await s.changes({ owner: "u", after: 0n, limit: 10 });
    expect(read.changes.map(show)).toEqual(["b@3#3", "-a@4#4", "c@5#5"]);
    expect(read.changes).toEqual(got.slice(2));
    unsubscribe();
    await s.close();
  });

  it("reads an owner's feed from the beginning alike whether the page holds the whole stream (key-order scan) or not (position index)", async () => {
    const s = openSqliteStore({ path: join(dir, "first-sync.db"), limits: { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 } });
    // Key order (z, y, x, ...) against position order, rewrites and a tombstone in between.
    for (const id of ["z", "y", "x", "w", "v"]) await s.applyUpdates([upd(key("u", id), { set: [1] })]);
    await s.applyUpdates([upd(key("u", "y"), { set: [2] }), upd(key("other", "a"), { set: [1] })]);
    await s.deleteConversations([key("u", "x")]);
    await s.applyUpdates([upd(key("u", "z"), { customMark: "m" })]);
    const head = await s.head("u");
    expect(head).toBe(8n);
    const show = (c: Change) => `${c.deleted ? "-" : ""}${c.record.key.conversationId}@${c.record.position}`;
    const whole = await s.changes({ owner: "u", after: 0n, limit: 8 });
    const paged = [await s.changes({ owner: "u", after: 0n, limit: 3 })];
    while (paged.at(-1)!.hasMore) paged.push(await s.changes({ owner: "u", after: paged.at(-1)!.last, limit: 3 }));
    expect(whole.changes.map(show)).toEqual(["w@4", "v@5", "y@6", "-x@7", "z@8"]);
    expect(whole).toMatchObject({ last: 8n, hasMore: false, reset: false });
    expect(paged.flatMap((p) => p.changes)).toEqual(whole.changes);
    expect((await s.changes({ owner: "u", after: 0n, limit: 100 })).changes).toEqual(whole.changes);
    await s.close();
  });

  it("delivers another connection's commits before its own later ones, in seq order", async () => {
    const path = join(dir, "two-connections.db");
    const limits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };
    // A poll too slow to matter here: only the store's own commits make it look at the file.
    const mine = openSqliteStore({ path, limits, pollIntervalMs: 600_000 });
    const other = openSqliteStore({ path, limits });
    const got: string[] = [];
    const unsubscribe = mine.subscribe((cs) => got.push(...cs.map((c) => `${c.record.key.conversationId}#${c.seq}`)));
    await other.applyUpdates([upd(key("u", "x"), { set: [1] })]);
    await mine.applyUpdates([upd(key("u", "y"), { set: [1] })]);
    const deadline = Date.now() + 5000;
    while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(got).toEqual(["x#1", "y#2"]);
    await other.applyUpdates([upd(key("u", "x"), { set: [2] })]);
    await mine.applyUpdates([upd(key("u", "w"), { set: [1] })]);
    while (got.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(got).toEqual(["x#1", "y#2", "x#3", "w#4"]);
    unsubscribe();
    await other.close();
    await mine.close();
  });

  it("refuses to work after close", async () => {
    const s = openSqliteStore({ path: join(dir, "closed.db"), limits: { maxMarkedPerOwner: 1, maxLabelsPerConversation: 1 } });
    await s.close();
    await expect(s.get(key("a", "b"))).rejects.toThrow(/closed/);
  });
});
