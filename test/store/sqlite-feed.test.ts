/** Commits handed between processes on one SQLite file (src/store/sqlite-feed.ts), over an in-memory bus standing in for the cluster's IPC. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConvType } from "../../src/domain/conversation.js";
import { changeFromWire, changeToWire, channelFeedPeers, isFeedMessage, type FeedPeers } from "../../src/store/sqlite-feed.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { Change } from "../../src/store/store.js";
import { key, upd } from "./contract.js";

const dir = mkdtempSync(join(tmpdir(), "convmark-sqlite-feed-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const limits = { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 };

/** A bus that delivers every message to every other member, asynchronously (as IPC does), through JSON; `hold()` keeps messages until `release(order)`. */
function bus() {
  const members: { id: string; handlers: ((m: unknown) => void)[] }[] = [];
  const sent: unknown[] = [];
  let holding: (() => void)[] | undefined;
  return {
    sent,
    hold() {
      holding = [];
    },
    /** Delivers the held messages in this order of their indexes, then lets messages through again. */
    release(order: number[]) {
      const h = holding!;
      holding = undefined;
      for (const i of order) h[i]!();
    },
    peers(file: string, id: string): FeedPeers {
      const me = { id, handlers: [] as ((m: unknown) => void)[] };
      members.push(me);
      return channelFeedPeers(
        file,
        {
          send(m) {
            sent.push(m);
            const wire = JSON.stringify(m);
            const deliver = () => {
              for (const other of members) if (other !== me) setImmediate(() => other.handlers.forEach((h) => h(JSON.parse(wire))));
            };
            if (holding && (m as { type: string }).type === "convmark:feed-commit") holding.push(deliver);
            else deliver();
          },
          onMessage: (h) => me.handlers.push(h),
        },
        id,
      );
    },
  };
}

const until = async (cond: () => boolean) => {
  const deadline = Date.now() + 5000;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
};

describe("sqlite feed peers", () => {
  it("carries a change through the wire form exactly (64-bit marks, settings, vendor ID, tombstone)", () => {
    const changes: Change[] = [
      {
        record: {
          key: key("u", "c", ConvType.Group),
          marks: (1n << 63n) | 5n,
          customMark: "m\u00e9",
          labels: ["a", "b"],
          settings: { pinned: true, receiveOption: 2, privateChat: false, burnDurationSeconds: 30, attachedInfo: "x", ex: "" },
          version: 7n,
          updateTimeMs: 1_700_000_000_123,
          position: 12n,
          vendorConversationId: "sg_c",
        },
        deleted: false,
        seq: 99n,
      },
      { record: { key: key("u", "d"), marks: 0n, customMark: "", labels: [], settings: {}, version: 3n, updateTimeMs: 5, position: 13n }, deleted: true, seq: 100n },
    ];
    const back = changes.map((c) => changeFromWire(JSON.parse(JSON.stringify(changeToWire(c)))));
    expect(back).toStrictEqual(changes);
    expect(isFeedMessage({ type: "convmark:feed-commit" })).toBe(true);
    expect(isFeedMessage({ type: "convmark:shutdown" })).toBe(false);
  });

  it("hands a peer every change of every commit, also a conversation written many times between its polls, and publishes only while a peer listens", async () => {
    const path = join(dir, "peers.db");
    const b = bus();
    const writer = openSqliteStore({ path, limits, peers: b.peers(path, "w") });
    // The watcher's poll is too slow to matter: what it gets comes from the writer's messages.
    const watcher = openSqliteStore({ path, limits, pollIntervalMs: 600_000, peers: b.peers(path, "r") });
    await writer.applyUpdates([upd(key("u", "x"), { set: [1] })]);
    expect(b.sent.filter((m) => (m as { type: string }).type === "convmark:feed-commit")).toEqual([]);
    const got: string[] = [];
    const unsubscribe = watcher.subscribe((cs) => got.push(...cs.map((c) => `${c.record.key.conversationId}@${c.record.version}#${c.seq}`)));
    await new Promise((r) => setTimeout(r, 20)); // the watcher's interest reaches the writer
    for (let v = 2; v <= 21; v++) await writer.applyUpdates([upd(key("u", "x"), { customMark: `v${v}` })]);
    await writer.applyUpdates([upd(key("u", "y"), { set: [1] }), upd(key("u", "y"), { set: [2] })]);
    await until(() => got.length >= 22);
    expect(got).toEqual([...Array.from({ length: 20 }, (_, i) => `x@${i + 2}#${i + 2}`), "y@1#22", "y@2#23"]);
    // A commit the watcher had not heard of (no message) comes first, from the file, then the rest in order.
    const silent = openSqliteStore({ path, limits });
    await silent.applyUpdates([upd(key("u", "z"), { set: [1] })]);
    await writer.applyUpdates([upd(key("u", "x"), { set: [9] })]);
    await until(() => got.length >= 24);
    expect(got.slice(22)).toEqual(["z@1#24", "x@22#25"]);
    unsubscribe();
    await new Promise((r) => setTimeout(r, 20));
    const published = b.sent.filter((m) => (m as { type: string }).type === "convmark:feed-commit").length;
    await writer.applyUpdates([upd(key("u", "x"), { set: [10] })]);
    expect(b.sent.filter((m) => (m as { type: string }).type === "convmark:feed-commit").length).toBe(published);
    await Promise.all([writer.close(), watcher.close(), silent.close()]);
  });

  it("holds a peer's commit that arrives before the one it follows, and delivers both exactly once that one comes", async () => {
    const path = join(dir, "reordered.db");
    const b = bus();
    const one = openSqliteStore({ path, limits, peers: b.peers(path, "1") });
    const two = openSqliteStore({ path, limits, peers: b.peers(path, "2") });
    const watcher = openSqliteStore({ path, limits, pollIntervalMs: 600_000, peerWaitMs: 60_000, peers: b.peers(path, "w") });
    const got: string[] = [];
    const unsubscribe = watcher.subscribe((cs) => got.push(...cs.map((c) => `${c.record.key.conversationId}@${c.record.version}#${c.seq}`)));
    await new Promise((r) => setTimeout(r, 20));
    b.hold();
    await one.applyUpdates([upd(key("u", "x"), { set: [1] })]);
    await two.applyUpdates([upd(key("u", "x"), { set: [2] })]);
    // The second commit's message comes first: read from the file now, it would give only x@2.
    b.release([1, 0]);
    await until(() => got.length >= 2);
    expect(got).toEqual(["x@1#1", "x@2#2"]);
    unsubscribe();
    await Promise.all([one.close(), two.close(), watcher.close()]);
  });
});
