/**
 * DirectoryStore on MongoDB (official driver).
 *
 * Layout:
 * - `directory_users`: {_id: user ID, registerTime: Date}.
 * - `directory_groups`: {_id: group ID, dismissed: bool, members: [user ID...], memberCount: int,
 *   createTime: Date, dismissTime: Date | null}. The members live in the group document, so every
 *   group write is a single-document (atomic) update and no transaction (nor replica set) is needed.
 *   A document holds at most 16 MiB: about 60,000 members of 256-byte IDs, some 500,000 of 20-byte
 *   IDs; a write that would pass it is refused as "too_large" (RESOURCE_EXHAUSTED in the API).
 *
 * Membership changes are pipeline updates with $setUnion/$setDifference (hash-based set operations,
 * linear in the sizes), and memberships() is one aggregation with $setIntersection, so a 20,000-key
 * MarkService request costs one round trip per collection. Every literal array of IDs is wrapped in
 * $literal: an ID may begin with "$" (ZEGO allows it), which an expression would read as a field path.
 *
 * Sharding: both collections shard on {_id: 1} (hashed or ranged); every query here is by _id.
 */
import { MongoBulkWriteError, MongoClient, MongoServerError, type Collection } from "mongodb";
import { dbNameFromUri } from "../store/mongo-store.js";
import { compareUtf8, type CreateGroupOutcome, type DirectoryStore, type DismissOutcome, type GroupRecord, type MembersOutcome } from "./store.js";

export interface MongoDirectoryOptions {
  /** Connection string; not needed when `client` is given. */
  readonly uri?: string;
  /** An already created client to use; the directory then does not close it. */
  readonly client?: MongoClient;
  /** Database name; defaults to the database in the URI path, else "convmark". */
  readonly dbName?: string;
  /** Clock in milliseconds since the epoch (tests inject it). */
  readonly now?: () => number;
}

export const DIRECTORY_USERS = "directory_users";
export const DIRECTORY_GROUPS = "directory_groups";

interface UserDoc {
  _id: string;
  registerTime: Date;
}

interface GroupDoc {
  _id: string;
  dismissed: boolean;
  members: string[];
  memberCount: number;
  createTime: Date;
  dismissTime: Date | null;
}

const DUPLICATE_KEY = 11000;
/** BSONObjectTooLarge, and "resulting document after update is larger than 16 MiB". */
const TOO_LARGE = new Set([10334, 17419]);

function isTooLarge(e: unknown): boolean {
  return e instanceof MongoServerError && typeof e.code === "number" && TOO_LARGE.has(e.code);
}

function groupOf(d: Omit<GroupDoc, "members">): GroupRecord {
  return {
    groupId: d._id,
    dismissed: d.dismissed,
    memberCount: d.memberCount,
    createTimeMs: d.createTime.getTime(),
    ...(d.dismissTime ? { dismissTimeMs: d.dismissTime.getTime() } : {}),
  };
}

/** Unique IDs in first-seen order, and for each input position whether it is the first occurrence. */
function firstOccurrences(ids: readonly string[]): { unique: string[]; first: boolean[] } {
  const seen = new Set<string>();
  const first = ids.map((id) => (seen.has(id) ? false : (seen.add(id), true)));
  return { unique: [...seen], first };
}

export async function openMongoDirectory(opts: MongoDirectoryOptions): Promise<DirectoryStore> {
  const owned = opts.client === undefined;
  if (owned && !opts.uri) throw new Error("openMongoDirectory needs a uri or a client");
  const client = opts.client ?? new MongoClient(opts.uri!);
  try {
    if (owned) await client.connect();
    const db = client.db(opts.dbName ?? (opts.uri ? dbNameFromUri(opts.uri) : undefined) ?? "convmark");
    // Only _id is queried; the collections are created on first write.
    return new MongoDirectory(client, owned, db.collection<UserDoc>(DIRECTORY_USERS), db.collection<GroupDoc>(DIRECTORY_GROUPS), opts.now ?? Date.now);
  } catch (e) {
    if (owned) await client.close().catch(() => undefined);
    throw e;
  }
}

class MongoDirectory implements DirectoryStore {
  private closed = false;

  constructor(
    private readonly client: MongoClient,
    private readonly ownsClient: boolean,
    private readonly users: Collection<UserDoc>,
    private readonly groups: Collection<GroupDoc>,
    private readonly now: () => number,
  ) {}

  async registerUsers(ids: readonly string[]): Promise<boolean[]> {
    this.ensureOpen();
    const { unique, first } = firstOccurrences(ids);
    if (unique.length === 0) return [];
    const registerTime = new Date(this.now());
    const inserted = new Set(unique);
    try {
      await this.users.bulkWrite(
        unique.map((id) => ({ insertOne: { document: { _id: id, registerTime } } })),
        { ordered: false },
      );
    } catch (e) {
      // Already registered users fail with a duplicate key; everything else was inserted.
      if (!(e instanceof MongoBulkWriteError)) throw e;
      const errors = Array.isArray(e.writeErrors) ? e.writeErrors : [e.writeErrors];
      if (errors.length === 0 || errors.some((w) => w.code !== DUPLICATE_KEY)) throw e;
      for (const w of errors) inserted.delete(unique[w.index]!);
    }
    return ids.map((id, i) => first[i]! && inserted.has(id));
  }

  async unregisterUsers(ids: readonly string[]): Promise<boolean[]> {
    this.ensureOpen();
    const { unique, first } = firstOccurrences(ids);
    if (unique.length === 0) return [];
    // "Was registered" is read just before the delete; a concurrent unregister of the same user may
    // make both report it (the directory ends up the same).
    const found = new Set((await this.users.find({ _id: { $in: unique } }, { projection: { _id: 1 } }).toArray()).map((d) => d._id));
    if (found.size > 0) await this.users.deleteMany({ _id: { $in: [...found] } });
    return ids.map((id, i) => first[i]! && found.has(id));
  }

  async getUsers(ids: readonly string[]) {
    this.ensureOpen();
    if (ids.length === 0) return [];
    const docs = await this.users.find({ _id: { $in: [...new Set(ids)] } }).toArray();
    const byId = new Map(docs.map((d) => [d._id, d]));
    return ids.map((id) => {
      const d = byId.get(id);
      return d ? { userId: id, registerTimeMs: d.registerTime.getTime() } : undefined;
    });
  }

  async createGroup(groupId: string, memberUserIds: readonly string[]): Promise<CreateGroupOutcome> {
    this.ensureOpen();
    const members = [...new Set(memberUserIds)].sort(compareUtf8);
    const createTime = new Date(this.now());
    const fields = { dismissed: false, members, memberCount: members.length, createTime, dismissTime: null };
    try {
      await this.groups.insertOne({ _id: groupId, ...fields });
      return { ok: true, group: groupOf({ _id: groupId, ...fields }), recreated: false };
    } catch (e) {
      if (isTooLarge(e)) return { ok: false, reason: "too_large" };
      if (!(e instanceof MongoServerError && e.code === DUPLICATE_KEY)) throw e;
    }
    // The ID is taken: create anew only over a dismissed group (groups are never deleted, so no
    // match means it exists and is not dismissed).
    try {
      const r = await this.groups.updateOne({ _id: groupId, dismissed: true }, { $set: fields });
      if (r.matchedCount === 0) return { ok: false, reason: "exists" };
    } catch (e) {
      if (isTooLarge(e)) return { ok: false, reason: "too_large" };
      throw e;
    }
    return { ok: true, group: groupOf({ _id: groupId, ...fields }), recreated: true };
  }

  addMembers(groupId: string, ids: readonly string[]): Promise<MembersOutcome> {
    return this.changeMembers(groupId, ids, true);
  }

  removeMembers(groupId: string, ids: readonly string[]): Promise<MembersOutcome> {
    return this.changeMembers(groupId, ids, false);
  }

  private async changeMembers(groupId: string, ids: readonly string[], add: boolean): Promise<MembersOutcome> {
    this.ensureOpen();
    const { unique, first } = firstOccurrences(ids);
    const members = add
      ? { $setUnion: ["$members", { $literal: unique }] }
      : { $setDifference: ["$members", { $literal: unique }] };
    let before: GroupDoc | null;
    try {
      // One atomic single-document update; the document before it tells which IDs changed.
      before = await this.groups.findOneAndUpdate(
        { _id: groupId, dismissed: false },
        [{ $set: { members } }, { $set: { memberCount: { $size: "$members" } } }],
        { returnDocument: "before", projection: { members: 1 } },
      );
    } catch (e) {
      if (isTooLarge(e)) return { ok: false, reason: "too_large" };
      throw e;
    }
    if (!before) {
      const exists = await this.groups.countDocuments({ _id: groupId }, { limit: 1 });
      return { ok: false, reason: exists > 0 ? "dismissed" : "not_found" };
    }
    const had = new Set(before.members);
    const changed = ids.map((id, i) => first[i]! && had.has(id) !== add);
    const delta = changed.filter(Boolean).length;
    return { ok: true, changed, memberCount: had.size + (add ? delta : -delta) };
  }

  async dismissGroup(groupId: string): Promise<DismissOutcome> {
    this.ensureOpen();
    const after = await this.groups.findOneAndUpdate(
      { _id: groupId, dismissed: false },
      { $set: { dismissed: true, dismissTime: new Date(this.now()) } },
      { returnDocument: "after", projection: { members: 0 } },
    );
    if (after) return { ok: true, group: groupOf(after), changed: true };
    const cur = await this.groups.findOne({ _id: groupId }, { projection: { members: 0 } });
    if (!cur) return { ok: false, reason: "not_found" };
    return { ok: true, group: groupOf(cur), changed: false };
  }

  async getGroups(ids: readonly string[]): Promise<(GroupRecord | undefined)[]> {
    this.ensureOpen();
    if (ids.length === 0) return [];
    const docs = await this.groups.find({ _id: { $in: [...new Set(ids)] } }, { projection: { members: 0 } }).toArray();
    const byId = new Map(docs.map((d) => [d._id, groupOf(d)]));
    return ids.map((id) => byId.get(id));
  }

  async getMembers(groupId: string): Promise<string[] | undefined> {
    this.ensureOpen();
    const d = await this.groups.findOne({ _id: groupId }, { projection: { members: 1 } });
    return d ? [...d.members].sort(compareUtf8) : undefined;
  }

  async memberships(pairs: readonly { groupId: string; userId: string }[]): Promise<boolean[]> {
    this.ensureOpen();
    if (pairs.length === 0) return [];
    const groupIds = [...new Set(pairs.map((p) => p.groupId))];
    const userIds = [...new Set(pairs.map((p) => p.userId))];
    const docs = await this.groups
      .aggregate<{ _id: string; members: string[] }>([
        { $match: { _id: { $in: groupIds } } },
        { $project: { _id: 1, members: { $setIntersection: ["$members", { $literal: userIds }] } } },
      ])
      .toArray();
    const byGroup = new Map(docs.map((d) => [d._id, new Set(d.members)]));
    return pairs.map((p) => byGroup.get(p.groupId)?.has(p.userId) ?? false);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsClient) await this.client.close();
  }

  private ensureOpen(): void {
    if (this.closed) throw new Error("directory store is closed");
  }
}
