// Issue 7, items 6 and 7, against the real server on loopback: ZEGO map keys are data, and the
// replay cache cannot be flushed by calls the rate limiter refuses.
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationType } from "../../gen/convmark/v1/mark_service_pb.js";
import { SetConvMarkRequestSchema } from "../../gen/vendor/zego/v1/zim_server_pb.js";
import { startTestServer, type TestServer } from "../support/harness.js";
import { APP_ID, SECRET, postJson, publicParams, setConvMarkUrl } from "../dialects/zego-fixtures.js";

const lowerCased = (p: Record<string, string>) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k.toLowerCase(), v]));
const DIRECT = ConversationType.DIRECT;
const GROUP = ConversationType.GROUP;

describe("ZEGO map keys are data (item 6)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ZEGO_APP_ID: String(APP_ID), ZEGO_SERVER_SECRET: SECRET, ZEGO_RATE_LIMIT_PER_SECOND: "1000" });
  });
  afterAll(async () => {
    await server?.close();
  });

  const marksOf = async (owner: string, type: ConversationType, id: string) =>
    (await server.marks.getConversation({ key: { ownerUserId: owner, type, conversationId: id } })).conversation?.marks ?? [];

  it("REST: __proto__, constructor and toString are conversation IDs like any other", async () => {
    const body =
      '{"FromUserId":"op","ConvMarkInfoList":[{"UserId":"u1","SetMarkC2c":{"__proto__":{"MarkContent":2},"x":{"MarkContent":3}},' +
      '"SetMarkGroup":{"constructor":{"MarkContent":4},"toString":{"MarkContent":5},"__proto__":{"MarkContent":6}},"Action":true}]}';
    const r = await postJson(setConvMarkUrl(server.url, publicParams()), body);
    expect(r.json).toMatchObject({ Code: 0, FailList: [] });
    expect(await marksOf("u1", DIRECT, "__proto__")).toEqual([2]);
    expect(await marksOf("u1", DIRECT, "x")).toEqual([3]);
    expect(await marksOf("u1", GROUP, "constructor")).toEqual([4]);
    expect(await marksOf("u1", GROUP, "toString")).toEqual([5]);
    expect(await marksOf("u1", GROUP, "__proto__")).toEqual([6]);
  });

  it("REST: a map holding only __proto__ is applied, and an invalid mark on it is reported for that ID", async () => {
    const ok = await postJson(setConvMarkUrl(server.url, publicParams()), '{"FromUserId":"op","ConvMarkInfoList":[{"UserId":"u2","SetMarkC2c":{"__proto__":{"MarkContent":7}},"Action":true}]}');
    expect(ok.json).toMatchObject({ Code: 0, FailList: [] });
    expect(await marksOf("u2", DIRECT, "__proto__")).toEqual([7]);
    const bad = await postJson(setConvMarkUrl(server.url, publicParams()), '{"FromUserId":"op","ConvMarkInfoList":[{"UserId":"u2","SetMarkC2c":{"__proto__":{"MarkContent":99}},"Action":true}]}');
    expect(bad.json).toMatchObject({ FailList: [{ UserId: "u2", FailList: [{ ConvId: "__proto__", ConvType: 0 }] }] });
    const missing = await postJson(setConvMarkUrl(server.url, publicParams()), '{"FromUserId":"op","ConvMarkInfoList":[{"UserId":"u2","SetMarkC2c":{"__proto__":{}},"Action":true}]}');
    expect(missing.json).toMatchObject({ Code: 660000002 });
    expect(String(missing.json.Message)).toContain('["__proto__"].MarkContent is required');
  });

  it("Connect JSON and Connect binary (protobuf, as gRPC sends it) keep the __proto__ entry", async () => {
    const url = `${server.url}/vendor.zego.v1.ZimServerService/SetConvMark`;
    const json = await postJson(url, '{"FromUserId":"op","ConvMarkInfoList":[{"UserId":"u3","SetMarkC2c":{"__proto__":{"MarkContent":8}},"Action":true}]}', {
      "content-type": "application/json",
      ...lowerCased(publicParams()),
    });
    expect(json.status).toBe(200);
    expect(await marksOf("u3", DIRECT, "__proto__")).toEqual([8]);

    // protobuf-es cannot even build such a message, so encode a same-length key and patch the bytes.
    const placeholder = "PROTOxKEY";
    const bytes = Buffer.from(
      toBinary(SetConvMarkRequestSchema, create(SetConvMarkRequestSchema, { fromUserId: "op", convMarkInfoList: [{ userId: "u4", setMarkGroup: { [placeholder]: { markContent: 9 } }, action: true }] })),
    );
    const at = bytes.indexOf(placeholder);
    expect(at).toBeGreaterThan(0);
    bytes.write("__proto__", at, "latin1");
    const res = await fetch(url, { method: "POST", body: bytes, headers: { "content-type": "application/proto", ...lowerCased(publicParams()) } });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(await marksOf("u4", GROUP, "__proto__")).toEqual([9]);
  });
});

describe("ZEGO replay cache (item 7)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ZEGO_APP_ID: String(APP_ID), ZEGO_SERVER_SECRET: SECRET, ZEGO_RATE_LIMIT_PER_SECOND: "1" });
  });
  afterAll(async () => {
    await server?.close();
  });
  const body = (owner: string, mark: number) => `{"FromUserId":"op","ConvMarkInfoList":[{"UserId":"${owner}","SetMarkC2c":{"peer":{"MarkContent":${mark}}},"Action":true}]}`;
  /** Waits until a fresh call is admitted again (the limiter's 1 s window has passed). */
  async function nextWindow(): Promise<void> {
    await new Promise((r) => setTimeout(r, 1100));
  }

  it("a call refused by the rate limiter does not use up its nonce: the same signed call is accepted later", async () => {
    await nextWindow();
    const first = await postJson(setConvMarkUrl(server.url, publicParams()), body("r1", 1));
    expect(first.json.Code).toBe(0);
    const params = publicParams();
    const refused = await postJson(setConvMarkUrl(server.url, params), body("r1", 2));
    expect(refused.json.Code).toBe(660300005);
    await nextWindow();
    const retried = await postJson(setConvMarkUrl(server.url, params), body("r1", 2));
    expect(retried.json.Code).toBe(0);
    const again = await postJson(setConvMarkUrl(server.url, params), body("r1", 3));
    expect(again.json.Code).toBe(100000004);
  });

  it("a thousand refused signed calls do not flush an accepted call's nonce", async () => {
    await nextWindow();
    const captured = publicParams();
    expect((await postJson(setConvMarkUrl(server.url, captured), body("r2", 4))).json.Code).toBe(0);
    // Flood with correctly signed calls, each with a new nonce; all are over the limit.
    let refused = 0;
    const worker = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const r = await postJson(setConvMarkUrl(server.url, publicParams()), body("flood", 5));
        if (r.json.Code === 660300005) refused++;
      }
    };
    await Promise.all(Array.from({ length: 4 }, () => worker(300)));
    expect(refused).toBeGreaterThan(1150);
    await nextWindow();
    const replay = await postJson(setConvMarkUrl(server.url, captured), body("r2", 4));
    expect(replay.json.Code).toBe(100000004);
  });
});
