/** The conversation-marks model, independent of protobuf and storage. */

export const ConvType = { Direct: 1, Group: 2 } as const;
export type ConvType = (typeof ConvType)[keyof typeof ConvType];

export const Receive = { Receive: 1, DoNotReceive: 2, ReceiveSilently: 3 } as const;
export type ReceiveOpt = (typeof Receive)[keyof typeof Receive];

export interface ConvKey {
  readonly owner: string;
  readonly type: ConvType;
  readonly conversationId: string;
}

/** Settings with presence: an absent field is "not set" in a record and "leave alone" in an update. */
export interface Settings {
  pinned?: boolean;
  receiveOption?: ReceiveOpt;
  privateChat?: boolean;
  burnDurationSeconds?: number;
  attachedInfo?: string;
  ex?: string;
}

export const SETTING_FIELDS = [
  "pinned",
  "receiveOption",
  "privateChat",
  "burnDurationSeconds",
  "attachedInfo",
  "ex",
] as const satisfies readonly (keyof Settings)[];

export interface ConversationRecord {
  readonly key: ConvKey;
  /** Unsigned 64-bit mask; mark n is bit n-1. */
  readonly marks: bigint;
  readonly customMark: string;
  /** Sorted ascending, unique. */
  readonly labels: readonly string[];
  readonly settings: Readonly<Settings>;
  /** Per-conversation version; 0 means never written. */
  readonly version: bigint;
  /** Milliseconds since the epoch of the last effective change. */
  readonly updateTimeMs: number;
  /** The owner's stream position of the last effective change (orders lists, feeds changes). */
  readonly position: bigint;
  /** The conversation's ID in a vendor API (OpenIM's conversationID), verbatim; absent: none. */
  readonly vendorConversationId?: string;
}

/** A validated update: masks already built, label sets deduplicated. */
export interface ValidUpdate {
  readonly key: ConvKey;
  readonly setMask: bigint;
  readonly clearMask: bigint;
  readonly customMark?: string;
  readonly addLabels: readonly string[];
  readonly removeLabels: readonly string[];
  readonly settings: Readonly<Settings>;
  /** Present: replace the vendor conversation ID ("" removes it). */
  readonly vendorConversationId?: string;
}

export function emptyRecord(key: ConvKey): ConversationRecord {
  return { key, marks: 0n, customMark: "", labels: [], settings: {}, version: 0n, updateTimeMs: 0, position: 0n };
}

/** Counts against the per-owner cap: carries any mark, custom mark or label. */
export function isMarked(r: Pick<ConversationRecord, "marks" | "customMark" | "labels">): boolean {
  return r.marks !== 0n || r.customMark !== "" || r.labels.length > 0;
}

export function keyString(k: ConvKey): string {
  return `${k.owner}\u0000${k.type}\u0000${k.conversationId}`;
}

export interface ApplyResult {
  /** The state after the update (the current state when nothing changed). */
  readonly next: ConversationRecord;
  readonly changed: boolean;
}

/**
 * Applies an update to the current state. Pure: the stores use it (SQLite) or mirror it in update
 * documents (MongoDB). `position` of the result is left to the store, which owns the stream.
 */
export function applyUpdate(current: ConversationRecord | undefined, u: ValidUpdate, nowMs: number): ApplyResult {
  const cur = current ?? emptyRecord(u.key);
  const marks = (cur.marks | u.setMask) & ~u.clearMask;
  const customMark = u.customMark ?? cur.customMark;

  let labels = cur.labels;
  if (u.addLabels.length > 0 || u.removeLabels.length > 0) {
    const set = new Set(cur.labels);
    for (const l of u.addLabels) set.add(l);
    for (const l of u.removeLabels) set.delete(l);
    labels = [...set].sort();
  }

  // Records are immutable: an update that sets no setting keeps the current settings object.
  let settingsChanged = false;
  let settings: Readonly<Settings> = cur.settings;
  for (const f of SETTING_FIELDS) {
    const v = u.settings[f];
    if (v !== undefined && v !== settings[f]) {
      if (!settingsChanged) settings = { ...cur.settings };
      (settings as Record<string, unknown>)[f] = v;
      settingsChanged = true;
    }
  }

  const vendorId = u.vendorConversationId === undefined ? cur.vendorConversationId : u.vendorConversationId || undefined;

  const changed =
    marks !== cur.marks ||
    customMark !== cur.customMark ||
    !sameStrings(labels, cur.labels) ||
    settingsChanged ||
    vendorId !== cur.vendorConversationId;
  if (!changed) return { next: cur, changed: false };
  return {
    next: {
      key: cur.key,
      marks,
      customMark,
      labels,
      settings,
      version: cur.version + 1n,
      updateTimeMs: nowMs,
      position: cur.position,
      ...(vendorId !== undefined ? { vendorConversationId: vendorId } : {}),
    },
    changed: true,
  };
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * An update breaks the label limit only if it leaves more labels than allowed AND more than before:
 * a conversation already over a since-lowered limit can still be changed in every other way.
 */
export function exceedsLabelLimit(current: ConversationRecord | undefined, next: ConversationRecord, max: number): boolean {
  return next.labels.length > max && next.labels.length > (current?.labels.length ?? 0);
}
