/**
 * The one hand-written directory of the dialect tests (every vendor's suite uses it). Strict off, it
 * is as permissive as the real lookup; `fail` makes every lookup throw (a directory that is down).
 */
import type { DirectoryLookup, GroupInfo } from "../../src/directory/directory.js";

export interface FakeDirectoryData {
  strict: boolean;
  users?: Iterable<string>;
  groups?: Record<string, { dismissed?: boolean; members: Iterable<string> }>;
  fail?: boolean;
}

export function fakeDirectory(d: FakeDirectoryData): DirectoryLookup {
  const users = new Set(d.users ?? []);
  const groups = new Map(Object.entries(d.groups ?? {}).map(([id, g]) => [id, { dismissed: g.dismissed ?? false, members: new Set(g.members) }]));
  const check = () => {
    if (d.fail) throw new Error("directory down");
  };
  return {
    strict: d.strict,
    async usersExist(ids) {
      check();
      return ids.map((id) => !d.strict || users.has(id));
    },
    async groups(ids) {
      check();
      return ids.map((id): GroupInfo | undefined => {
        if (!d.strict) return { groupId: id, dismissed: false };
        const g = groups.get(id);
        return g ? { groupId: id, dismissed: g.dismissed } : undefined;
      });
    },
    async areMembers(groupId, ids) {
      check();
      return ids.map((id) => !d.strict || (groups.get(groupId)?.members.has(id) ?? false));
    },
  };
}
