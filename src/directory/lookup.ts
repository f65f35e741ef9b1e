import type { DirectoryLookup, GroupInfo } from "./directory.js";
import type { DirectoryStore, Membership } from "./store.js";

export interface DirectoryLookupOptions {
  /** From directoryConfigFromEnv: refuse IDs the directory does not know. */
  readonly strict: boolean;
}

/**
 * DirectoryLookup over a DirectoryStore. Strict: each call is one store query for the distinct IDs
 * of the batch. Not strict: permissive answers without reading the store.
 */
export function createDirectoryLookup(store: DirectoryStore, opts: DirectoryLookupOptions): DirectoryLookup & Required<Pick<DirectoryLookup, "memberships">> {
  const { strict } = opts;
  return {
    strict,

    async usersExist(userIds) {
      if (!strict) return userIds.map(() => true);
      const { unique, index } = distinct(userIds);
      const found = await store.getUsers(unique);
      return index.map((j) => found[j] !== undefined);
    },

    async groups(groupIds) {
      if (!strict) return groupIds.map((groupId): GroupInfo => ({ groupId, dismissed: false }));
      const { unique, index } = distinct(groupIds);
      const found = await store.getGroups(unique);
      return index.map((j) => {
        const g = found[j];
        return g ? { groupId: g.groupId, dismissed: g.dismissed } : undefined;
      });
    },

    async areMembers(groupId, userIds) {
      if (!strict) return userIds.map(() => true);
      return memberships(userIds.map((userId) => ({ groupId, userId })));
    },

    memberships: (pairs) => (strict ? memberships(pairs) : Promise.resolve(pairs.map(() => true))),
  };

  async function memberships(pairs: readonly Membership[]): Promise<boolean[]> {
    // JSON keys stay unambiguous whatever the IDs contain (even NUL).
    const { unique, index } = distinct(pairs.map((p) => JSON.stringify([p.groupId, p.userId])));
    const found = await store.memberships(
      unique.map((k) => {
        const [groupId, userId] = JSON.parse(k) as [string, string];
        return { groupId, userId };
      }),
    );
    return index.map((j) => found[j]!);
  }
}

/** The distinct values in first-seen order, and for each input the position of its value among them. */
export function distinct(values: readonly string[]): { unique: string[]; index: number[] } {
  const at = new Map<string, number>();
  const unique: string[] = [];
  const index = values.map((v) => {
    let j = at.get(v);
    if (j === undefined) {
      j = unique.length;
      at.set(v, j);
      unique.push(v);
    }
    return j;
  });
  return { unique, index };
}
