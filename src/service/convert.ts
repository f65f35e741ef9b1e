/** Conversions between the domain model and convmark.v1 messages. */
import { create } from "@bufbuild/protobuf";
import { anyUnpack, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { Status } from "../../gen/google/rpc/status_pb.js";
import {
  ConversationKeySchema,
  ConversationSchema,
  ConversationSettingsSchema,
  type Conversation,
  type ConversationKey,
  type ConversationSettings,
} from "../../gen/convmark/v1/mark_service_pb.js";
import type { ConvKey, ConversationRecord, Settings } from "../domain/conversation.js";
import { marksOf } from "../domain/marks.js";

export function keyToProto(k: ConvKey): ConversationKey {
  return create(ConversationKeySchema, { ownerUserId: k.owner, type: k.type, conversationId: k.conversationId });
}

export function settingsToProto(s: Readonly<Settings>): ConversationSettings {
  // Only present fields are copied, so presence survives the round trip.
  return create(ConversationSettingsSchema, s);
}

export function recordToProto(r: ConversationRecord): Conversation {
  return create(ConversationSchema, {
    key: keyToProto(r.key),
    marks: marksOf(r.marks),
    markBits: r.marks,
    customMark: r.customMark,
    labels: [...r.labels],
    settings: settingsToProto(r.settings),
    version: r.version,
    ...(r.version > 0n ? { updateTime: timestampFromMs(r.updateTimeMs) } : {}),
  });
}

/** The convmark reason (google.rpc.ErrorInfo.reason) in a status's details, if any. */
export function reasonOf(status: Status | undefined): string | undefined {
  for (const d of status?.details ?? []) {
    const info = anyUnpack(d, ErrorInfoSchema);
    if (info) return info.reason;
  }
  return undefined;
}
