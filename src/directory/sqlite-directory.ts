import Database from "better-sqlite3";
import type { CreateGroupOutcome, DirectoryStore, DismissOutcome, GroupRecord, Membership, MembersOutcome, UserRecord } from "./store.js";

export interface SqliteDirectoryOptions {
  /**
   * Database file, or ":memory:". The server passes the marks store's file: the directory keeps to
   * its own tables (directory_*), and never touches user_version, which the marks store owns.
   */
  readonly path: string;
  /** Clock in milliseconds since the epoch (tests inject it). */
  readonly now?: () => number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS directory_users (
  user_id       TEXT    PRIMARY KEY,
  register_time INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS directory_groups (
  group_id      TEXT    PRIMARY KEY,
  dismissed     INTEGER NOT NULL,
  member_count  INTEGER NOT NULL,
  create_time   INTEGER NOT NULL,
  dismiss_time  INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS directory_group_members (
  group_id      TEXT    NOT NULL,
  user_id       TEXT    NOT NULL,
  PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;
`;

interface GroupRow {
  group_id: string;
  dismissed: number;
  member_count: number;
  create_time: number;
  dismiss_time: number | null;
}

function groupOf(r: GroupRow): GroupRecord {
  return {
    groupId: r.group_id,
    dismissed: r.dismissed !== 0,
    memberCount: r.member_count,
    createTimeMs: r.create_time,
    ...(r.dismiss_time !== null ? { dismissTimeMs: r.dismiss_time } : {}),
  };
}

/**
 * The embedded directory: three tables in a SQLite file (WAL). Batch reads are one statement each,
 * whatever the batch size: the IDs travel as one JSON array parameter (json_each), which also keeps
 * clear of SQLite's limit on bound parameters.
 */
export function openSqliteDirectory(opts: SqliteDirectoryOptions): DirectoryStore {
  const db = new Database(opts.path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  db.exec(SCHEMA);
  const now = opts.now ?? Date.now;

  // json_each drives every batch read (CROSS JOIN keeps it the outer loop), so each input costs one
  // primary-key probe, and the rows found come back keyed by the input's array index.
  const selectUsers = db.prepare<[string], { i: number; register_time: number }>(
    `SELECT j.key AS i, u.register_time FROM json_each(?) AS j
     CROSS JOIN directory_users AS u ON u.user_id = j.value`,
  );
  const selectGroups = db.prepare<[string], { i: number } & GroupRow>(
    `SELECT j.key AS i, g.* FROM json_each(?) AS j
     CROSS JOIN directory_groups AS g ON g.group_id = j.value`,
  );
  const selectMemberships = db.prepare<[string], { i: number }>(
    `SELECT j.key AS i FROM json_each(?) AS j
     WHERE EXISTS (SELECT 1 FROM directory_group_members AS m
                   WHERE m.group_id = json_extract(j.value, '$[0]') AND m.user_id = json_extract(j.value, '$[1]'))`,
  );
  const insertUser = db.prepare<[string, number]>("INSERT OR IGNORE INTO directory_users (user_id, register_time) VALUES (?, ?)");
  const deleteUser = db.prepare<[string]>("DELETE FROM directory_users WHERE user_id = ?");
  const selectGroup = db.prepare<[string], GroupRow>("SELECT * FROM directory_groups WHERE group_id = ?");
  const upsertGroup = db.prepare<[string, number, number]>(
    `INSERT INTO directory_groups (group_id, dismissed, member_count, create_time, dismiss_time) VALUES (?, 0, ?, ?, NULL)
     ON CONFLICT (group_id) DO UPDATE SET dismissed = 0, member_count = excluded.member_count,
       create_time = excluded.create_time, dismiss_time = NULL`,
  );
  const setMemberCount = db.prepare<[number, string]>("UPDATE directory_groups SET member_count = ? WHERE group_id = ?");
  const setDismissed = db.prepare<[number, string]>("UPDATE directory_groups SET dismissed = 1, dismiss_time = ? WHERE group_id = ?");
  const insertMember = db.prepare<[string, string]>("INSERT OR IGNORE INTO directory_group_members (group_id, user_id) VALUES (?, ?)");
  const deleteMember = db.prepare<[string, string]>("DELETE FROM directory_group_members WHERE group_id = ? AND user_id = ?");
  const deleteMembers = db.prepare<[string]>("DELETE FROM directory_group_members WHERE group_id = ?");
  const selectMembers = db.prepare<[string], { user_id: string }>(
    "SELECT user_id FROM directory_group_members WHERE group_id = ? ORDER BY user_id",
  );

  const register = db.transaction((ids: readonly string[]) => {
    const t = now();
    return ids.map((id) => insertUser.run(id, t).changes > 0);
  });
  const unregister = db.transaction((ids: readonly string[]) => ids.map((id) => deleteUser.run(id).changes > 0));

  const create = db.transaction((groupId: string, members: readonly string[]): CreateGroupOutcome => {
    const cur = selectGroup.get(groupId);
    if (cur && cur.dismissed === 0) return { ok: false, reason: "exists" };
    if (cur) deleteMembers.run(groupId);
    let count = 0;
    for (const m of members) count += insertMember.run(groupId, m).changes;
    const t = now();
    upsertGroup.run(groupId, count, t);
    return { ok: true, group: { groupId, dismissed: false, memberCount: count, createTimeMs: t }, recreated: cur !== undefined };
  });

  const changeMembers = (add: boolean) =>
    db.transaction((groupId: string, ids: readonly string[]): MembersOutcome => {
      const cur = selectGroup.get(groupId);
      if (!cur) return { ok: false, reason: "not_found" };
      if (cur.dismissed !== 0) return { ok: false, reason: "dismissed" };
      const changed = ids.map((id) => (add ? insertMember : deleteMember).run(groupId, id).changes > 0);
      const memberCount = cur.member_count + (add ? 1 : -1) * changed.filter(Boolean).length;
      if (memberCount !== cur.member_count) setMemberCount.run(memberCount, groupId);
      return { ok: true, changed, memberCount };
    });
  const addMembers = changeMembers(true);
  const removeMembers = changeMembers(false);

  const dismiss = db.transaction((groupId: string): DismissOutcome => {
    const cur = selectGroup.get(groupId);
    if (!cur) return { ok: false, reason: "not_found" };
    if (cur.dismissed !== 0) return { ok: true, group: groupOf(cur), changed: false };
    const t = now();
    setDismissed.run(t, groupId);
    return { ok: true, group: { ...groupOf(cur), dismissed: true, dismissTimeMs: t }, changed: true };
  });

  let closed = false;
  const ensureOpen = () => {
    if (closed) throw new Error("directory store is closed");
  };

  return {
    async registerUsers(ids) {
      ensureOpen();
      return register.immediate(ids);
    },
    async unregisterUsers(ids) {
      ensureOpen();
      return unregister.immediate(ids);
    },
    async getUsers(ids) {
      ensureOpen();
      const out: (UserRecord | undefined)[] = new Array(ids.length).fill(undefined);
      if (ids.length === 0) return out;
      for (const r of selectUsers.all(JSON.stringify(ids))) out[r.i] = { userId: ids[r.i]!, registerTimeMs: r.register_time };
      return out;
    },
    async createGroup(groupId, members) {
      ensureOpen();
      return create.immediate(groupId, members);
    },
    async addMembers(groupId, ids) {
      ensureOpen();
      return addMembers.immediate(groupId, ids);
    },
    async removeMembers(groupId, ids) {
      ensureOpen();
      return removeMembers.immediate(groupId, ids);
    },
    async dismissGroup(groupId) {
      ensureOpen();
      return dismiss.immediate(groupId);
    },
    async getGroups(ids) {
      ensureOpen();
      const out: (GroupRecord | undefined)[] = new Array(ids.length).fill(undefined);
      if (ids.length === 0) return out;
      for (const r of selectGroups.all(JSON.stringify(ids))) out[r.i] = groupOf(r);
      return out;
    },
    async getMembers(groupId) {
      ensureOpen();
      // One read transaction, so the group row and its members are one snapshot.
      return db.transaction(() => {
        if (!selectGroup.get(groupId)) return undefined;
        return selectMembers.all(groupId).map((r) => r.user_id);
      })();
    },
    async memberships(pairs: readonly Membership[]) {
      ensureOpen();
      const out: boolean[] = new Array(pairs.length).fill(false);
      if (pairs.length === 0) return out;
      for (const r of selectMemberships.all(JSON.stringify(pairs.map((p) => [p.groupId, p.userId])))) out[r.i] = true;
      return out;
    },
    async close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}
