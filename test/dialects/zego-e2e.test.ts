// End to end: the real server (all dialects wired, SQLite in a temp dir) over real HTTP and gRPC.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationType } from "../../gen/convmark/v1/mark_service_pb.js";
import { SetConvMarkRequestSchema, SetConvMarkResponseSchema, ZimServerService } from "../../gen/vendor/zego/v1/zim_server_pb.js";
import { grpcClient } from "../support/grpc.js";
import { startTestServer, type TestServer } from "../support/harness.js";
import { APP_ID, DOC_EXAMPLE_BODY, SECRET, postJson, publicParams, setConvMarkUrl } from "./zego-fixtures.js";

const ENV = { ZEGO_APP_ID: String(APP_ID), ZEGO_SERVER_SECRET: SECRET, ZEGO_RATE_LIMIT_PER_SECOND: "1000" };

const lowerCased = (p: Record<string, string>) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k.toLowerCase(), v]));

describe("ZEGO dialect end to end", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(ENV);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("the document's example request gets the documented response and reads back through MarkService", async () => {
    const r = await postJson(setConvMarkUrl(server.url, publicParams()), DOC_EXAMPLE_BODY);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ Code: 0, Message: "success", RequestId: expect.any(String), FailList: [] });
    for (const owner of ["userA", "userB"]) {
      for (const [type, id] of [
        [ConversationType.DIRECT, "conv_c2c_1"],
        [ConversationType.DIRECT, "conv_c2c_2"],
        [ConversationType.GROUP, "conv_group_1"],
        [ConversationType.GROUP, "conv_group_2"],
      ] as const) {
        const { conversation } = await server.marks.getConversation({ key: { ownerUserId: owner, type, conversationId: id } });
        expect(conversation?.marks).toEqual([2]);
      }
    }
  });

  it("auth, Action and body errors come back in ZEGO's envelope", async () => {
    const bad = await postJson(setConvMarkUrl(server.url, publicParams({ secret: "wrong" })), DOC_EXAMPLE_BODY);
    expect(bad.json).toMatchObject({ Code: 100000005, FailList: [] });
    const action = await postJson(setConvMarkUrl(server.url, publicParams(), "QueryUserOnlineState"), "{}");
    expect(action.json).toMatchObject({ Code: 100000007, FailList: [] });
    const json = await postJson(setConvMarkUrl(server.url, publicParams()), "{oops");
    expect(json.json).toMatchObject({ Code: 660000002, FailList: [] });
  });

  it("Connect JSON on ZimServerService/SetConvMark speaks ZEGO's field names, auth in metadata", async () => {
    const body = '{"FromUserId":"op","ConvMarkInfoList":[{"UserId":"connectUser","SetMarkGroup":{"g1":{"MarkContent":9}},"Action":true}]}';
    const url = `${server.url}/vendor.zego.v1.ZimServerService/SetConvMark`;
    const r = await postJson(url, body, { "content-type": "application/json", ...lowerCased(publicParams()) });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ Message: "success" });
    expect(r.json.Code ?? 0).toBe(0);
    const { conversation } = await server.marks.getConversation({ key: { ownerUserId: "connectUser", type: ConversationType.GROUP, conversationId: "g1" } });
    expect(conversation?.marks).toEqual([9]);
    const refused = await postJson(url, body, { "content-type": "application/json", ...lowerCased(publicParams({ secret: "wrong" })) });
    expect(refused.json).toMatchObject({ Code: 100000005 });
  });

  it("gRPC (grpc-js) with the public parameters as metadata", async () => {
    const client = grpcClient(server.url);
    try {
      const req = { fromUserId: "op", convMarkInfoList: [{ userId: "grpcUser", setMarkC2c: { peer: { markContent: 30 } }, action: true }] };
      const ok = await client.unary(ZimServerService, "SetConvMark", SetConvMarkRequestSchema, SetConvMarkResponseSchema, req, lowerCased(publicParams()));
      expect(ok.code).toBe(0);
      const { conversation } = await server.marks.getConversation({ key: { ownerUserId: "grpcUser", type: ConversationType.DIRECT, conversationId: "peer" } });
      expect(conversation?.marks).toEqual([30]);
      const expired = await client.unary(ZimServerService, "SetConvMark", SetConvMarkRequestSchema, SetConvMarkResponseSchema, req, lowerCased(publicParams({ timestamp: Math.floor(Date.now() / 1000) - 3600 })));
      expect(expired.code).toBe(100000004);
    } finally {
      client.close();
    }
  });
});

describe("ZEGO dialect end to end, unconfigured", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({});
  });
  afterAll(async () => {
    await server?.close();
  });

  it("answers every call with 100000010", async () => {
    const r = await postJson(setConvMarkUrl(server.url, publicParams()), DOC_EXAMPLE_BODY);
    expect(r.json).toMatchObject({ Code: 100000010, FailList: [] });
  });
});
