/**
 * The lean gRPC route for WatchConversations (src/server/watch-route.ts): its hand-made frames are
 * exactly what protobuf-es would encode, and over the real server with grpc-js it is the route that
 * answers (its headers), with auth, deadlines, malformed requests, metrics and backpressure.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { connect } from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConversationType,
  WatchConversationsRequestSchema,
  WatchConversationsResponseSchema,
  type WatchConversationsResponse,
} from "../../gen/convmark/v1/mark_service_pb.js";
import { changeToProto } from "../../src/service/mark-service.js";
import { parseGrpcTimeout, watchResponseFrame, WATCH_PATH } from "../../src/server/watch-route.js";
import { tombstoneOf } from "../../src/store/planner.js";
import type { Change } from "../../src/store/store.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const envelope = (payload: Uint8Array) => {
  const b = Buffer.alloc(5 + payload.length);
  b.writeUInt32BE(payload.length, 1);
  b.set(payload, 5);
  return b;
};

describe("watch-route framing", () => {
  it("frames a response exactly as protobuf-es encodes it, for any number of changes", () => {
    const tomb = tombstoneOf({ owner: "o", type: 1, conversationId: "gone" }, 3n, 1_700_000_000_000, 9n);
    const big: Change = { record: { ...tombstoneOf({ owner: "o", type: 2, conversationId: "g".repeat(200) }, 1n, 5, 10n), customMark: "x".repeat(20_000) }, deleted: false, seq: 11n };
    for (const changes of [[], [{ record: tomb, deleted: true, seq: 7n }], [{ record: tomb, deleted: true, seq: 7n }, big]] as Change[][]) {
      const frame = watchResponseFrame(changes, "Y3Vyc29y");
      expect(frame[0]).toBe(0);
      expect(frame.readUInt32BE(1)).toBe(frame.length - 5);
      const expected = toBinary(
        WatchConversationsResponseSchema,
        create(WatchConversationsResponseSchema, { changes: changes.map(changeToProto), cursor: "Y3Vyc29y" }),
      );
      expect(Buffer.from(frame.subarray(5)).equals(Buffer.from(expected))).toBe(true);
    }
  });

  it("reads grpc-timeout as the gRPC spec writes it", () => {
    expect(parseGrpcTimeout(undefined)).toBeUndefined();
    expect(parseGrpcTimeout("1S")).toBe(1000);
    expect(parseGrpcTimeout("250m")).toBe(250);
    expect(parseGrpcTimeout("2M")).toBe(120_000);
    for (const bad of ["", "1", "123456789S", "1s", "-1S", "1.5S"]) expect(parseGrpcTimeout(bad)).toBeNaN();
  });
});

describe("watch-route over the real server", () => {
  let server: TestServer;
  let client: grpc.Client;
  beforeAll(async () => {
    server = await startTestServer({ CONVMARK_WATCH_HEARTBEAT_MS: "60000", CONVMARK_WATCH_MAX_BACKLOG: "20" });
    client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  const watch = (owner: string, opts: grpc.CallOptions = {}) =>
    client.makeServerStreamRequest(
      WATCH_PATH,
      (m: { ownerUserId: string }) => Buffer.from(toBinary(WatchConversationsRequestSchema, create(WatchConversationsRequestSchema, m))),
      (b: Buffer) => fromBinary(WatchConversationsResponseSchema, b),
      { ownerUserId: owner },
      new grpc.Metadata(),
      opts,
    );

  it("is the route that answers gRPC on HTTP/2 (its headers), delivers live changes, and is counted in /metrics", async () => {
    const call = watch("lean-a");
    const got: WatchConversationsResponse[] = [];
    const twoMessages = new Promise<void>((resolve) =>
      call.on("data", (m: WatchConversationsResponse) => {
        got.push(m);
        if (got.length === 2) resolve();
      }),
    );
    call.on("error", () => {});
    // connect-node advertises "gzip,br"; the lean route accepts gzip requests only.
    const session = connect(server.url);
    const probe = session.request({ ":method": "POST", ":path": WATCH_PATH, "content-type": "application/grpc", te: "trailers" });
    probe.end(envelope(toBinary(WatchConversationsRequestSchema, create(WatchConversationsRequestSchema, { ownerUserId: "lean-probe" }))));
    const probeHeaders = await new Promise<Record<string, unknown>>((resolve) => probe.on("response", resolve));
    expect(probeHeaders["grpc-accept-encoding"]).toBe("gzip");
    session.destroy();
    await new Promise((r) => setTimeout(r, 50));
    await server.marks.updateConversations({ updates: [{ key: { ownerUserId: "lean-a", type: ConversationType.DIRECT, conversationId: "c1" }, setMarks: [3] }] });
    await twoMessages;
    expect(got[0]!.changes).toEqual([]);
    expect(got[1]!.changes.map((c) => c.conversation?.key?.conversationId)).toEqual(["c1"]);
    expect(got[1]!.cursor).not.toBe(got[0]!.cursor);
    call.cancel();
    await new Promise((r) => setTimeout(r, 100));
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/grpc_server_started_total\{grpc_type="server_stream",grpc_service="convmark.v1.MarkService",grpc_method="WatchConversations"\} [1-9]/);
    expect(metrics).toMatch(/grpc_server_handled_total\{[^}]*grpc_method="WatchConversations",grpc_code="Canceled"\} [1-9]/);
  });

  /** A raw HTTP/2 gRPC call: status and message from the trailers (or Trailers-Only headers). */
  const raw = (body: Buffer, headers: Record<string, string> = {}, readBody = true) =>
    new Promise<{ status: string | undefined; message: string | undefined; frames: number; session: ReturnType<typeof connect> }>((resolve, reject) => {
      const session = connect(server.url);
      session.on("error", reject);
      const req = session.request({ ":method": "POST", ":path": WATCH_PATH, "content-type": "application/grpc", te: "trailers", ...headers });
      let status: string | undefined;
      let message: string | undefined;
      let frames = 0;
      req.on("response", (h) => {
        status ??= h["grpc-status"] as string | undefined;
        message ??= h["grpc-message"] as string | undefined;
        if (!readBody) resolve({ status, message, frames, session });
      });
      req.on("trailers", (t) => {
        status = t["grpc-status"] as string | undefined;
        message = t["grpc-message"] as string | undefined;
      });
      req.on("data", () => frames++);
      req.on("end", () => resolve({ status, message, frames, session }));
      req.on("error", reject);
      if (!readBody) req.pause();
      req.end(body);
    });

  it("ends at the client's deadline (grpc-timeout) with DEADLINE_EXCEEDED", async () => {
    const t0 = Date.now();
    const r = await raw(envelope(toBinary(WatchConversationsRequestSchema, create(WatchConversationsRequestSchema, { ownerUserId: "lean-b" }))), { "grpc-timeout": "300m" });
    r.session.close();
    expect(Number(r.status)).toBe(Code.DeadlineExceeded);
    expect(r.frames).toBeGreaterThan(0); // the first response (the cursor) came before the deadline
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  });

  it("answers malformed requests with INVALID_ARGUMENT and unknown compression with UNIMPLEMENTED", async () => {
    const cases: [Buffer, Record<string, string>, Code][] = [
      [Buffer.from([0, 0, 0, 0, 5, 0xff, 0xff]), {}, Code.InvalidArgument], // truncated envelope
      [envelope(Buffer.from([0x0a, 0x05, 0x61])), {}, Code.InvalidArgument], // truncated field
      [Buffer.alloc(0), {}, Code.InvalidArgument], // no message
      [envelope(toBinary(WatchConversationsRequestSchema, create(WatchConversationsRequestSchema, { ownerUserId: "x", cursor: "nope" }))), {}, Code.InvalidArgument],
      [envelope(new Uint8Array()), { "grpc-encoding": "snappy" }, Code.Unimplemented],
      [envelope(new Uint8Array()), { "grpc-timeout": "soon" }, Code.InvalidArgument],
    ];
    for (const [body, headers, code] of cases) {
      const r = await raw(body, headers);
      r.session.close();
      expect(Number(r.status), `${body.toString("hex")} ${JSON.stringify(headers)}: ${r.message}`).toBe(code);
      expect(r.frames).toBe(0);
    }
  });

  it("ends a client that stops reading with RESOURCE_EXHAUSTED instead of buffering for it", async () => {
    const session = connect(server.url);
    try {
      const req = session.request({ ":method": "POST", ":path": WATCH_PATH, "content-type": "application/grpc", te: "trailers" });
      let status: string | undefined;
      req.on("trailers", (t) => (status = t["grpc-status"] as string));
      req.on("response", (h) => (status ??= h["grpc-status"] as string | undefined));
      const ended = new Promise<void>((resolve) => req.on("end", resolve));
      req.on("error", () => {});
      req.end(envelope(toBinary(WatchConversationsRequestSchema, create(WatchConversationsRequestSchema, { ownerUserId: "lean-slow" }))));
      req.pause(); // never reads: the HTTP/2 window (64 KiB) fills, then the stream's buffer
      await new Promise((r) => setTimeout(r, 100));
      // 600 changes of ~250 bytes, one per call: far past the 64 KiB window, then the backlog limit of 20.
      for (let i = 0; i < 600; i++) {
        await server.marks.updateConversations({
          updates: [{ key: { ownerUserId: "lean-slow", type: ConversationType.DIRECT, conversationId: `c${i}` }, customMark: "m".repeat(200) }],
        });
      }
      await new Promise((r) => setTimeout(r, 300));
      req.resume(); // now read what was sent: the stream has been ended for the backlog
      await ended;
      expect(Number(status)).toBe(Code.ResourceExhausted);
    } finally {
      session.close();
    }
  });
});
