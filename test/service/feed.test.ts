/** WatchConversations/SyncConversations/DeleteConversations in the service layer, over a real SQLite store. */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createContextValues, createRouterTransport, type HandlerContext } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ConversationType, MarkService, WatchConversationsRequestSchema, type WatchConversationsResponse } from "../../gen/convmark/v1/mark_service_pb.js";
import { DEFAULT_LIMITS } from "../../src/domain/limits.js";
import { decodeFeedCursor, encodeFeedCursor } from "../../src/service/feed-cursor.js";
import { createFeedHub } from "../../src/service/feed-hub.js";
import { createMarkService } from "../../src/service/mark-service.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import type { MarkStore } from "../../src/store/store.js";

const stores: MarkStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

function setup(maxBacklog = 100) {
  const store = openSqliteStore({ path: ":memory:", limits: DEFAULT_LIMITS });
  stores.push(store);
  const feed = createFeedHub(store, { maxBacklog });
  const impl = createMarkService({ store, limits: DEFAULT_LIMITS, feed, heartbeatMs: 60_000 });
  const client = createClient(MarkService, createRouterTransport((r) => r.service(MarkService, impl)));
  return { store, feed, impl, client };
}

const direct = (owner: string, id: string) => ({ ownerUserId: owner, type: ConversationType.DIRECT, conversationId: id });
// A direct call, as in process: no peer, no caller (trusted), only the signal matters here.
const ctxWith = (signal: AbortSignal) => ({ signal, values: createContextValues() }) as unknown as HandlerContext;

describe("feed cursors", () => {
  it("round-trip, and are bound to their feed", () => {
    const c = encodeFeedCursor("alice", 42n);
    expect(decodeFeedCursor(c, "alice")).toBe(42n);
    expect(decodeFeedCursor(encodeFeedCursor(undefined, 7n), undefined)).toBe(7n);
    for (const [cursor, owner] of [
      [c, "bob"],
      [c, undefined],
      [encodeFeedCursor(undefined, 7n), "alice"],
      ["", "alice"],
      ["!!!", "alice"],
      [`${c}x`, "alice"],
      [Buffer.from("f1.all.-1").toString("base64url"), undefined],
      [Buffer.from(`f1.all.${"9".repeat(2501)}`).toString("base64url"), undefined],
    ] as const) {
      expect(() => decodeFeedCursor(cursor, owner)).toThrow(ConnectError);
    }
    // MongoDB's every-owner values are wider than 64 bits (src/store/mongo-feed.ts).
    const wide = (3n << 1000n) + 12345n;
    expect(decodeFeedCursor(encodeFeedCursor(undefined, wide), undefined)).toBe(wide);
  });
});

describe("MarkService feed RPCs", () => {
  it("DeleteConversations answers per key, in order, with bad keys failing alone", async () => {
    const { client } = setup();
    await client.updateConversations({ updates: [{ key: direct("o", "a"), setMarks: [1] }] });
    const res = await client.deleteConversations({ keys: [direct("o", "a"), { ownerUserId: "", type: 1, conversationId: "x" }, direct("o", "a"), direct("o", "never")] });
    expect(res.results.map((r) => [r.status?.code, r.deleted])).toEqual([
      [0, true],
      [Code.InvalidArgument, false],
      [0, false],
      [0, false],
    ]);
    await expect(client.getConversation({ key: direct("o", "a") })).rejects.toMatchObject({ code: Code.NotFound });
    await expect(client.deleteConversations({ keys: [] })).rejects.toMatchObject({ code: Code.InvalidArgument });
  });

  it("Sync validates page_size and owner; the every-owner feed starts from the beginning", async () => {
    const { client } = setup();
    await client.updateConversations({ updates: [{ key: direct("a", "1"), setMarks: [1] }, { key: direct("b", "1"), setMarks: [2] }] });
    await expect(client.syncConversations({ ownerUserId: "a", pageSize: -1 })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(client.syncConversations({ ownerUserId: "x".repeat(300) })).rejects.toMatchObject({ code: Code.InvalidArgument });
    const all = await client.syncConversations({});
    expect(all.changes.map((c) => c.conversation?.key?.ownerUserId)).toEqual(["a", "b"]);
    expect(all.hasMore).toBe(false);
    const none = await client.syncConversations({ cursor: all.nextCursor });
    expect(none.changes).toEqual([]);
    expect(none.nextCursor).toBe(all.nextCursor);
  });

  it("ends a watcher that falls too far behind with RESOURCE_EXHAUSTED, keeping nothing for it", async () => {
    const { client, impl, feed } = setup(5);
    const abort = new AbortController();
    // The generator is pulled by hand: a client that stops reading.
    const stream = impl.watchConversations(create(WatchConversationsRequestSchema, { ownerUserId: "slow" }), ctxWith(abort.signal)) as AsyncGenerator<WatchConversationsResponse>;
    const first = await stream.next();
    expect(first.value?.changes).toEqual([]);
    for (let i = 0; i < 20; i++) await client.updateConversations({ updates: [{ key: direct("slow", `c${i}`), setMarks: [1] }] });
    await new Promise((r) => setTimeout(r, 100));
    const err = await stream.next().then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(feed.watchers).toBe(0);
    // Resuming from the last cursor it got gives everything it missed.
    const resumed = await client.syncConversations({ ownerUserId: "slow", cursor: first.value!.cursor, pageSize: 100 });
    expect(resumed.changes).toHaveLength(20);
  });

  it("a backlog overflow while catching up just reads on from the store", async () => {
    const { client, impl } = setup(2);
    for (let i = 0; i < 3; i++) await client.updateConversations({ updates: [{ key: direct("cu", `c${i}`), setMarks: [1] }] });
    const abort = new AbortController();
    const stream = impl.watchConversations(create(WatchConversationsRequestSchema, { ownerUserId: "cu", cursor: "" }), ctxWith(abort.signal)) as AsyncGenerator<WatchConversationsResponse>;
    const from0 = await client.syncConversations({ ownerUserId: "cu", pageSize: 1 });
    abort.abort();
    await stream.return(undefined);
    const s2 = impl.watchConversations(create(WatchConversationsRequestSchema, { ownerUserId: "cu", cursor: from0.nextCursor }), ctxWith(new AbortController().signal)) as AsyncGenerator<WatchConversationsResponse>;
    const p = s2.next(); // catch-up has started
    for (let i = 3; i < 8; i++) await client.updateConversations({ updates: [{ key: direct("cu", `c${i}`), setMarks: [1] }] });
    const got: string[] = [];
    let m = await p;
    got.push(...m.value!.changes.map((c: { conversation?: { key?: { conversationId: string } } }) => c.conversation!.key!.conversationId));
    while (got.length < 7) {
      m = await s2.next();
      got.push(...m.value!.changes.map((c: { conversation?: { key?: { conversationId: string } } }) => c.conversation!.key!.conversationId));
    }
    expect(got).toEqual(["c1", "c2", "c3", "c4", "c5", "c6", "c7"]);
    await s2.return(undefined);
  });

  it("Watch without a feed hub, or after the hub closed, is UNAVAILABLE", async () => {
    const { client, feed } = setup();
    feed.close();
    const err = await (async () => {
      for await (const _ of client.watchConversations({ ownerUserId: "a" })) void _;
    })().then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.Unavailable);
  });
});
