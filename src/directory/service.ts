import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  AddGroupMembersResponseSchema,
  CreateGroupResponseSchema,
  DismissGroupResponseSchema,
  GetGroupResponseSchema,
  GetUsersResponseSchema,
  GroupSchema,
  IdResultSchema,
  RegisterUsersResponseSchema,
  RemoveGroupMembersResponseSchema,
  UnregisterUsersResponseSchema,
  UserSchema,
  type DirectoryService,
  type Group,
  type IdResult,
} from "../../gen/convmark/v1/directory_service_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { DEFAULT_LIMITS } from "../domain/limits.js";
import { REASON_DOMAIN, Reason } from "../domain/reasons.js";
import { compareUtf8, type DirectoryStore, type GroupRecord, type MembersOutcome } from "./store.js";

export interface DirectoryServiceOptions {
  /** Longest ID in UTF-8 bytes (default 256, as for conversation keys). */
  readonly maxIdBytes?: number;
  /** Most IDs in one request (default 20,000, as MarkService's updates per request). */
  readonly maxIdsPerRequest?: number;
}

export const DEFAULT_MAX_IDS_PER_REQUEST = 20_000;

/** Why an ID is malformed, or undefined when it is 1..maxBytes bytes of well-formed UTF-8. */
export function idProblem(id: string, maxBytes: number = DEFAULT_LIMITS.maxIdBytes): string | undefined {
  if (!id.isWellFormed()) return "is not valid UTF-8";
  const n = Buffer.byteLength(id, "utf8");
  if (n === 0) return "must not be empty";
  if (n > maxBytes) return `is ${n} bytes, at most ${maxBytes} allowed`;
  return undefined;
}

// One shared OK status for every successful item (messages are plain data; nothing mutates it).
const OK_STATUS = create(StatusSchema, { code: 0, message: "" });

function reasonError(message: string, code: Code, reason: Reason): ConnectError {
  return new ConnectError(message, code, undefined, [{ desc: ErrorInfoSchema, value: { reason, domain: REASON_DOMAIN } }]);
}

/** Store failures become INTERNAL with the cause, never an unhandled rejection. */
async function stored<T>(op: Promise<T>): Promise<T> {
  try {
    return await op;
  } catch (e) {
    if (e instanceof ConnectError) throw e;
    throw new ConnectError(`directory store: ${e instanceof Error ? e.message : String(e)}`, Code.Internal, undefined, undefined, e);
  }
}

function groupToProto(g: GroupRecord, members: readonly string[]): Group {
  return create(GroupSchema, {
    groupId: g.groupId,
    dismissed: g.dismissed,
    memberUserIds: [...members],
    memberCount: members.length,
    createTime: timestampFromMs(g.createTimeMs),
    ...(g.dismissTimeMs !== undefined ? { dismissTime: timestampFromMs(g.dismissTimeMs) } : {}),
  });
}

/** convmark.v1.DirectoryService over a DirectoryStore. */
export function createDirectoryService(store: DirectoryStore, opts: DirectoryServiceOptions = {}): ServiceImpl<typeof DirectoryService> {
  const maxIdBytes = opts.maxIdBytes ?? DEFAULT_LIMITS.maxIdBytes;
  const maxIds = opts.maxIdsPerRequest ?? DEFAULT_MAX_IDS_PER_REQUEST;

  const checkCount = (field: string, n: number, allowEmpty = false) => {
    if (n === 0 && !allowEmpty) throw new ConnectError(`${field} must not be empty`, Code.InvalidArgument);
    if (n > maxIds) throw new ConnectError(`${n} IDs in ${field}, at most ${maxIds} allowed`, Code.InvalidArgument);
  };
  /** Every ID must be well formed, or the request fails (reads, CreateGroup). */
  const mustIds = (field: string, ids: readonly string[], allowEmpty = false) => {
    checkCount(field, ids.length, allowEmpty);
    ids.forEach((id, i) => {
      const bad = idProblem(id, maxIdBytes);
      if (bad) throw new ConnectError(`${field}[${i}] ${bad}`, Code.InvalidArgument);
    });
  };
  const mustGroupId = (id: string) => {
    const bad = idProblem(id, maxIdBytes);
    if (bad) throw new ConnectError(`group_id ${bad}`, Code.InvalidArgument);
  };
  /** Batch writes: a malformed ID fails alone; the others go to `apply`, whose booleans say "changed". */
  const perItem = async (field: string, ids: readonly string[], apply: (valid: string[]) => Promise<boolean[]>): Promise<IdResult[]> => {
    checkCount(field, ids.length);
    const results: IdResult[] = new Array(ids.length);
    const valid: string[] = [];
    const at: number[] = [];
    ids.forEach((id, i) => {
      const bad = idProblem(id, maxIdBytes);
      if (bad) {
        results[i] = create(IdResultSchema, { id, status: create(StatusSchema, { code: Code.InvalidArgument, message: `${field}[${i}] ${bad}` }) });
      } else {
        valid.push(id);
        at.push(i);
      }
    });
    const changed = valid.length > 0 ? await apply(valid) : [];
    at.forEach((i, j) => (results[i] = create(IdResultSchema, { id: ids[i]!, status: OK_STATUS, changed: changed[j] === true })));
    return results;
  };
  const groupRefused = (groupId: string, o: Exclude<MembersOutcome, { ok: true }>): ConnectError => {
    switch (o.reason) {
      case "not_found":
        return reasonError(`group ${groupId} does not exist`, Code.NotFound, Reason.GroupNotFound);
      case "dismissed":
        return reasonError(`group ${groupId} was dismissed`, Code.FailedPrecondition, Reason.GroupDismissed);
      case "too_large":
        return new ConnectError(`group ${groupId} would exceed what the store holds in one group`, Code.ResourceExhausted);
    }
  };
  const membersChange = async (groupId: string, userIds: readonly string[], add: boolean) => {
    mustGroupId(groupId);
    let memberCount = 0;
    const results = await perItem("user_ids", userIds, async (valid) => {
      const o = await stored(add ? store.addMembers(groupId, valid) : store.removeMembers(groupId, valid));
      if (!o.ok) throw groupRefused(groupId, o);
      memberCount = o.memberCount;
      return o.changed;
    });
    // Only malformed IDs: nothing was asked of the store, so report the group as it is.
    if (!results.some((r) => r.status?.code === 0)) {
      const [g] = await stored(store.getGroups([groupId]));
      if (!g) throw groupRefused(groupId, { ok: false, reason: "not_found" });
      if (g.dismissed) throw groupRefused(groupId, { ok: false, reason: "dismissed" });
      memberCount = g.memberCount;
    }
    return { results, memberCount };
  };
  const readGroup = async (groupId: string): Promise<Group | undefined> => {
    const [g] = await stored(store.getGroups([groupId]));
    if (!g) return undefined;
    const members = (await stored(store.getMembers(groupId))) ?? [];
    return groupToProto(g, members);
  };

  return {
    async registerUsers(req) {
      const results = await perItem("user_ids", req.userIds, (ids) => stored(store.registerUsers(ids)));
      return create(RegisterUsersResponseSchema, { results });
    },

    async unregisterUsers(req) {
      const results = await perItem("user_ids", req.userIds, (ids) => stored(store.unregisterUsers(ids)));
      return create(UnregisterUsersResponseSchema, { results });
    },

    async getUsers(req) {
      mustIds("user_ids", req.userIds);
      const found = await stored(store.getUsers(req.userIds));
      return create(GetUsersResponseSchema, {
        users: req.userIds.map((userId, i) => {
          const u = found[i];
          return create(UserSchema, { userId, registered: u !== undefined, ...(u ? { registerTime: timestampFromMs(u.registerTimeMs) } : {}) });
        }),
      });
    },

    async createGroup(req) {
      mustGroupId(req.groupId);
      mustIds("member_user_ids", req.memberUserIds, true);
      const o = await stored(store.createGroup(req.groupId, req.memberUserIds));
      if (!o.ok) {
        if (o.reason === "too_large") throw groupRefused(req.groupId, o);
        throw new ConnectError(`group ${req.groupId} already exists`, Code.AlreadyExists);
      }
      const members = [...new Set(req.memberUserIds)].sort(compareUtf8);
      return create(CreateGroupResponseSchema, { group: groupToProto(o.group, members), recreated: o.recreated });
    },

    async addGroupMembers(req) {
      return create(AddGroupMembersResponseSchema, await membersChange(req.groupId, req.userIds, true));
    },

    async removeGroupMembers(req) {
      return create(RemoveGroupMembersResponseSchema, await membersChange(req.groupId, req.userIds, false));
    },

    async dismissGroup(req) {
      mustGroupId(req.groupId);
      const o = await stored(store.dismissGroup(req.groupId));
      if (!o.ok) throw groupRefused(req.groupId, o);
      const members = (await stored(store.getMembers(req.groupId))) ?? [];
      return create(DismissGroupResponseSchema, { group: groupToProto(o.group, members), changed: o.changed });
    },

    async getGroup(req) {
      mustGroupId(req.groupId);
      const group = await readGroup(req.groupId);
      if (!group) throw reasonError(`group ${req.groupId} does not exist`, Code.NotFound, Reason.GroupNotFound);
      return create(GetGroupResponseSchema, { group });
    },
  };
}
