/** Limits every entry point shares; all are configurable (see src/config.ts). */
export interface Limits {
  /** Updates in one UpdateConversations call (ZEGO allows 100 users x 200 conversations). */
  maxUpdatesPerRequest: number;
  /** Conversations per owner that carry any mark, custom mark or label (Tencent: 1000, error 51008). */
  maxMarkedPerOwner: number;
  maxLabelsPerConversation: number;
  maxCustomMarkBytes: number;
  maxLabelBytes: number;
  maxIdBytes: number;
  maxSettingStringBytes: number;
  /** A vendor conversation ID (OpenIM's "si_<a>_<b>" of two 256-byte IDs is 516 bytes). */
  maxVendorConversationIdBytes: number;
  maxKeysPerBatchGet: number;
  maxPageSize: number;
  defaultPageSize: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxUpdatesPerRequest: 20_000,
  maxMarkedPerOwner: 1000,
  maxLabelsPerConversation: 32,
  maxCustomMarkBytes: 256,
  maxLabelBytes: 255,
  maxIdBytes: 256,
  maxSettingStringBytes: 4096,
  maxVendorConversationIdBytes: 1024,
  maxKeysPerBatchGet: 1000,
  maxPageSize: 1000,
  defaultPageSize: 100,
});
