/**
 * Tencent's conversation groups (会话分组) and get_list over MarkService. A group is a convmark label:
 * it exists while at least one of the user's conversations carries it. Decisions and sources:
 * docs/dialects/tencent.md.
 */
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { crc32 } from "node:zlib";
import {
  ConversationType,
  ResultView,
  type Conversation,
  type ConversationUpdate,
  type MarkService,
  type UpdateResult,
} from "../../../gen/convmark/v1/mark_service_pb.js";
import {
  ContactItemSchema,
  ContactMarkItemSchema,
  ContactUpdateResultSchema,
  CreateContactGroupResponseSchema,
  DelContactGroupResponseSchema,
  GetContactGroupResponseSchema,
  GetListResponseSchema,
  GroupItemSchema,
  GroupResultItemSchema,
  ResultItemSchema,
  SearchContactGroupResponseSchema,
  SessionItemSchema,
  UpdateContactGroupResponseSchema,
  UpdateGroupResultSchema,
  type ContactItem,
  type ContactMarkItem,
  type CreateContactGroupRequest,
  type CreateContactGroupResponse,
  type DelContactGroupRequest,
  type DelContactGroupResponse,
  type GetContactGroupRequest,
  type GetContactGroupResponse,
  type GetListRequest,
  type GetListResponse,
  type GroupItem,
  type SearchContactGroupRequest,
  type SearchContactGroupResponse,
  type UpdateContactGroupRequest,
  type UpdateContactGroupResponse,
} from "../../../gen/vendor/tencent/v1/recent_contact_pb.js";
import { listAll } from "../list-all.js";
import { TencentCode, TencentError } from "./errors.js";
import { codeOfResult, contactKey, type ItemFailure } from "./translate.js";

/** At most 20 groups per user (51010). */
export const MAX_GROUPS = 20;
/** A group name is 1..32 bytes (51011). */
export const MAX_GROUP_NAME_BYTES = 32;
/** A group holds at most 1000 conversations (51008). */
export const MAX_GROUP_CONVERSATIONS = 1000;
/** search_contact_group: at most 300 conversations per call. */
export const MAX_SEARCH = 300;
/** Page size of get_contact_group and get_list. */
export const PAGE_SIZE = 100;

/** The GroupId of a group: derived from its name (stable across calls and processes, 1..2^31-1). */
export function groupIdOf(name: string): number {
  return (crc32(Buffer.from(name, "utf8")) & 0x7fff_ffff) || 1;
}

/** Tencent's StandardMark: the mark bits as a binary string, bit 1 rightmost; undefined when none. */
export function standardMark(markBits: bigint): string | undefined {
  return markBits === 0n ? undefined : markBits.toString(2);
}

const groupItem = (name: string): GroupItem => create(GroupItemSchema, { groupName: name, groupId: groupIdOf(name) });

function contactOf(c: Conversation): ContactItem {
  const key = c.key!;
  return key.type === ConversationType.GROUP
    ? create(ContactItemSchema, { type: 2, toGroupId: key.conversationId })
    : create(ContactItemSchema, { type: 1, toAccount: key.conversationId });
}

function markItem(c: Conversation): ContactMarkItem {
  const key = c.key!;
  const sm = standardMark(c.markBits);
  return create(ContactMarkItemSchema, {
    type: key.type === ConversationType.GROUP ? 2 : 1,
    ...(key.type === ConversationType.GROUP ? { toGroupId: key.conversationId } : { toAccount: key.conversationId }),
    ...(sm !== undefined ? { standardMark: sm } : {}),
    ...(c.customMark !== "" ? { customMark: c.customMark } : {}),
    contactGroupId: c.labels.map(groupIdOf),
    timestamp: c.updateTime?.seconds ?? 0n,
  });
}

const isMarked = (c: Conversation) => c.markBits !== 0n || c.customMark !== "" || c.labels.length > 0;

function checkGroupName(field: string, name: string): TencentError | undefined {
  const n = Buffer.byteLength(name, "utf8");
  if (n === 0) return new TencentError(TencentCode.GroupNameInvalid, `${field} must not be empty`);
  if (!name.isWellFormed()) return new TencentError(TencentCode.GroupNameInvalid, `${field} is not valid UTF-8`);
  if (n > MAX_GROUP_NAME_BYTES) return new TencentError(TencentCode.GroupNameInvalid, `${field} is ${n} bytes, at most ${MAX_GROUP_NAME_BYTES} allowed`);
  return undefined;
}

const fail = <T>(e: TencentError, make: (init: { actionStatus: string; errorCode: number; errorInfo: string }) => T): T =>
  make({ actionStatus: "FAIL", errorCode: e.code, errorInfo: e.info });
const OK = { actionStatus: "OK", errorCode: 0, errorInfo: "", errorDisplay: "" } as const;

/** The group operations over one MarkService client; `owner` is already checked by the caller. */
export function createGroupOps(marks: Client<typeof MarkService>) {
  /** Every conversation of the owner, most recently changed first (optionally those carrying one label). */
  const walk = (owner: string, label?: string): Promise<Conversation[]> =>
    listAll(marks, owner, label !== undefined ? { labelsAny: [label] } : undefined);

  const groupsOf = (convs: readonly Conversation[]) => [...new Set(convs.flatMap((c) => c.labels))].sort();

  async function apply(updates: ConversationUpdate[]): Promise<UpdateResult[]> {
    if (updates.length === 0) return [];
    const { results } = await marks.updateConversations({ updates, resultView: ResultView.STATUS });
    if (results.length !== updates.length) throw new Error(`MarkService returned ${results.length} results for ${updates.length} updates`);
    return results;
  }

  /** Plans one label change per contact; an unusable contact fails alone (50002). */
  async function changeContacts(owner: string, items: readonly { contact: ContactItem | undefined; add: boolean }[], label: string): Promise<ItemFailure[]> {
    const outcomes: (ItemFailure | number)[] = [];
    const updates: ConversationUpdate[] = [];
    for (const it of items) {
      const key = contactKey(owner, it.contact);
      if ("code" in key) {
        outcomes.push(key);
        continue;
      }
      outcomes.push(updates.length);
      updates.push({ $typeName: "convmark.v1.ConversationUpdate", key, setMarks: [], clearMarks: [], addLabels: it.add ? [label] : [], removeLabels: it.add ? [] : [label] });
    }
    const results = await apply(updates);
    return outcomes.map((o) => (typeof o === "number" ? groupCode(results[o]) : o));
  }

  /** Moves every conversation carrying `from` to `to` (to undefined: just removes `from`). */
  async function relabel(owner: string, from: string, to?: string): Promise<number> {
    const convs = await walk(owner, from);
    const updates: ConversationUpdate[] = convs.map((c) => ({
      $typeName: "convmark.v1.ConversationUpdate",
      key: c.key!,
      setMarks: [],
      clearMarks: [],
      addLabels: to !== undefined ? [to] : [],
      removeLabels: [from],
    }));
    const results = await apply(updates);
    const failed = results.filter((r) => r.status?.code !== 0);
    if (failed.length > 0) throw new Error(`${failed.length} of ${updates.length} conversations could not be changed: ${failed[0]!.status?.message}`);
    return updates.length;
  }

  return {
    async create(owner: string, req: CreateContactGroupRequest): Promise<CreateContactGroupResponse> {
      const make = (i: object) => create(CreateContactGroupResponseSchema, i);
      if (req.groupContactItem.length !== 1) {
        return fail(new TencentError(TencentCode.BadParameter, `GroupContactItem must hold exactly one group, got ${req.groupContactItem.length}`), make);
      }
      const g = req.groupContactItem[0]!;
      const bad = checkGroupName("GroupName", g.groupName);
      if (bad) return fail(bad, make);
      const n = g.contactItem.length;
      if (n === 0) return fail(new TencentError(TencentCode.BadParameter, "ContactItem must hold at least one conversation"), make);
      if (n > MAX_GROUP_CONVERSATIONS) {
        return fail(new TencentError(TencentCode.MarkedLimit, `ContactItem holds ${n} conversations, a group holds at most ${MAX_GROUP_CONVERSATIONS}`), make);
      }
      const groups = groupsOf(await walk(owner));
      if (!groups.includes(g.groupName) && groups.length >= MAX_GROUPS) {
        return fail(new TencentError(TencentCode.GroupLimit, `the user already has ${groups.length} conversation groups, at most ${MAX_GROUPS} allowed`), make);
      }
      const codes = await changeContacts(owner, g.contactItem.map((contact) => ({ contact, add: true })), g.groupName);
      return make({
        groupResultItem: [
          create(GroupResultItemSchema, {
            groupItem: groupItem(g.groupName),
            resultItem: g.contactItem.map((c, i) => create(ResultItemSchema, { contactItem: create(ContactItemSchema, c), resultCode: codes[i]!.code, resultInfo: codes[i]!.info })),
          }),
        ],
        ...OK,
      });
    },

    async del(owner: string, req: DelContactGroupRequest): Promise<DelContactGroupResponse> {
      const make = (i: object) => create(DelContactGroupResponseSchema, i);
      if (req.groupName.length !== 1) return fail(new TencentError(TencentCode.BadParameter, `GroupName must hold exactly one group name, got ${req.groupName.length}`), make);
      const name = req.groupName[0]!;
      const bad = checkGroupName("GroupName", name);
      if (bad) return fail(bad, make);
      if ((await relabel(owner, name)) === 0) return fail(new TencentError(TencentCode.GroupNotFound, `conversation group ${JSON.stringify(name)} does not exist`), make);
      return make({ groupItem: [groupItem(name)], ...OK });
    },

    async update(owner: string, req: UpdateContactGroupRequest): Promise<UpdateContactGroupResponse> {
      const make = (i: object) => create(UpdateContactGroupResponseSchema, i);
      if (req.updateType !== 1) return fail(new TencentError(TencentCode.BadParameter, `UpdateType must be 1, got ${req.updateType ?? "none"}`), make);
      const u = req.updateGroup;
      if (!u) return fail(new TencentError(TencentCode.BadParameter, "UpdateGroup is required"), make);
      const old = u.oldGroupName;
      const badOld = checkGroupName("OldGroupName", old);
      if (badOld) return fail(badOld, make);
      const groups = groupsOf(await walk(owner));
      if (!groups.includes(old)) return fail(new TencentError(TencentCode.GroupNotFound, `conversation group ${JSON.stringify(old)} does not exist`), make);
      if (u.updateGroupType === 1) {
        const badNew = checkGroupName("NewGroupName", u.newGroupName);
        if (badNew) return fail(badNew, make);
        if (u.newGroupName !== old && groups.includes(u.newGroupName)) {
          return fail(new TencentError(TencentCode.BadParameter, `conversation group ${JSON.stringify(u.newGroupName)} already exists`), make);
        }
        if (u.newGroupName !== old) await relabel(owner, old, u.newGroupName);
        return make({
          updateType: 1,
          updateGroupResult: create(UpdateGroupResultSchema, { updateGroupType: 1, groupName: u.newGroupName, groupId: groupIdOf(u.newGroupName), oldGroupName: old }),
          ...OK,
        });
      }
      if (u.updateGroupType !== 2) return fail(new TencentError(TencentCode.BadParameter, `UpdateGroupType must be 1 or 2, got ${u.updateGroupType ?? "none"}`), make);
      const items = u.contactUpdateItem;
      if (items.length === 0) return fail(new TencentError(TencentCode.BadParameter, "ContactUpdateItem must hold at least one conversation"), make);
      if (items.length > MAX_GROUP_CONVERSATIONS) {
        return fail(new TencentError(TencentCode.MarkedLimit, `ContactUpdateItem holds ${items.length} conversations, a group holds at most ${MAX_GROUP_CONVERSATIONS}`), make);
      }
      const badOpt = items.findIndex((i) => i.contactOptType !== 1 && i.contactOptType !== 2);
      if (badOpt >= 0) return fail(new TencentError(TencentCode.BadParameter, `ContactUpdateItem[${badOpt}].ContactOptType must be 1 (add) or 2 (remove)`), make);
      const codes = await changeContacts(owner, items.map((i) => ({ contact: i.contactItem, add: i.contactOptType === 1 })), old);
      return make({
        updateType: 1,
        updateGroupResult: create(UpdateGroupResultSchema, {
          updateGroupType: 2,
          groupName: old,
          groupId: groupIdOf(old),
          oldGroupName: old,
          contactResultItem: items.map((it, i) =>
            create(ContactUpdateResultSchema, {
              ...(it.contactOptType !== undefined ? { contactOptType: it.contactOptType } : {}),
              ...(it.contactItem ? { contactItem: create(ContactItemSchema, it.contactItem) } : {}),
              resultCode: codes[i]!.code,
              resultInfo: codes[i]!.info,
            }),
          ),
        }),
        ...OK,
      });
    },

    async search(owner: string, req: SearchContactGroupRequest): Promise<SearchContactGroupResponse> {
      const make = (i: object) => create(SearchContactGroupResponseSchema, i);
      const n = req.contactItem.length;
      if (n === 0 || n > MAX_SEARCH) return fail(new TencentError(TencentCode.BadParameter, `ContactItem must hold 1..${MAX_SEARCH} conversations, got ${n}`), make);
      const keys = [];
      for (const [i, c] of req.contactItem.entries()) {
        const key = contactKey(owner, c);
        if ("code" in key) return fail(new TencentError(TencentCode.BadParameter, `ContactItem[${i}]: ${key.info}`), make);
        keys.push(key);
      }
      const { conversations } = await marks.batchGetConversations({ keys });
      const found = conversations.filter((c) => c.version > 0n);
      return make({ contactResultItem: found.map(markItem), groupItem: groupsOf(found).map(groupItem), ...OK });
    },

    async get(owner: string, req: GetContactGroupRequest): Promise<GetContactGroupResponse> {
      const make = (i: object) => create(GetContactGroupResponseSchema, i);
      const start = req.startIndex ?? 0n;
      if (start < 0n) return fail(new TencentError(TencentCode.BadParameter, "StartIndex must not be negative"), make);
      const all = await walk(owner);
      const marked = all.filter(isMarked);
      const from = Number(start);
      const page = marked.slice(from, from + PAGE_SIZE);
      const complete = from + PAGE_SIZE >= marked.length;
      return make({
        contactItem: page.map(markItem),
        groupItem: groupsOf(all).map(groupItem),
        completeFlag: complete ? 1 : 0,
        nextStartIndex: complete ? 0n : BigInt(from + PAGE_SIZE),
        ...OK,
      });
    },

    async list(owner: string, req: GetListRequest, nowSeconds: number): Promise<GetListResponse> {
      const make = (i: object) => create(GetListResponseSchema, i);
      if (req.startIndex < 0n || req.topStartIndex < 0n) return fail(new TencentError(TencentCode.BadParameter, "StartIndex and TopStartIndex must not be negative"), make);
      const all = await walk(owner);
      const pinned = all.filter((c) => c.settings?.pinned === true);
      const others = all.filter((c) => c.settings?.pinned !== true);
      const topFrom = Number(req.topStartIndex);
      const top = pinned.slice(topFrom, topFrom + PAGE_SIZE);
      const from = Number(req.startIndex);
      const rest = others.slice(from, from + Math.max(0, PAGE_SIZE - top.length));
      const topNext = topFrom + top.length;
      const next = from + rest.length;
      const complete = topNext >= pinned.length && next >= others.length;
      const session = (c: Conversation, topFlag: number) => {
        const key = c.key!;
        const sm = standardMark(c.markBits);
        return create(SessionItemSchema, {
          type: key.type === ConversationType.GROUP ? 2 : 1,
          ...(key.type === ConversationType.GROUP ? { groupId: key.conversationId } : { toAccount: key.conversationId }),
          msgTime: c.updateTime?.seconds ?? 0n,
          topFlag,
          ...(sm !== undefined ? { standardMark: sm } : {}),
          ...(c.customMark !== "" ? { customMark: c.customMark } : {}),
          contactGroupId: c.labels.map(groupIdOf),
        });
      };
      const stamp = BigInt(nowSeconds);
      return make({
        sessionItem: [...top.map((c) => session(c, 1)), ...rest.map((c) => session(c, 0))],
        completeFlag: complete ? 1 : 0,
        timeStamp: req.timeStamp > 0n ? req.timeStamp : stamp,
        startIndex: BigInt(next),
        topTimeStamp: req.topTimeStamp > 0n ? req.topTimeStamp : stamp,
        topStartIndex: BigInt(topNext),
        ...OK,
      });
    },
  };
}

/** One group change's code: the mark_contact mapping, plus the label limit as the group limit. */
function groupCode(r: UpdateResult | undefined): ItemFailure {
  const f = codeOfResult(r);
  return f;
}

export type GroupOps = ReturnType<typeof createGroupOps>;
export { contactOf };
