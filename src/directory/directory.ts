/**
 * The user/group directory (convmark.v1.DirectoryService writes it). With strict mode on, MarkService
 * and every dialect refuse unknown users, missing or dismissed groups and non-members, as the vendors do.
 */
export interface GroupInfo {
  readonly groupId: string;
  readonly dismissed: boolean;
}

/**
 * Read access for MarkService's guard and the dialects. Every method answers a whole batch with one
 * store query (no N+1), in input order.
 *
 * When `strict` is false every answer is permissive and the store is not read: every user exists,
 * every group exists and is not dismissed, everyone is a member. So a dialect may ask without first
 * checking `strict`, and strict mode off means "any well-formed ID is accepted".
 */
export interface DirectoryLookup {
  /** CONVMARK_STRICT_DIRECTORY=1: refuse IDs the directory does not know. Off: any well-formed ID is accepted. */
  readonly strict: boolean;
  /** One boolean per ID, in order. */
  usersExist(userIds: readonly string[]): Promise<boolean[]>;
  /** One entry per ID, in order; undefined for a group never registered. */
  groups(groupIds: readonly string[]): Promise<(GroupInfo | undefined)[]>;
  /** One boolean per user, in order: is the user a member of the group? */
  areMembers(groupId: string, userIds: readonly string[]): Promise<boolean[]>;
  /**
   * One boolean per (group, user) pair, in order, across many groups in one query. Optional so that
   * hand-written lookups (test fakes) need not implement it; createDirectoryLookup always does, and
   * callers fall back to areMembers per group without it.
   */
  memberships?(pairs: readonly { readonly groupId: string; readonly userId: string }[]): Promise<boolean[]>;
}
