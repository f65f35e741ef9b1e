// ZEGO's QueryConversationList, ConvPinned and SilenceConvNotification end to end: the real server,
// ZEGO's signature made the documented way, the documented example requests sent verbatim.
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DirectoryService } from "../../gen/convmark/v1/directory_service_pb.js";
import { ConversationType, ReceiveOption } from "../../gen/convmark/v1/mark_service_pb.js";
import { startTestServer, type TestServer } from "../support/harness.js";
import { APP_ID, SECRET, postJson, publicParams, setConvMarkUrl } from "./zego-fixtures.js";

const ENV = { ZEGO_APP_ID: String(APP_ID), ZEGO_SERVER_SECRET: SECRET, ZEGO_RATE_LIMIT_PER_SECOND: "1000" };
type Json = Record<string, unknown>;

// ZEGO's ConvPinned sample request body, verbatim.
const CONV_PINNED_EXAMPLE = `{
    "FromUserId": "user0",
    "ConvList": [
        {
            "ConvId": "user1",
            "ConvType": 0
        },
        {
            "ConvId": "user2",
            "ConvType": 0
        }
    ],
    "PinnedType": 1
}`;

describe("ZEGO conversation actions", () => {
  let server: TestServer;
  const call = async (action: string, body: string): Promise<Json> => {
    const r = await postJson(setConvMarkUrl(server.url, publicParams(), action), body);
    expect(r.status).toBe(200);
    return r.json as Json;
  };
  const get = async (owner: string, type: ConversationType, id: string) =>
    (await server.marks.batchGetConversations({ keys: [{ ownerUserId: owner, type, conversationId: id }] })).conversations[0]!;

  beforeAll(async () => {
    server = await startTestServer(ENV);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("ConvPinned: the documented example pins both conversations", async () => {
    const r = await call("ConvPinned", CONV_PINNED_EXAMPLE);
    expect(r).toEqual({ Code: 0, Message: "success", RequestId: expect.any(String) as unknown, ErrorList: [] });
    expect((await get("user0", ConversationType.DIRECT, "user1")).settings?.pinned).toBe(true);
    expect((await get("user0", ConversationType.DIRECT, "user2")).settings?.pinned).toBe(true);
    await call("ConvPinned", CONV_PINNED_EXAMPLE.replace('"PinnedType": 1', '"PinnedType": 0'));
    expect((await get("user0", ConversationType.DIRECT, "user2")).settings?.pinned).toBe(false);
  });

  it("SilenceConvNotification mutes (receive without notification) and unmutes", async () => {
    const body = '{"FromUserId":"user0","ConvType":2,"ConvIds":["group1","group2"],"Enable":true}';
    expect(await call("SilenceConvNotification", body)).toMatchObject({ Code: 0, ErrorList: [] });
    expect((await get("user0", ConversationType.GROUP, "group1")).settings?.receiveOption).toBe(ReceiveOption.RECEIVE_SILENTLY);
    await call("SilenceConvNotification", body.replace("true", "false"));
    expect((await get("user0", ConversationType.GROUP, "group2")).settings?.receiveOption).toBe(ReceiveOption.RECEIVE);
  });

  it("QueryConversationList: pinned first, Limit/Next/TotalCount, and writes from other entry points show", async () => {
    const updates = [];
    for (let i = 0; i < 7; i++) updates.push({ key: { ownerUserId: "lister", type: ConversationType.DIRECT, conversationId: `p${i}` }, setMarks: [i + 1] });
    await server.marks.updateConversations({ updates });
    await call("ConvPinned", '{"FromUserId":"lister","ConvList":[{"ConvId":"p0","ConvType":0}],"PinnedType":1}');
    const first = await call("QueryConversationList", '{"FromUserId":"lister","Limit":5,"Next":0}');
    expect(first).toMatchObject({ Code: 0, TotalCount: 7, Next: 5 });
    const list = first.ConvList as Json[];
    expect(list).toHaveLength(5);
    expect(list[0]).toMatchObject({ ConvId: "p0", ConvType: 0, IsPinned: true, NotificationStatus: 1, Marks: [1] });
    const second = await call("QueryConversationList", '{"FromUserId":"lister","Limit":5,"Next":5}');
    expect(second).toMatchObject({ Next: 0, TotalCount: 7 });
    expect(new Set([...list, ...(second.ConvList as Json[])].map((c) => c.ConvId)).size).toBe(7);
    // Limit <= 0 means 100.
    expect((await call("QueryConversationList", '{"FromUserId":"lister","Limit":0}')).ConvList as Json[]).toHaveLength(7);
  });

  it("bad input: ZEGO's envelope and codes, nothing applied", async () => {
    const many = JSON.stringify({ FromUserId: "bad", ConvList: Array.from({ length: 21 }, (_, i) => ({ ConvId: `c${i}`, ConvType: 0 })), PinnedType: 1 });
    expect(await call("ConvPinned", many)).toEqual({ Code: 660000002, Message: expect.stringContaining("20") as unknown, RequestId: expect.any(String) as unknown });
    expect((await get("bad", ConversationType.DIRECT, "c0")).version).toBe(0n);
    expect(await call("ConvPinned", '{"FromUserId":"bad","ConvList":[{"ConvId":"x","ConvType":0}],"PinnedType":7}')).toMatchObject({ Code: 660000002 });
    expect(await call("SilenceConvNotification", '{"FromUserId":"bad","ConvType":1,"ConvIds":["x"],"Enable":true}')).toMatchObject({ Code: 660000002 });
    expect(await call("SilenceConvNotification", JSON.stringify({ FromUserId: "bad", ConvType: 0, ConvIds: Array.from({ length: 11 }, (_, i) => `x${i}`), Enable: true }))).toMatchObject({ Code: 660000002 });
    expect(await call("QueryConversationList", '{"FromUserId":"","Limit":5}')).toMatchObject({ Code: 660000002 });
    expect(await call("QueryConversationList", '{"FromUserId":"a","Limit":"many"}')).toMatchObject({ Code: 660000002 });
    expect(await call("ConvPinned", "{oops")).toMatchObject({ Code: 660000002 });
    // A conversation that cannot be used fails alone in ErrorList; the others apply.
    const mixed = await call("ConvPinned", '{"FromUserId":"bad","ConvList":[{"ConvId":"ok","ConvType":0},{"ConvId":"x","ConvType":5}],"PinnedType":1}');
    expect(mixed).toMatchObject({ Code: 0, ErrorList: [{ ConvId: "x", ConvType: 5, SubCode: 660000002 }] });
    expect((await get("bad", ConversationType.DIRECT, "ok")).settings?.pinned).toBe(true);
    // Auth is ZEGO's.
    const forged = await postJson(setConvMarkUrl(server.url, publicParams({ secret: "nope" }), "QueryConversationList"), '{"FromUserId":"lister"}');
    expect(forged.json).toMatchObject({ Code: 100000005 });
  });

  it("QueryConversationList and DeleteConv: the documented sample requests, verbatim", async () => {
    // zegocloud.com/docs/zim-server/conversation/query-conversation-list, "Sample request".
    await call("ConvPinned", '{"FromUserId":"u1","ConvList":[{"ConvId":"u2","ConvType":0}],"PinnedType":1}');
    const q = await call("QueryConversationList", '{ "FromUserId": "u1", "Limit": 10, "Next": 0 }');
    expect(q).toMatchObject({ Code: 0, Message: "success", Next: 0, TotalCount: 1, ConvList: [{ ConvId: "u2", ConvType: 0, IsPinned: true }] });
    // zegocloud.com/docs/zim-server/conversation/delete-a-conversation, "Sample request".
    await call("ConvPinned", '{"FromUserId":"userA","ConvList":[{"ConvId":"userB","ConvType":0}],"PinnedType":1}');
    expect((await get("userA", ConversationType.DIRECT, "userB")).version).toBeGreaterThan(0n);
    const body = `{
    "ConvId": "userB",
    "ConvType": 0,
    "FromUserId": "userA"   
}`;
    expect(await call("DeleteConv", body)).toEqual({ Code: 0, Message: "success", RequestId: expect.any(String) as unknown });
    expect((await get("userA", ConversationType.DIRECT, "userB")).version).toBe(0n);
  });

  it("DeleteConv removes the conversation for every entry point", async () => {
    await call("ConvPinned", '{"FromUserId":"deleter","ConvList":[{"ConvId":"gone","ConvType":2}],"PinnedType":1}');
    expect((await get("deleter", ConversationType.GROUP, "gone")).version).toBeGreaterThan(0n);
    const r = await call("DeleteConv", '{"FromUserId":"deleter","ConvId":"gone","ConvType":2}');
    expect(r).toEqual({ Code: 0, Message: "success", RequestId: expect.any(String) as unknown });
    expect((await get("deleter", ConversationType.GROUP, "gone")).version).toBe(0n);
    expect(await call("QueryConversationList", '{"FromUserId":"deleter"}')).toMatchObject({ TotalCount: 0, ConvList: [] });
    expect(await call("DeleteConv", '{"FromUserId":"deleter","ConvId":"gone","ConvType":1}')).toMatchObject({ Code: 660000002 });
    expect(await call("DeleteConv", '{"FromUserId":"deleter","ConvId":"","ConvType":0}')).toMatchObject({ Code: 660000002 });
  });

  it("Connect JSON on ZimServerService/QueryConversationList with the public parameters as metadata", async () => {
    const p = Object.fromEntries(Object.entries(publicParams()).map(([k, v]) => [k.toLowerCase(), v]));
    const r = await fetch(`${server.url}/vendor.zego.v1.ZimServerService/QueryConversationList`, {
      method: "POST",
      headers: { "content-type": "application/json", ...p },
      body: '{"FromUserId":"lister","Limit":2}',
    });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ Code: 0, TotalCount: "7", Next: "2" });
  });
});

describe("ZEGO conversation actions, strict directory", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...ENV, CONVMARK_STRICT_DIRECTORY: "1" });
    const dir = createClient(DirectoryService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    await dir.registerUsers({ userIds: ["user0", "user1"] });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("an unregistered FromUserId gets 660500002; an unregistered peer fails in ErrorList", async () => {
    const r = await postJson(setConvMarkUrl(server.url, publicParams(), "ConvPinned"), CONV_PINNED_EXAMPLE.replace('"user0"', '"ghost"'));
    expect(r.json).toMatchObject({ Code: 660500002 });
    const q = await postJson(setConvMarkUrl(server.url, publicParams(), "QueryConversationList"), '{"FromUserId":"ghost"}');
    expect(q.json).toMatchObject({ Code: 660500002 });
    const ok = await postJson(setConvMarkUrl(server.url, publicParams(), "ConvPinned"), CONV_PINNED_EXAMPLE);
    expect(ok.json).toMatchObject({ Code: 0, ErrorList: [{ ConvId: "user2", ConvType: 0 }] });
  });
});
