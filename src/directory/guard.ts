import { Code, ConnectError } from "@connectrpc/connect";
import { ConvType, type ConvKey } from "../domain/conversation.js";
import { Reason } from "../domain/reasons.js";
import { failure, type Failure } from "../domain/validate.js";
import type { KeyGuard } from "../service/mark-service.js";
import type { DirectoryLookup } from "./directory.js";
import { distinct } from "./lookup.js";

/**
 * MarkService's KeyGuard over the directory. Strict mode, for each key, the first that applies:
 *
 * | condition                                   | code                | reason           |
 * |---------------------------------------------|---------------------|------------------|
 * | owner not registered                        | NOT_FOUND           | USER_NOT_FOUND   |
 * | direct conversation, peer not registered    | NOT_FOUND           | PEER_NOT_FOUND   |
 * | group conversation, group never created     | NOT_FOUND           | GROUP_NOT_FOUND  |
 * | group conversation, group dismissed         | FAILED_PRECONDITION | GROUP_DISMISSED  |
 * | group conversation, owner not a member      | PERMISSION_DENIED   | NOT_GROUP_MEMBER |
 *
 * Not strict: every verdict is undefined and the directory is not read.
 * A batch costs at most three lookups whatever its size: users (owners and peers, deduplicated) and
 * groups in parallel, then the memberships of registered owners in live groups.
 * A lookup that fails rejects the whole call (UNAVAILABLE), before anything is written.
 */
export function createDirectoryGuard(lookup: DirectoryLookup): KeyGuard {
  return async (keys) => {
    if (!lookup.strict || keys.length === 0) return keys.map(() => undefined);
    try {
      return await judge(lookup, keys);
    } catch (e) {
      if (e instanceof ConnectError) throw e;
      throw new ConnectError(`directory lookup failed: ${e instanceof Error ? e.message : String(e)}`, Code.Unavailable, undefined, undefined, e);
    }
  };
}

async function judge(lookup: DirectoryLookup, keys: readonly ConvKey[]): Promise<(Failure | undefined)[]> {
  const userIds: string[] = [];
  const groupIds: string[] = [];
  for (const k of keys) {
    userIds.push(k.owner);
    if (k.type === ConvType.Direct) userIds.push(k.conversationId);
    else groupIds.push(k.conversationId);
  }
  const users = distinct(userIds);
  const groups = distinct(groupIds);
  const [userFound, groupFound] = await Promise.all([
    lookup.usersExist(users.unique),
    groups.unique.length > 0 ? lookup.groups(groups.unique) : Promise.resolve([]),
  ]);
  const registered = new Map(users.unique.map((u, j) => [u, userFound[j] === true]));
  const groupOf = new Map(groups.unique.map((g, j) => [g, groupFound[j]]));

  // Owners to check for membership: registered, in a group that exists and is not dismissed.
  const pairs: { groupId: string; userId: string }[] = [];
  const pairIndex = new Map<string, number>();
  const pairKey = (groupId: string, userId: string) => JSON.stringify([groupId, userId]);
  for (const k of keys) {
    if (k.type !== ConvType.Group || !registered.get(k.owner)) continue;
    const g = groupOf.get(k.conversationId);
    if (!g || g.dismissed) continue;
    const pk = pairKey(k.conversationId, k.owner);
    if (!pairIndex.has(pk)) {
      pairIndex.set(pk, pairs.length);
      pairs.push({ groupId: k.conversationId, userId: k.owner });
    }
  }
  const member = pairs.length > 0 ? await membershipsOf(lookup, pairs) : [];

  return keys.map((k) => {
    if (!registered.get(k.owner)) {
      return failure(Code.NotFound, `user ${k.owner} is not registered`, Reason.UserNotFound);
    }
    if (k.type === ConvType.Direct) {
      if (!registered.get(k.conversationId)) {
        return failure(Code.NotFound, `peer user ${k.conversationId} is not registered`, Reason.PeerNotFound);
      }
      return undefined;
    }
    const g = groupOf.get(k.conversationId);
    if (!g) return failure(Code.NotFound, `group ${k.conversationId} does not exist`, Reason.GroupNotFound);
    if (g.dismissed) return failure(Code.FailedPrecondition, `group ${k.conversationId} was dismissed`, Reason.GroupDismissed);
    if (!member[pairIndex.get(pairKey(k.conversationId, k.owner))!]) {
      return failure(Code.PermissionDenied, `user ${k.owner} is not a member of group ${k.conversationId}`, Reason.NotGroupMember);
    }
    return undefined;
  });
}

/** One query when the lookup can answer across groups; otherwise one per distinct group. */
async function membershipsOf(lookup: DirectoryLookup, pairs: readonly { groupId: string; userId: string }[]): Promise<boolean[]> {
  if (lookup.memberships) return lookup.memberships(pairs);
  const byGroup = new Map<string, number[]>();
  pairs.forEach((p, i) => {
    let g = byGroup.get(p.groupId);
    if (!g) byGroup.set(p.groupId, (g = []));
    g.push(i);
  });
  const out: boolean[] = new Array(pairs.length).fill(false);
  await Promise.all(
    [...byGroup].map(async ([groupId, idx]) => {
      const found = await lookup.areMembers(groupId, idx.map((i) => pairs[i]!.userId));
      idx.forEach((i, j) => (out[i] = found[j] === true));
    }),
  );
  return out;
}
