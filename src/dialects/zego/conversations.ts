/**
 * ZEGO's conversation actions beyond SetConvMark: QueryConversationList, ConvPinned and
 * SilenceConvNotification over MarkService. Limits, codes and the guesses where ZEGO's pages are
 * silent: docs/dialects/zego.md.
 */
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  ConversationType,
  ReceiveOption,
  ResultView,
  type Conversation,
  type MarkService,
} from "../../../gen/convmark/v1/mark_service_pb.js";
import {
  ConvErrorSchema,
  ConvInfoSchema,
  ConvPinnedResponseSchema,
  QueryConversationListResponseSchema,
  SilenceConvNotificationResponseSchema,
  type ConvError,
  DeleteConvResponseSchema,
  type DeleteConvRequest,
  type DeleteConvResponse,
  type ConvPinnedRequest,
  type ConvPinnedResponse,
  type QueryConversationListRequest,
  type QueryConversationListResponse,
  type SilenceConvNotificationRequest,
  type SilenceConvNotificationResponse,
} from "../../../gen/vendor/zego/v1/zim_server_pb.js";
import type { ZegoError } from "./auth.js";
import { ZegoCode, ZegoConvType } from "./codes.js";
import { conversationOutcome, isZegoUserId } from "./translate.js";

export const MAX_PINNED_PER_CALL = 20;
export const MAX_SILENCED_PER_CALL = 10;
export const DEFAULT_QUERY_LIMIT = 100;
export const MAX_QUERY_LIMIT = 500;
/** QueryConversationList returns at most the 1000 latest conversations. */
export const MAX_QUERY_CONVERSATIONS = 1000;
/** ZEGO's IDs are at most 32 characters (FromUserId, ConvId in ZEGO's API reference). */
export const MAX_ZEGO_ID_CHARS = 32;

const bad = (message: string): ZegoError => ({ code: ZegoCode.BadParameter, message });

/** FromUserId checks shared by the actions (660000002). */
export function checkFromUserId(id: string): ZegoError | undefined {
  if (id === "") return bad("FromUserId is required");
  if (!isZegoUserId(id)) return bad("FromUserId contains characters ZEGO does not allow in a user ID");
  return undefined;
}

function convType(t: number | undefined): ConversationType | undefined {
  if (t === ZegoConvType.C2c) return ConversationType.DIRECT;
  if (t === ZegoConvType.Group) return ConversationType.GROUP;
  return undefined;
}

const zegoType = (t: ConversationType) => (t === ConversationType.GROUP ? ZegoConvType.Group : ZegoConvType.C2c);

interface Target {
  readonly convId: string;
  readonly zegoType: number;
}

export function createConversationOps(marks: Client<typeof MarkService>) {
  /** Applies one settings change to each target; the failures become ErrorList entries. */
  async function setEach(owner: string, targets: readonly Target[], settings: { pinned?: boolean; receiveOption?: ReceiveOption }): Promise<ConvError[]> {
    const { results } = await marks.updateConversations({
      updates: targets.map((t) => ({ key: { ownerUserId: owner, type: convType(t.zegoType)!, conversationId: t.convId }, settings })),
      resultView: ResultView.STATUS,
    });
    const errors: ConvError[] = [];
    results.forEach((r, i) => {
      const o = conversationOutcome(r);
      if (o.ok) return;
      const t = targets[i]!;
      errors.push(
        create(ConvErrorSchema, {
          convId: t.convId,
          convType: t.zegoType,
          subCode: o.userNotFound ? ZegoCode.UserNotRegistered : o.code,
          subMessage: o.userNotFound ? "user not registered" : o.message,
        }),
      );
    });
    return errors;
  }

  /** Code/Message of a batch: success when at least one conversation applied. */
  function envelope(n: number, errors: readonly ConvError[]) {
    return errors.length < n
      ? { code: ZegoCode.Success, message: "success" }
      : { code: ZegoCode.AllConversationsFailed, message: "the operation failed for all conversations" };
  }

  return {
    async query(req: QueryConversationListRequest): Promise<QueryConversationListResponse | ZegoError> {
      const badOwner = checkFromUserId(req.fromUserId);
      if (badOwner) return badOwner;
      if (req.next < 0n) return bad("Next must not be negative");
      const limit = req.limit <= 0n ? DEFAULT_QUERY_LIMIT : req.limit > BigInt(MAX_QUERY_LIMIT) ? MAX_QUERY_LIMIT : Number(req.limit);
      const all: Conversation[] = [];
      let pageToken = "";
      do {
        const page = await marks.listConversations({ ownerUserId: req.fromUserId, pageSize: MAX_QUERY_CONVERSATIONS, pageToken });
        all.push(...page.conversations);
        pageToken = page.nextPageToken;
      } while (pageToken && all.length < MAX_QUERY_CONVERSATIONS);
      const latest = all.slice(0, MAX_QUERY_CONVERSATIONS);
      // Pinned conversations first, each side most recently changed first (ZIM's documented order).
      const ordered = [...latest.filter((c) => c.settings?.pinned === true), ...latest.filter((c) => c.settings?.pinned !== true)];
      const from = Number(req.next);
      const page = ordered.slice(from, from + limit);
      const end = from + page.length;
      return create(QueryConversationListResponseSchema, {
        code: ZegoCode.Success,
        message: "success",
        next: end < ordered.length ? BigInt(end) : 0n,
        totalCount: BigInt(ordered.length),
        convList: page.map((c) =>
          create(ConvInfoSchema, {
            convId: c.key!.conversationId,
            convType: zegoType(c.key!.type),
            isPinned: c.settings?.pinned === true,
            notificationStatus: c.settings?.receiveOption === ReceiveOption.RECEIVE_SILENTLY || c.settings?.receiveOption === ReceiveOption.DO_NOT_RECEIVE ? 2 : 1,
            marks: c.marks,
            orderKey: c.updateTime ? c.updateTime.seconds * 1000n + BigInt(Math.floor(c.updateTime.nanos / 1e6)) : 0n,
          }),
        ),
      });
    },

    async pin(req: ConvPinnedRequest): Promise<ConvPinnedResponse | ZegoError> {
      const badOwner = checkFromUserId(req.fromUserId);
      if (badOwner) return badOwner;
      if (req.pinnedType !== 0 && req.pinnedType !== 1) return bad("PinnedType must be 0 (unpin) or 1 (pin)");
      const n = req.convList.length;
      if (n === 0 || n > MAX_PINNED_PER_CALL) return bad(`ConvList must hold 1..${MAX_PINNED_PER_CALL} conversations, got ${n}`);
      const targets: Target[] = [];
      const errors: ConvError[] = [];
      for (const c of req.convList) {
        const t = convType(c.convType);
        if (t === undefined || c.convId === "" || [...c.convId].length > MAX_ZEGO_ID_CHARS) {
          errors.push(create(ConvErrorSchema, { convId: c.convId, convType: c.convType ?? 0, subCode: ZegoCode.BadParameter, subMessage: "ConvId must be 1..32 characters and ConvType 0 or 2" }));
        } else targets.push({ convId: c.convId, zegoType: c.convType! });
      }
      if (targets.length > 0) errors.push(...(await setEach(req.fromUserId, targets, { pinned: req.pinnedType === 1 })));
      return create(ConvPinnedResponseSchema, { ...envelope(n, errors), errorList: errors });
    },

    async del(req: DeleteConvRequest): Promise<DeleteConvResponse | ZegoError> {
      const badOwner = checkFromUserId(req.fromUserId);
      if (badOwner) return badOwner;
      const type = convType(req.convType);
      if (type === undefined) return bad("ConvType must be 0 (one-to-one) or 2 (group)");
      if (req.convId === "" || [...req.convId].length > MAX_ZEGO_ID_CHARS) return bad("ConvId must be 1..32 characters");
      const { results } = await marks.deleteConversations({ keys: [{ ownerUserId: req.fromUserId, type, conversationId: req.convId }] });
      const status = results[0]?.status;
      if (status && status.code !== 0) return { code: ZegoCode.GeneralError, message: `the conversation could not be deleted: ${status.message}` };
      // Deleting a conversation convmark does not hold succeeds too (the result is the same).
      return create(DeleteConvResponseSchema, { code: ZegoCode.Success, message: "success" });
    },

    async silence(req: SilenceConvNotificationRequest): Promise<SilenceConvNotificationResponse | ZegoError> {
      const badOwner = checkFromUserId(req.fromUserId);
      if (badOwner) return badOwner;
      if (convType(req.convType) === undefined) return bad("ConvType must be 0 (one-to-one) or 2 (group)");
      if (req.enable === undefined) return bad("Enable is required");
      const n = req.convIds.length;
      if (n === 0 || n > MAX_SILENCED_PER_CALL) return bad(`ConvIds must hold 1..${MAX_SILENCED_PER_CALL} conversation IDs, got ${n}`);
      const targets: Target[] = [];
      const errors: ConvError[] = [];
      const distinct = [...new Set(req.convIds)];
      for (const id of distinct) {
        if (id === "" || [...id].length > MAX_ZEGO_ID_CHARS) {
          errors.push(create(ConvErrorSchema, { convId: id, convType: req.convType!, subCode: ZegoCode.BadParameter, subMessage: "ConvId must be 1..32 characters" }));
        } else targets.push({ convId: id, zegoType: req.convType! });
      }
      if (targets.length > 0) {
        errors.push(...(await setEach(req.fromUserId, targets, { receiveOption: req.enable ? ReceiveOption.RECEIVE_SILENTLY : ReceiveOption.RECEIVE })));
      }
      return create(SilenceConvNotificationResponseSchema, { ...envelope(distinct.length, errors), errorList: errors });
    },
  };
}

export type ConversationOps = ReturnType<typeof createConversationOps>;
