/**
 * The directory storage contract every adapter (SQLite, MongoDB) implements and
 * test/directory/contract.ts checks.
 *
 * - IDs reach the store already validated (1..256 UTF-8 bytes); the store does not check them.
 * - Batch writes answer one boolean per input ID, in input order: did this ID change the directory?
 *   A repeated ID in one batch changes it at most once (its first occurrence).
 * - Batch reads answer one entry per input, in input order, with one query per call (no N+1), so
 *   a 20,000-key MarkService request costs a bounded number of round trips.
 * - Users and group memberships are independent: a group may list users who are not (or no longer)
 *   registered; strict mode refuses such a user as an unknown user before looking at membership.
 */

export interface UserRecord {
  readonly userId: string;
  /** Milliseconds since the epoch. */
  readonly registerTimeMs: number;
}

export interface GroupRecord {
  readonly groupId: string;
  readonly dismissed: boolean;
  readonly memberCount: number;
  /** Milliseconds since the epoch of the (re-)creation. */
  readonly createTimeMs: number;
  /** Milliseconds since the epoch of the dismissal; absent while the group is not dismissed. */
  readonly dismissTimeMs?: number;
}

export interface Membership {
  readonly groupId: string;
  readonly userId: string;
}

export type CreateGroupOutcome =
  | { readonly ok: true; readonly group: GroupRecord; readonly recreated: boolean }
  /** A group of that ID exists and is not dismissed; nothing was written. */
  | { readonly ok: false; readonly reason: "exists" }
  /** The group would exceed what the store can hold in one group (MongoDB: 16 MiB document); nothing was written. */
  | { readonly ok: false; readonly reason: "too_large" };

export type MembersOutcome =
  | { readonly ok: true; readonly changed: boolean[]; readonly memberCount: number }
  /** The group was never created, is dismissed, or would grow too large; nothing was written. */
  | { readonly ok: false; readonly reason: "not_found" | "dismissed" | "too_large" };

export type DismissOutcome =
  | { readonly ok: true; readonly group: GroupRecord; readonly changed: boolean }
  | { readonly ok: false; readonly reason: "not_found" };

export interface DirectoryStore {
  /** Registers users; true for each ID that was not registered before. */
  registerUsers(userIds: readonly string[]): Promise<boolean[]>;
  /** Unregisters users (memberships are kept); true for each ID that was registered. */
  unregisterUsers(userIds: readonly string[]): Promise<boolean[]>;
  /** One entry per ID, in order; undefined for an unregistered user. */
  getUsers(userIds: readonly string[]): Promise<(UserRecord | undefined)[]>;

  /**
   * Creates a group with the given members (duplicates ignored), atomically. A dismissed group of the
   * same ID is created anew: not dismissed, new create time, exactly the given members.
   */
  createGroup(groupId: string, memberUserIds: readonly string[]): Promise<CreateGroupOutcome>;
  /** Adds members atomically; true for each ID that was not a member. Refused for a missing or dismissed group. */
  addMembers(groupId: string, userIds: readonly string[]): Promise<MembersOutcome>;
  /** Removes members atomically; true for each ID that was a member. Refused for a missing or dismissed group. */
  removeMembers(groupId: string, userIds: readonly string[]): Promise<MembersOutcome>;
  /** Marks a group dismissed, keeping its members; changed is false if it already was. */
  dismissGroup(groupId: string): Promise<DismissOutcome>;
  /** One entry per ID, in order; undefined for a group never created. */
  getGroups(groupIds: readonly string[]): Promise<(GroupRecord | undefined)[]>;
  /** The members of a group, sorted by UTF-8 bytes; undefined for a group never created. */
  getMembers(groupId: string): Promise<string[] | undefined>;
  /** One boolean per pair, in order: is the user listed as a member of the group (dismissed or not)? */
  memberships(pairs: readonly Membership[]): Promise<boolean[]>;

  close(): Promise<void>;
}

/** Sorts strings by their UTF-8 bytes (the order SQLite's BINARY collation and MongoDB use). */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}
