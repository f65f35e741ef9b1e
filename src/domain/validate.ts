import { Code } from "@connectrpc/connect";
import { ConvType, Receive, type ConvKey, type ConversationRecord, type ReceiveOpt, type Settings, type ValidUpdate } from "./conversation.js";
import type { Limits } from "./limits.js";
import { Reason } from "./reasons.js";
import { isValidMark, maskOf } from "./marks.js";

/**
 * Why one item was refused; the code is a gRPC code so every entry point can map it. A failure that
 * concerns one input field names it (`field`, the convmark.v1 field path such as
 * "settings.burn_duration_seconds") and says what is wrong with it (`problem`, a sentence without the
 * field name), so a dialect can print it with the vendor's own field name without parsing `message`.
 */
export class Failure {
  constructor(
    readonly code: Code,
    readonly message: string,
    readonly reason?: Reason,
    readonly field?: string,
    readonly problem?: string,
  ) {}
}

export function failure(code: Code, message: string, reason?: Reason): Failure {
  return new Failure(code, message, reason);
}

/** An INVALID_ARGUMENT failure of one field: message = "<field> <problem>", reason FIELD_INVALID. */
export function fieldFailure(field: string, problem: string): Failure {
  return new Failure(Code.InvalidArgument, `${field} ${problem}`, Reason.FieldInvalid, field, problem);
}

export function isFailure(x: unknown): x is Failure {
  return x instanceof Failure;
}

/** Structural view of convmark.v1.ConversationKey (generated messages satisfy it). */
export interface KeyInput {
  ownerUserId: string;
  type: number;
  conversationId: string;
}

export interface SettingsInput {
  pinned?: boolean;
  receiveOption?: number;
  privateChat?: boolean;
  burnDurationSeconds?: number;
  attachedInfo?: string;
  ex?: string;
}

/** Structural view of convmark.v1.ConversationUpdate. */
export interface UpdateInput {
  key?: KeyInput;
  setMarks: readonly number[];
  clearMarks: readonly number[];
  customMark?: string;
  addLabels: readonly string[];
  removeLabels: readonly string[];
  settings?: SettingsInput;
  vendorConversationId?: string;
}

const utf8Bytes = (s: string) => Buffer.byteLength(s, "utf8");

function checkString(field: string, s: string, maxBytes: number, minBytes: number, what = "is"): Failure | undefined {
  if (!s.isWellFormed()) return fieldFailure(field, `${what} not valid UTF-8`);
  const n = utf8Bytes(s);
  if (n < minBytes) return fieldFailure(field, what === "is" ? "must not be empty" : `${what} empty`);
  if (n > maxBytes) return fieldFailure(field, `${what} ${n} bytes, at most ${maxBytes} allowed`);
  return undefined;
}

export function validateKey(k: KeyInput | undefined, limits: Limits): ConvKey | Failure {
  if (!k) return fieldFailure("key", "is required");
  const owner = checkString("key.owner_user_id", k.ownerUserId, limits.maxIdBytes, 1);
  if (owner) return owner;
  const conv = checkString("key.conversation_id", k.conversationId, limits.maxIdBytes, 1);
  if (conv) return conv;
  if (k.type !== ConvType.Direct && k.type !== ConvType.Group) {
    return fieldFailure("key.type", `must be CONVERSATION_TYPE_DIRECT or CONVERSATION_TYPE_GROUP, got ${k.type}`);
  }
  return { owner: k.ownerUserId, type: k.type, conversationId: k.conversationId };
}

function markMask(field: string, marks: readonly number[]): bigint | Failure {
  for (const m of marks) {
    if (!isValidMark(m)) return fieldFailure(field, `holds mark ${m}, outside 1..64`);
  }
  return maskOf(marks);
}

function labelSet(field: string, labels: readonly string[], limits: Limits): string[] | Failure {
  for (const l of labels) {
    const bad = checkString(field, l, limits.maxLabelBytes, 1, "holds a label that is");
    if (bad) return bad;
  }
  return [...new Set(labels)];
}

export function validateSettings(s: SettingsInput | undefined, limits: Limits): Settings | Failure {
  const out: Settings = {};
  if (!s) return out;
  if (s.pinned !== undefined) out.pinned = s.pinned;
  if (s.privateChat !== undefined) out.privateChat = s.privateChat;
  if (s.receiveOption !== undefined) {
    const r = s.receiveOption;
    if (r !== Receive.Receive && r !== Receive.DoNotReceive && r !== Receive.ReceiveSilently) {
      return fieldFailure("settings.receive_option", `must be RECEIVE, DO_NOT_RECEIVE or RECEIVE_SILENTLY, got ${r}`);
    }
    out.receiveOption = r as ReceiveOpt;
  }
  if (s.burnDurationSeconds !== undefined) {
    if (!Number.isInteger(s.burnDurationSeconds) || s.burnDurationSeconds < 0) {
      return fieldFailure("settings.burn_duration_seconds", "must be a non-negative integer");
    }
    out.burnDurationSeconds = s.burnDurationSeconds;
  }
  for (const f of ["attachedInfo", "ex"] as const) {
    const v = s[f];
    if (v === undefined) continue;
    const bad = checkString(`settings.${f === "ex" ? "ex" : "attached_info"}`, v, limits.maxSettingStringBytes, 0);
    if (bad) return bad;
    out[f] = v;
  }
  return out;
}

/** A vendor conversation ID: any valid UTF-8 (empty included) up to maxVendorConversationIdBytes. */
export function validateVendorConversationId(id: string, limits: Pick<Limits, "maxVendorConversationIdBytes">): Failure | undefined {
  return checkString("vendor_conversation_id", id, limits.maxVendorConversationIdBytes, 0);
}

/** Validates one update; a failure concerns this update alone. */
export function validateUpdate(u: UpdateInput, limits: Limits): ValidUpdate | Failure {
  const key = validateKey(u.key, limits);
  if (isFailure(key)) return key;
  const setMask = markMask("set_marks", u.setMarks);
  if (isFailure(setMask)) return setMask;
  const clearMask = markMask("clear_marks", u.clearMarks);
  if (isFailure(clearMask)) return clearMask;
  if ((setMask & clearMask) !== 0n) {
    return fieldFailure("clear_marks", "holds a mark that is also in set_marks: a mark cannot be in both");
  }
  if (u.customMark !== undefined) {
    const bad = checkString("custom_mark", u.customMark, limits.maxCustomMarkBytes, 0);
    if (bad) return bad;
  }
  const addLabels = labelSet("add_labels", u.addLabels, limits);
  if (isFailure(addLabels)) return addLabels;
  const removeLabels = labelSet("remove_labels", u.removeLabels, limits);
  if (isFailure(removeLabels)) return removeLabels;
  if (addLabels.some((l) => removeLabels.includes(l))) {
    return fieldFailure("remove_labels", "holds a label that is also in add_labels: a label cannot be in both");
  }
  if (addLabels.length > limits.maxLabelsPerConversation) {
    return fieldFailure("add_labels", `has ${addLabels.length} labels, at most ${limits.maxLabelsPerConversation} allowed`);
  }
  const settings = validateSettings(u.settings, limits);
  if (isFailure(settings)) return settings;
  if (u.vendorConversationId !== undefined) {
    const bad = validateVendorConversationId(u.vendorConversationId, limits);
    if (bad) return bad;
  }
  return {
    key,
    setMask,
    clearMask,
    ...(u.customMark !== undefined ? { customMark: u.customMark } : {}),
    addLabels,
    removeLabels,
    settings,
    ...(u.vendorConversationId !== undefined ? { vendorConversationId: u.vendorConversationId } : {}),
  };
}

/** Structural view of convmark.v1.Conversation: a whole state, as RestoreConversations takes it. */
export interface ConversationInput {
  key?: KeyInput;
  marks: readonly number[];
  markBits: bigint;
  customMark: string;
  labels: readonly string[];
  settings?: SettingsInput;
  version: bigint;
  updateTime?: { seconds: bigint; nanos: number };
  vendorConversationId: string;
}

/** The latest instant a JavaScript Date (and so a stored update time) can hold, in ms. */
const MAX_TIME_MS = 8.64e15;

/**
 * Validates one whole conversation state to restore (RestoreConversations): the same rules as an
 * update for each field, plus a version of at least 1 and an update time, both kept as given. The
 * update time is stored in milliseconds (as every write's is); finer digits are dropped.
 */
export function validateRestore(c: ConversationInput, limits: Limits): ConversationRecord | Failure {
  const key = validateKey(c.key, limits);
  if (isFailure(key)) return key;
  const listed = markMask("marks", c.marks);
  if (isFailure(listed)) return listed;
  if (c.markBits < 0n || c.markBits >= 1n << 64n) return fieldFailure("mark_bits", "is not a 64-bit mask");
  if (c.marks.length > 0 && c.markBits !== 0n && listed !== c.markBits) {
    return fieldFailure("mark_bits", "holds other marks than marks: give either, or the same in both");
  }
  const bad = checkString("custom_mark", c.customMark, limits.maxCustomMarkBytes, 0);
  if (bad) return bad;
  const labels = labelSet("labels", c.labels, limits);
  if (isFailure(labels)) return labels;
  if (labels.length > limits.maxLabelsPerConversation) {
    return fieldFailure("labels", `has ${labels.length} labels, at most ${limits.maxLabelsPerConversation} allowed`);
  }
  const settings = validateSettings(c.settings, limits);
  if (isFailure(settings)) return settings;
  const badVendor = checkString("vendor_conversation_id", c.vendorConversationId, limits.maxVendorConversationIdBytes, 0);
  if (badVendor) return badVendor;
  if (c.version < 1n || c.version >= 1n << 63n) {
    return fieldFailure("version", "must be 1..2^63-1: a restored conversation keeps the version it had when it was exported");
  }
  const t = c.updateTime;
  if (!t) return fieldFailure("update_time", "is required: a restored conversation keeps the time of its last change");
  if (!Number.isInteger(t.nanos) || t.nanos < 0 || t.nanos > 999_999_999) return fieldFailure("update_time", "has nanos outside 0..999999999");
  const ms = Number(t.seconds) * 1000 + Math.floor(t.nanos / 1_000_000);
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_TIME_MS) return fieldFailure("update_time", "is outside 1970-01-01..275760-09-13");
  return {
    key,
    marks: listed !== 0n ? listed : c.markBits,
    customMark: c.customMark,
    labels: [...labels].sort(),
    settings,
    version: c.version,
    updateTimeMs: ms,
    position: 0n,
    ...(c.vendorConversationId !== "" ? { vendorConversationId: c.vendorConversationId } : {}),
  };
}
