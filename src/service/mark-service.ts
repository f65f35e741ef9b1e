import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { REASON_DOMAIN } from "../domain/reasons.js";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
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
  type ConversationFilter,
  type UpdateConversationsResponse,
  type MarkService,
  type UpdateResult,
} from "../../gen/convmark/v1/mark_service_pb.js";
import type { Status } from "../../gen/google/rpc/status_pb.js";
import { emptyRecord, type ConvKey, type ConvType } from "../domain/conversation.js";
import type { Limits } from "../domain/limits.js";
import { isValidMark, maskOf } from "../domain/marks.js";
import { Failure, isFailure, validateKey, validateRestore, validateUpdate } from "../domain/validate.js";
import type { ApplyOutcome, Change, ListFilter, MarkStore } from "../store/store.js";
import { callerOf, ownerRefusal, requireAnyOwner, requireCallerAnyOwner, requireCallerOwner, requireOwner, type Caller } from "../auth/caller.js";
import { recordToProto } from "./convert.js";
import { decodeFeedCursor, encodeFeedCursor, feedCursorEncoder } from "./feed-cursor.js";
import type { FeedHub } from "./feed-hub.js";
import { readFeed, watchIterable, type WatchSpec } from "./watch-session.js";
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

/** A change as the API sends it (the lean Watch route encodes this once per change and shares the bytes). */
export function changeToProto(c: Change): ConversationChange {
  return { $typeName: "convmark.v1.ConversationChange", conversation: recordToProto(c.record), deleted: c.deleted };
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
function requireFeedAccess(caller: Caller | undefined, owner: string | undefined): void {
  if (owner === undefined) requireCallerAnyOwner(caller, "the feed of every owner (empty owner_user_id)");
  else requireCallerOwner(caller, owner);
}

/**
 * A WatchConversations request checked (owner, the caller's access to it, cursor) and turned into
 * what startWatch needs; throws the ConnectError to answer with. Shared by connect-node's route and
 * the lean gRPC route (watch-grpc.ts), so both refuse exactly the same calls.
 */
export function watchSpecOf(
  deps: Pick<MarkServiceDeps, "store" | "limits" | "feed" | "heartbeatMs">,
  req: { readonly ownerUserId: string; readonly cursor: string },
  caller: Caller | undefined,
): WatchSpec {
  const owner = feedOwner(req.ownerUserId, deps.limits);
  requireFeedAccess(caller, owner);
  const after = req.cursor ? decodeFeedCursor(req.cursor, owner) : undefined;
  return { store: deps.store, feed: deps.feed, owner, after, heartbeatMs: deps.heartbeatMs ?? 15_000 };
}

/** convmark.v1.MarkService over a MarkStore. Dialects call it too, so its checks apply once. */
export function createMarkService(deps: MarkServiceDeps): ServiceImpl<typeof MarkService> {
  const { store, limits, guard } = deps;
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
      // A literal: create() would walk the schema and every result again.
      return { $typeName: "convmark.v1.UpdateConversationsResponse", results } satisfies UpdateConversationsResponse;
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
      requireFeedAccess(callerOf(ctx), owner);
      if (req.pageSize < 0) throw new ConnectError("page_size must not be negative", Code.InvalidArgument);
      const limit = req.pageSize === 0 ? limits.defaultPageSize : Math.min(req.pageSize, limits.maxPageSize);
      const after = req.cursor ? decodeFeedCursor(req.cursor, owner) : 0n;
      const page = await readFeed(store, owner, after, limit);
      return create(SyncConversationsResponseSchema, {
        changes: page.changes.map(changeToProto),
        nextCursor: encodeFeedCursor(owner, page.last),
        hasMore: page.hasMore,
        reset: page.reset,
      });
    },

    async *watchConversations(req, ctx) {
      const spec = watchSpecOf(deps, req, callerOf(ctx));
      const cursorOf = feedCursorEncoder(spec.owner);
      for await (const r of watchIterable(spec, ctx.signal)) {
        yield {
          $typeName: "convmark.v1.WatchConversationsResponse",
          changes: r.changes.map(changeToProto),
          cursor: cursorOf(r.cursor),
        } satisfies WatchConversationsResponse;
      }
    },
  };
}
