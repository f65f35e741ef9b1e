import type { ConvKey, ConvType, ConversationRecord, ValidUpdate } from "../domain/conversation.js";
import type { Failure } from "../domain/validate.js";

/** Outcome of one update: the state after it, or why it was refused (nothing applied). */
export type ApplyOutcome =
  | { readonly ok: true; readonly record: ConversationRecord; readonly changed: boolean }
  | { readonly ok: false; readonly failure: Failure };

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

/**
 * The storage contract every adapter (SQLite, MongoDB) implements and test/store/contract.ts checks.
 *
 * - applyUpdates applies each update atomically and independently, in order; an update that would
 *   take its owner past maxMarkedPerOwner marked conversations, or a conversation past
 *   maxLabelsPerConversation labels, fails alone with RESOURCE_EXHAUSTED; this holds under
 *   concurrent callers (also across processes sharing the store).
 * - An update that changes nothing writes nothing: same version, same position.
 * - Every effective change takes the next position of its owner's stream (strictly increasing per
 *   owner), so a change feed can later read "everything since position P".
 */
export interface MarkStore {
  applyUpdates(updates: readonly ValidUpdate[]): Promise<ApplyOutcome[]>;
  get(key: ConvKey): Promise<ConversationRecord | undefined>;
  batchGet(keys: readonly ConvKey[]): Promise<(ConversationRecord | undefined)[]>;
  list(query: ListQuery): Promise<ListPage>;
  close(): Promise<void>;
}
