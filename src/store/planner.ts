/**
 * The write rules of every store, once: each operation of a batch in order against the state the
 * adapter read (plus what earlier operations of the batch did), deciding per item the label limit,
 * the per-owner marked cap, the owner's next stream position and the marked count. Pure: the SQLite
 * adapter turns the plan into statements, the MongoDB adapter into update documents.
 */
import { Code } from "@connectrpc/connect";
import { applyUpdate, exceedsLabelLimit, isMarked, keyString, type ConvKey, type ConversationRecord, type ValidUpdate } from "../domain/conversation.js";
import { Reason } from "../domain/reasons.js";
import { failure } from "../domain/validate.js";
import type { ApplyOutcome, DeleteOutcome, StoreLimits } from "./store.js";

/** One operation of a batch. */
export type WriteOp =
  | { readonly kind: "update"; readonly update: ValidUpdate }
  | { readonly kind: "delete"; readonly key: ConvKey }
  /** A whole state with its own version and update time (RestoreConversations). */
  | { readonly kind: "restore"; readonly record: ConversationRecord };

/** The conversation an operation writes. */
export function opKey(op: WriteOp): ConvKey {
  return op.kind === "update" ? op.update.key : op.kind === "delete" ? op.key : op.record.key;
}

/** The owner's stream and cap bookkeeping as stored (missing owner: position 0, nothing marked). */
export interface OwnerCounters {
  readonly position: bigint;
  readonly marked: number;
}

/** What the planner needs to read; both lookups are synchronous (adapters read ahead). */
export interface PlanState {
  /** The stored, live conversation (a deleted one is absent). */
  current(key: ConvKey): ConversationRecord | undefined;
  owner(owner: string): OwnerCounters;
}

/** An effective change, in batch order; `record.position` is the owner's new position. */
export type PlannedChange =
  | {
      readonly kind: "upsert";
      /** Index of the operation in the batch. */
      readonly index: number;
      readonly update: ValidUpdate;
      /** State before (undefined: the conversation is new, or was deleted). */
      readonly before: ConversationRecord | undefined;
      readonly record: ConversationRecord;
      readonly marked: boolean;
    }
  | {
      /** A restored state: written whole, its version and update time as given. */
      readonly kind: "restore";
      readonly index: number;
      readonly before: ConversationRecord | undefined;
      readonly record: ConversationRecord;
      readonly marked: boolean;
    }
  | {
      readonly kind: "delete";
      readonly index: number;
      readonly before: ConversationRecord;
      /** The tombstone: key, version (one past the last), deletion time, position; nothing else. */
      readonly record: ConversationRecord;
    };

export interface OwnerAfter {
  readonly position: bigint;
  readonly marked: number;
  /** marked - marked before the batch */
  readonly markedDelta: number;
}

export interface WritePlan {
  /** One per operation, in order: ApplyOutcome for updates, DeleteOutcome for deletes. */
  readonly outcomes: (ApplyOutcome | DeleteOutcome)[];
  readonly changes: PlannedChange[];
  /** Only owners with at least one change. */
  readonly owners: Map<string, OwnerAfter>;
}

export function labelsFailureMessage(limit: number): string {
  return `a conversation carries at most ${limit} labels`;
}

export function capFailureMessage(owner: string, marked: number, limit: number): string {
  return `user ${owner} already has ${marked} marked conversations (limit ${limit})`;
}

/**
 * The tombstone of a deleted conversation: only its key, version, deletion time, position and the
 * vendor conversation ID it had (a vendor's delete notification names the conversation by it).
 */
export function tombstoneOf(key: ConvKey, version: bigint, updateTimeMs: number, position: bigint, vendorConversationId?: string): ConversationRecord {
  const t = { key, marks: 0n, customMark: "", labels: [], settings: {}, version, updateTimeMs, position };
  return vendorConversationId ? { ...t, vendorConversationId } : t;
}

export function planWrites(ops: readonly WriteOp[], state: PlanState, limits: StoreLimits, nowMs: number): WritePlan {
  // What earlier operations of this batch did: a record, or null for deleted.
  const overlay = new Map<string, ConversationRecord | null>();
  const counters = new Map<string, { position: bigint; marked: number; before: number }>();
  const outcomes: (ApplyOutcome | DeleteOutcome)[] = [];
  const changes: PlannedChange[] = [];
  const ownerOf = (owner: string) => {
    let c = counters.get(owner);
    if (!c) {
      const s = state.owner(owner);
      c = { position: s.position, marked: s.marked, before: s.marked };
      counters.set(owner, c);
    }
    return c;
  };
  const currentOf = (key: ConvKey, ks: string) => {
    const o = overlay.get(ks);
    return o === null ? undefined : (o ?? state.current(key));
  };
  const changed = new Set<string>();
  /** Why going from `cur` to `next` is refused: the label limit, then the owner's marked cap. */
  const refusal = (ownerId: string, cur: ConversationRecord | undefined, next: ConversationRecord) => {
    if (exceedsLabelLimit(cur, next, limits.maxLabelsPerConversation)) {
      return failure(Code.ResourceExhausted, labelsFailureMessage(limits.maxLabelsPerConversation), Reason.LabelLimit);
    }
    const owner = ownerOf(ownerId);
    if (isMarked(next) && !(cur !== undefined && isMarked(cur)) && owner.marked >= limits.maxMarkedPerOwner) {
      return failure(Code.ResourceExhausted, capFailureMessage(ownerId, owner.marked, limits.maxMarkedPerOwner), Reason.OwnerMarkedLimit);
    }
    return undefined;
  };

  for (let index = 0; index < ops.length; index++) {
    const op = ops[index]!;
    if (op.kind === "delete") {
      const ks = keyString(op.key);
      const cur = currentOf(op.key, ks);
      if (!cur) {
        outcomes.push({ ok: true, deleted: false });
        continue;
      }
      const owner = ownerOf(op.key.owner);
      owner.position += 1n;
      owner.marked -= Number(isMarked(cur));
      changed.add(op.key.owner);
      const record = tombstoneOf(cur.key, cur.version + 1n, nowMs, owner.position, cur.vendorConversationId);
      overlay.set(ks, null);
      changes.push({ kind: "delete", index, before: cur, record });
      outcomes.push({ ok: true, deleted: true, record });
      continue;
    }
    if (op.kind === "restore") {
      // Restore: only over nothing (never written, or deleted) or an older version; the target's
      // own state wins when it is as new or newer, so running a restore twice changes nothing.
      const r = op.record;
      const ks = keyString(r.key);
      const cur = currentOf(r.key, ks);
      if (cur && cur.version >= r.version) {
        outcomes.push({ ok: true, record: cur, changed: false });
        continue;
      }
      const refused = refusal(r.key.owner, cur, r);
      if (refused) {
        outcomes.push({ ok: false, failure: refused });
        continue;
      }
      const owner = ownerOf(r.key.owner);
      const is = isMarked(r);
      owner.position += 1n;
      owner.marked += Number(is) - Number(cur !== undefined && isMarked(cur));
      changed.add(r.key.owner);
      const record: ConversationRecord = { ...r, position: owner.position };
      overlay.set(ks, record);
      changes.push({ kind: "restore", index, before: cur, record, marked: is });
      outcomes.push({ ok: true, record, changed: true });
      continue;
    }
    const u = op.update;
    const ks = keyString(u.key);
    const cur = currentOf(u.key, ks);
    const { next, changed: effective } = applyUpdate(cur, u, nowMs);
    if (!effective) {
      outcomes.push({ ok: true, record: next, changed: false });
      continue;
    }
    const refused = refusal(u.key.owner, cur, next);
    if (refused) {
      outcomes.push({ ok: false, failure: refused });
      continue;
    }
    const owner = ownerOf(u.key.owner);
    const was = cur !== undefined && isMarked(cur);
    const is = isMarked(next);
    owner.position += 1n;
    owner.marked += Number(is) - Number(was);
    changed.add(u.key.owner);
    const record: ConversationRecord = { ...next, position: owner.position };
    overlay.set(ks, record);
    changes.push({ kind: "upsert", index, update: u, before: cur, record, marked: is });
    outcomes.push({ ok: true, record, changed: true });
  }

  const owners = new Map<string, OwnerAfter>();
  for (const o of changed) {
    const c = counters.get(o)!;
    owners.set(o, { position: c.position, marked: c.marked, markedDelta: c.marked - c.before });
  }
  return { outcomes, changes, owners };
}
