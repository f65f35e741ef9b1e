/**
 * Pure translation of OpenIM's SetConversationsReq into convmark updates. Everything OpenIM would
 * refuse, and everything MarkService would refuse per item, is refused here first, so a request is
 * applied whole or not at all (OpenIM's set_conversations is all-or-nothing).
 */
import { ConvType, Receive } from "../../domain/conversation.js";
import { DEFAULT_LIMITS, type Limits } from "../../domain/limits.js";
import { isFailure, validateKey, validateSettings, validateVendorConversationId, type SettingsInput } from "../../domain/validate.js";
import { vendorMessage } from "../kernel.js";
import type { SetConversationsRequest } from "../../../gen/vendor/openim/v1/conversation_service_pb.js";
import { apiLayerError, OpenimCode, openimError, type OpenimError } from "./errors.js";

/** openimsdk/protocol constant: SessionType values. */
export const SessionType = { SingleChat: 1, WriteGroupChat: 2, ReadGroupChat: 3, NotificationChat: 4 } as const;

/** OpenIM recvMsgOpt (constant.ReceiveMessage/NotReceiveMessage/ReceiveNotNotifyMessage) → convmark ReceiveOption. */
const RECV_MSG_OPT: Record<number, number> = { 0: Receive.Receive, 1: Receive.DoNotReceive, 2: Receive.ReceiveSilently };

export interface PlannedUpdate {
  readonly key: { readonly ownerUserId: string; readonly type: number; readonly conversationId: string };
  readonly settings: SettingsInput;
  /** The request's conversationID, stored verbatim (absent when the request's is empty). */
  readonly vendorConversationId?: string;
}

export interface SetPlan {
  /** The owners, deduplicated, in first-seen order. */
  readonly owners: readonly string[];
  readonly type: ConvType;
  /** The group (type 3) or undefined. */
  readonly groupId?: string;
  /** Every user ID that must be a registered user (owners and, for a single chat, the peers). */
  readonly userIdsToCheck: readonly string[];
  readonly updates: readonly PlannedUpdate[];
}

export interface PlanOptions {
  readonly maxUserIds: number;
  readonly limits?: Pick<Limits, "maxIdBytes" | "maxSettingStringBytes" | "maxVendorConversationIdBytes">;
}

const argsError = (detail: string) => openimError(OpenimCode.ArgsError, detail);

/** convmark.v1 field paths → OpenIM's JSON names (a Failure names its field; nothing parses messages). */
export const FIELD_NAMES: Readonly<Record<string, string>> = {
  "key.owner_user_id": "userID",
  "settings.pinned": "isPinned",
  "settings.receive_option": "recvMsgOpt",
  "settings.private_chat": "isPrivateChat",
  "settings.burn_duration_seconds": "burnDuration",
  "settings.attached_info": "attachedInfo",
  "settings.ex": "ex",
  vendor_conversation_id: "conversationID",
};

/** Go's sort.Strings order: byte-wise over UTF-8. */
function byteLess(a: string, b: string): boolean {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")) < 0;
}

/** msgprocessor.GetConversationIDBySessionType(SingleChatType, a, b): "si_" + the two IDs sorted, joined by "_". */
export function singleChatConversationId(a: string, b: string): string {
  return byteLess(b, a) ? `si_${b}_${a}` : `si_${a}_${b}`;
}

/** msgprocessor.GetConversationIDBySessionType(ReadGroupChatType, groupID). */
export function groupChatConversationId(groupId: string): string {
  return `sg_${groupId}`;
}

/**
 * The other participant named by a single-chat ID `si_<a>_<b>` that has `userId` as one side, or
 * undefined when the ID does not name `userId` unambiguously. `order` "sorted" accepts only the ID
 * OpenIM derives (the two IDs sorted, what a lookup by a derived ID needs); "either" also the two
 * IDs in the other order (set_conversations takes the ID as the caller wrote it).
 */
export function otherParticipant(conversationId: string, userId: string, order: "sorted" | "either" = "sorted"): string | undefined {
  if (!conversationId.startsWith("si_")) return undefined;
  const rest = conversationId.slice(3);
  const candidates = new Set<string>();
  if (rest.startsWith(`${userId}_`)) candidates.add(rest.slice(userId.length + 1));
  if (rest.endsWith(`_${userId}`)) candidates.add(rest.slice(0, rest.length - userId.length - 1));
  candidates.delete("");
  const valid = [...candidates].filter((x) => order === "either" || singleChatConversationId(x, userId) === conversationId);
  return valid.length === 1 ? valid[0] : undefined;
}

export function planSetConversations(req: SetConversationsRequest, opts: PlanOptions): SetPlan | OpenimError {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  // The checks of SetConversationsReq.Check() (openimsdk/protocol conversation/conversation.go), in its
  // order: API-layer errors (checker.Validate), so errDlt is empty ("userIDs is empty", "conversation is
  // empty", "conversationType is invalid", "userID is empty", "groupID is empty").
  if (req.userIds.length === 0) return apiLayerError(OpenimCode.ArgsError);
  const c = req.conversation;
  if (!c) return apiLayerError(OpenimCode.ArgsError);
  if (c.conversationType === 0) return apiLayerError(OpenimCode.ArgsError);
  if (c.conversationType === SessionType.SingleChat && c.userId === "") return apiLayerError(OpenimCode.ArgsError);
  if (c.conversationType === SessionType.ReadGroupChat && c.groupId === "") return apiLayerError(OpenimCode.ArgsError);

  if (c.conversationType !== SessionType.SingleChat && c.conversationType !== SessionType.ReadGroupChat) {
    return argsError(`conversationType ${c.conversationType} is not supported: 1 (single chat) or 3 (group chat)`);
  }

  for (const id of req.userIds) {
    const bytes = Buffer.byteLength(id, "utf8");
    if (id === "") return argsError("userIDs contains an empty user ID");
    if (!id.isWellFormed()) return argsError("userIDs contains a user ID that is not valid UTF-8");
    if (bytes > limits.maxIdBytes) return argsError(`userIDs contains a user ID of ${bytes} bytes, at most ${limits.maxIdBytes} allowed`);
  }
  const owners = [...new Set(req.userIds)];
  if (owners.length > opts.maxUserIds) {
    return argsError(`userIDs has ${owners.length} distinct user IDs, at most ${opts.maxUserIds} allowed`);
  }

  // Settings: only the fields present; OpenIM ignores isPrivateChat for group chats.
  const input: SettingsInput = {};
  if (c.isPinned !== undefined) input.pinned = c.isPinned;
  if (c.recvMsgOpt !== undefined) {
    const opt = RECV_MSG_OPT[c.recvMsgOpt];
    if (opt === undefined) return argsError(`recvMsgOpt ${c.recvMsgOpt} is invalid: 0 (receive), 1 (do not receive) or 2 (receive without notification)`);
    input.receiveOption = opt;
  }
  if (c.isPrivateChat !== undefined && c.conversationType === SessionType.SingleChat) input.privateChat = c.isPrivateChat;
  if (c.burnDuration !== undefined) input.burnDurationSeconds = c.burnDuration;
  if (c.attachedInfo !== undefined) input.attachedInfo = c.attachedInfo;
  if (c.ex !== undefined) input.ex = c.ex;
  const settings = validateSettings(input, limits);
  if (isFailure(settings)) return argsError(vendorMessage(settings, FIELD_NAMES));
  // Stored verbatim, so bounded like any stored string (OpenIM itself has no bound).
  const badId = validateVendorConversationId(c.conversationId, limits);
  if (badId) return argsError(vendorMessage(badId, FIELD_NAMES));

  // The conversationID is taken as the released server takes it (internal/rpc/conversation
  // SetConversations stores it verbatim, never checks it): it decides the convmark key where it parses
  // (sg_<group>, or si_<a>_<b> naming the owner's chat), else the key comes from conversationType and
  // userID/groupID, as OpenIM files the conversation under the owner with those fields.
  let type: ConvType;
  let groupId: string | undefined;
  const peers = new Map<string, string>();
  if (c.conversationType === SessionType.ReadGroupChat) {
    type = ConvType.Group;
    groupId = c.conversationId.startsWith("sg_") && c.conversationId.length > 3 ? c.conversationId.slice(3) : c.groupId;
  } else {
    type = ConvType.Direct;
    // si_<x>_<userID> is the same chat for both participants: owner x sees peer userID, owner userID
    // sees peer x. Any other owner (or an ID that does not parse) has the peer the request names, userID.
    const x = otherParticipant(c.conversationId, c.userId, "either");
    for (const owner of owners) peers.set(owner, x !== undefined && owner === c.userId ? x : c.userId);
  }

  const updates: PlannedUpdate[] = [];
  for (const owner of owners) {
    const key = { ownerUserId: owner, type, conversationId: type === ConvType.Group ? groupId! : peers.get(owner)! };
    const valid = validateKey(key, limits);
    if (isFailure(valid)) {
      return argsError(vendorMessage(valid, { ...FIELD_NAMES, "key.conversation_id": type === ConvType.Group ? "groupID" : "userID" }));
    }
    updates.push({ key, settings, ...(c.conversationId !== "" ? { vendorConversationId: c.conversationId } : {}) });
  }
  const userIdsToCheck = type === ConvType.Direct ? [...new Set([...owners, ...peers.values()])] : owners;
  return { owners, type, ...(groupId !== undefined ? { groupId } : {}), userIdsToCheck, updates };
}
