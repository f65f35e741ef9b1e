/**
 * Pure parts of the MongoDB every-owner feed (src/store/mongo-store.ts reads the server): the feed
 * values inside cursors, change stream events -> Change, page assembly, and reset decisions.
 * Nothing here talks to a server; test/store/mongo-feed.test.ts covers all of it.
 *
 * The feed is the change stream of `conversations` and `tombstones` (FEED_PIPELINE), whose order
 * is the resume-token order: ascending cluster time, and a fixed order among the events of one
 * cluster time (the events of one transaction oplog entry, or on a sharded cluster and from MongoDB
 * 8.0 on any deployment, events of different operations that share a cluster time). A feed value
 * names one event as (cluster time T, ordinal k among the events of T in that order), so a cursor
 * resumes exactly even inside a transaction: read from startAtOperationTime T (inclusive) and skip
 * the events of T with ordinal <= k. Every reader of the stream (the per-process live reader and
 * each catch-up read) counts ordinals the same way because it uses the same pipeline and sees every
 * event of T from the first one.
 *
 * Values (bigint, as ChangeQuery.after / ChangePage.last / Change.seq; hex digits):
 *   0                       the beginning
 *   "1" T(16) k(8)          stream: every event up to and including event k of cluster time T was
 *                           given; k = ALL_OF_TIME: every event of T (a head, or a scan's start)
 *   "3" T0(16) P(16) owner  initial scan (from the beginning) of the state as of cluster time T0 in
 *                           (owner descending, position ascending) order, after (owner, P); owner
 *                           is its UTF-8 bytes in hex
 * SQLite's store-wide seqs are small integers, never of these shapes, so a cursor of the other store
 * is refused (INVALID_ARGUMENT) here instead of being misread.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { Long, type Document } from "mongodb";
import { keyString, type ConversationRecord } from "../domain/conversation.js";
import { CONVERSATIONS, TOMBSTONES, docToRecord, tombstoneToRecord } from "./mongo-updates.js";
import type { Change, ChangePage } from "./store.js";

/** Ordinal meaning "every event of this cluster time". */
export const ALL_OF_TIME = 0xffffffff;
const U64 = (1n << 64n) - 1n;
const STREAM_TAG = 1n << 96n;

/**
 * The change stream both readers open: conversation and tombstone writes only (a conversation's
 * delete is carried by its tombstone's insert in the same transaction; a tombstone's delete is a
 * purge or a re-creation, whose conversation insert is the change).
 */
export const FEED_PIPELINE: Document[] = [
  { $match: { "ns.coll": { $in: [CONVERSATIONS, TOMBSTONES] }, operationType: { $in: ["insert", "update", "replace"] } } },
];

/** A BSON Timestamp (or anything with t and i) as the unsigned 64-bit cluster time. */
export function clusterTimeOf(ts: { readonly t: number; readonly i: number }): bigint {
  return (BigInt(ts.t >>> 0) << 32n) | BigInt(ts.i >>> 0);
}

/** The {t, i} of a cluster time (for new Timestamp({t, i})). */
export function timestampParts(time: bigint): { t: number; i: number } {
  return { t: Number((time >> 32n) & 0xffffffffn), i: Number(time & 0xffffffffn) };
}

export type FeedPoint =
  | { readonly kind: "begin" }
  | { readonly kind: "stream"; readonly time: bigint; readonly ordinal: number }
  | { readonly kind: "scan"; readonly time: bigint; readonly owner: string; readonly position: bigint };

export function streamValue(time: bigint, ordinal: number): bigint {
  if (time < 0n || time > U64 || ordinal < 0 || ordinal > ALL_OF_TIME) throw new RangeError("feed point out of range");
  return STREAM_TAG | (time << 32n) | BigInt(ordinal);
}

export function scanValue(time: bigint, owner: string, position: bigint): bigint {
  if (time < 0n || time > U64 || position < 0n || position > U64) throw new RangeError("feed point out of range");
  const hex = `3${time.toString(16).padStart(16, "0")}${position.toString(16).padStart(16, "0")}${Buffer.from(owner, "utf8").toString("hex")}`;
  return BigInt(`0x${hex}`);
}

const FOREIGN = "cursor is not a cursor of this store's feed of every owner (another store's, or altered)";

/** The point a feed value names; INVALID_ARGUMENT for values this store never issues. */
export function decodeFeedPoint(value: bigint): FeedPoint {
  if (value === 0n) return { kind: "begin" };
  const hex = value > 0n ? value.toString(16) : "";
  if (hex.length === 25 && hex[0] === "1") {
    return { kind: "stream", time: BigInt(`0x${hex.slice(1, 17)}`), ordinal: Number.parseInt(hex.slice(17), 16) };
  }
  if (hex.length > 33 && hex.length % 2 === 1 && hex[0] === "3") {
    const ownerBytes = Buffer.from(hex.slice(33), "hex");
    const owner = ownerBytes.toString("utf8");
    // Only the exact bytes we wrote: valid UTF-8 that re-encodes to the same bytes.
    if (Buffer.from(owner, "utf8").equals(ownerBytes)) {
      return { kind: "scan", time: BigInt(`0x${hex.slice(1, 17)}`), position: BigInt(`0x${hex.slice(17, 33)}`), owner };
    }
  }
  throw new ConnectError(FOREIGN, Code.InvalidArgument);
}

/**
 * The cluster time of a resume token, when it has the layout every server since 4.2 writes (hex
 * `_data` starting with the KeyString Timestamp tag 0x82 and the 8-byte big-endian time); undefined
 * otherwise (then the caller does without it). Used only to advance a caught-up cursor, never to
 * decide that something was delivered.
 */
export function resumeTokenTime(token: unknown): bigint | undefined {
  const data = typeof token === "object" && token !== null ? (token as { _data?: unknown })._data : undefined;
  if (typeof data !== "string" || !/^82[0-9a-fA-F]{16}/.test(data)) return undefined;
  return BigInt(`0x${data.slice(2, 18)}`);
}

/** Assigns each event its ordinal among the events of its cluster time, in stream order. */
export class Ordinals {
  private time = -1n;
  private count = 0;

  next(time: bigint): number {
    if (time !== this.time) {
      this.time = time;
      this.count = 0;
    }
    if (this.count >= ALL_OF_TIME) throw new RangeError(`more than ${ALL_OF_TIME - 1} feed events in one cluster time`);
    return this.count++;
  }
}

/** What one change stream event says, before any lookup: its feed value and its change (if it has a post-image). */
export interface FeedEvent {
  readonly seq: bigint;
  readonly time: bigint;
  readonly ordinal: number;
  /** undefined: an update event without its post-image (expired pre-image); the caller looks it up. */
  readonly change: Change | undefined;
  /** The conversations document's _id, for that lookup. */
  readonly documentId: unknown;
}

/** A change stream event of FEED_PIPELINE -> FeedEvent; the ordinal comes from the reader's Ordinals. */
export function feedEventOf(ev: Document, ordinals: Ordinals): FeedEvent {
  const ct = ev.clusterTime as { t: number; i: number } | undefined;
  if (!ct || typeof ct.t !== "number" || typeof ct.i !== "number") throw new Error("change stream event without clusterTime");
  const time = clusterTimeOf(ct);
  const ordinal = ordinals.next(time);
  const seq = streamValue(time, ordinal);
  const coll = (ev.ns as { coll?: string } | undefined)?.coll;
  const doc = ev.fullDocument as Document | null | undefined;
  const documentId = (ev.documentKey as { _id?: unknown } | undefined)?._id;
  if (!doc) return { seq, time, ordinal, change: undefined, documentId };
  const change: Change =
    coll === TOMBSTONES ? { record: tombstoneToRecord(doc), deleted: true, seq } : { record: docToRecord(doc), deleted: false, seq };
  return { seq, time, ordinal, change, documentId };
}

/** The change of an event whose post-image was looked up: the document as it is now (null: gone, skip). */
export function lookedUpChange(e: FeedEvent, doc: Document | null): Change | undefined {
  return doc ? { record: docToRecord(doc), deleted: false, seq: e.seq } : undefined;
}

/** True when a catch-up starting at `point` must skip this event (it is at or before the point). */
export function isAtOrBefore(e: Pick<FeedEvent, "time" | "ordinal">, point: { readonly time: bigint; readonly ordinal: number }): boolean {
  return e.time < point.time || (e.time === point.time && e.ordinal <= point.ordinal);
}

/**
 * Each conversation once, in its latest state, at the feed value of its latest change; in feed
 * order (so each owner's changes stay in position order).
 */
export function collapseChanges(changes: readonly Change[]): Change[] {
  const latest = new Map<string, number>();
  changes.forEach((c, i) => latest.set(keyString(c.record.key), i));
  return changes.filter((c, i) => latest.get(keyString(c.record.key)) === i);
}

/**
 * Where a catch-up read of the stream ends. `last`: the value of the last event read (or the
 * starting point); `highWater`: the resume token time of the stream after it ran dry, when known
 * (every event before it has been returned); `caughtUp`: the stream ran dry on an awaited getMore.
 */
export function streamPageOf(
  changes: readonly Change[],
  opts: { readonly last: bigint; readonly caughtUp: boolean; readonly highWater: bigint | undefined },
): ChangePage {
  let last = opts.last;
  // An idle feed still moves its cursor forward, so it does not fall out of the oplog window.
  if (opts.caughtUp && opts.highWater !== undefined && opts.highWater > 0n) {
    const hw = streamValue(opts.highWater - 1n, ALL_OF_TIME);
    if (hw > last) last = hw;
  }
  return { changes: collapseChanges(changes), last, hasMore: !opts.caughtUp, reset: false };
}

/** What readStreamPage needs of a driver ChangeStream (tryNext and resumeToken, as in mongodb 6). */
export interface StreamSource {
  tryNext(): Promise<Document | null>;
  readonly resumeToken: unknown;
}

/**
 * One catch-up page of the stream opened at `point.time` (startAtOperationTime, inclusive): the
 * events up to the point are skipped by ordinal, then up to `limit` events are read. Caught up
 * when the stream runs dry on an awaited getMore: the first tryNext runs the aggregate, whose empty
 * first batch does not wait, so a null there is asked again once.
 */
export async function readStreamPage(
  stream: StreamSource,
  point: { readonly time: bigint; readonly ordinal: number },
  limit: number,
  changeOf: (e: FeedEvent) => Promise<Change | undefined>,
): Promise<ChangePage> {
  const ordinals = new Ordinals();
  const changes: Change[] = [];
  let last = streamValue(point.time, point.ordinal);
  let read = 0;
  let caughtUp = false;
  for (let calls = 1; read < limit; calls++) {
    const ev = await stream.tryNext();
    if (ev === null) {
      if (calls === 1) continue;
      caughtUp = true;
      break;
    }
    const e = feedEventOf(ev, ordinals);
    if (isAtOrBefore(e, point)) continue;
    const c = await changeOf(e);
    if (c) changes.push(c);
    last = e.seq;
    read++;
  }
  return streamPageOf(changes, { last, caughtUp, highWater: caughtUp ? resumeTokenTime(stream.resumeToken) : undefined });
}

/** The reset answer: no changes, the cursor at the head. */
export function resetPage(headTime: bigint): ChangePage {
  return { changes: [], last: streamValue(headTime, ALL_OF_TIME), hasMore: false, reset: true };
}

/** Seconds of a cluster time (its `t`). */
const secondsOf = (time: bigint): bigint => time >> 32n;

/**
 * Whether a stream or scan point must be reset before reading: beyond the head (a restored backup,
 * another deployment) or older than the tombstone retention, measured in the server's cluster time
 * so a skewed application clock does not matter.
 */
export function needsReset(point: FeedPoint, headTime: bigint, retentionMs: number): boolean {
  if (point.kind === "begin") return false;
  if (point.time > headTime) return true;
  return (secondsOf(headTime) - secondsOf(point.time)) * 1000n > BigInt(Math.floor(retentionMs));
}

/** Server errors that mean the stream no longer holds the resume point. */
export function isHistoryLost(e: unknown): boolean {
  const code = typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined;
  // 286 ChangeStreamHistoryLost; 280 ChangeStreamFatalError (raised by older servers when the
  // resume point is no longer in the oplog).
  return code === 286 || code === 280;
}

/** The find() filter of the initial scan after (owner, position); both collections use it. */
export function scanFilter(after: { readonly owner: string; readonly position: bigint } | undefined): Document {
  if (!after) return {};
  return { $or: [{ owner: { $lt: after.owner } }, { owner: after.owner, position: { $gt: Long.fromBigInt(after.position) } }] };
}

/** The scan's sort: owners descending (the {owner: 1, position: -1} index read backwards), positions ascending. */
export const SCAN_SORT = { owner: -1, position: 1 } as const;

const scanOrder = (a: ConversationRecord, b: ConversationRecord): number =>
  a.key.owner !== b.key.owner ? (a.key.owner < b.key.owner ? 1 : -1) : a.position < b.position ? -1 : a.position > b.position ? 1 : 0;

/**
 * One page of the initial scan from both collections' first limit+1 documents after the scan point,
 * merged in scan order. Its changes carry the scan's start (every event of T0), the value the
 * stream continues from.
 */
export function scanPageOf(
  live: readonly Document[],
  dead: readonly Document[],
  limit: number,
  time: bigint,
): ChangePage {
  const seq = streamValue(time, ALL_OF_TIME);
  const all: Change[] = [
    ...live.map((d) => ({ record: docToRecord(d), deleted: false, seq })),
    ...dead.map((d) => ({ record: tombstoneToRecord(d), deleted: true, seq })),
  ].sort((a, b) => scanOrder(a.record, b.record));
  const changes = all.slice(0, limit);
  const more = all.length > limit;
  const tail = changes.at(-1);
  // After the last scanned document, or, once the scan is through, the stream from T0 on.
  const last = more && tail ? scanValue(time, tail.record.key.owner, tail.record.position) : seq;
  return { changes, last, hasMore: true, reset: false };
}
