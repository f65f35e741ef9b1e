import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { REASON_DOMAIN } from "../domain/reasons.js";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  BatchGetConversationsResponseSchema,
  ConversationType,
  GetConversationResponseSchema,
  ListConversationsResponseSchema,
  ResultView,
  UpdateConversationsResponseSchema,
  type ConversationFilter,
  type MarkService,
  type UpdateResult,
} from "../../gen/convmark/v1/mark_service_pb.js";
import type { Status } from "../../gen/google/rpc/status_pb.js";
import { emptyRecord, type ConvKey, type ConvType, type ValidUpdate } from "../domain/conversation.js";
import type { Limits } from "../domain/limits.js";
import { isValidMark, maskOf } from "../domain/marks.js";
import { Failure, isFailure, validateKey, validateUpdate } from "../domain/validate.js";
import type { ListFilter, MarkStore } from "../store/store.js";
import { recordToProto } from "./convert.js";
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
}

// google.rpc.Status code 0 is OK, which Connect's Code enum (errors only) does not name.
function statusOf(code: Code, message = ""): Status {
  return { $typeName: "google.rpc.Status", code, message, details: [] };
}

const OK_STATUS_CODE = 0 as Code;

function failedResult(f: Failure): UpdateResult {
  const status = statusOf(f.code, f.message);
  if (f.reason) status.details.push(anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { reason: f.reason, domain: REASON_DOMAIN })));
  return { $typeName: "convmark.v1.UpdateResult", status, conversation: undefined, changed: false };
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
  return {
    marksAll: markMaskOrThrow("marks_all", f.marksAll),
    marksAny: markMaskOrThrow("marks_any", f.marksAny),
    marksNone: markMaskOrThrow("marks_none", f.marksNone),
    ...(f.type !== ConversationType.UNSPECIFIED ? { type: f.type as number as ConvType } : {}),
    labelsAny: [...new Set(f.labelsAny)],
    ...(f.pinned !== undefined ? { pinned: f.pinned } : {}),
  };
}

/** convmark.v1.MarkService over a MarkStore. Dialects call it too, so its checks apply once. */
export function createMarkService(deps: MarkServiceDeps): ServiceImpl<typeof MarkService> {
  const { store, limits, guard } = deps;
  return {
    async updateConversations(req) {
      const n = req.updates.length;
      if (n === 0) throw new ConnectError("updates must not be empty", Code.InvalidArgument);
      if (n > limits.maxUpdatesPerRequest) {
        throw new ConnectError(`${n} updates in one request, at most ${limits.maxUpdatesPerRequest} allowed`, Code.InvalidArgument);
      }
      const full = req.resultView !== ResultView.STATUS;
      const results: UpdateResult[] = new Array(n);
      const valid: ValidUpdate[] = [];
      const validIndex: number[] = [];
      req.updates.forEach((u, i) => {
        const v = validateUpdate(u, limits);
        if (isFailure(v)) results[i] = failedResult(v);
        else {
          valid.push(v);
          validIndex.push(i);
        }
      });
      let toApply = valid;
      let applyIndex = validIndex;
      if (guard && valid.length > 0) {
        const verdicts = await guard(valid.map((v) => v.key));
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
      const outcomes = toApply.length > 0 ? await store.applyUpdates(toApply) : [];
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
      return create(UpdateConversationsResponseSchema, { results });
    },

    async getConversation(req) {
      const key = mustKey(req.key, limits);
      const r = await store.get(key);
      if (!r) throw new ConnectError("conversation not found: it was never written", Code.NotFound);
      return create(GetConversationResponseSchema, { conversation: recordToProto(r) });
    },

    async batchGetConversations(req) {
      if (req.keys.length > limits.maxKeysPerBatchGet) {
        throw new ConnectError(`${req.keys.length} keys in one request, at most ${limits.maxKeysPerBatchGet} allowed`, Code.InvalidArgument);
      }
      const keys = req.keys.map((k, i) => {
        const key = validateKey(k, limits);
        if (isFailure(key)) throw new ConnectError(`keys[${i}]: ${key.message}`, key.code);
        return key;
      });
      const found = await store.batchGet(keys);
      return create(BatchGetConversationsResponseSchema, {
        conversations: found.map((r, i) => recordToProto(r ?? emptyRecord(keys[i]!))),
      });
    },

    async listConversations(req) {
      const owner = req.ownerUserId;
      const ownerBytes = Buffer.byteLength(owner);
      if (ownerBytes === 0 || ownerBytes > limits.maxIdBytes) {
        throw new ConnectError(`owner_user_id must be 1..${limits.maxIdBytes} bytes`, Code.InvalidArgument);
      }
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

    // Being built on branch `feed` (issue 8); the proto is final.
    async deleteConversations() {
      throw new ConnectError("DeleteConversations is not implemented yet", Code.Unimplemented);
    },
    async syncConversations() {
      throw new ConnectError("SyncConversations is not implemented yet", Code.Unimplemented);
    },
    // eslint-disable-next-line require-yield
    async *watchConversations() {
      throw new ConnectError("WatchConversations is not implemented yet", Code.Unimplemented);
    },
  };
}
