// grpcCodec (src/codec/grpc-codec.ts) in a real @grpc/grpc-js client against the real server on
// loopback: requests it serializes are answered as the bytes toBinary writes would be, and the
// responses it deserializes equal fromBinary's reading of the same bytes.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConversationType,
  MarkService,
  ResultView,
  SyncConversationsRequestSchema,
  UpdateConversationsRequestSchema,
  type SyncConversationsResponse,
  type UpdateConversationsResponse,
} from "../../gen/convmark/v1/mark_service_pb.js";
import { startConvmark, type RunningConvmark } from "../../src/bootstrap.js";
import { grpcCodec } from "../../src/codec/grpc-codec.js";

describe("grpcCodec with a grpc-js client", () => {
  let running: RunningConvmark;
  let dataDir: string;
  let client: grpc.Client;
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "convmark-grpc-codec-"));
    running = await startConvmark({ PORT: "0", HOST: "127.0.0.1", CONVMARK_DATA_DIR: dataDir }, { logger: pino({ level: "silent" }) });
    client = new grpc.Client(new URL(running.url).host, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await running?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** One call with grpcCodec, and the same request again with raw bytes: [decoded response, raw response bytes]. */
  async function call<I extends DescMessage, O extends DescMessage>(method: { name: string; input: I; output: O }, request: MessageShape<I>): Promise<[MessageShape<O>, Buffer]> {
    const path = `/${MarkService.typeName}/${method.name}`;
    const codec = grpcCodec(method.output);
    const decoded = await new Promise<MessageShape<O>>((resolve, reject) =>
      client.makeUnaryRequest(path, grpcCodec(method.input).serialize, codec.deserialize, request, (e, r) => (e || !r ? reject(e ?? new Error("no response")) : resolve(r))),
    );
    const raw = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(toBinary(method.input, request)), (e, r) => (e || !r ? reject(e ?? new Error("no response")) : resolve(r))),
    );
    return [decoded, raw];
  }

  it("UpdateConversations and SyncConversations: the same messages as fromBinary", async () => {
    const updates = Array.from({ length: 100 }, (_, i) => ({ key: { ownerUserId: "grpc-codec", type: ConversationType.DIRECT, conversationId: `c${i}` }, setMarks: [1 + (i % 5)], customMark: `é${i}`, addLabels: ["x"] }));
    const [update, updateRaw] = await call(MarkService.method.updateConversations, create(UpdateConversationsRequestSchema, { updates, resultView: ResultView.FULL }));
    const u = update as UpdateConversationsResponse;
    expect(u.results).toHaveLength(100);
    expect(u.results[7]!.conversation?.customMark).toBe("é7");
    // The second call changed nothing (same update), so versions match and only `changed` differs.
    const again = fromBinary(MarkService.method.updateConversations.output, updateRaw);
    expect(again.results.map((r) => r.conversation)).toEqual(u.results.map((r) => r.conversation));

    const [sync, syncRaw] = await call(MarkService.method.syncConversations, create(SyncConversationsRequestSchema, { ownerUserId: "grpc-codec", pageSize: 1000 }));
    const s = sync as SyncConversationsResponse;
    expect(s.changes).toHaveLength(100);
    expect(s).toStrictEqual(fromBinary(MarkService.method.syncConversations.output, syncRaw));
  });

  it("a response it cannot parse is an INTERNAL error on the client (grpc-js's handling of a throwing deserializer)", async () => {
    const path = `/${MarkService.typeName}/${MarkService.method.syncConversations.name}`;
    const bad = { ...grpcCodec(MarkService.method.syncConversations.output), deserialize: (b: Buffer) => grpcCodec(MarkService.method.syncConversations.output).deserialize(Buffer.concat([b, Buffer.from([0x0f])])) };
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.makeUnaryRequest(path, grpcCodec(SyncConversationsRequestSchema).serialize, bad.deserialize, create(SyncConversationsRequestSchema, { ownerUserId: "grpc-codec" }), (e) => resolve(e)),
    );
    expect(err?.code).toBe(grpc.status.INTERNAL);
  });
});
