/** Pure translation between ZEGO's SetConvMark and convmark.v1.MarkService. */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import {
  ConversationType,
  type ConversationUpdateSchema,
  type UpdateResult,
} from "../../../gen/convmark/v1/mark_service_pb.js";
import {
  ConvMarkFailListSchema,
  SetConvMarkResponseSchema,
  UserFailListSchema,
  type ConvMarkFailList,
  type SetConvMarkRequest,
  type SetConvMarkResponse,
  type UserFailList,
} from "../../../gen/vendor/zego/v1/zim_server_pb.js";
import { Reason } from "../../domain/reasons.js";
import { reasonOf } from "../../service/convert.js";
import { mapEntries } from "../map-entries.js";
import type { ZegoError } from "./auth.js";
import { ItemCode, ZegoCode, ZegoConvType } from "./codes.js";

export const MAX_ENTRIES = 100;
export const MAX_CONVERSATIONS_PER_MAP = 100;
export const MIN_MARK_CONTENT = 1;
export const MAX_MARK_CONTENT = 30;

/**
 * ZEGO's user-ID charset: digits, letters and ! # $ % & ( ) + - : ; < = . > ? @ [ ] ^ _ space { } | ~
 * (the document's FromUserId list drops '-' between '+' and ':', evidently a typo: the UserId list has it).
 */
const USER_ID = /^[0-9A-Za-z!#$%&()+\-:;<=.>?@[\]^_ {}|~]+$/;

export function isZegoUserId(s: string): boolean {
  return USER_ID.test(s);
}

const badParameter = (message: string): ZegoError => ({ code: ZegoCode.BadParameter, message });

/** Whole-request checks: any failure rejects the request (660000002) before anything is applied. */
export function validateRequest(req: SetConvMarkRequest): ZegoError | undefined {
  if (req.fromUserId === "") return badParameter("FromUserId is required");
  if (!isZegoUserId(req.fromUserId)) return badParameter("FromUserId contains characters ZEGO does not allow in a user ID");
  const n = req.convMarkInfoList.length;
  if (n === 0 || n > MAX_ENTRIES) return badParameter(`ConvMarkInfoList must hold 1..${MAX_ENTRIES} entries, got ${n}`);
  for (const [i, e] of req.convMarkInfoList.entries()) {
    const at = `ConvMarkInfoList[${i}]`;
    if (e.userId === "") return badParameter(`${at}.UserId is required`);
    if (!isZegoUserId(e.userId)) return badParameter(`${at}.UserId contains characters ZEGO does not allow in a user ID`);
    if (e.action === undefined) return badParameter(`${at}.Action is required`);
    const c2c = mapEntries(e.setMarkC2c);
    const group = mapEntries(e.setMarkGroup);
    if (c2c.length === 0 && group.length === 0) return badParameter(`${at} needs at least one of SetMarkC2c, SetMarkGroup`);
    for (const [field, convs] of [["SetMarkC2c", c2c], ["SetMarkGroup", group]] as const) {
      if (convs.length > MAX_CONVERSATIONS_PER_MAP) {
        return badParameter(`${at}.${field} holds ${convs.length} conversations, at most ${MAX_CONVERSATIONS_PER_MAP} allowed`);
      }
      for (const [convId, info] of convs) {
        if (info.markContent === undefined) return badParameter(`${at}.${field}[${JSON.stringify(convId)}].MarkContent is required`);
      }
    }
  }
  return undefined;
}

export function isValidMarkContent(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_MARK_CONTENT && n <= MAX_MARK_CONTENT;
}

/** One conversation of the request: sent as updates[updateIndex], or failed before sending. */
export interface ConvPlan {
  readonly convId: string;
  readonly convType: number;
  readonly updateIndex?: number;
  readonly failure?: { readonly code: number; readonly message: string };
}

export interface EntryPlan {
  readonly userId: string;
  readonly convs: readonly ConvPlan[];
}

export interface Plan {
  readonly updates: MessageInitShape<typeof ConversationUpdateSchema>[];
  readonly entries: readonly EntryPlan[];
}

export const MARK_CONTENT_INVALID = "mark content is invalide"; // sic: the document's response example

/** Translates a validated request: one update per conversation, all for one UpdateConversations call. */
export function planUpdates(req: SetConvMarkRequest): Plan {
  const updates: MessageInitShape<typeof ConversationUpdateSchema>[] = [];
  const entries = req.convMarkInfoList.map((e): EntryPlan => {
    const convs: ConvPlan[] = [];
    const sides = [
      [e.setMarkC2c, ConversationType.DIRECT, ZegoConvType.C2c],
      [e.setMarkGroup, ConversationType.GROUP, ZegoConvType.Group],
    ] as const;
    for (const [map, type, convType] of sides) {
      for (const [convId, info] of mapEntries(map)) {
        const mark = info.markContent ?? 0;
        if (!isValidMarkContent(mark)) {
          convs.push({ convId, convType, failure: { code: ItemCode.Failed, message: MARK_CONTENT_INVALID } });
          continue;
        }
        convs.push({ convId, convType, updateIndex: updates.length });
        updates.push({
          key: { ownerUserId: e.userId, type, conversationId: convId },
          ...(e.action ? { setMarks: [mark] } : { clearMarks: [mark] }),
        });
      }
    }
    return { userId: e.userId, convs };
  });
  return { updates, entries };
}

type ConvOutcome = { ok: true } | { ok: false; userNotFound: true } | { ok: false; userNotFound: false; code: number; message: string };

/** Maps one MarkService result to ZEGO's per-conversation Code/Message (docs/dialects/zego.md). */
export function conversationOutcome(r: UpdateResult | undefined): ConvOutcome {
  const status = r?.status;
  if (!status) return { ok: false, userNotFound: false, code: ItemCode.Failed, message: "internal error" };
  if (status.code === 0) return { ok: true };
  const fail = (code: number, message: string): ConvOutcome => ({ ok: false, userNotFound: false, code, message });
  switch (reasonOf(status)) {
    case Reason.UserNotFound:
      return { ok: false, userNotFound: true };
    case Reason.PeerNotFound:
      return fail(ItemCode.Failed, "peer user not exist");
    case Reason.GroupNotFound:
      return fail(ItemCode.Failed, "group not exist");
    case Reason.GroupDismissed:
      return fail(ItemCode.Failed, "group is dismissed");
    case Reason.NotGroupMember:
      return fail(ItemCode.Failed, "user is not a member of the group");
    case Reason.OwnerMarkedLimit:
      return fail(ItemCode.Failed, "marked conversation count exceeds the limit");
  }
  if (status.code === Code.InvalidArgument) return fail(ItemCode.BadParameter, `invalid parameter: ${status.message}`);
  if (status.code === Code.ResourceExhausted) return fail(ItemCode.Failed, `limit exceeded: ${status.message}`);
  return fail(ItemCode.Failed, "internal error, please retry");
}

export const USER_NOT_EXIST = "user not exist";
export const ALL_FAILED_MESSAGE = "mark operation failed for all conversations";

/** Builds ZEGO's response from the plan and the MarkService results (results[i] answers updates[i]). */
export function buildResponse(plan: Plan, results: readonly UpdateResult[], requestId: string): SetConvMarkResponse {
  let succeeded = 0;
  const failList: UserFailList[] = [];
  for (const entry of plan.entries) {
    const failed: ConvMarkFailList[] = [];
    let ok = 0;
    let userNotFound = false;
    for (const c of entry.convs) {
      if (c.failure) {
        failed.push(create(ConvMarkFailListSchema, { code: c.failure.code, message: c.failure.message, convId: c.convId, convType: c.convType }));
        continue;
      }
      const o = conversationOutcome(results[c.updateIndex!]);
      if (o.ok) ok++;
      else if (o.userNotFound) userNotFound = true;
      else failed.push(create(ConvMarkFailListSchema, { code: o.code, message: o.message, convId: c.convId, convType: c.convType }));
    }
    if (userNotFound) {
      failList.push(create(UserFailListSchema, { subCode: ItemCode.Failed, subMessage: USER_NOT_EXIST, userId: entry.userId }));
      continue;
    }
    succeeded += ok;
    if (failed.length === 0) continue;
    failList.push(
      ok > 0
        ? create(UserFailListSchema, { subCode: 0, subMessage: "succ", userId: entry.userId, failList: failed })
        : create(UserFailListSchema, { subCode: ZegoCode.AllConversationsFailed, subMessage: ALL_FAILED_MESSAGE, userId: entry.userId, failList: failed }),
    );
  }
  return succeeded > 0
    ? create(SetConvMarkResponseSchema, { code: ZegoCode.Success, message: "success", requestId, failList })
    : create(SetConvMarkResponseSchema, { code: ZegoCode.AllConversationsFailed, message: ALL_FAILED_MESSAGE, requestId, failList });
}

export function errorResponse(e: ZegoError, requestId: string): SetConvMarkResponse {
  return create(SetConvMarkResponseSchema, { code: e.code, message: e.message, requestId });
}
