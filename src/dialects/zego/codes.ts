/**
 * ZEGO return codes the SetConvMark dialect answers with, and the per-conversation / per-user codes
 * of its FailList. Sources and reasoning: docs/dialects/zego.md.
 */
export const ZegoCode = {
  Success: 0,

  // API gateway (public return codes, https://www.zegocloud.com/docs/zim-server/return-codes)
  AppIdFormat: 100000001,
  TimestampEmpty: 100000002,
  TimestampFormat: 100000003,
  SignatureExpired: 100000004,
  SignatureInvalid: 100000005,
  ActionEmpty: 100000006,
  ActionUnsupported: 100000007,
  SignatureNonceEmpty: 100000008,
  SignatureEmpty: 100000009,
  /** No ServerSecret for this AppId: the AppId is not the one configured (or none is). */
  ServerSecretUnavailable: 100000010,
  RequestBodyUnreadable: 100000012,
  SignatureVersionEmpty: 100000013,
  SignatureVersionUnsupported: 100000014,

  // SetConvMark's own return codes (zego-SetConvMark.zh.md)
  GeneralError: 660000001,
  BadParameter: 660000002,
  AppRateLimited: 660300005,
  UserLookupError: 660800001,
  /** Conversation APIs (ConvPinned, SilenceConvNotification, QueryConversationList, DeleteConv): FromUserId is not registered. */
  UserNotRegistered: 660500002,
  AllConversationsFailed: 660800054,
} as const;
export type ZegoCode = (typeof ZegoCode)[keyof typeof ZegoCode];

/** Codes inside FailList entries (the document's example uses 1 for a failed conversation or user). */
export const ItemCode = {
  /** A business failure of one conversation (or a user-level "user not exist"). */
  Failed: 1,
  /** A malformed conversation (e.g. an empty or oversized conversation ID). */
  BadParameter: 2,
} as const;

/** ZEGO ConvType values. */
export const ZegoConvType = { C2c: 0, Group: 2 } as const;
