/**
 * Tencent Cloud IM error codes this dialect answers with. Sources (see docs/dialects/tencent.md):
 * - mark_contact's own codes: https://cloud.tencent.com/document/product/269/ (seed document)
 * - REST API common codes (60000-79999): https://cloud.tencent.com/document/product/269/1671
 */
export const TencentCode = {
  OK: 0,

  // mark_contact private codes (the seed document).
  /** The UserID was not imported into the IM backend. */
  UserNotImported: 50001,
  /** Bad request parameter. */
  BadParameter: 50002,
  /** The request needs App admin rights. */
  AdminRequired: 50003,
  /** Internal server error, retry. */
  Internal: 50004,
  /** Empty MarkItem or more than 100 items. */
  ItemCount: 51006,
  /** GroupID → GroupCode failed: internal error or the group was dismissed. */
  GroupInvalid: 51007,
  /** More than 1000 marked conversations. */
  MarkedLimit: 51008,
  /** Conversation-group APIs: the group does not exist. */
  GroupNotFound: 51009,
  /** Conversation-group APIs: more than 20 groups for the user. */
  GroupLimit: 51010,
  /** Conversation-group APIs: the group name is empty or longer than 32 bytes. */
  GroupNameInvalid: 51011,

  // Group system code (269/1671): insufficient permission, e.g. not a member.
  GroupPermission: 10007,

  // REST API common codes (269/1671).
  /** HTTP parse error: check the request URL format. */
  HttpParse: 60002,
  /** HTTP request JSON parse error. */
  JsonParse: 60003,
  /** Account or signature error in the request URL or JSON body. */
  AccountOrSig: 60004,
  /** REST API call frequency over the limit. */
  FrequencyLimit: 60007,
  /** Request timed out or bad HTTP request format. */
  HttpFormat: 60008,
  /** Request resource error: check the request URL. */
  UnknownResource: 60009,
  /** The REST API needs an SDKAppID in the URL. */
  SdkAppIdRequired: 60012,

  // Account (UserSig) codes (269/1671).
  /** UserSig expired. */
  SigExpired: 70001,
  /** UserSig could not be parsed. */
  SigParse: 70003,
  /** UserSig verification failed (made with another key). */
  SigVerify: 70009,
  /** The request's UserID differs from the one the UserSig was made for. */
  SigIdentifierMismatch: 70013,
  /** The request's SDKAppID differs from the one the UserSig was made for. */
  SigSdkAppIdMismatch: 70014,
  /** Key does not exist, UserSig verification failed. */
  SigKeyMissing: 70016,
  /** SDKAppID does not exist, UserSig verification failed. */
  SdkAppIdUnknown: 70020,
} as const;
export type TencentCode = (typeof TencentCode)[keyof typeof TencentCode];

/** A whole-request failure: ActionStatus FAIL with this code and message. */
export class TencentError {
  constructor(
    readonly code: TencentCode,
    readonly info: string,
  ) {}
}
