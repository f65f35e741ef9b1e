/** Pure translation between Tencent's mark_contact messages and convmark.v1 MarkService messages. */
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import {
  ConversationType,
  ConversationKeySchema,
  ConversationUpdateSchema,
  type ConversationKey,
  type ConversationUpdate,
  type UpdateResult,
} from "../../../gen/convmark/v1/mark_service_pb.js";
import {
  ContactItemSchema,
  MarkContactResponseSchema,
  ResultItemSchema,
  type ContactItem,
  type MarkContactRequest,
  type MarkContactResponse,
  type MarkItem,
  type ResultItem,
} from "../../../gen/vendor/tencent/v1/recent_contact_pb.js";
import { DEFAULT_LIMITS } from "../../domain/limits.js";
import { MAX_MARK, MIN_MARK } from "../../domain/marks.js";
import { Reason } from "../../domain/reasons.js";
import { reasonOf } from "../../service/convert.js";
import { TencentCode, TencentError } from "./errors.js";

/** MarkItem holds 1..100 items (51006 otherwise). */
export const MAX_MARK_ITEMS = 100;
/** CustomMark is at most 256 bytes. */
export const MAX_CUSTOM_MARK_BYTES = 256;
/** From_Account is refused as a whole beyond convmark's ID limit. */
export const MAX_ACCOUNT_BYTES = DEFAULT_LIMITS.maxIdBytes;

export const OptType = { Standard: 1, Custom: 2, Both: 3 } as const;
export const ContactType = { C2C: 1, Group: 2 } as const;

export interface ItemFailure {
  readonly code: TencentCode;
  readonly info: string;
}

/** Whole-request checks, before anything is applied. Returns the owner (From_Account) or the error. */
export function checkRequest(req: MarkContactRequest): string | TencentError {
  const owner = checkOwner(req.fromAccount);
  if (owner instanceof TencentError) return owner;
  const n = req.markItem.length;
  if (n === 0 || n > MAX_MARK_ITEMS) {
    return new TencentError(TencentCode.ItemCount, `MarkItem holds ${n} conversations, 1..${MAX_MARK_ITEMS} allowed`);
  }
  return owner;
}

/** From_Account of any recentcontact request: required, valid UTF-8, within convmark's ID limit (50002). */
export function checkOwner(owner: string | undefined): string | TencentError {
  if (owner === undefined || owner === "") return new TencentError(TencentCode.BadParameter, "From_Account is required");
  if (!owner.isWellFormed()) return new TencentError(TencentCode.BadParameter, "From_Account is not valid UTF-8");
  const bytes = Buffer.byteLength(owner, "utf8");
  if (bytes > MAX_ACCOUNT_BYTES) {
    return new TencentError(TencentCode.BadParameter, `From_Account is ${bytes} bytes, at most ${MAX_ACCOUNT_BYTES} allowed`);
  }
  return owner;
}

function checkMarks(field: string, marks: readonly bigint[]): ItemFailure | undefined {
  // Tencent's bits 1..64 are convmark's marks 1..64; JSON numbers arrive as uint64 bigints.
  const bad = marks.find((m) => m < BigInt(MIN_MARK) || m > BigInt(MAX_MARK));
  if (bad !== undefined) return { code: TencentCode.BadParameter, info: `${field}: bit ${bad} is outside ${MIN_MARK}..${MAX_MARK}` };
  return undefined;
}

/** The convmark key of a ContactItem (Type 1 To_Account, Type 2 ToGroupId), or why it is unusable (50002). */
export function contactKey(owner: string, c: ContactItem | undefined): ConversationKey | ItemFailure {
  const bad = (info: string): ItemFailure => ({ code: TencentCode.BadParameter, info });
  if (!c) return bad("ContactItem is required");
  if (c.type === undefined) return bad("ContactItem.Type is required");
  let type: ConversationType;
  let conversationId: string;
  if (c.type === ContactType.C2C) {
    if (c.toAccount === undefined || c.toAccount === "") return bad("ContactItem.To_Account is required when Type is 1");
    type = ConversationType.DIRECT;
    conversationId = c.toAccount;
  } else if (c.type === ContactType.Group) {
    if (c.toGroupId === undefined || c.toGroupId === "") return bad("ContactItem.ToGroupId is required when Type is 2");
    type = ConversationType.GROUP;
    conversationId = c.toGroupId;
  } else {
    return bad(`ContactItem.Type must be 1 (C2C) or 2 (group), got ${c.type}`);
  }
  const bytes = Buffer.byteLength(conversationId, "utf8");
  if (!conversationId.isWellFormed() || bytes > MAX_ACCOUNT_BYTES) return bad(`the conversation ID must be valid UTF-8 of at most ${MAX_ACCOUNT_BYTES} bytes`);
  return create(ConversationKeySchema, { ownerUserId: owner, type, conversationId });
}

/**
 * Translates one MarkItem into a MarkService update, or says why the item alone fails (50002).
 * Fields outside the OptType are ignored; a CustomMark absent under OptType 2/3 leaves the custom mark as is.
 */
export function planItem(owner: string, item: MarkItem): ConversationUpdate | ItemFailure {
  const bad = (info: string): ItemFailure => ({ code: TencentCode.BadParameter, info });
  const opt = item.optType;
  if (opt === undefined) return bad("OptType is required");
  if (opt !== OptType.Standard && opt !== OptType.Custom && opt !== OptType.Both) return bad(`OptType must be 1, 2 or 3, got ${opt}`);
  const key = contactKey(owner, item.contactItem);
  if ("code" in key) return key;
  const update = create(ConversationUpdateSchema, { key });
  if (opt === OptType.Standard || opt === OptType.Both) {
    const f = checkMarks("SetMark", item.setMark) ?? checkMarks("ClearMark", item.clearMark);
    if (f) return f;
    const set = new Set(item.setMark);
    const both = item.clearMark.find((m) => set.has(m));
    if (both !== undefined) return bad(`bit ${both} is in both SetMark and ClearMark`);
    update.setMarks = [...set].map(Number);
    update.clearMarks = [...new Set(item.clearMark)].map(Number);
  }
  if ((opt === OptType.Custom || opt === OptType.Both) && item.customMark !== undefined) {
    const bytes = Buffer.byteLength(item.customMark, "utf8");
    if (bytes > MAX_CUSTOM_MARK_BYTES) return bad(`CustomMark is ${bytes} bytes, at most ${MAX_CUSTOM_MARK_BYTES} allowed`);
    update.customMark = item.customMark;
  }
  return update;
}

/** The Tencent code for one MarkService result. */
export function codeOfResult(r: UpdateResult | undefined): ItemFailure {
  const status = r?.status;
  if (!status) return { code: TencentCode.Internal, info: "no result for this conversation" };
  if (status.code === 0) return { code: TencentCode.OK, info: "" };
  switch (reasonOf(status)) {
    case Reason.LabelLimit:
      return { code: TencentCode.GroupLimit, info: `the conversation would be in too many groups: ${status.message}` };
    case Reason.OwnerMarkedLimit:
      return { code: TencentCode.MarkedLimit, info: `the user's marked conversations would exceed the limit: ${status.message}` };
    case Reason.UserNotFound:
    case Reason.PeerNotFound:
      return { code: TencentCode.UserNotImported, info: `the UserID was not imported: ${status.message}` };
    case Reason.GroupNotFound:
    case Reason.GroupDismissed:
      return { code: TencentCode.GroupInvalid, info: `the group does not exist or was dismissed: ${status.message}` };
    case Reason.NotGroupMember:
      return { code: TencentCode.GroupPermission, info: `From_Account is not a member of the group: ${status.message}` };
  }
  if (status.code === (Code.InvalidArgument as number)) return { code: TencentCode.BadParameter, info: status.message };
  return { code: TencentCode.Internal, info: `internal error, retry: ${status.message}` };
}

/** The ResultItem of one MarkItem: OptType and ContactItem echoed as given. */
export function resultItem(item: MarkItem, f: ItemFailure): ResultItem {
  return create(ResultItemSchema, {
    ...(item.optType !== undefined ? { optType: item.optType } : {}),
    ...(item.contactItem ? { contactItem: create(ContactItemSchema, item.contactItem) } : {}),
    resultCode: f.code,
    resultInfo: f.info,
  });
}

/** The envelope of a processed request (per-item outcomes in ResultItem). */
export function okResponse(items: ResultItem[]): MarkContactResponse {
  return create(MarkContactResponseSchema, { resultItem: items, actionStatus: "OK", errorCode: 0, errorInfo: "", errorDisplay: "" });
}

/** The envelope of a refused request: FAIL, the code, no ResultItem. */
export function failResponse(e: TencentError): MarkContactResponse {
  return create(MarkContactResponseSchema, { actionStatus: "FAIL", errorCode: e.code, errorInfo: e.info, errorDisplay: "" });
}
