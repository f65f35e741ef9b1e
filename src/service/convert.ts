/**
 * Conversions between the domain model and convmark.v1 messages. Messages are built as plain
 * literals rather than with create(): results of large batches are built on the hot path, and
 * create() walks the schema for every message.
 */
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Conversation, ConversationKey, ConversationSettings } from "../../gen/convmark/v1/mark_service_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import type { Status } from "../../gen/google/rpc/status_pb.js";
import type { ConvKey, ConversationRecord, Settings } from "../domain/conversation.js";
import { marksOf } from "../domain/marks.js";

export function keyToProto(k: ConvKey): ConversationKey {
  return { $typeName: "convmark.v1.ConversationKey", ownerUserId: k.owner, type: k.type, conversationId: k.conversationId };
}

/** Only present fields are copied, so presence survives the round trip; undefined when none is set. */
export function settingsToProto(s: Readonly<Settings>): ConversationSettings | undefined {
  let out: ConversationSettings | undefined;
  for (const field in s) {
    const value = s[field as keyof Settings];
    if (value === undefined) continue;
    out ??= { $typeName: "convmark.v1.ConversationSettings" };
    (out as unknown as Record<string, unknown>)[field] = value;
  }
  return out;
}

function timestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { $typeName: "google.protobuf.Timestamp", seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
}

export function recordToProto(r: ConversationRecord): Conversation {
  return {
    $typeName: "convmark.v1.Conversation",
    key: keyToProto(r.key),
    marks: marksOf(r.marks),
    markBits: r.marks,
    customMark: r.customMark,
    labels: [...r.labels],
    settings: settingsToProto(r.settings),
    version: r.version,
    updateTime: r.version > 0n ? timestamp(r.updateTimeMs) : undefined,
    vendorConversationId: r.vendorConversationId ?? "",
  };
}

/** The convmark reason (google.rpc.ErrorInfo.reason) in a status's details, if any. */
export function reasonOf(status: Status | undefined): string | undefined {
  return errorInfoOf(status)?.reason;
}

/** The ErrorInfo of a status: reason plus metadata.field / metadata.problem for a field failure. */
export function errorInfoOf(status: Status | undefined): { reason: string; field?: string; problem?: string } | undefined {
  for (const d of status?.details ?? []) {
    const info = anyUnpack(d, ErrorInfoSchema);
    if (info) {
      const { field, problem } = info.metadata;
      return { reason: info.reason, ...(field !== undefined ? { field } : {}), ...(problem !== undefined ? { problem } : {}) };
    }
  }
  return undefined;
}
