/**
 * Pure tests of the MongoDB every-owner feed (src/store/mongo-feed.ts), no server needed: feed
 * values, event -> Change, resets, the initial scan's pages, and readStreamPage over a scripted
 * ChangeStream (tryNext/resumeToken as the driver behaves: the first call runs the aggregate, whose
 * empty batch does not wait; later calls take the buffer, then getMore; an empty batch leaves the
 * high-water-mark token). That the server behaves as scripted is what test/store/mongo.test.ts
 * checks against a real replica set (MONGODB_URI).
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { MongoServerError, Timestamp, type Document } from "mongodb";
import { describe, expect, it } from "vitest";
import { ConvType, type ConversationRecord } from "../../src/domain/conversation.js";
import {
  ALL_OF_TIME,
  Ordinals,
  clusterTimeOf,
  collapseChanges,
  decodeFeedPoint,
  feedEventOf,
  isHistoryLost,
  lookedUpChange,
  needsReset,
  readStreamPage,
  resetPage,
  resumeTokenTime,
  scanFilter,
  scanPageOf,
  scanValue,
  streamPageOf,
  streamValue,
  timestampParts,
  type StreamSource,
} from "../../src/store/mongo-feed.js";
import { restoredDocument, tombstoneDoc } from "../../src/store/mongo-updates.js";
import type { Change, ChangePage } from "../../src/store/store.js";

const T = (t: number, i: number) => clusterTimeOf({ t, i });

function rec(owner: string, cid: string, position: bigint, over: Partial<ConversationRecord> = {}): ConversationRecord {
  return {
    key: { owner, type: ConvType.Direct, conversationId: cid },
    marks: 1n,
    customMark: "",
    labels: [],
    settings: {},
    version: 1n,
    updateTimeMs: 1_700_000_000_000,
    position,
    ...over,
  };
}

/** A change event as the server sends it for FEED_PIPELINE. */
function event(time: bigint, r: ConversationRecord, opts: { tombstone?: boolean; noImage?: boolean } = {}): Document {
  const doc = opts.tombstone ? tombstoneDoc(r) : restoredDocument(r, r.marks !== 0n);
  return {
    _id: { _data: `82${time.toString(16).padStart(16, "0")}2B0229` },
    operationType: opts.noImage ? "update" : "insert",
    clusterTime: new Timestamp(timestampParts(time)),
    ns: { db: "d", coll: opts.tombstone ? "tombstones" : "conversations" },
    documentKey: { _id: `${r.key.owner}/${r.key.conversationId}` },
    ...(opts.noImage ? { fullDocument: null } : { fullDocument: { _id: `${r.key.owner}/${r.key.conversationId}`, ...doc } }),
  };
}

/** The driver's ChangeStream iterator over `events` opened at startAtOperationTime `from` (inclusive). */
function scripted(events: readonly Document[], from: bigint, batchSize: number): StreamSource & { getMores: number } {
  const rest = events.filter((e) => clusterTimeOf(e.clusterTime as Timestamp) >= from);
  let buffer: Document[] = [];
  let started = false;
  let token: unknown = undefined;
  const hwm = () => {
    const lastTime = events.length > 0 ? clusterTimeOf(events.at(-1)!.clusterTime as Timestamp) : from;
    return { _data: `82${(lastTime + 1n).toString(16).padStart(16, "0")}` };
  };
  const source = {
    getMores: 0,
    get resumeToken() {
      return token;
    },
    async tryNext() {
      if (buffer.length === 0) {
        if (started) source.getMores++;
        started = true;
        buffer = rest.splice(0, batchSize);
        if (buffer.length === 0) {
          token = hwm();
          return null;
        }
      }
      const ev = buffer.shift()!;
      token = buffer.length === 0 && rest.length === 0 ? hwm() : ev._id;
      return ev;
    },
  };
  return source;
}

const show = (c: Change) => `${c.deleted ? "-" : ""}${c.record.key.owner}/${c.record.key.conversationId}@${c.record.position}`;
const direct = async (e: { change: Change | undefined }) => e.change;

describe("every-owner feed values", () => {
  it("round-trip stream and scan points, in feed order", () => {
    const a = streamValue(T(1_700_000_000, 5), 0);
    const b = streamValue(T(1_700_000_000, 5), 1);
    const c = streamValue(T(1_700_000_000, 5), ALL_OF_TIME);
    const d = streamValue(T(1_700_000_001, 0), 0);
    expect(a < b && b < c && c < d).toBe(true);
    expect(decodeFeedPoint(b)).toEqual({ kind: "stream", time: T(1_700_000_000, 5), ordinal: 1 });
    expect(decodeFeedPoint(c)).toEqual({ kind: "stream", time: T(1_700_000_000, 5), ordinal: ALL_OF_TIME });
    expect(decodeFeedPoint(0n)).toEqual({ kind: "begin" });
    const owner = "ünïcødé/用户 with spaces";
    const s = scanValue(T(1_700_000_000, 9), owner, 12345n);
    expect(decodeFeedPoint(s)).toEqual({ kind: "scan", time: T(1_700_000_000, 9), owner, position: 12345n });
    expect(decodeFeedPoint(scanValue(T(1, 0), "a", 0n))).toMatchObject({ owner: "a", position: 0n });
    expect(timestampParts(T(4_000_000_000, 4_000_000_001))).toEqual({ t: 4_000_000_000, i: 4_000_000_001 });
    expect(clusterTimeOf(new Timestamp({ t: 1_700_000_000, i: 7 }))).toBe((1_700_000_000n << 32n) | 7n);
  });

  it("refuses values it never issues (SQLite seqs, altered bytes) with INVALID_ARGUMENT", () => {
    const s = scanValue(T(5, 0), "alice", 3n);
    const brokenUtf8 = BigInt(`0x${s.toString(16).slice(0, 33)}ff`);
    for (const v of [1n, 42n, (1n << 63n) - 1n, -5n, 2n << 96n, (1n << 96n) >> 1n, (1n << 100n) | 1n, brokenUtf8, BigInt(`0x3${"0".repeat(32)}`)]) {
      let err: unknown;
      try {
        decodeFeedPoint(v);
      } catch (e) {
        err = e;
      }
      expect(err, String(v)).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    }
    expect(() => streamValue(-1n, 0)).toThrow(RangeError);
    expect(() => streamValue(1n << 64n, 0)).toThrow(RangeError);
    expect(() => streamValue(1n, ALL_OF_TIME + 1)).toThrow(RangeError);
  });

  it("numbers the events of one cluster time in stream order", () => {
    const o = new Ordinals();
    expect([o.next(T(1, 1)), o.next(T(1, 1)), o.next(T(1, 2)), o.next(T(1, 2)), o.next(T(1, 2)), o.next(T(2, 0))]).toEqual([0, 1, 0, 1, 2, 0]);
  });

  it("reads the cluster time of a resume token only in the layout servers write", () => {
    expect(resumeTokenTime({ _data: `82${T(1_700_000_000, 3).toString(16)}2B0229296E04` })).toBe(T(1_700_000_000, 3));
    for (const t of [undefined, null, "82", { _data: 5 }, { _data: "91AB" }, { _data: "82ABC" }, {}]) expect(resumeTokenTime(t)).toBeUndefined();
  });
});

describe("change stream events -> changes", () => {
  it("maps conversation and tombstone events with their feed values; an update without post-image asks for a lookup", () => {
    const o = new Ordinals();
    const live = feedEventOf(event(T(10, 1), rec("o", "a", 3n, { labels: ["x"] })), o);
    expect(live.change?.record).toMatchObject({ key: { owner: "o", conversationId: "a" }, position: 3n, labels: ["x"] });
    expect(live.change).toMatchObject({ deleted: false, seq: streamValue(T(10, 1), 0) });
    const dead = feedEventOf(event(T(10, 1), rec("o", "b", 4n, { version: 2n }), { tombstone: true }), o);
    expect(dead.change).toMatchObject({ deleted: true, seq: streamValue(T(10, 1), 1), record: { version: 2n, position: 4n, marks: 0n } });
    const bare = feedEventOf(event(T(11, 0), rec("o", "c", 5n), { noImage: true }), o);
    expect(bare.change).toBeUndefined();
    expect(bare.documentId).toBe("o/c");
    expect(lookedUpChange(bare, restoredDocument(rec("o", "c", 7n), true))).toMatchObject({ seq: bare.seq, deleted: false, record: { position: 7n } });
    expect(lookedUpChange(bare, null)).toBeUndefined();
    expect(() => feedEventOf({ ns: { coll: "conversations" } }, o)).toThrow(/clusterTime/);
  });

  it("collapses a conversation to its latest change, keeping feed order", () => {
    const c = (owner: string, cid: string, p: bigint, k: number): Change => ({ record: rec(owner, cid, p), deleted: false, seq: streamValue(T(1, 0), k) });
    const out = collapseChanges([c("o", "a", 1n, 0), c("p", "a", 1n, 1), c("o", "b", 2n, 2), c("o", "a", 3n, 3)]);
    expect(out.map(show)).toEqual(["p/a@1", "o/b@2", "o/a@3"]);
  });
});

describe("resets", () => {
  const head = T(1_700_100_000, 0);
  it("resets a point beyond the head or older than the retention (server time), never the beginning", () => {
    const day = 86_400_000;
    expect(needsReset({ kind: "begin" }, head, day)).toBe(false);
    expect(needsReset({ kind: "stream", time: head, ordinal: ALL_OF_TIME }, head, day)).toBe(false);
    expect(needsReset({ kind: "stream", time: head + 1n, ordinal: 0 }, head, day)).toBe(true);
    expect(needsReset({ kind: "stream", time: T(1_700_100_000 - 86_400, 0), ordinal: 0 }, head, day)).toBe(false);
    expect(needsReset({ kind: "stream", time: T(1_700_100_000 - 86_401, 0), ordinal: 0 }, head, day)).toBe(true);
    expect(needsReset({ kind: "scan", time: head + 1n, owner: "o", position: 1n }, head, day)).toBe(true);
    expect(resetPage(head)).toEqual({ changes: [], last: streamValue(head, ALL_OF_TIME), hasMore: false, reset: true });
  });

  it("knows the errors of a resume point the oplog no longer holds", () => {
    expect(isHistoryLost(new MongoServerError({ code: 286, errmsg: "ChangeStreamHistoryLost" }))).toBe(true);
    expect(isHistoryLost({ code: 280 })).toBe(true);
    expect(isHistoryLost(new MongoServerError({ code: 112, errmsg: "WriteConflict" }))).toBe(false);
    expect(isHistoryLost(new Error("x"))).toBe(false);
  });
});

describe("initial scan pages", () => {
  it("merges both collections owners descending, positions ascending, and continues after the last one", () => {
    const time = T(50, 2);
    const live = [restoredDocument(rec("q", "z", 1n), true), restoredDocument(rec("o", "a", 2n), true), restoredDocument(rec("o", "c", 5n), true)];
    const dead = [tombstoneDoc(rec("p", "a", 2n)), tombstoneDoc(rec("o", "b", 3n))];
    const page = scanPageOf(live, dead, 3, time);
    expect(page.changes.map(show)).toEqual(["q/z@1", "-p/a@2", "o/a@2"]);
    expect(page.changes.every((c) => c.seq === streamValue(time, ALL_OF_TIME))).toBe(true);
    expect(page.hasMore).toBe(true);
    expect(decodeFeedPoint(page.last)).toEqual({ kind: "scan", time, owner: "o", position: 2n });
    const end = scanPageOf(live.slice(2), dead.slice(1), 3, time);
    expect(end.changes.map(show)).toEqual(["-o/b@3", "o/c@5"]);
    // Through the scan: on to the stream from its start (hasMore: the stream follows).
    expect(end).toMatchObject({ last: streamValue(time, ALL_OF_TIME), hasMore: true, reset: false });
    expect(scanFilter(undefined)).toEqual({});
    expect(JSON.stringify(scanFilter({ owner: "o", position: 2n }))).toBe(
      JSON.stringify({ $or: [{ owner: { $lt: "o" } }, { owner: "o", position: { $gt: { low: 2, high: 0, unsigned: false } } }] }),
    );
  });
});

describe("readStreamPage", () => {
  // Transactions of several owners; some share a cluster time, one updates a conversation twice
  // (an update that adds and removes labels), one deletes.
  const events: Document[] = [
    event(T(100, 1), rec("o", "a", 1n)),
    event(T(100, 1), rec("p", "a", 1n)),
    event(T(100, 2), rec("o", "b", 2n)),
    event(T(101, 0), rec("o", "a", 3n, { labels: ["x", "y"] })),
    event(T(101, 0), rec("o", "a", 3n, { labels: ["x"] })),
    event(T(101, 0), rec("o", "c", 4n)),
    event(T(102, 7), rec("p", "a", 2n, { version: 2n }), { tombstone: true }),
    event(T(103, 0), rec("q", "z", 1n)),
    event(T(103, 0), rec("q", "y", 2n)),
    event(T(103, 0), rec("q", "x", 3n)),
  ];
  const start = { time: T(100, 0), ordinal: ALL_OF_TIME };

  async function drain(from: { time: bigint; ordinal: number }, limit: number, batchSize: number): Promise<ChangePage[]> {
    const pages: ChangePage[] = [];
    let point = from;
    for (let n = 0; n < 50; n++) {
      const page = await readStreamPage(scripted(events, point.time, batchSize), point, limit, direct);
      pages.push(page);
      const p = decodeFeedPoint(page.last);
      if (p.kind !== "stream") throw new Error("stream page ended elsewhere");
      point = p;
      if (!page.hasMore) return pages;
    }
    throw new Error("no end");
  }

  it("gives every event after the point exactly once over any page size, in feed order, resuming inside a cluster time", async () => {
    for (const limit of [1, 2, 3, 4, 10, 100]) {
      for (const batchSize of [1, 2, 5, 101]) {
        const pages = await drain(start, limit, batchSize);
        const seqs = pages.flatMap((p) => p.changes.map((c) => c.seq));
        expect(seqs, `limit ${limit} batch ${batchSize}`).toEqual([...new Set(seqs)].sort((x, y) => (x < y ? -1 : 1)));
        // Applying the pages in order ends with each conversation's last state.
        const state = new Map<string, string>();
        for (const c of pages.flatMap((p) => p.changes)) state.set(`${c.record.key.owner}/${c.record.key.conversationId}`, `${show(c)}${c.record.labels.join("")}`);
        expect(Object.fromEntries(state)).toEqual({
          "o/a": "o/a@3x",
          "p/a": "-p/a@2",
          "o/b": "o/b@2",
          "o/c": "o/c@4",
          "q/z": "q/z@1",
          "q/y": "q/y@2",
          "q/x": "q/x@3",
        });
        // Each owner's changes in position order.
        for (const owner of ["o", "p", "q"]) {
          const ps = pages.flatMap((p) => p.changes.filter((c) => c.record.key.owner === owner).map((c) => c.record.position));
          expect(ps).toEqual([...ps].sort((x, y) => (x < y ? -1 : 1)));
        }
        expect(pages.at(-1)!.hasMore).toBe(false);
      }
    }
  });

  it("resumes from every cursor it issued with exactly what came after it", async () => {
    const pages = await drain(start, 1, 2); // one event per page: the uncollapsed feed
    const all = pages.flatMap((p) => p.changes);
    for (const page of pages) {
      const p = decodeFeedPoint(page.last);
      if (p.kind !== "stream") throw new Error("not a stream point");
      const rest = (await drain(p, 100, 3)).flatMap((x) => x.changes.map((c) => c.seq));
      expect(rest).toEqual(collapseChanges(all.filter((c) => c.seq > page.last)).map((c) => c.seq));
    }
    // Inside cluster time 101.0: after its first event only the other two.
    const mid = await readStreamPage(scripted(events, T(101, 0), 101), { time: T(101, 0), ordinal: 0 }, 2, direct);
    expect(mid.changes.map(show)).toEqual(["o/a@3", "o/c@4"]);
    expect(mid.changes[0]!.record.labels).toEqual(["x"]);
    expect(mid.last).toBe(streamValue(T(101, 0), 2));
    expect(mid.hasMore).toBe(true);
  });

  it("is caught up only after an awaited getMore, and moves an idle cursor to the high-water mark", async () => {
    const head = { time: T(103, 0), ordinal: ALL_OF_TIME };
    const s = scripted(events, head.time, 101);
    const page = await readStreamPage(s, head, 10, direct);
    expect(page.changes).toEqual([]);
    expect(page.hasMore).toBe(false);
    expect(s.getMores).toBe(1); // the aggregate's batch held only skipped events: one getMore, then caught up
    // The scripted high-water mark is 103.1, so everything up to 103.0 is behind the cursor.
    expect(page.last).toBe(streamValue(T(103, 0), ALL_OF_TIME));
    const empty = scripted([], T(200, 0), 101);
    const idle = await readStreamPage(empty, { time: T(150, 0), ordinal: ALL_OF_TIME }, 10, direct);
    expect(empty.getMores).toBe(1);
    // Its high-water mark (the cluster time moved on to 200.1) moves the cursor: nothing before it can come.
    expect(idle).toMatchObject({ changes: [], hasMore: false, last: streamValue(T(200, 0), ALL_OF_TIME) });
    // Never behind what was delivered, and unknown token layouts leave the cursor at the last event.
    expect(streamPageOf([], { last: streamValue(T(9, 0), 3), caughtUp: true, highWater: T(9, 0) }).last).toBe(streamValue(T(9, 0), 3));
    expect(streamPageOf([], { last: streamValue(T(9, 0), 3), caughtUp: true, highWater: undefined }).last).toBe(streamValue(T(9, 0), 3));
    expect(streamPageOf([], { last: streamValue(T(9, 0), 3), caughtUp: true, highWater: T(12, 0) }).last).toBe(streamValue(T(11, 0xffffffff), ALL_OF_TIME));
  });

  it("skips an event whose lookup finds nothing but still moves past it", async () => {
    const gone = [event(T(300, 0), rec("o", "a", 1n), { noImage: true }), event(T(300, 1), rec("o", "b", 2n))];
    const page = await readStreamPage(scripted(gone, T(299, 0), 101), { time: T(299, 0), ordinal: ALL_OF_TIME }, 10, async (e) => e.change ?? lookedUpChange(e, null));
    expect(page.changes.map(show)).toEqual(["o/b@2"]);
    expect(page.last >= streamValue(T(300, 1), 0)).toBe(true);
  });
});
