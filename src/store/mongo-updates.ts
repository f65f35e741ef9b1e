/**
 * Pure builders for the MongoDB adapter (src/store/mongo-store.ts): filters, update documents, the
 * per-owner batch plan, and the document <-> record mapping. Nothing here talks to a server, so all
 * of it is unit-tested in test/store/mongo-updates.test.ts.
 *
 * Collections (see mongo-store.ts for indexes and sharding):
 *
 *   conversations: { owner, type (1|2), cid,
 *                    marks: Long            signed 64-bit form of the unsigned mask (toSigned64)
 *                    customMark: string, labels: string[] (unique; stored unsorted, sorted on read)
 *                    settings: { pinned?, receiveOption?, privateChat?, burnDurationSeconds?,
 *                                attachedInfo?, ex? }   only the fields that were ever set
 *                    version: Long, updateTime: Date, position: Long,
 *                    marked: boolean            isMarked() of the stored state (the per-owner cap)
 *                    vendorCid?: string         a vendor's conversation ID, verbatim (absent: none) }
 *   owners:        { _id: owner, position: Long (last stream position used), marked: number,
 *                    purgedPosition?: Long (highest position of a purged tombstone) }
 *   tombstones:    { owner, type, cid, version: Long, updateTime: Date (deletion), position: Long,
 *                    vendorCid?: string }
 */
import { Long, type AnyBulkWriteOperation, type Document } from "mongodb";
import { SETTING_FIELDS, keyString, type ConvKey, type ConvType, type ConversationRecord, type Settings, type ValidUpdate } from "../domain/conversation.js";
import { fromSigned64, toSigned64 } from "../domain/marks.js";
import { opKey, planWrites, tombstoneOf, type WriteOp } from "./planner.js";
import type { ApplyOutcome, DeleteOutcome, ListQuery, StoreLimits } from "./store.js";

export const CONVERSATIONS = "conversations";
export const OWNERS = "owners";
export const TOMBSTONES = "tombstones";

const MASK64 = (1n << 64n) - 1n;

/** A 64-bit unsigned mask as the BSON Long MongoDB stores and $bit operates on. */
export function maskToLong(mask: bigint): Long {
  return Long.fromBigInt(toSigned64(mask & MASK64));
}

/** Any integral BSON value the driver may hand back (Long, bigint with useBigInt64, number, Int32). */
export function toBigInt(v: unknown): bigint {
  if (v === undefined || v === null) return 0n;
  if (typeof v === "bigint") return v;
  if (typeof v === "number") return BigInt(Math.trunc(v));
  if (Long.isLong(v)) return v.toBigInt();
  if (typeof v === "object" && "valueOf" in v) {
    const n = (v as { valueOf(): unknown }).valueOf(); // Int32, Double
    if (typeof n === "number" || typeof n === "bigint") return toBigInt(n);
  }
  throw new TypeError(`not an integer: ${String(v)}`);
}

/** The unique key of a conversation document; also the filter of its update documents. */
export function conversationFilter(key: ConvKey): { owner: string; type: ConvType; cid: string } {
  return { owner: key.owner, type: key.type, cid: key.conversationId };
}

/**
 * Filter for the documents of some keys of one owner: at most one $or branch per type, each an
 * index range on {owner, type, cid}.
 */
export function ownerKeysFilter(owner: string, keys: readonly ConvKey[]): Document {
  const byType = new Map<ConvType, string[]>();
  for (const k of keys) {
    if (k.owner !== owner) throw new Error(`key of owner ${k.owner} in a batch of owner ${owner}`);
    let ids = byType.get(k.type);
    if (!ids) byType.set(k.type, (ids = []));
    if (!ids.includes(k.conversationId)) ids.push(k.conversationId);
  }
  const branches = [...byType].sort(([a], [b]) => a - b).map(([type, ids]) => ({ type, cid: { $in: ids } }));
  if (branches.length === 1) return { owner, ...branches[0] };
  return { owner, $or: branches };
}

/** Per-write facts the store decides (not derived from the update itself). */
export interface WriteMeta {
  readonly position: bigint;
  readonly updateTimeMs: number;
  /** isMarked() of the state after the update, kept on the document for the cap. */
  readonly marked: boolean;
}

/**
 * The update document for one effective update, built from the ValidUpdate (a delta), not from the
 * computed state: $bit or/and for marks, $addToSet for added labels, $set for the custom mark, the
 * present settings and the store's bookkeeping, $inc for the version. Fields the update does not
 * touch get $setOnInsert defaults so an upserted document is always complete ($bitsAllClear never
 * matches a missing field, so `marks` in particular must exist).
 *
 * Removed labels are here ($pull) only when no labels are added: $addToSet and $pull on the same
 * path in one update document fail with "Updating the path 'labels' would create a conflict"; see
 * buildConversationWrites for the other case.
 */
export function buildConversationUpdate(u: ValidUpdate, meta: WriteMeta): Document {
  const update: Document = {};
  const set: Document = {};
  const setOnInsert: Document = {};

  if (u.setMask !== 0n || u.clearMask !== 0n) {
    // Server applies the operations in document order starting from the stored value (Int32 0 when
    // missing; int32 op int64 gives int64). or-then-and mirrors applyUpdate, and since validation
    // makes set and clear disjoint the order would not matter anyway.
    const bit: Document = {};
    if (u.setMask !== 0n) bit.or = maskToLong(u.setMask);
    if (u.clearMask !== 0n) bit.and = maskToLong(~u.clearMask & MASK64);
    update.$bit = { marks: bit };
  } else {
    setOnInsert.marks = Long.ZERO;
  }

  if (u.addLabels.length > 0) {
    update.$addToSet = { labels: { $each: [...u.addLabels] } };
  } else if (u.removeLabels.length > 0) {
    update.$pull = { labels: { $in: [...u.removeLabels] } };
  } else {
    setOnInsert.labels = [];
  }

  if (u.customMark !== undefined) set.customMark = u.customMark;
  else setOnInsert.customMark = "";

  let anySetting = false;
  for (const f of SETTING_FIELDS) {
    const v = u.settings[f];
    if (v !== undefined) {
      set[`settings.${f}`] = v;
      anySetting = true;
    }
  }
  if (!anySetting) setOnInsert.settings = {};

  // Absent means none, so "" (remove) is an $unset; nothing to default on insert.
  if (u.vendorConversationId) set.vendorCid = u.vendorConversationId;
  else if (u.vendorConversationId === "") update.$unset = { vendorCid: "" };

  set.updateTime = new Date(meta.updateTimeMs);
  set.position = Long.fromBigInt(meta.position);
  set.marked = meta.marked;

  update.$set = set;
  update.$inc = { version: Long.ONE };
  if (Object.keys(setOnInsert).length > 0) update.$setOnInsert = setOnInsert;
  return update;
}

/**
 * The bulkWrite operations for one effective update, in order: one upserting updateOne, plus a
 * second `$pull` updateOne only when the update both adds and removes labels.
 *
 * Why two operations rather than `$set: {labels: <final array>}`: MongoDB rejects $addToSet and
 * $pull on the same path in one update document. Both operations run in the same transaction as
 * the rest of the batch, so they commit together; and because add and remove are disjoint after
 * validation, add-then-remove equals applyUpdate's result. Keeping them as deltas of the
 * ValidUpdate (like $bit for marks) means the write never depends on the state we read: it is
 * correct on whatever the document holds when it is applied, and snapshot conflicts are left to
 * the transaction's write-conflict detection and retry.
 */
export function buildConversationWrites(u: ValidUpdate, meta: WriteMeta): AnyBulkWriteOperation<Document>[] {
  const filter = conversationFilter(u.key);
  const both = u.addLabels.length > 0 && u.removeLabels.length > 0;
  const ops: AnyBulkWriteOperation<Document>[] = [
    { updateOne: { filter, update: buildConversationUpdate(u, meta), upsert: true } },
  ];
  if (both) {
    const pull: Document = { $pull: { labels: { $in: [...u.removeLabels] } } };
    ops.push({ updateOne: { filter: { ...filter }, update: pull } });
  }
  return ops;
}

/**
 * The whole document of a restored conversation (RestoreConversations), for a replaceOne with
 * upsert: the state as given, its version and update time included, not a delta. The planner read
 * the stored version in the same transaction and restores only over an older one (or nothing).
 */
export function restoredDocument(r: ConversationRecord, marked: boolean): Document {
  const settings: Document = {};
  for (const f of SETTING_FIELDS) if (r.settings[f] !== undefined) settings[f] = r.settings[f];
  return {
    ...conversationFilter(r.key),
    marks: maskToLong(r.marks),
    customMark: r.customMark,
    labels: [...r.labels],
    settings,
    version: Long.fromBigInt(r.version),
    updateTime: new Date(r.updateTimeMs),
    position: Long.fromBigInt(r.position),
    marked,
    ...(r.vendorConversationId ? { vendorCid: r.vendorConversationId } : {}),
  };
}

/** The owners-document update closing a batch that changed something. */
export function buildOwnerUpdate(lastPosition: bigint, markedDelta: number): Document {
  return { $set: { position: Long.fromBigInt(lastPosition) }, $inc: { marked: markedDelta } };
}

/** Bit positions (0..63) set in a mask, for $bitsAllSet/$bitsAnySet/$bitsAllClear (works for bit 63). */
export function bitPositions(mask: bigint): number[] {
  const out: number[] = [];
  let m = mask & MASK64;
  for (let bit = 0; m !== 0n; bit++, m >>= 1n) {
    if (m & 1n) out.push(bit);
  }
  return out;
}

/** The find() filter of a list query (sort {position: -1}, served by the {owner, position} index). */
export function buildListFilter(q: Pick<ListQuery, "owner" | "filter" | "before">): Document {
  const f = q.filter;
  const filter: Document = { owner: q.owner };
  if (f.type !== undefined) filter.type = f.type;
  const marks: Document = {};
  if (f.marksAll !== 0n) marks.$bitsAllSet = bitPositions(f.marksAll);
  if (f.marksAny !== 0n) marks.$bitsAnySet = bitPositions(f.marksAny);
  if (f.marksNone !== 0n) marks.$bitsAllClear = bitPositions(f.marksNone);
  if (Object.keys(marks).length > 0) filter.marks = marks;
  if (f.labelsAny.length > 0) filter.labels = { $in: [...f.labelsAny] };
  if (f.pinned === true) filter["settings.pinned"] = true;
  else if (f.pinned === false) filter["settings.pinned"] = { $ne: true };
  if (f.vendorConversationIds && f.vendorConversationIds.length > 0) filter.vendorCid = { $in: [...f.vendorConversationIds] };
  if (q.before !== undefined) filter.position = { $lt: Long.fromBigInt(q.before) };
  return filter;
}

/** A stored conversation document back to the domain record (labels sorted, settings as present). */
export function docToRecord(doc: Document): ConversationRecord {
  const settings: Settings = {};
  const s = (doc.settings ?? {}) as Record<string, unknown>;
  for (const f of SETTING_FIELDS) {
    if (s[f] !== undefined && s[f] !== null) {
      const v = s[f];
      // Numbers may come back as number, Int32/Long or bigint depending on how they were stored.
      (settings as Record<string, unknown>)[f] =
        f === "receiveOption" || f === "burnDurationSeconds" ? Number(toBigInt(v)) : v;
    }
  }
  const t = doc.updateTime;
  return {
    key: { owner: String(doc.owner), type: Number(doc.type) as ConvType, conversationId: String(doc.cid) },
    marks: fromSigned64(toBigInt(doc.marks)),
    customMark: typeof doc.customMark === "string" ? doc.customMark : "",
    labels: Array.isArray(doc.labels) ? (doc.labels as string[]).map(String).sort() : [],
    settings,
    version: toBigInt(doc.version),
    updateTimeMs: t instanceof Date ? t.getTime() : Number(toBigInt(t)),
    position: toBigInt(doc.position),
    ...(typeof doc.vendorCid === "string" && doc.vendorCid !== "" ? { vendorConversationId: doc.vendorCid } : {}),
  };
}

/** The owners document as the planner needs it (missing: nothing written yet). */
export interface OwnerState {
  readonly position: bigint;
  readonly marked: number;
}

export function ownerStateOf(doc: Document | null | undefined): OwnerState {
  if (!doc) return { position: 0n, marked: 0 };
  return { position: toBigInt(doc.position), marked: Number(toBigInt(doc.marked)) };
}

export interface OwnerPlan {
  /** One outcome per input operation, in order (DeleteOutcome for deletes). */
  readonly outcomes: (ApplyOutcome | DeleteOutcome)[];
  /** Ordered bulkWrite operations on `conversations` (empty: nothing changed, write nothing). */
  readonly writes: AnyBulkWriteOperation<Document>[];
  /** Ordered bulkWrite operations on `tombstones` (deletes add one, re-creating removes it). */
  readonly tombstoneWrites: AnyBulkWriteOperation<Document>[];
  /** Update of the owners document; absent when nothing changed. */
  readonly ownerUpdate?: Document;
  readonly ownerAfter: OwnerState;
}

/** The tombstones document of a deleted conversation (collection `tombstones`). */
export function tombstoneDoc(r: ConversationRecord): Document {
  return {
    owner: r.key.owner,
    type: r.key.type,
    cid: r.key.conversationId,
    version: Long.fromBigInt(r.version),
    updateTime: new Date(r.updateTimeMs),
    position: Long.fromBigInt(r.position),
    ...(r.vendorConversationId ? { vendorCid: r.vendorConversationId } : {}),
  };
}

/** A tombstones document back to its record (the feed marks it deleted). */
export function tombstoneToRecord(doc: Document): ConversationRecord {
  const t = doc.updateTime;
  return tombstoneOf(
    { owner: String(doc.owner), type: Number(doc.type) as ConvType, conversationId: String(doc.cid) },
    toBigInt(doc.version),
    t instanceof Date ? t.getTime() : Number(toBigInt(t)),
    toBigInt(doc.position),
    typeof doc.vendorCid === "string" && doc.vendorCid !== "" ? doc.vendorCid : undefined,
  );
}

/**
 * Plans one owner's operations against the state read inside the transaction with the shared
 * planner (src/store/planner.ts) and translates the plan into delta update documents. `current`
 * maps keyString(key) to the stored records of (at least) the keys of the batch.
 */
export function planOwnerBatch(
  owner: string,
  ownerState: OwnerState,
  current: ReadonlyMap<string, ConversationRecord>,
  batch: readonly (ValidUpdate | WriteOp)[],
  limits: StoreLimits,
  nowMs: number,
): OwnerPlan {
  const ops: WriteOp[] = batch.map((b) => ("kind" in b ? b : { kind: "update", update: b }));
  for (const op of ops) {
    const k = opKey(op);
    if (k.owner !== owner) throw new Error(`operation of owner ${k.owner} in a batch of owner ${owner}`);
  }
  const plan = planWrites(
    ops,
    { current: (k) => current.get(keyString(k)), owner: () => ({ position: ownerState.position, marked: ownerState.marked }) },
    limits,
    nowMs,
  );
  const writes: AnyBulkWriteOperation<Document>[] = [];
  const tombstoneWrites: AnyBulkWriteOperation<Document>[] = [];
  for (const c of plan.changes) {
    const filter = conversationFilter(c.record.key);
    if (c.kind === "delete") {
      writes.push({ deleteOne: { filter } });
      tombstoneWrites.push({ replaceOne: { filter: { ...filter }, replacement: tombstoneDoc(c.record), upsert: true } });
      continue;
    }
    if (!c.before) tombstoneWrites.push({ deleteOne: { filter: { ...filter } } });
    if (c.kind === "restore") writes.push({ replaceOne: { filter, replacement: restoredDocument(c.record, c.marked), upsert: true } });
    else writes.push(...buildConversationWrites(c.update, { position: c.record.position, updateTimeMs: nowMs, marked: c.marked }));
  }
  const after = plan.owners.get(owner);
  const ownerAfter = after ? { position: after.position, marked: after.marked } : ownerState;
  if (!after) return { outcomes: plan.outcomes, writes, tombstoneWrites, ownerAfter };
  return { outcomes: plan.outcomes, writes, tombstoneWrites, ownerUpdate: buildOwnerUpdate(after.position, after.markedDelta), ownerAfter };
}
