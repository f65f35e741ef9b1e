/**
 * OpenIM's conversation reads over MarkService: the convmark record of an owner as OpenIM's
 * Conversation object. A conversation's OpenIM conversationID is the one set_conversations stored
 * (vendor_conversation_id, verbatim), else the one OpenIM derives from the key. Sources:
 * docs/dialects/openim.md.
 */
import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  ConversationType,
  ReceiveOption,
  type Conversation as MarkConversation,
  type ConversationKey,
  type MarkService,
} from "../../../gen/convmark/v1/mark_service_pb.js";
import {
  ConversationSchema,
  type Conversation,
  type GetAllConversationsRequest,
  type GetConversationRequest,
  type GetConversationsRequest,
  type GetOwnerConversationRequest,
  type DeleteConversationsRequest,
  type GetIncrementalConversationsRequest,
  type GetFullConversationIdsRequest,
} from "../../../gen/vendor/openim/v1/conversation_service_pb.js";
import { DEFAULT_LIMITS } from "../../domain/limits.js";
import { isFailure, validateKey, validateVendorConversationId } from "../../domain/validate.js";
import { listAll } from "../list-all.js";
import { OpenimCode, openimError, type OpenimError } from "./errors.js";
import { SessionType, groupChatConversationId, otherParticipant, singleChatConversationId } from "./translate.js";

/** convmark ReceiveOption → OpenIM recvMsgOpt (0 receive, 1 do not receive, 2 receive without notification). */
const RECV_MSG_OPT: Record<number, number> = {
  [ReceiveOption.RECEIVE]: 0,
  [ReceiveOption.DO_NOT_RECEIVE]: 1,
  [ReceiveOption.RECEIVE_SILENTLY]: 2,
};

/** At most this many conversation IDs per get_conversations call (convmark's batch-get limit). */
export const MAX_CONVERSATION_IDS = 1000;
const MAX_WALK_PAGES = 100;

/** The owner's convmark key of an OpenIM conversationID, or undefined when it names no conversation of the owner. */
export function keyOfConversationId(owner: string, conversationId: string): ConversationKey | undefined {
  if (conversationId.startsWith("sg_") && conversationId.length > 3) {
    return { $typeName: "convmark.v1.ConversationKey", ownerUserId: owner, type: ConversationType.GROUP, conversationId: conversationId.slice(3) };
  }
  const peer = otherParticipant(conversationId, owner);
  if (peer === undefined || peer === "") return undefined;
  return { $typeName: "convmark.v1.ConversationKey", ownerUserId: owner, type: ConversationType.DIRECT, conversationId: peer };
}

/** The conversationID OpenIM derives for a convmark key (si_<a>_<b> sorted, sg_<group>). */
export function derivedConversationId(k: ConversationKey): string {
  return k.type === ConversationType.GROUP ? groupChatConversationId(k.conversationId) : singleChatConversationId(k.ownerUserId, k.conversationId);
}

/** The OpenIM conversationID of a convmark conversation: the stored one, else the derived one. */
export function conversationIdOf(c: MarkConversation): string {
  return c.vendorConversationId !== "" ? c.vendorConversationId : derivedConversationId(c.key!);
}

/** Keys without repeats (two IDs may find one conversation), in first-seen order. */
function uniqueKeys(keys: readonly ConversationKey[]): ConversationKey[] {
  const seen = new Map<string, ConversationKey>();
  for (const k of keys) seen.set(`${k.type}\u0000${k.conversationId}`, seen.get(`${k.type}\u0000${k.conversationId}`) ?? k);
  return [...seen.values()];
}

/** Runs `f` over `items` with at most `width` calls in flight, results in order. */
async function mapLimited<T, R>(items: readonly T[], width: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await f(items[i]!);
      }
    }),
  );
  return out;
}

/** OpenIM's Conversation object; the fields convmark does not model are zero. */
export function toOpenim(c: MarkConversation): Conversation {
  const k = c.key!;
  const s = c.settings;
  const group = k.type === ConversationType.GROUP;
  return create(ConversationSchema, {
    ownerUserId: k.ownerUserId,
    conversationId: conversationIdOf(c),
    recvMsgOpt: RECV_MSG_OPT[s?.receiveOption ?? ReceiveOption.RECEIVE] ?? 0,
    conversationType: group ? SessionType.ReadGroupChat : SessionType.SingleChat,
    userId: group ? "" : k.conversationId,
    groupId: group ? k.conversationId : "",
    isPinned: s?.pinned ?? false,
    attachedInfo: s?.attachedInfo ?? "",
    isPrivateChat: s?.privateChat ?? false,
    ex: s?.ex ?? "",
    burnDuration: s?.burnDurationSeconds ?? 0,
  });
}

function checkId(field: string, id: string): OpenimError | undefined {
  if (id === "") return openimError(OpenimCode.ArgsError, `${field} is empty`);
  return undefined;
}

export function createReadOps(marks: Client<typeof MarkService>) {
  /** Every conversation of the owner, most recently changed first. */
  const all = (owner: string) => listAll(marks, owner);

  /** The owner's conversations whose stored conversationID is one of `ids` (the newest wins a tie). */
  async function byStoredIds(owner: string, ids: readonly string[]): Promise<Map<string, MarkConversation>> {
    const out = new Map<string, MarkConversation>();
    for (let i = 0; i < ids.length; i += MAX_CONVERSATION_IDS) {
      const found = await listAll(marks, owner, { vendorConversationIds: ids.slice(i, i + MAX_CONVERSATION_IDS) });
      for (const c of found) if (!out.has(c.vendorConversationId)) out.set(c.vendorConversationId, c);
    }
    return out;
  }

  /**
   * OpenIM's lookup of an owner's conversations by conversationID (FindConversations): a stored ID
   * (custom or unsorted ones included) by the indexed vendor_conversation_id, else the derived ID of a
   * conversation that has none stored (written by another dialect or MarkService).
   */
  async function byConversationIds(owner: string, ids: readonly string[]): Promise<Map<string, MarkConversation>> {
    // An ID convmark could not have stored, or a key it could not hold, names nothing: not found.
    const unique = [...new Set(ids)].filter((id) => id !== "" && validateVendorConversationId(id, DEFAULT_LIMITS) === undefined);
    const found = await byStoredIds(owner, unique);
    const derived = unique.flatMap((id) => {
      const key = found.has(id) ? undefined : keyOfConversationId(owner, id);
      return key && !isFailure(validateKey(key, DEFAULT_LIMITS)) ? [{ id, key }] : [];
    });
    if (derived.length > 0) {
      const { conversations } = await marks.batchGetConversations({ keys: derived.map((d) => d.key) });
      conversations.forEach((c, i) => {
        if (c.version > 0n && c.vendorConversationId === "") found.set(derived[i]!.id, c);
      });
    }
    return found;
  }

  return {
    /**
     * The key each owner's conversation `conversationId` already has, where one is stored under that ID:
     * OpenIM's set_conversations updates the conversation it finds by (owner, conversationID).
     */
    async storedKeys(owners: readonly string[], conversationId: string): Promise<(ConversationKey | undefined)[]> {
      if (conversationId === "") return owners.map(() => undefined);
      return mapLimited(owners, 16, async (owner) => (await byStoredIds(owner, [conversationId])).get(conversationId)?.key);
    },

    /** The user whose data a request reads (for the owner-or-admin check). */
    async getOwnerConversation(req: GetOwnerConversationRequest) {
      const bad = checkId("userID", req.userId);
      if (bad) return bad;
      const p = req.pagination;
      if (!p || p.pageNumber < 1 || p.showNumber < 1) return openimError(OpenimCode.ArgsError, "pagination is invalid: pageNumber and showNumber must be at least 1");
      const convs = await all(req.userId);
      const from = (p.pageNumber - 1) * p.showNumber;
      return { total: BigInt(convs.length), conversations: convs.slice(from, from + p.showNumber).map(toOpenim) };
    },

    async getConversations(req: GetConversationsRequest) {
      const bad = checkId("ownerUserID", req.ownerUserId);
      if (bad) return bad;
      if (req.conversationIds.length > MAX_CONVERSATION_IDS) {
        return openimError(OpenimCode.ArgsError, `conversationIDs has ${req.conversationIds.length} IDs, at most ${MAX_CONVERSATION_IDS} allowed`);
      }
      const found = await byConversationIds(req.ownerUserId, req.conversationIds);
      return { conversations: [...found.values()].map(toOpenim) };
    },

    async getConversation(req: GetConversationRequest) {
      const bad = checkId("ownerUserID", req.ownerUserId) ?? checkId("conversationID", req.conversationId);
      if (bad) return bad;
      const found = (await byConversationIds(req.ownerUserId, [req.conversationId])).get(req.conversationId);
      if (!found) return openimError(OpenimCode.RecordNotFoundError, "conversation not found");
      return { conversation: toOpenim(found) };
    },

    async getAllConversations(req: GetAllConversationsRequest) {
      const bad = checkId("ownerUserID", req.ownerUserId);
      if (bad) return bad;
      return { conversations: (await all(req.ownerUserId)).map(toOpenim) };
    },

    /**
     * get_incremental_conversations on the feed: versionID is the feed cursor, version the time (ms)
     * of the latest change seen; a conversation at its first version is an insert, later ones updates.
     */
    async incremental(req: GetIncrementalConversationsRequest) {
      const bad = checkId("userID", req.userId);
      if (bad) return bad;
      const deleted: string[] = [];
      const insert: Conversation[] = [];
      const update: Conversation[] = [];
      let cursor = req.versionId;
      let latest = req.version;
      let full = req.versionId === "";
      for (let i = 0; i < MAX_WALK_PAGES; i++) {
        let page;
        try {
          page = await marks.syncConversations({ ownerUserId: req.userId, cursor, pageSize: 1000 });
        } catch (e) {
          if ((e as { code?: number }).code === 3) return openimError(OpenimCode.ArgsError, `versionID is not a version of user ${req.userId}`);
          throw e;
        }
        if (page.reset) {
          // Older than the retained deletions: the client must reload everything (full).
          full = true;
          cursor = page.nextCursor;
          deleted.length = insert.length = update.length = 0;
          continue;
        }
        for (const ch of page.changes) {
          const c = ch.conversation!;
          const ms = c.updateTime ? c.updateTime.seconds * 1000n + BigInt(Math.floor(c.updateTime.nanos / 1e6)) : 0n;
          if (ms > latest) latest = ms;
          if (ch.deleted) deleted.push(conversationIdOf(c));
          else (c.version === 1n ? insert : update).push(toOpenim(c));
        }
        cursor = page.nextCursor;
        if (!page.hasMore) break;
      }
      return { version: latest, versionId: cursor, full, delete: deleted, insert, update };
    },

    /**
     * get_full_conversation_ids: all IDs (most recently changed first, as the list reads them), and
     * the feed position to continue incrementally from, in one walk of the owner's feed from the
     * beginning: every live conversation is in it at its latest position, so the IDs and the cursor
     * are of the same moment (a change committed during the walk is read again at its new position).
     */
    async fullIds(req: GetFullConversationIdsRequest) {
      const bad = checkId("userID", req.userId);
      if (bad) return bad;
      // Live conversations by key, in ascending position of their latest change.
      const live = new Map<string, string>();
      let cursor = "";
      let latest = 0n;
      for (let i = 0; ; i++) {
        if (i === MAX_WALK_PAGES) throw new Error(`more than ${MAX_WALK_PAGES} feed pages for one owner`);
        const page = await marks.syncConversations({ ownerUserId: req.userId, cursor, pageSize: 1000 });
        if (page.reset) {
          // Older than the retained deletions (not from the beginning, but as incremental does).
          live.clear();
          cursor = page.nextCursor;
          continue;
        }
        for (const ch of page.changes) {
          const c = ch.conversation!;
          const ms = c.updateTime ? c.updateTime.seconds * 1000n + BigInt(Math.floor(c.updateTime.nanos / 1e6)) : 0n;
          if (ms > latest) latest = ms;
          const k = c.key!;
          const id = `${k.type}\u0000${k.conversationId}`;
          live.delete(id);
          if (!ch.deleted) live.set(id, conversationIdOf(c));
        }
        cursor = page.nextCursor;
        if (!page.hasMore) break;
      }
      return { version: latest, versionId: cursor, equal: false, conversationIds: [...live.values()].reverse() };
    },

    /** delete_conversations: the given IDs of the owner (all when none), each removed with its marks. */
    async deleteConversations(req: DeleteConversationsRequest) {
      const bad = checkId("ownerUserID", req.ownerUserId);
      if (bad) return bad;
      if (req.conversationIds.length > MAX_CONVERSATION_IDS) {
        return openimError(OpenimCode.ArgsError, `conversationIDs has ${req.conversationIds.length} IDs, at most ${MAX_CONVERSATION_IDS} allowed`);
      }
      const keys =
        req.conversationIds.length === 0
          ? (await all(req.ownerUserId)).map((c) => c.key!)
          : uniqueKeys([...(await byConversationIds(req.ownerUserId, req.conversationIds)).values()].map((c) => c.key!));
      for (let i = 0; i < keys.length; i += MAX_CONVERSATION_IDS) {
        const { results } = await marks.deleteConversations({ keys: keys.slice(i, i + MAX_CONVERSATION_IDS) });
        const failed = results.find((r) => r.status && r.status.code !== 0);
        if (failed) return openimError(OpenimCode.ServerInternalError, `not every conversation was deleted: ${failed.status!.message}`);
      }
      return {};
    },

    async pinnedIds(userId: string) {
      const bad = checkId("userID", userId);
      if (bad) return bad;
      return { conversationIds: (await all(userId)).filter((c) => c.settings?.pinned === true).map(conversationIdOf) };
    },

    async notNotifyIds(userId: string) {
      const bad = checkId("userID", userId);
      if (bad) return bad;
      return { conversationIds: (await all(userId)).filter((c) => c.settings?.receiveOption === ReceiveOption.RECEIVE_SILENTLY).map(conversationIdOf) };
    },
  };
}

export type ReadOps = ReturnType<typeof createReadOps>;
