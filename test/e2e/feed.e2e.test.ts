/**
 * The change feed end to end: the real server on loopback, Watch and Sync over Connect JSON on
 * HTTP/1.1, gRPC-Web on HTTP/1.1, gRPC (grpc-js) and buf curl; another OS process writing the same
 * SQLite file; restart; shutdown; a vendor dialect write.
 */
import { execFile, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { promisify } from "node:util";
import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConversationType,
  MarkService,
  WatchConversationsRequestSchema,
  WatchConversationsResponseSchema,
  type ConversationChange,
  type WatchConversationsResponse,
} from "../../gen/convmark/v1/mark_service_pb.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const run = promisify(execFile);
const BUF = "node_modules/.bin/buf";
const direct = (owner: string, id: string) => ({ ownerUserId: owner, type: ConversationType.DIRECT, conversationId: id });

async function waitFor(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** What a client keeps: the latest state per conversation, the last cursor, every message. */
class Replica {
  readonly state = new Map<string, { marks: number[]; version: bigint; deleted: boolean }>();
  readonly messages: WatchConversationsResponse[] = [];
  readonly seen: string[] = [];
  cursor = "";
  error: unknown;
  ended = false;

  apply(m: WatchConversationsResponse): void {
    this.messages.push(m);
    this.cursor = m.cursor;
    for (const c of m.changes) this.applyChange(c);
  }

  applyChange(c: ConversationChange): void {
    const k = c.conversation!.key!;
    const id = `${k.ownerUserId}/${k.conversationId}`;
    this.seen.push(`${id}@${c.conversation!.version}${c.deleted ? "-" : ""}`);
    if (c.deleted) this.state.set(id, { marks: [], version: c.conversation!.version, deleted: true });
    else this.state.set(id, { marks: [...c.conversation!.marks], version: c.conversation!.version, deleted: false });
  }

  /** Consumes a Connect/gRPC-Web server stream until it ends or is aborted. */
  consume(stream: AsyncIterable<WatchConversationsResponse>): Promise<void> {
    return (async () => {
      try {
        for await (const m of stream) this.apply(m);
      } catch (e) {
        this.error = e;
      } finally {
        this.ended = true;
      }
    })();
  }

  live(): Promise<void> {
    return waitFor(() => this.messages.length > 0, "the first Watch message");
  }

  marks(owner: string, id: string): number[] | undefined {
    return this.state.get(`${owner}/${id}`)?.marks;
  }
}

function watch(client: Client<typeof MarkService>, owner: string, cursor = ""): { replica: Replica; abort: AbortController; done: Promise<void> } {
  const abort = new AbortController();
  const replica = new Replica();
  const done = replica.consume(client.watchConversations({ ownerUserId: owner, cursor }, { signal: abort.signal }));
  return { replica, abort, done };
}

describe("change feed end to end", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ CONVMARK_WATCH_HEARTBEAT_MS: "300", CONVMARK_TOMBSTONE_RETENTION_SECONDS: "1" });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("delivers live changes over Connect JSON on HTTP/1.1, then resumes from the cursor with nothing missed or twice", async () => {
    const w = watch(server.marks, "alice");
    await w.replica.live();
    await server.marks.updateConversations({ updates: [{ key: direct("alice", "bob"), setMarks: [1] }, { key: direct("other", "x"), setMarks: [1] }] });
    await waitFor(() => w.replica.marks("alice", "bob")?.[0] === 1, "live delivery");
    expect([...w.replica.state.keys()]).toEqual(["alice/bob"]); // another owner's change is not in alice's feed
    w.abort.abort();
    await w.done;
    const saved = w.replica.cursor;

    // Writes while the client is away, including a delete and several changes of one conversation.
    await server.marks.updateConversations({ updates: [{ key: direct("alice", "carol"), setMarks: [2] }] });
    await server.marks.updateConversations({ updates: [{ key: direct("alice", "carol"), setMarks: [3] }] });
    await server.marks.deleteConversations({ keys: [direct("alice", "bob")] });
    const back = watch(server.marks, "alice", saved);
    await waitFor(() => back.replica.state.size === 2, "catch-up");
    await server.marks.updateConversations({ updates: [{ key: direct("alice", "dave"), setMarks: [4] }] });
    await waitFor(() => back.replica.state.has("alice/dave"), "live after catch-up");
    expect(back.replica.seen).toEqual(["alice/carol@2", "alice/bob@2-", "alice/dave@1"]);
    back.abort.abort();
    await back.done;
  });

  it("sends heartbeats carrying the current cursor", async () => {
    const w = watch(server.marks, "hb");
    await waitFor(() => w.replica.messages.length >= 3, "heartbeats", 10_000);
    expect(w.replica.messages.every((m) => m.changes.length === 0 && m.cursor !== "")).toBe(true);
    expect(new Set(w.replica.messages.map((m) => m.cursor)).size).toBe(1);
    w.abort.abort();
    await w.done;
  });

  it("Sync pages through changes, keeps tombstones for the retention period, then resets old cursors (Watch: FAILED_PRECONDITION)", async () => {
    const owner = "syncer";
    for (let i = 0; i < 5; i++) await server.marks.updateConversations({ updates: [{ key: direct(owner, `c${i}`), setMarks: [i + 1] }] });
    const first = await server.marks.syncConversations({ ownerUserId: owner, pageSize: 2 });
    expect(first.changes.map((c) => c.conversation?.key?.conversationId)).toEqual(["c0", "c1"]);
    expect(first.hasMore).toBe(true);
    const rest = await server.marks.syncConversations({ ownerUserId: owner, cursor: first.nextCursor, pageSize: 10 });
    expect(rest.changes.map((c) => c.conversation?.key?.conversationId)).toEqual(["c2", "c3", "c4"]);
    expect(rest.hasMore).toBe(false);
    await server.marks.deleteConversations({ keys: [direct(owner, "c1")] });
    const tomb = await server.marks.syncConversations({ ownerUserId: owner, cursor: rest.nextCursor });
    expect(tomb.changes.map((c) => [c.conversation?.key?.conversationId, c.deleted])).toEqual([["c1", true]]);
    // Retention is 1 s here: after it the tombstone is purged and the old cursor must re-list.
    await new Promise((r) => setTimeout(r, 2500));
    const reset = await server.marks.syncConversations({ ownerUserId: owner, cursor: rest.nextCursor });
    expect(reset.reset).toBe(true);
    expect(reset.changes).toEqual([]);
    const after = await server.marks.syncConversations({ ownerUserId: owner, cursor: reset.nextCursor });
    expect(after.reset).toBe(false);
    const w = watch(server.marks, owner, rest.nextCursor);
    await waitFor(() => w.replica.ended, "Watch to fail");
    expect(ConnectError.from(w.replica.error).code).toBe(Code.FailedPrecondition);
  });

  it("refuses malformed and foreign cursors with INVALID_ARGUMENT", async () => {
    const mine = await server.marks.syncConversations({ ownerUserId: "alice" });
    const bad = async (p: Promise<unknown>) => {
      const e = await p.then(() => undefined, (err: unknown) => ConnectError.from(err));
      expect(e?.code).toBe(Code.InvalidArgument);
    };
    await bad(server.marks.syncConversations({ ownerUserId: "mallory", cursor: mine.nextCursor }));
    await bad(server.marks.syncConversations({ ownerUserId: "", cursor: mine.nextCursor }));
    await bad(server.marks.syncConversations({ ownerUserId: "alice", cursor: "not-a-cursor" }));
    const w = watch(server.marks, "mallory", mine.nextCursor);
    await w.done;
    expect(ConnectError.from(w.replica.error).code).toBe(Code.InvalidArgument);
  });

  it("feeds every owner over gRPC-Web on HTTP/1.1 (the push-service feed), including a Tencent mark_contact write", async () => {
    const web = createClient(MarkService, createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const w = watch(web, "");
    await w.replica.live();
    await server.marks.updateConversations({ updates: [{ key: direct("p1", "x"), setMarks: [7] }] });
    await web.updateConversations({ updates: [{ key: direct("p2", "y"), setMarks: [8] }] });
    await waitFor(() => w.replica.state.size >= 2, "every-owner delivery");
    expect(w.replica.marks("p1", "x")).toEqual([7]);
    expect(w.replica.marks("p2", "y")).toEqual([8]);
    w.abort.abort();
    await w.done;
  });
});

describe("change feed: dialect writes, concurrency, processes, restart, shutdown", () => {
  const TLSSigAPIv2 = createRequire(import.meta.url)("tls-sig-api-v2") as {
    Api: new (sdkappid: number, key: string) => { genUserSig(identifier: string, expire: number): string };
  };
  const APPID = 1400000001;
  const KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

  it("a Tencent mark_contact write appears in the owner's feed", async () => {
    const server = await startTestServer({ TENCENT_SDKAPPID: String(APPID), TENCENT_SECRET_KEY: KEY });
    try {
      const w = watch(server.marks, "user0");
      await w.replica.live();
      const sig = new TLSSigAPIv2.Api(APPID, KEY).genUserSig("administrator", 86400);
      const query = `sdkappid=${APPID}&identifier=administrator&usersig=${sig}&random=99999999&contenttype=json`;
      const body = '{"From_Account":"user0","MarkItem":[{"OptType":3,"ContactItem":{"Type":1,"To_Account":"user1"},"SetMark":[1,2,3],"CustomMark":"abcd"}]}';
      const r = await fetch(`${server.url}/v4/recentcontact/mark_contact?${query}`, { method: "POST", body });
      expect(((await r.json()) as { ErrorCode: number }).ErrorCode).toBe(0);
      await waitFor(() => w.replica.state.has("user0/user1"), "the dialect write in the feed");
      expect(w.replica.marks("user0", "user1")).toEqual([1, 2, 3]);
      w.abort.abort();
      await w.done;
    } finally {
      await server.close();
    }
  });

  it("8 concurrent writers while watching over grpc-js: the watcher ends with exactly the stored state", async () => {
    const server = await startTestServer();
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const replica = new Replica();
      const call = client.makeServerStreamRequest(
        "/convmark.v1.MarkService/WatchConversations",
        (m: ReturnType<typeof create<typeof WatchConversationsRequestSchema>>) => Buffer.from(toBinary(WatchConversationsRequestSchema, m)),
        (b: Buffer) => fromBinary(WatchConversationsResponseSchema, b),
        create(WatchConversationsRequestSchema, { ownerUserId: "busy" }),
      );
      const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
      call.on("data", (m: WatchConversationsResponse) => replica.apply(m));
      call.on("error", () => {});
      await replica.live();
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          for (let i = 0; i < 25; i++) {
            const id = `c${(w * 7 + i) % 12}`;
            if (i % 9 === 8) await server.marks.deleteConversations({ keys: [direct("busy", id)] });
            else await server.marks.updateConversations({ updates: [{ key: direct("busy", id), setMarks: [1 + ((w + i) % 64)], clearMarks: [1 + ((w * 3 + i) % 64)] }] });
          }
        }),
      );
      const stored = new Map<string, number[]>();
      for (let i = 0; i < 12; i++) {
        const got = await server.marks.batchGetConversations({ keys: [direct("busy", `c${i}`)] });
        const c = got.conversations[0]!;
        if (c.version > 0n) stored.set(`busy/c${i}`, [...c.marks]);
      }
      const live = () => new Map([...replica.state].filter(([, v]) => !v.deleted).map(([k, v]) => [k, v.marks]));
      const head = (await server.marks.syncConversations({ ownerUserId: "busy", cursor: replica.cursor })).changes.length;
      await waitFor(() => JSON.stringify([...live()].sort()) === JSON.stringify([...stored].sort()), `the replica to match (pending ${head})`);
      expect(live()).toEqual(stored);
      call.cancel();
      expect((await status).code).toBe(grpc.status.CANCELLED);
    } finally {
      client.close();
      await server.close();
    }
  });

  it("delivers writes of another OS process on the same SQLite file, and resumes across a restart", async () => {
    let server = await startTestServer();
    const dataDir = server.dataDir;
    try {
      const w = watch(server.marks, "shared");
      await w.replica.live();
      const script = `
        import { openSqliteStore } from "./src/store/sqlite-store.ts";
        const s = openSqliteStore({ path: process.argv[1], limits: { maxMarkedPerOwner: 1000, maxLabelsPerConversation: 32 } });
        for (let i = 0; i < 5; i++) await s.applyUpdates([{ key: { owner: "shared", type: 1, conversationId: "p" + i }, setMask: 1n << BigInt(i), clearMask: 0n, addLabels: [], removeLabels: [], settings: {} }]);
        await s.close();`;
      await run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, join(dataDir, "convmark.db")]);
      await waitFor(() => w.replica.state.size === 5, "the other process's writes");
      expect(w.replica.marks("shared", "p4")).toEqual([5]);
      const cursor = w.replica.cursor;
      w.abort.abort();
      await w.done;

      await server.close({ keepData: true });
      server = await startTestServer({}, { dataDir });
      await server.marks.updateConversations({ updates: [{ key: direct("shared", "p0"), setMarks: [9] }, { key: direct("shared", "after"), setMarks: [2] }] });
      const again = watch(server.marks, "shared", cursor);
      await waitFor(() => again.replica.state.size === 2, "the changes since the cursor after a restart");
      expect(again.replica.seen).toEqual(["shared/p0@2", "shared/after@1"]);
      again.abort.abort();
      await again.done;
    } finally {
      await server.close();
    }
  });

  it("graceful shutdown ends Watch streams cleanly and quickly; buf curl watches too", async () => {
    const server = await startTestServer({ CONVMARK_SHUTDOWN_GRACE_MS: "20000" });
    let closed = false;
    try {
      await server.marks.updateConversations({ updates: [{ key: direct("bufw", "g"), setMarks: [3] }] });
      const child = spawn(
        BUF,
        ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", '{"ownerUserId":"bufw","cursor":""}', `${server.url}/convmark.v1.MarkService/WatchConversations`],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
      const w = watch(server.marks, "bufw");
      await w.replica.live();
      await waitFor(() => out.includes("cursor"), "buf curl's first message");
      await server.marks.updateConversations({ updates: [{ key: direct("bufw", "h"), setMarks: [4] }] });
      await waitFor(() => out.includes('"h"'), "buf curl to print the change");
      const t0 = Date.now();
      await server.close();
      closed = true;
      expect(Date.now() - t0).toBeLessThan(5000);
      await w.done;
      expect(w.replica.error).toBeUndefined(); // ended cleanly, not with an error
      expect(await exited).toBe(0);
    } finally {
      if (!closed) await server.close();
    }
  });

  it("the README's plain curl over Connect streaming watches a user's marks", async () => {
    const server = await startTestServer();
    try {
      const cmd = `printf '\\x00\\x00\\x00\\x00\\x17{"ownerUserId":"alice"}' | curl -sN --max-time 10 ${server.url}/convmark.v1.MarkService/WatchConversations -H 'content-type: application/connect+json' --data-binary @- --output -`;
      const child = spawn("bash", ["-c", cmd], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
      await waitFor(() => out.includes("cursor"), "curl's first message");
      await server.marks.updateConversations({ updates: [{ key: direct("alice", "viacurl"), setMarks: [5] }] });
      await waitFor(() => out.includes("viacurl"), "curl to print the change");
      await server.close();
      await exited;
      expect(out).toMatch(/"marks":\[5\]/);
    } finally {
      await server.close();
    }
  });

  it("refuses new Watch calls after shutdown has begun", async () => {
    const { createFeedHub } = await import("../../src/service/feed-hub.js");
    const { openSqliteStore } = await import("../../src/store/sqlite-store.js");
    const store = openSqliteStore({ path: ":memory:", limits: { maxMarkedPerOwner: 10, maxLabelsPerConversation: 2 } });
    const hub = createFeedHub(store, { maxBacklog: 10 });
    let ended = 0;
    const listener = { onChanges: () => {}, onHubClose: () => void ended++ };
    expect(hub.open("a", listener)).toBeDefined();
    hub.close();
    expect(ended).toBe(1);
    expect(hub.open("a", listener)).toBeUndefined();
    expect(hub.watchers).toBe(0);
    await store.close();
  });
});
