import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { REASON_DOMAIN } from "../domain/reasons.js";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  BatchGetConversationsResponseSchema,
  ConversationType,
  DeleteConversationsResponseSchema,
  SyncConversationsResponseSchema,
  type ConversationChange,
  type DeleteResult,
  type WatchConversationsResponse,
  GetConversationResponseSchema,
  ListConversationsResponseSchema,
  ResultView,
  RestoreConversationsResponseSchema,
  UpdateConversationsResponseSchema,
  type ConversationFilter,
  type MarkService,
  type UpdateResult,
} from "../../gen/convmark/v1/mark_service_pb.js";
import type { Status } from "../../gen/google/rpc/status_pb.js";
import { emptyRecord, type ConvKey, type ConvType } from "../domain/conversation.js";
import type { Limits } from "../domain/limits.js";
import { isValidMark, maskOf } from "../domain/marks.js";
import { Failure, isFailure, validateKey, validateRestore, validateUpdate } from "../domain/validate.js";
import { FeedUnsupportedError, type ApplyOutcome, type Change, type ChangePage, type ListFilter, type MarkStore } from "../store/store.js";
import { callerOf, ownerRefusal, requireAnyOwner, requireOwner } from "../auth/caller.js";
import { recordToProto } from "./convert.js";
import { decodeFeedCursor, encodeFeedCursor } from "./feed-cursor.js";
import type { FeedHub } from "./feed-hub.js";
import { decodePageToken, encodePageToken } from "./page-token.js";

/**
 * Checks a key against the user/group directory (strict mode); returns why it is refused.
 * Absent when any well-formed ID is accepted.
 */
export type KeyGuard = (keys: readonly ConvKey[]) => Promise<(Failure | undefined)[]>;

export interface MarkServiceDeps {
  readonly store: MarkStore;
  readonly limits: Limits;
  readonly guard?: KeyGuard;
  /** Live delivery for WatchConversations; without it Watch answers UNAVAILABLE. */
  readonly feed?: FeedHub;
  /** Time between Watch heartbeats (default 15 s). */
  readonly heartbeatMs?: number;
}

/** Changes read per store query while a Watch catches up. */
const CATCH_UP_PAGE = 500;

function changeToProto(c: Change): ConversationChange {
  return { $typeName: "convmark.v1.ConversationChange", conversation: recordToProto(c.record), deleted: c.deleted };
}

/** The value of a change in its feed: position in one owner's, seq in every owner's. */
const feedValue = (owner: string | undefined, c: Change) => (owner === undefined ? c.seq : c.record.position);

/** Store feed calls with the every-owner feed a store does not keep mapped to UNIMPLEMENTED. */
async function feedCall<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof FeedUnsupportedError) throw new ConnectError(e.message, Code.Unimplemented);
    throw e;
  }
}

// google.rpc.Status code 0 is OK, which Connect's Code enum (errors only) does not name.
function statusOf(code: Code, message = ""): Status {
  return { $typeName: "google.rpc.Status", code, message, details: [] };
}

const OK_STATUS_CODE = 0 as Code;

function failedResult(f: Failure): UpdateResult {
  const status = statusOf(f.code, f.message);
  if (f.reason) {
    const metadata: Record<string, string> = {};
    if (f.field !== undefined) metadata.field = f.field;
    if (f.problem !== undefined) metadata.problem = f.problem;
    status.details.push(anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { reason: f.reason, domain: REASON_DOMAIN, metadata })));
  }
  return { $typeName: "convmark.v1.UpdateResult", status, conversation: undefined, changed: false };
}

/** owner_user_id of a feed request: empty means every owner. */
function feedOwner(owner: string, limits: Limits): string | undefined {
  if (owner === "") return undefined;
  const n = Buffer.byteLength(owner);
  if (n > limits.maxIdBytes || !owner.isWellFormed()) {
    throw new ConnectError(`owner_user_id must be at most ${limits.maxIdBytes} bytes of valid UTF-8`, Code.InvalidArgument);
  }
  return owner;
}

function mustKey(k: Parameters<typeof validateKey>[0], limits: Limits): ConvKey {
  const key = validateKey(k, limits);
  if (isFailure(key)) throw new ConnectError(key.message, key.code);
  return key;
}

function markMaskOrThrow(field: string, marks: readonly number[]): bigint {
  const bad = marks.find((m) => !isValidMark(m));
  if (bad !== undefined) throw new ConnectError(`filter.${field}: mark ${bad} is outside 1..64`, Code.InvalidArgument);
  return maskOf(marks);
}

function listFilter(f: ConversationFilter | undefined, limits: Limits): ListFilter {
  if (!f) return { marksAll: 0n, marksAny: 0n, marksNone: 0n, labelsAny: [] };
  if (f.type !== ConversationType.UNSPECIFIED && f.type !== ConversationType.DIRECT && f.type !== ConversationType.GROUP) {
    throw new ConnectError(`filter.type ${f.type} is not a conversation type`, Code.InvalidArgument);
  }
  for (const l of f.labelsAny) {
    const n = Buffer.byteLength(l);
    if (n === 0 || n > limits.maxLabelBytes) throw new ConnectError(`filter.labels_any: a label must be 1..${limits.maxLabelBytes} bytes`, Code.InvalidArgument);
  }
  if (f.labelsAny.length > limits.maxLabelsPerConversation) {
    throw new ConnectError(`filter.labels_any has more than ${limits.maxLabelsPerConversation} labels`, Code.InvalidArgument);
  }
  for (const id of f.vendorConversationIds) {
    const n = Buffer.byteLength(id);
    if (n === 0 || n > limits.maxVendorConversationIdBytes || !id.isWellFormed()) {
      throw new ConnectError(`filter.vendor_conversation_ids: an ID must be 1..${limits.maxVendorConversationIdBytes} bytes of valid UTF-8`, Code.InvalidArgument);
    }
  }
  if (f.vendorConversationIds.length > limits.maxKeysPerBatchGet) {
    throw new ConnectError(`filter.vendor_conversation_ids has more than ${limits.maxKeysPerBatchGet} IDs`, Code.InvalidArgument);
  }
  return {
    marksAll: markMaskOrThrow("marks_all", f.marksAll),
    marksAny: markMaskOrThrow("marks_any", f.marksAny),
    marksNone: markMaskOrThrow("marks_none", f.marksNone),
    ...(f.type !== ConversationType.UNSPECIFIED ? { type: f.type as number as ConvType } : {}),
    labelsAny: [...new Set(f.labelsAny)],
    ...(f.pinned !== undefined ? { pinned: f.pinned } : {}),
    ...(f.vendorConversationIds.length > 0 ? { vendorConversationIds: [...new Set(f.vendorConversationIds)] } : {}),
  };
}

/** One owner's feed needs rights for that owner; every owner's feed (no owner) needs a service caller. */
function requireFeedAccess(ctx: HandlerContext, owner: string | undefined): void {
  if (owner === undefined) requireAnyOwner(ctx, "the feed of every owner (empty owner_user_id)");
  else requireOwner(ctx, owner);
}

/** convmark.v1.MarkService over a MarkStore. Dialects call it too, so its checks apply once. */
export function createMarkService(deps: MarkServiceDeps): ServiceImpl<typeof MarkService> {
  const { store, limits, guard, feed } = deps;
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  const readFeed = (owner: string | undefined, after: bigint, limit: number): Promise<ChangePage> =>
    feedCall(() => store.changes({ ...(owner !== undefined ? { owner } : {}), after, limit }));
  const checkBatchSize = (n: number, field: string) => {
    if (n === 0) throw new ConnectError(`${field} must not be empty`, Code.InvalidArgument);
    if (n > limits.maxUpdatesPerRequest) {
      throw new ConnectError(`${n} ${field} in one request, at most ${limits.maxUpdatesPerRequest} allowed`, Code.InvalidArgument);
    }
  };
  /**
   * The write path of Update and Restore: items already refused (invalid, not the caller's) get
   * their failure; the strict-directory guard checks the rest; the store writes what passes. One
   * result per item, in order.
   */
  const writeChecked = async <T extends { readonly key: ConvKey }>(
    checked: readonly (T | Failure)[],
    full: boolean,
    write: (items: T[]) => Promise<ApplyOutcome[]>,
  ): Promise<UpdateResult[]> => {
    const results: UpdateResult[] = new Array(checked.length);
    let toApply: T[] = [];
    let applyIndex: number[] = [];
    checked.forEach((c, i) => {
      if (isFailure(c)) results[i] = failedResult(c);
      else {
        toApply.push(c);
        applyIndex.push(i);
      }
    });
    if (guard && toApply.length > 0) {
      const verdicts = await guard(toApply.map((v) => v.key));
      const valid = toApply;
      const validIndex = applyIndex;
      toApply = [];
      applyIndex = [];
      verdicts.forEach((f, j) => {
        if (f) results[validIndex[j]!] = failedResult(f);
        else {
          toApply.push(valid[j]!);
          applyIndex.push(validIndex[j]!);
        }
      });
    }
    const outcomes = toApply.length > 0 ? await write(toApply) : [];
    outcomes.forEach((o, j) => {
      results[applyIndex[j]!] = o.ok
        ? {
            $typeName: "convmark.v1.UpdateResult",
            status: statusOf(OK_STATUS_CODE),
            conversation: full ? recordToProto(o.record) : undefined,
            changed: o.changed,
          }
        : failedResult(o.failure);
    });
    return results;
  };
  return {
    async updateConversations(req, ctx) {
      checkBatchSize(req.updates.length, "updates");
      const caller = callerOf(ctx);
      const checked = req.updates.map((u) => {
        const v = validateUpdate(u, limits);
        return isFailure(v) ? v : (ownerRefusal(caller, v.key.owner) ?? v);
      });
      const results = await writeChecked(checked, req.resultView !== ResultView.STATUS, (v) => store.applyUpdates(v));
      return create(UpdateConversationsResponseSchema, { results });
    },

    async restoreConversations(req, ctx) {
      // Writing versions and times as given is for backups and migrations: services and trusted
      // callers (protected loopback, CONVMARK_AUTH=off) only, never a user token.
      requireAnyOwner(ctx, "RestoreConversations");
      checkBatchSize(req.conversations.length, "conversations");
      const checked = req.conversations.map((c) => validateRestore(c, limits));
      const results = await writeChecked(checked, req.resultView !== ResultView.STATUS, (r) => store.restoreConversations(r));
      return create(RestoreConversationsResponseSchema, { results });
    },

    async getConversation(req, ctx) {
      const key = mustKey(req.key, limits);
      requireOwner(ctx, key.owner, "key.owner_user_id");
      const r = await store.get(key);
      if (!r) throw new ConnectError("conversation not found: it was never written", Code.NotFound);
      return create(GetConversationResponseSchema, { conversation: recordToProto(r) });
    },

    async batchGetConversations(req, ctx) {
      if (req.keys.length > limits.maxKeysPerBatchGet) {
        throw new ConnectError(`${req.keys.length} keys in one request, at most ${limits.maxKeysPerBatchGet} allowed`, Code.InvalidArgument);
      }
      const keys = req.keys.map((k, i) => {
        const key = validateKey(k, limits);
        if (isFailure(key)) throw new ConnectError(`keys[${i}]: ${key.message}`, key.code);
        // AIP-231: a batch get is all or nothing, so one refused key refuses the call.
        requireOwner(ctx, key.owner, `keys[${i}].owner_user_id`);
        return key;
      });
      const found = await store.batchGet(keys);
      return create(BatchGetConversationsResponseSchema, {
        conversations: found.map((r, i) => recordToProto(r ?? emptyRecord(keys[i]!))),
      });
    },

    async listConversations(req, ctx) {
      const owner = req.ownerUserId;
      const ownerBytes = Buffer.byteLength(owner);
      if (ownerBytes === 0 || ownerBytes > limits.maxIdBytes) {
        throw new ConnectError(`owner_user_id must be 1..${limits.maxIdBytes} bytes`, Code.InvalidArgument);
      }
      requireOwner(ctx, owner);
      if (req.pageSize < 0) throw new ConnectError("page_size must not be negative", Code.InvalidArgument);
      const limit = req.pageSize === 0 ? limits.defaultPageSize : Math.min(req.pageSize, limits.maxPageSize);
      const filter = listFilter(req.filter, limits);
      const before = req.pageToken ? decodePageToken(req.pageToken, owner, filter) : undefined;
      const page = await store.list({ owner, filter, limit, ...(before !== undefined ? { before } : {}) });
      return create(ListConversationsResponseSchema, {
        conversations: page.records.map(recordToProto),
        nextPageToken: page.nextBefore !== undefined ? encodePageToken(owner, filter, page.nextBefore) : "",
      });
    },

    async deleteConversations(req, ctx) {
      const n = req.keys.length;
      if (n === 0) throw new ConnectError("keys must not be empty", Code.InvalidArgument);
      if (n > limits.maxUpdatesPerRequest) {
        throw new ConnectError(`${n} keys in one request, at most ${limits.maxUpdatesPerRequest} allowed`, Code.InvalidArgument);
      }
      const results: DeleteResult[] = new Array(n);
      const keys: ConvKey[] = [];
      const index: number[] = [];
      const caller = callerOf(ctx);
      req.keys.forEach((k, i) => {
        const v = validateKey(k, limits);
        // A key the caller may not touch is refused on its own and never reaches the store.
        const key = isFailure(v) ? v : (ownerRefusal(caller, v.owner) ?? v);
        if (isFailure(key)) results[i] = { $typeName: "convmark.v1.DeleteResult", status: failedResult(key).status, deleted: false };
        else {
          keys.push(key);
          index.push(i);
        }
      });
      const outcomes = keys.length > 0 ? await store.deleteConversations(keys) : [];
      outcomes.forEach((o, j) => {
        results[index[j]!] = o.ok
          ? { $typeName: "convmark.v1.DeleteResult", status: statusOf(OK_STATUS_CODE), deleted: o.deleted }
          : { $typeName: "convmark.v1.DeleteResult", status: failedResult(o.failure).status, deleted: false };
      });
      return create(DeleteConversationsResponseSchema, { results });
    },

    async syncConversations(req, ctx) {
      const owner = feedOwner(req.ownerUserId, limits);
      requireFeedAccess(ctx, owner);
      if (req.pageSize < 0) throw new ConnectError("page_size must not be negative", Code.InvalidArgument);
      const limit = req.pageSize === 0 ? limits.defaultPageSize : Math.min(req.pageSize, limits.maxPageSize);
      const after = req.cursor ? decodeFeedCursor(req.cursor, owner) : 0n;
      const page = await readFeed(owner, after, limit);
      return create(SyncConversationsResponseSchema, {
        changes: page.changes.map(changeToProto),
        nextCursor: encodeFeedCursor(owner, page.last),
        hasMore: page.hasMore,
        reset: page.reset,
      });
    },

    async *watchConversations(req, ctx) {
      const owner = feedOwner(req.ownerUserId, limits);
      requireFeedAccess(ctx, owner);
      const after = req.cursor ? decodeFeedCursor(req.cursor, owner) : undefined;
      // Subscribe before reading anything, so a change committing meanwhile is queued, not lost;
      // what the catch-up already sent is skipped by its value.
      const watcher = feed?.open(owner);
      if (!watcher) throw new ConnectError("the server is shutting down; reconnect with your cursor", Code.Unavailable);
      const response = (changes: Change[], cur: bigint): WatchConversationsResponse => ({
        $typeName: "convmark.v1.WatchConversationsResponse",
        changes: changes.map(changeToProto),
        cursor: encodeFeedCursor(owner, cur),
      });
      try {
        let cur = after ?? (await feedCall(() => store.head(owner)));
        let sent = false;
        // Catching up: pages from the store (collapsed to the latest state of each conversation).
        for (;;) {
          // Live changes dropped for the backlog limit are still in the store: read on.
          if (watcher.overflowed) watcher.resetOverflow();
          const page = await readFeed(owner, cur, CATCH_UP_PAGE);
          if (page.reset) {
            throw new ConnectError(
              "the cursor is older than the retained tombstones (or unknown to this store): re-list the conversations, then watch from the cursor SyncConversations returns",
              Code.FailedPrecondition,
            );
          }
          if (page.changes.length > 0) {
            cur = page.last;
            sent = true;
            yield response(page.changes, cur);
          }
          // Done when the store has nothing more and no live change was dropped meanwhile.
          if (!page.hasMore && !watcher.overflowed) break;
        }
        // Live: tell the client where it stands at once, then every change as it commits.
        if (!sent) yield response([], cur);
        for (;;) {
          const r = await watcher.wait(heartbeatMs, ctx.signal);
          if (r === "ended") return;
          if (watcher.overflowed) {
            throw new ConnectError(
              "the client fell too far behind the live feed; reconnect with the last cursor it received",
              Code.ResourceExhausted,
            );
          }
          const fresh = watcher.take().filter((c) => feedValue(owner, c) > cur);
          if (fresh.length > 0) {
            cur = feedValue(owner, fresh.at(-1)!);
            yield response(fresh, cur);
          } else if (r === "timeout") yield response([], cur);
        }
      } finally {
        watcher.close();
      }
    },
  };
}
