import type { ConvKey, ConvType, ConversationRecord, ValidUpdate } from "../domain/conversation.js";
import type { Failure } from "../domain/validate.js";

/** Outcome of one update: the state after it, or why it was refused (nothing applied). */
export type ApplyOutcome =
  | { readonly ok: true; readonly record: ConversationRecord; readonly changed: boolean }
  | { readonly ok: false; readonly failure: Failure };

/** Outcome of one delete: whether there was something to delete (its tombstone), or why it failed. */
export type DeleteOutcome =
  | { readonly ok: true; readonly deleted: boolean; readonly record?: ConversationRecord }
  | { readonly ok: false; readonly failure: Failure };

/**
 * One entry of the change feed: a conversation as it is after its latest change, or its tombstone
 * (deleted: only key, version, updateTimeMs and position are meaningful).
 */
export interface Change {
  readonly record: ConversationRecord;
  readonly deleted: boolean;
  /**
   * Position in the store-wide feed of every owner (strictly increasing in commit order across all
   * owners and processes); 0n when the store has no store-wide feed (MongoDB).
   */
  readonly seq: bigint;
}

/** A read of the feed: one owner's stream by position, or every owner's (owner undefined) by seq. */
export interface ChangeQuery {
  readonly owner?: string;
  /** Changes after this position (owner) or seq (every owner); 0n: from the beginning. */
  readonly after: bigint;
  readonly limit: number;
}

export interface ChangePage {
  /** Ascending position (seq for every owner); each conversation once, in its latest state. */
  readonly changes: Change[];
  /** Where the next read continues: the last change's position/seq, else `after`. */
  readonly last: bigint;
  readonly hasMore: boolean;
  /**
   * The tombstones after `after` are no longer all retained (or `after` is beyond the stream's
   * head, e.g. a restored backup): the reader must re-list; `changes` is empty and `last` the head.
   */
  readonly reset: boolean;
}

export interface ListFilter {
  /** All of these bits set (0n: no condition). */
  readonly marksAll: bigint;
  /** At least one of these bits set (0n: no condition). */
  readonly marksAny: bigint;
  /** None of these bits set (0n: no condition). */
  readonly marksNone: bigint;
  readonly type?: ConvType;
  /** At least one of these labels (empty: no condition). */
  readonly labelsAny: readonly string[];
  readonly pinned?: boolean;
  /** The vendor conversation ID is one of these (absent or empty: no condition). */
  readonly vendorConversationIds?: readonly string[];
}

export interface ListQuery {
  readonly owner: string;
  readonly filter: ListFilter;
  readonly limit: number;
  /** Only records whose position is below this one (the cursor of the previous page). */
  readonly before?: bigint;
}

export interface ListPage {
  /** Newest change first (descending position). */
  readonly records: ConversationRecord[];
  /** Position to pass as `before` for the next page; absent on the last page. */
  readonly nextBefore?: bigint;
}

export interface StoreLimits {
  readonly maxMarkedPerOwner: number;
  readonly maxLabelsPerConversation: number;
}

/** Feed options every adapter takes. */
export interface FeedOptions {
  /** Tombstones older than this are purged (default 30 days). */
  readonly tombstoneRetentionMs?: number;
}

export const DEFAULT_TOMBSTONE_RETENTION_MS = 30 * 24 * 3600 * 1000;

/** Thrown by changes()/head() for a feed the adapter does not keep (MongoDB: every owner's). */
export class FeedUnsupportedError extends Error {
  override readonly name = "FeedUnsupportedError";
}

/**
 * The storage contract every adapter (SQLite, MongoDB) implements and test/store/contract.ts checks.
 *
 * - applyUpdates applies each update atomically and independently, in order; an update that would
 *   take its owner past maxMarkedPerOwner marked conversations, or a conversation past
 *   maxLabelsPerConversation labels, fails alone with RESOURCE_EXHAUSTED; this holds under
 *   concurrent callers (also across processes sharing the store).
 * - An update that changes nothing writes nothing: same version, same position.
 * - Every effective change (update or delete) takes the next position of its owner's stream
 *   (strictly increasing per owner, in commit order) in the same transaction as the write.
 * - The write rules (label limit, marked cap, position, marked count) are src/store/planner.ts,
 *   shared by every adapter.
 * - deleteConversations removes a conversation entirely (it no longer counts against the cap, get
 *   and list no longer see it) and leaves a tombstone in the feed until the retention period ends.
 *   Writing it again creates it anew (version starts at 1).
 * - A database error (I/O, lock timeout, lost connection, a transaction that cannot commit) fails
 *   exactly the items of the transaction it happened in, each with INTERNAL, and none of them is
 *   applied; items in other transactions of the same call keep their own outcomes. The call itself
 *   resolves (it rejects only when the store is closed).
 * - changes() reads the feed (see ChangeQuery); subscribe() delivers every change committed after
 *   it was called, by any process sharing the store, in commit order per owner (store-wide seq
 *   order where the store keeps one), in batches; one reader per store serves all subscribers.
 */
export interface MarkStore {
  applyUpdates(updates: readonly ValidUpdate[]): Promise<ApplyOutcome[]>;
  /**
   * Writes whole states with their own version and update time (backups, migrations), each
   * atomically and independently, in order, through the same planner (label limit, marked cap,
   * position, feed): restored only where the store has nothing (never written, or deleted) or an
   * older version; otherwise nothing is written and the outcome is the stored state, changed false.
   */
  restoreConversations(records: readonly ConversationRecord[]): Promise<ApplyOutcome[]>;
  deleteConversations(keys: readonly ConvKey[]): Promise<DeleteOutcome[]>;
  changes(query: ChangeQuery): Promise<ChangePage>;
  /** The current head: the owner's last position, or the store-wide seq (owner undefined). */
  head(owner?: string): Promise<bigint>;
  /** Calls `listener` with each batch of newly committed changes; returns the unsubscribe function. */
  subscribe(listener: (changes: readonly Change[]) => void): () => void;
  /** Drops tombstones older than the retention period now (adapters also do it periodically). */
  purgeTombstones(): Promise<number>;
  get(key: ConvKey): Promise<ConversationRecord | undefined>;
  batchGet(keys: readonly ConvKey[]): Promise<(ConversationRecord | undefined)[]>;
  list(query: ListQuery): Promise<ListPage>;
  close(): Promise<void>;
}
