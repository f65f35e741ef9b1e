/**
 * Machine-readable reasons carried with a failure (google.rpc.ErrorInfo.reason in API statuses), so
 * that each vendor dialect can map a failure to the vendor's own code without parsing messages.
 */
export const Reason = {
  /** One input field is invalid; ErrorInfo.metadata.field names it (a convmark.v1 field path). */
  FieldInvalid: "FIELD_INVALID",
  /** The owner already has the maximum number of marked conversations. */
  OwnerMarkedLimit: "OWNER_MARKED_LIMIT",
  /** The conversation would carry more labels than allowed. */
  LabelLimit: "LABEL_LIMIT",
  /** Strict directory: the owner is not a registered user. */
  UserNotFound: "USER_NOT_FOUND",
  /** Strict directory: the peer of a direct conversation is not a registered user. */
  PeerNotFound: "PEER_NOT_FOUND",
  /** Strict directory: the group does not exist. */
  GroupNotFound: "GROUP_NOT_FOUND",
  /** Strict directory: the group was dismissed. */
  GroupDismissed: "GROUP_DISMISSED",
  /** Strict directory: the owner is not a member of the group. */
  NotGroupMember: "NOT_GROUP_MEMBER",
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

/** ErrorInfo.domain for convmark's reasons. */
export const REASON_DOMAIN = "convmark";
