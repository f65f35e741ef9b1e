/** The real server on loopback, called by real clients: Connect (HTTP/1.1 JSON), gRPC (grpc-js, h2c), gRPC-Web, buf curl. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConversationSchema,
  ConversationType,
  GetConversationRequestSchema,
  GetConversationResponseSchema,
  MarkService,
  UpdateConversationsRequestSchema,
  UpdateConversationsResponseSchema,
} from "../../gen/convmark/v1/mark_service_pb.js";
import { grpcClient, type GrpcTestClient } from "../support/grpc.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const run = promisify(execFile);
const BUF = "node_modules/.bin/buf";
const direct = (owner: string, conversationId: string) => ({ ownerUserId: owner, type: ConversationType.DIRECT, conversationId });

describe("MarkService end to end", () => {
  let server: TestServer;
  let g: GrpcTestClient;
  beforeAll(async () => {
    server = await startTestServer({ CONVMARK_MAX_MARKED_PER_OWNER: "25", CONVMARK_READ_MAX_BYTES: "65536" });
    g = grpcClient(server.url);
  });
  afterAll(async () => {
    g.close();
    await server.close();
  });

  it("reads back over Connect JSON exactly what was set over gRPC", async () => {
    const res = await g.unary(MarkService, "UpdateConversations", UpdateConversationsRequestSchema, UpdateConversationsResponseSchema, {
      updates: [{ key: direct("alice", "bob"), setMarks: [1, 4, 33, 64], customMark: "星标 vip", addLabels: ["work"], settings: { pinned: true, receiveOption: 3 } }],
    });
    expect(res.results[0]?.status?.code).toBe(0);
    const viaGrpc = res.results[0]!.conversation!;
    const viaConnect = (await server.marks.getConversation({ key: direct("alice", "bob") })).conversation!;
    expect(toJson(ConversationSchema, viaConnect)).toEqual(toJson(ConversationSchema, viaGrpc));
    expect(viaConnect.marks).toEqual([1, 4, 33, 64]);
    expect(viaConnect.markBits).toBe((1n << 63n) | (1n << 32n) | 9n);

    // The JSON wire form keeps 64-bit values exact (as strings).
    const raw = await fetch(`${server.url}/convmark.v1.MarkService/GetConversation`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: { ownerUserId: "alice", type: "CONVERSATION_TYPE_DIRECT", conversationId: "bob" } }),
    });
    const body = (await raw.json()) as { conversation: { markBits: string; marks: number[] } };
    // 2^63 + 2^32 + 9, worked out by hand.
    expect(body.conversation.markBits).toBe("9223372041149743113");
    expect(BigInt(body.conversation.markBits)).toBe((1n << 63n) | (1n << 32n) | 9n);
  });

  it("serves gRPC-Web on HTTP/1.1", async () => {
    const web = createClient(MarkService, createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    await web.updateConversations({ updates: [{ key: direct("web", "peer"), setMarks: [2] }] });
    const got = await g.unary(MarkService, "GetConversation", GetConversationRequestSchema, GetConversationResponseSchema, { key: direct("web", "peer") });
    expect(got.conversation?.marks).toEqual([2]);
  });

  it("lists and calls every method through reflection with buf curl", async () => {
    const base = ["curl", "--protocol", "grpc", "--http2-prior-knowledge"];
    const list = await run(BUF, [...base, server.url, "--list-methods"]);
    for (const m of ["UpdateConversations", "GetConversation", "BatchGetConversations", "ListConversations"]) {
      expect(list.stdout).toContain(`convmark.v1.MarkService/${m}`);
    }
    const set = await run(BUF, [
      ...base,
      "-d",
      JSON.stringify({ updates: [{ key: { ownerUserId: "bufuser", type: "CONVERSATION_TYPE_GROUP", conversationId: "g1" }, setMarks: [3] }] }),
      `${server.url}/convmark.v1.MarkService/UpdateConversations`,
    ]);
    expect(JSON.parse(set.stdout).results[0].conversation.marks).toEqual([3]);
    const listed = await run(BUF, [
      ...base,
      "-d",
      JSON.stringify({ ownerUserId: "bufuser", filter: { marksAny: [3] } }),
      `${server.url}/convmark.v1.MarkService/ListConversations`,
    ]);
    expect(JSON.parse(listed.stdout).conversations.map((c: { key: { conversationId: string } }) => c.key.conversationId)).toEqual(["g1"]);
  });

  it("answers bad input with the right code, never a crash", async () => {
    const post = (body: string, contentType = "application/json") =>
      fetch(`${server.url}/convmark.v1.MarkService/UpdateConversations`, { method: "POST", headers: { "content-type": contentType }, body });
    const malformed = await post("{not json");
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { code: string }).code).toBe("invalid_argument");
    const wrongType = await post(JSON.stringify({ updates: [{ setMarks: "one" }] }));
    expect(((await wrongType.json()) as { code: string }).code).toBe("invalid_argument");
    const oversized = await post(JSON.stringify({ updates: [{ key: direct("a", "b"), customMark: "x".repeat(70_000) }] }));
    expect(((await oversized.json()) as { code: string }).code).toBe("resource_exhausted");
    const wrongContentType = await post("{}", "text/plain");
    expect(wrongContentType.status).toBe(415);
    await expect(server.marks.updateConversations({ updates: [] })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(server.marks.getConversation({ key: direct("nobody", "never") })).rejects.toMatchObject({ code: Code.NotFound });
    // Still serving.
    expect((await server.marks.getConversation({ key: direct("alice", "bob") })).conversation?.marks).toEqual([1, 4, 33, 64]);
  });

  it("holds the per-owner cap across many concurrent requests from both protocols", async () => {
    // alice already has one marked conversation (the first test); the cap is 25.
    const calls = Array.from({ length: 120 }, (_, i) => {
      const req = { updates: [{ key: direct("capped", `c${i}`), setMarks: [1 + (i % 64)] }] };
      return i % 2 === 0
        ? server.marks.updateConversations(req).then((r) => r.results[0]!.status!.code)
        : g.unary(MarkService, "UpdateConversations", UpdateConversationsRequestSchema, UpdateConversationsResponseSchema, req).then((r) => r.results[0]!.status!.code);
    });
    const codes = await Promise.all(calls);
    expect(codes.filter((c) => c === 0)).toHaveLength(25);
    expect(codes.filter((c) => c === Code.ResourceExhausted)).toHaveLength(95);
    const listed = await server.marks.listConversations({ ownerUserId: "capped", pageSize: 1000 });
    expect(listed.conversations).toHaveLength(25);
  });

  it("loses no bit when concurrent requests set and clear different marks of one conversation", async () => {
    const key = direct("racer", "conv");
    await server.marks.updateConversations({ updates: [{ key, setMarks: [2, 4, 6, 8] }] });
    const odd = Array.from({ length: 32 }, (_, i) => 2 * i + 1);
    await Promise.all([
      ...odd.map((m, i) =>
        i % 2 === 0
          ? server.marks.updateConversations({ updates: [{ key, setMarks: [m] }] })
          : g.unary(MarkService, "UpdateConversations", UpdateConversationsRequestSchema, UpdateConversationsResponseSchema, { updates: [{ key, setMarks: [m] }] }),
      ),
      ...[2, 4].map((m) => server.marks.updateConversations({ updates: [{ key, clearMarks: [m] }] })),
    ]);
    const got = (await server.marks.getConversation({ key })).conversation!;
    expect(got.marks).toEqual([...odd, 6, 8].sort((a, b) => a - b));
    expect(got.version).toBe(1n + 32n + 2n);
  });

  it("reports gRPC status codes to grpc-js clients", async () => {
    const err = await g
      .unary(MarkService, "GetConversation", GetConversationRequestSchema, GetConversationResponseSchema, { key: direct("", "x") })
      .catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err).not.toBeInstanceOf(ConnectError);
  });
});

describe("persistence", () => {
  it("keeps marks across a restart on the same data dir", async () => {
    const first = await startTestServer();
    await first.marks.updateConversations({
      updates: [{ key: direct("persist", "peer"), setMarks: [1, 64], customMark: "keep", addLabels: ["l"], settings: { burnDurationSeconds: 30 } }],
    });
    const before = (await first.marks.getConversation({ key: direct("persist", "peer") })).conversation!;
    await first.close({ keepData: true });
    const second = await startTestServer({}, { dataDir: first.dataDir });
    try {
      const after = (await second.marks.getConversation({ key: direct("persist", "peer") })).conversation!;
      expect(toJson(ConversationSchema, after)).toEqual(toJson(ConversationSchema, before));
    } finally {
      await second.close();
    }
  });
});
