/**
 * The user/group directory (convmark.v1.DirectoryService writes it). With strict mode on, MarkService
 * and every dialect refuse unknown users, missing or dismissed groups and non-members, as the vendors do.
 */
export interface GroupInfo {
  readonly groupId: string;
  readonly dismissed: boolean;
}

export interface DirectoryLookup {
  /** CONVMARK_STRICT_DIRECTORY=1: refuse IDs the directory does not know. Off: any well-formed ID is accepted. */
  readonly strict: boolean;
  /** One boolean per ID, in order. */
  usersExist(userIds: readonly string[]): Promise<boolean[]>;
  /** One entry per ID, in order; undefined for a group never registered. */
  groups(groupIds: readonly string[]): Promise<(GroupInfo | undefined)[]>;
  /** One boolean per user, in order: is the user a member of the group? */
  areMembers(groupId: string, userIds: readonly string[]): Promise<boolean[]>;
}
