/**
 * Pure tests of the MongoDB adapter's builders (no server needed). The last block runs random
 * batches through planOwnerBatch and the model of MongoDB's update operators in ./mongo-model.ts
 * ($bit, $addToSet, $pull, $set, $setOnInsert, $inc, upsert, path conflicts) and checks that the
 * stored documents read back as exactly what the shared applyUpdate computes.
 */
import { Code } from "@connectrpc/connect";
import { Long, type Document } from "mongodb";
import { describe, expect, it } from "vitest";
import {
  ConvType,
  applyUpdate,
  isMarked,
  keyString,
  type ConvKey,
  type ConversationRecord,
  type Settings,
  type ValidUpdate,
} from "../../src/domain/conversation.js";
import { maskOf } from "../../src/domain/marks.js";
import { Reason } from "../../src/domain/reasons.js";
import {
  bitPositions,
  buildConversationUpdate,
  buildConversationWrites,
  buildListFilter,
  buildOwnerUpdate,
  conversationFilter,
  docToRecord,
  maskToLong,
  ownerKeysFilter,
  ownerStateOf,
  planOwnerBatch,
  toBigInt,
  tombstoneDoc,
  tombstoneToRecord,
} from "../../src/store/mongo-updates.js";

const FILTER_OF = (id: string) => ({ owner: "o", type: ConvType.Direct, cid: id });
import { dbNameFromUri } from "../../src/store/mongo-store.js";
import type { ApplyOutcome, ListFilter, StoreLimits } from "../../src/store/store.js";
import { applyMongoUpdate, applyWrites, cloneDoc, type Doc } from "./mongo-model.js";
import { prng as rng } from "../support/prng.js";

const K: ConvKey = { owner: "alice", type: ConvType.Direct, conversationId: "bob" };
const FILTER = { owner: "alice", type: 1, cid: "bob" };
const T = 1_700_000_000_000;
const META = { position: 7n, updateTimeMs: T, marked: true };
const NO_FILTER: ListFilter = { marksAll: 0n, marksAny: 0n, marksNone: 0n, labelsAny: [] };
const LIMITS: StoreLimits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };

function upd(u: Partial<Omit<ValidUpdate, "key">> & { key?: ConvKey; set?: number[]; clear?: number[] } = {}): ValidUpdate {
  return {
    key: u.key ?? K,
    setMask: u.setMask ?? maskOf(u.set ?? []),
    clearMask: u.clearMask ?? maskOf(u.clear ?? []),
    ...(u.customMark !== undefined ? { customMark: u.customMark } : {}),
    addLabels: u.addLabels ?? [],
    removeLabels: u.removeLabels ?? [],
    settings: u.settings ?? {},
    ...(u.vendorConversationId !== undefined ? { vendorConversationId: u.vendorConversationId } : {}),
  };
}

/** The $set bookkeeping every effective write carries. */
const BOOKKEEPING = { updateTime: new Date(T), position: Long.fromBigInt(7n), marked: true };

describe("64-bit masks as BSON Long", () => {
  it("maps mark 64 (the sign bit) and full masks to the signed form", () => {
    expect(maskToLong(1n << 63n)).toEqual(Long.MIN_VALUE);
    expect(maskToLong(1n << 63n).toString()).toBe("-9223372036854775808");
    expect(maskToLong((1n << 64n) - 1n)).toEqual(Long.NEG_ONE);
    expect(maskToLong(~(1n << 63n) & ((1n << 64n) - 1n))).toEqual(Long.MAX_VALUE);
    expect(maskToLong(5n)).toEqual(Long.fromInt(5));
  });

  it("reads back every integral representation the driver may return", () => {
    expect(toBigInt(Long.MIN_VALUE)).toBe(-(1n << 63n));
    expect(toBigInt(-3n)).toBe(-3n);
    expect(toBigInt(42)).toBe(42n);
    expect(toBigInt(undefined)).toBe(0n);
    expect(() => toBigInt("x")).toThrow();
  });

  it("lists bit positions for the $bits* query operators, including bit 63", () => {
    expect(bitPositions(0n)).toEqual([]);
    expect(bitPositions(maskOf([1, 3, 64]))).toEqual([0, 2, 63]);
  });
});

describe("update documents", () => {
  it("sets marks with $bit or, including mark 64", () => {
    expect(buildConversationWrites(upd({ set: [1, 64] }), META)).toEqual([
      {
        updateOne: {
          filter: FILTER,
          update: {
            $bit: { marks: { or: Long.fromString("-9223372036854775807") } },
            $set: BOOKKEEPING,
            $inc: { version: Long.ONE },
            $setOnInsert: { labels: [], customMark: "", settings: {} },
          },
          upsert: true,
        },
      },
    ]);
  });

  it("clears marks with $bit and of the complement, including mark 64", () => {
    const [op] = buildConversationWrites(upd({ clear: [64] }), META);
    expect(op && "updateOne" in op && (op.updateOne.update as Document).$bit).toEqual({ marks: { and: Long.MAX_VALUE } });
    const u = buildConversationUpdate(upd({ clear: [1, 2] }), META);
    expect(u.$bit).toEqual({ marks: { and: Long.fromInt(-4) } });
  });

  it("sets and clears in one $bit, or before and", () => {
    const u = buildConversationUpdate(upd({ set: [3], clear: [2, 64] }), META);
    expect(u.$bit).toEqual({ marks: { or: Long.fromInt(4), and: Long.fromString("9223372036854775805") } });
    expect(Object.keys(u.$bit.marks)).toEqual(["or", "and"]);
  });

  it("gives an upsert without mark changes a zero marks field ($bitsAllClear needs it)", () => {
    const u = buildConversationUpdate(upd({ customMark: "vip" }), META);
    expect(u).toEqual({
      $set: { customMark: "vip", ...BOOKKEEPING },
      $inc: { version: Long.ONE },
      $setOnInsert: { marks: Long.ZERO, labels: [], settings: {} },
    });
  });

  it("adds labels with $addToSet $each and removes with $pull $in", () => {
    expect(buildConversationWrites(upd({ addLabels: ["b", "a"] }), META)).toEqual([
      {
        updateOne: {
          filter: FILTER,
          update: {
            $addToSet: { labels: { $each: ["b", "a"] } },
            $set: BOOKKEEPING,
            $inc: { version: Long.ONE },
            $setOnInsert: { marks: Long.ZERO, customMark: "", settings: {} },
          },
          upsert: true,
        },
      },
    ]);
    expect(buildConversationWrites(upd({ removeLabels: ["x"] }), META)).toEqual([
      {
        updateOne: {
          filter: FILTER,
          update: {
            $pull: { labels: { $in: ["x"] } },
            $set: BOOKKEEPING,
            $inc: { version: Long.ONE },
            $setOnInsert: { marks: Long.ZERO, customMark: "", settings: {} },
          },
          upsert: true,
        },
      },
    ]);
  });

  it("splits add and remove of labels into two operations (same path would conflict)", () => {
    const ops = buildConversationWrites(upd({ addLabels: ["a"], removeLabels: ["b", "c"] }), META);
    expect(ops).toHaveLength(2);
    expect(ops[0]).toEqual({
      updateOne: {
        filter: FILTER,
        update: {
          $addToSet: { labels: { $each: ["a"] } },
          $set: BOOKKEEPING,
          $inc: { version: Long.ONE },
          $setOnInsert: { marks: Long.ZERO, customMark: "", settings: {} },
        },
        upsert: true,
      },
    });
    expect(ops[1]).toEqual({ updateOne: { filter: FILTER, update: { $pull: { labels: { $in: ["b", "c"] } } } } });
  });

  it("sets the custom mark even when empty (clearing it)", () => {
    expect(buildConversationUpdate(upd({ customMark: "" }), META).$set.customMark).toBe("");
  });

  it("sets only the settings present in the update, false and empty included", () => {
    const u = buildConversationUpdate(upd({ settings: { pinned: false, attachedInfo: "", burnDurationSeconds: 30 } }), META);
    expect(u.$set).toEqual({
      "settings.pinned": false,
      "settings.attachedInfo": "",
      "settings.burnDurationSeconds": 30,
      ...BOOKKEEPING,
    });
    expect(u.$setOnInsert).toEqual({ marks: Long.ZERO, labels: [], customMark: "" });
  });

  it("produces the full sample document", () => {
    const sample = upd({
      set: [1, 64],
      clear: [2],
      customMark: "vip",
      addLabels: ["work"],
      removeLabels: ["old"],
      settings: { pinned: true, receiveOption: 2 },
    });
    expect(buildConversationWrites(sample, { position: 42n, updateTimeMs: T, marked: true })).toEqual([
      {
        updateOne: {
          filter: FILTER,
          update: {
            $bit: { marks: { or: Long.fromString("-9223372036854775807"), and: Long.fromInt(-3) } },
            $addToSet: { labels: { $each: ["work"] } },
            $set: {
              customMark: "vip",
              "settings.pinned": true,
              "settings.receiveOption": 2,
              updateTime: new Date(T),
              position: Long.fromInt(42),
              marked: true,
            },
            $inc: { version: Long.ONE },
          },
          upsert: true,
        },
      },
      { updateOne: { filter: FILTER, update: { $pull: { labels: { $in: ["old"] } } } } },
    ]);
  });

  it("filters by the unique key (owner, type, cid)", () => {
    expect(conversationFilter({ owner: "o", type: ConvType.Group, conversationId: "g" })).toEqual({ owner: "o", type: 2, cid: "g" });
  });

  it("updates the owner document with the last position and the marked delta", () => {
    expect(buildOwnerUpdate(12n, -1)).toEqual({ $set: { position: Long.fromInt(12) }, $inc: { marked: -1 } });
  });
});

describe("read filters", () => {
  it("reads an owner's keys with one index range per type", () => {
    const g = (id: string): ConvKey => ({ owner: "o", type: ConvType.Group, conversationId: id });
    const d = (id: string): ConvKey => ({ owner: "o", type: ConvType.Direct, conversationId: id });
    expect(ownerKeysFilter("o", [d("a"), d("b"), d("a")])).toEqual({ owner: "o", type: 1, cid: { $in: ["a", "b"] } });
    expect(ownerKeysFilter("o", [g("x"), d("a")])).toEqual({
      owner: "o",
      $or: [
        { type: 1, cid: { $in: ["a"] } },
        { type: 2, cid: { $in: ["x"] } },
      ],
    });
    expect(() => ownerKeysFilter("o", [{ ...d("a"), owner: "p" }])).toThrow();
  });

  it("builds list filters", () => {
    expect(buildListFilter({ owner: "o", filter: NO_FILTER })).toEqual({ owner: "o" });
    expect(
      buildListFilter({
        owner: "o",
        filter: { marksAll: maskOf([1, 2]), marksAny: maskOf([64]), marksNone: maskOf([3, 63]), labelsAny: ["a", "b"], type: ConvType.Group, pinned: true },
        before: 10n,
      }),
    ).toEqual({
      owner: "o",
      type: 2,
      marks: { $bitsAllSet: [0, 1], $bitsAnySet: [63], $bitsAllClear: [2, 62] },
      labels: { $in: ["a", "b"] },
      "settings.pinned": true,
      position: { $lt: Long.fromInt(10) },
    });
    expect(buildListFilter({ owner: "o", filter: { ...NO_FILTER, pinned: false } })).toEqual({
      owner: "o",
      "settings.pinned": { $ne: true },
    });
  });

  it("takes the database name from the URI path", () => {
    expect(dbNameFromUri("mongodb://h1:27017,h2:27017/marks?replicaSet=rs0")).toBe("marks");
    expect(dbNameFromUri("mongodb+srv://u:p@cluster.example.net/?retryWrites=true")).toBeUndefined();
    expect(dbNameFromUri("mongodb://localhost")).toBeUndefined();
  });
});

describe("documents to records", () => {
  it("maps a stored document, sorting labels and keeping settings presence", () => {
    const r = docToRecord({
      _id: "x",
      owner: "alice",
      type: 2,
      cid: "g",
      marks: -(1n << 63n) | 1n, // as useBigInt64 returns it
      customMark: "m",
      labels: ["b", "a"],
      settings: { pinned: false, burnDurationSeconds: 30, ex: "" },
      version: Long.fromInt(3),
      updateTime: new Date(T),
      position: 9,
      marked: true,
    });
    expect(r).toEqual({
      key: { owner: "alice", type: 2, conversationId: "g" },
      marks: (1n << 63n) | 1n,
      customMark: "m",
      labels: ["a", "b"],
      settings: { pinned: false, burnDurationSeconds: 30, ex: "" },
      version: 3n,
      updateTimeMs: T,
      position: 9n,
    });
  });

  it("defaults missing fields", () => {
    expect(docToRecord({ owner: "a", type: 1, cid: "c", version: 1n, position: 1n, updateTime: new Date(T) })).toEqual({
      key: { owner: "a", type: 1, conversationId: "c" },
      marks: 0n,
      customMark: "",
      labels: [],
      settings: {},
      version: 1n,
      updateTimeMs: T,
      position: 1n,
    });
    expect(ownerStateOf(null)).toEqual({ position: 0n, marked: 0 });
    expect(ownerStateOf({ _id: "a", position: Long.fromInt(5), marked: 2 })).toEqual({ position: 5n, marked: 2 });
  });
});

describe("planOwnerBatch", () => {
  const key = (id: string): ConvKey => ({ owner: "o", type: ConvType.Direct, conversationId: id });

  it("restores a whole state as one replacing upsert (version and time as given), only over an older version", () => {
    const r: ConversationRecord = {
      key: key("r"),
      marks: (1n << 63n) | 2n,
      customMark: "c",
      labels: ["x", "y"],
      settings: { pinned: false, burnDurationSeconds: 9 },
      version: 6n,
      updateTimeMs: 1_600_000_000_777,
      position: 0n,
      vendorConversationId: "si_o_r",
    };
    const older = { ...r, marks: 1n, labels: ["z"], version: 2n, position: 3n };
    const p = planOwnerBatch("o", { position: 3n, marked: 1 }, new Map([[keyString(r.key), older]]), [{ kind: "restore", record: r }], LIMITS, T);
    expect(p.outcomes).toEqual([{ ok: true, changed: true, record: { ...r, position: 4n } }]);
    expect(p.writes).toEqual([
      {
        replaceOne: {
          filter: FILTER_OF("r"),
          upsert: true,
          replacement: {
            ...FILTER_OF("r"),
            marks: maskToLong(r.marks),
            customMark: "c",
            labels: ["x", "y"],
            settings: { pinned: false, burnDurationSeconds: 9 },
            version: Long.fromBigInt(6n),
            updateTime: new Date(r.updateTimeMs),
            position: Long.fromBigInt(4n),
            marked: true,
            vendorCid: "si_o_r",
          },
        },
      },
    ]);
    expect(p.tombstoneWrites).toEqual([]);
    expect(p.ownerUpdate).toEqual(buildOwnerUpdate(4n, 0));
    // The document reads back as the restored record.
    expect(docToRecord((p.writes[0] as { replaceOne: { replacement: Document } }).replaceOne.replacement)).toEqual({ ...r, position: 4n });
    // As new or newer in the target: nothing written.
    const same = planOwnerBatch("o", { position: 3n, marked: 1 }, new Map([[keyString(r.key), { ...r, position: 3n }]]), [{ kind: "restore", record: r }], LIMITS, T);
    expect(same.writes).toEqual([]);
    expect(same.ownerUpdate).toBeUndefined();
    // Nothing in the target: the upsert also drops a tombstone of the key.
    const fresh = planOwnerBatch("o", { position: 0n, marked: 0 }, new Map(), [{ kind: "restore", record: r }], LIMITS, T);
    expect(fresh.tombstoneWrites).toEqual([{ deleteOne: { filter: FILTER_OF("r") } }]);
  });

  it("gives each effective change the next position and writes nothing for no-ops", () => {
    const p = planOwnerBatch(
      "o",
      { position: 10n, marked: 0 },
      new Map(),
      [upd({ key: key("1"), set: [1] }), upd({ key: key("1"), set: [1] }), upd({ key: key("2"), clear: [1] }), upd({ key: key("1"), set: [2] })],
      LIMITS,
      T,
    );
    expect((p.outcomes as ApplyOutcome[]).map((o) => o.ok && [o.changed, o.record.position, o.record.version])).toEqual([
      [true, 11n, 1n],
      [false, 11n, 1n],
      [false, 0n, 0n],
      [true, 12n, 2n],
    ]);
    expect(p.writes).toHaveLength(2);
    expect(p.ownerUpdate).toEqual(buildOwnerUpdate(12n, 1));
    expect(p.ownerAfter).toEqual({ position: 12n, marked: 1 });

    const none = planOwnerBatch("o", { position: 3n, marked: 0 }, new Map(), [upd({ key: key("9"), clear: [5] })], LIMITS, T);
    expect(none.writes).toEqual([]);
    expect(none.ownerUpdate).toBeUndefined();
  });

  it("enforces the marked-conversation cap per item, and unmarking frees a slot", () => {
    const marked: ConversationRecord = {
      key: key("m"),
      marks: 1n,
      customMark: "",
      labels: [],
      settings: {},
      version: 1n,
      updateTimeMs: 0,
      position: 1n,
    };
    const p = planOwnerBatch(
      "o",
      { position: 1n, marked: 2 },
      new Map([[keyString(marked.key), marked]]),
      [
        upd({ key: key("a"), set: [1] }),
        upd({ key: key("b"), settings: { pinned: true } }), // settings alone do not count
        upd({ key: key("m"), set: [2] }), // already marked
        upd({ key: key("m"), clear: [1, 2] }), // unmarks
        upd({ key: key("a"), addLabels: ["x"] }),
      ],
      { ...LIMITS, maxMarkedPerOwner: 2 },
      T,
    );
    expect((p.outcomes as ApplyOutcome[]).map((o) => (o.ok ? "ok" : [o.failure.code, o.failure.reason, o.failure.message]))).toEqual([
      [Code.ResourceExhausted, Reason.OwnerMarkedLimit, "user o already has 2 marked conversations (limit 2)"],
      "ok",
      "ok",
      "ok",
      "ok",
    ]);
    expect(p.ownerAfter).toEqual({ position: 5n, marked: 2 });
    expect(p.ownerUpdate).toEqual(buildOwnerUpdate(5n, 0));
  });

  it("refuses to take a conversation past the label limit", () => {
    const p = planOwnerBatch(
      "o",
      { position: 0n, marked: 0 },
      new Map(),
      [upd({ key: key("l"), addLabels: ["a", "b"] }), upd({ key: key("l"), addLabels: ["c"] }), upd({ key: key("l"), addLabels: ["a"] })],
      { ...LIMITS, maxLabelsPerConversation: 2 },
      T,
    );
    expect((p.outcomes as ApplyOutcome[]).map((o) => (o.ok ? o.changed : [o.failure.code, o.failure.reason]))).toEqual([
      true,
      [Code.ResourceExhausted, Reason.LabelLimit],
      false,
    ]);
    expect(p.writes).toHaveLength(1);
  });

  it("plans deletes: the conversation removed, a tombstone written, its cap slot freed, re-creation removing the tombstone", () => {
    const marked: ConversationRecord = { key: key("m"), marks: 1n, customMark: "", labels: [], settings: {}, version: 4n, updateTimeMs: 0, position: 2n };
    const p = planOwnerBatch(
      "o",
      { position: 2n, marked: 1 },
      new Map([[keyString(marked.key), marked]]),
      [
        { kind: "delete", key: key("m") },
        { kind: "delete", key: key("never") },
        { kind: "update", update: upd({ key: key("m"), set: [3] }) },
      ],
      LIMITS,
      T,
    );
    expect(p.outcomes.map((o) => ("deleted" in o ? ["deleted", o.deleted] : o.ok && ["updated", o.record.version, o.record.position]))).toEqual([
      ["deleted", true],
      ["deleted", false],
      ["updated", 1n, 4n],
    ]);
    expect(p.writes[0]).toEqual({ deleteOne: { filter: FILTER_OF("m") } });
    expect(p.tombstoneWrites).toEqual([
      { replaceOne: { filter: FILTER_OF("m"), replacement: tombstoneDoc({ ...marked, version: 5n, updateTimeMs: T, position: 3n }), upsert: true } },
      { deleteOne: { filter: FILTER_OF("m") } },
    ]);
    expect(p.ownerAfter).toEqual({ position: 4n, marked: 1 });
    expect(p.ownerUpdate).toEqual(buildOwnerUpdate(4n, 0));
    const doc = tombstoneDoc({ ...marked, version: 5n, updateTimeMs: T, position: 3n });
    expect(tombstoneToRecord(doc)).toEqual({ key: key("m"), marks: 0n, customMark: "", labels: [], settings: {}, version: 5n, updateTimeMs: T, position: 3n });
  });

  it("refuses updates of another owner", () => {
    expect(() => planOwnerBatch("o", { position: 0n, marked: 0 }, new Map(), [upd()], LIMITS, T)).toThrow();
  });
});


describe("vendor conversation ID", () => {
  it("is $set when given, $unset when emptied, untouched (and not defaulted) when absent", () => {
    expect(buildConversationUpdate(upd({ vendorConversationId: "si_b_a" }), META).$set.vendorCid).toBe("si_b_a");
    const cleared = buildConversationUpdate(upd({ vendorConversationId: "" }), META);
    expect(cleared.$unset).toEqual({ vendorCid: "" });
    expect(cleared.$set.vendorCid).toBeUndefined();
    const absent = buildConversationUpdate(upd({ set: [1] }), META);
    expect(absent.$unset).toBeUndefined();
    expect(absent.$set.vendorCid).toBeUndefined();
    expect(absent.$setOnInsert?.vendorCid).toBeUndefined();
  });

  it("reads back from documents and tombstones, absent when missing or empty", () => {
    const doc = { owner: "a", type: 1, cid: "c", version: 1n, position: 1n, updateTime: new Date(T), vendorCid: "custom-7" };
    expect(docToRecord(doc).vendorConversationId).toBe("custom-7");
    expect("vendorConversationId" in docToRecord({ ...doc, vendorCid: "" })).toBe(false);
    const tomb = tombstoneDoc({ ...docToRecord(doc), version: 2n });
    expect(tomb.vendorCid).toBe("custom-7");
    expect(tombstoneToRecord(tomb).vendorConversationId).toBe("custom-7");
    expect("vendorCid" in tombstoneDoc(docToRecord({ ...doc, vendorCid: undefined }))).toBe(false);
  });

  it("is a list condition served by the {owner, vendorCid} index", () => {
    expect(buildListFilter({ owner: "o", filter: { ...NO_FILTER, vendorConversationIds: ["x", "si_a_b"] } })).toEqual({
      owner: "o",
      vendorCid: { $in: ["x", "si_a_b"] },
    });
    expect(buildListFilter({ owner: "o", filter: { ...NO_FILTER, vendorConversationIds: [] } })).toEqual({ owner: "o" });
  });

  it("keeps the ID in the tombstone of a planned delete", () => {
    const rec: ConversationRecord = { ...docToRecord({ owner: "o", type: 1, cid: "m", version: 1n, position: 1n, updateTime: new Date(T) }), vendorConversationId: "v1" };
    const p = planOwnerBatch("o", { position: 1n, marked: 0 }, new Map([[keyString(rec.key), rec]]), [{ kind: "delete", key: rec.key }], LIMITS, T);
    const w = p.tombstoneWrites[0] as { replaceOne: { replacement: Document } };
    expect(w.replaceOne.replacement.vendorCid).toBe("v1");
  });
});

describe("update documents applied by a model of MongoDB equal applyUpdate", () => {
  it("over random batches", () => {
    const r = rng(20240601);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
    const MARKS = [1, 2, 32, 33, 63, 64];
    const LABELS = ["a", "b", "c", "d", "e"];
    const keys: ConvKey[] = ["1", "2", "3"].flatMap((id) => [
      { owner: "o", type: ConvType.Direct, conversationId: id },
      { owner: "o", type: ConvType.Group, conversationId: id },
    ]);
    const limits = { maxMarkedPerOwner: 4, maxLabelsPerConversation: 3 };

    const randomUpdate = (): ValidUpdate => {
      const set = MARKS.filter(() => r() < 0.2);
      const clear = MARKS.filter((m) => !set.includes(m) && r() < 0.2);
      const add = LABELS.filter(() => r() < 0.15);
      const remove = LABELS.filter((l) => !add.includes(l) && r() < 0.15);
      const settings: Settings = {};
      if (r() < 0.2) settings.pinned = r() < 0.5;
      if (r() < 0.1) settings.receiveOption = pick([1, 2, 3] as const);
      if (r() < 0.1) settings.ex = pick(["", "x"]);
      if (r() < 0.1) settings.burnDurationSeconds = pick([0, 30]);
      return upd({
        key: pick(keys),
        set,
        clear,
        addLabels: add,
        removeLabels: remove,
        settings,
        ...(r() < 0.2 ? { customMark: pick(["", "vip"]) } : {}),
        ...(r() < 0.2 ? { vendorConversationId: pick(["", "si_a_b", "custom-1"]) } : {}),
      });
    };

    const db = new Map<string, Doc>();
    let owner: Document | null = null;
    // Reference: applyUpdate directly, with the same cap/labels rules and positions.
    const ref = new Map<string, ConversationRecord>();
    let refPosition = 0n;
    let changedCount = 0;
    let failedCount = 0;

    for (let batch = 0; batch < 300; batch++) {
      const updates = Array.from({ length: 1 + Math.floor(r() * 6) }, randomUpdate);
      const current = new Map([...db.values()].map((d) => [keyString(docToRecord(d).key), docToRecord(d)]));
      const nowMs = T + batch;
      const plan = planOwnerBatch("o", ownerStateOf(owner), current, updates, limits, nowMs);
      applyWrites(db, plan.writes, (d) => JSON.stringify([d.owner, d.type, d.cid]));
      if (plan.ownerUpdate) {
        const o: Doc = owner ? cloneDoc(owner) : { _id: "o" };
        const u = plan.ownerUpdate;
        o.position = u.$set.position;
        o.marked = Number(o.marked ?? 0) + u.$inc.marked;
        owner = o;
      }

      for (const [i, u] of updates.entries()) {
        const ks = keyString(u.key);
        const cur = ref.get(ks);
        const { next, changed } = applyUpdate(cur, u, nowMs);
        const markedNow = [...ref.values()].filter(isMarked).length;
        const o = plan.outcomes[i]!;
        if (changed && next.labels.length > limits.maxLabelsPerConversation) {
          expect(o.ok).toBe(false);
        } else if (changed && isMarked(next) && !(cur && isMarked(cur)) && markedNow >= limits.maxMarkedPerOwner) {
          expect(o.ok).toBe(false);
        } else if (changed) {
          refPosition += 1n;
          const rec = { ...next, position: refPosition };
          ref.set(ks, rec);
          expect(o).toEqual({ ok: true, record: rec, changed: true });
        } else {
          expect(o).toEqual({ ok: true, record: next, changed: false });
        }
        if (!o.ok) failedCount++;
        else if ("changed" in o && o.changed) changedCount++;
      }

      // What MongoDB would store reads back as the reference state.
      expect(new Map([...db.values()].map((d) => [keyString(docToRecord(d).key), docToRecord(d)]))).toEqual(ref);
      for (const d of db.values()) {
        expect(d.marked).toBe(isMarked(docToRecord(d)));
        expect(d.marks).toBeInstanceOf(Long);
        expect(d.version).toBeInstanceOf(Long);
      }
      expect(ownerStateOf(owner)).toEqual({ position: refPosition, marked: [...ref.values()].filter(isMarked).length });
    }
    // The random walk exercised all branches.
    expect(changedCount).toBeGreaterThan(100);
    expect(failedCount).toBeGreaterThan(5);
  });

  it("the model rejects conflicting paths, as MongoDB does", () => {
    expect(() => applyMongoUpdate({}, { $addToSet: { labels: { $each: ["a"] } }, $pull: { labels: { $in: ["b"] } } }, false)).toThrow(/conflict/);
    expect(() => applyMongoUpdate({}, { $set: { "settings.pinned": true }, $setOnInsert: { settings: {} } }, true)).toThrow(/conflict/);
  });
});
