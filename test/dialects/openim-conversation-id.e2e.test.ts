// The real server on loopback: set_conversations takes conversationID as OpenIM v3.8.3 does (stored
// verbatim, never checked, the owner's conversation found by it). Where it parses (si_<a>_<b>,
// sg_<group>) it decides the convmark key; where it does not, conversationType and userID/groupID do.
// Every OpenIM read prints the ID as it was sent and finds the conversation by it.
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationType } from "../../gen/convmark/v1/mark_service_pb.js";
import { startTestServer, type TestServer } from "../support/harness.js";
import { APP_ID, SECRET, publicParams, setConvMarkUrl } from "./zego-fixtures.js";

const TLSSigAPIv2 = createRequire(import.meta.url)("tls-sig-api-v2") as {
  Api: new (sdkappid: number, key: string) => { genUserSig(identifier: string, expire: number): string };
};
const TENCENT_APPID = 1400000003;
const TENCENT_KEY = "openim-conversation-id-test-key";

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const r = await fetch(url, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", ...headers }, signal: AbortSignal.timeout(10_000) });
  expect(r.status).toBe(200);
  return (await r.json()) as Record<string, unknown>;
}

describe("OpenIM conversationID: stored verbatim, printed and found as sent", () => {
  let server: TestServer;
  let token: string;
  const api = (path: string, body: unknown) => post(`${server.url}${path}`, body, { operationID: "1", token });
  const set = (conversation: object, userIDs: string[]) => api("/conversation/set_conversations", { userIDs, conversation });
  const read = (ownerUserID: string, conversationID: string) => api("/conversation/get_conversation", { ownerUserID, conversationID });
  const idsOf = (r: Record<string, unknown>) => ((r.data as { conversations?: { conversationID: string }[] }).conversations ?? []).map((c) => c.conversationID);
  const stored = async (owner: string, type: ConversationType, id: string) =>
    (await server.marks.batchGetConversations({ keys: [{ ownerUserId: owner, type, conversationId: id }] })).conversations[0];
  let tencentApi: (api: string, body: unknown) => Promise<Record<string, unknown>>;

  beforeAll(async () => {
    server = await startTestServer({
      OPENIM_SECRET: "openIM123",
      ZEGO_APP_ID: String(APP_ID),
      ZEGO_SERVER_SECRET: SECRET,
      TENCENT_SDKAPPID: String(TENCENT_APPID),
      TENCENT_SECRET_KEY: TENCENT_KEY,
    });
    const r = await post(`${server.url}/auth/get_admin_token`, { secret: "openIM123", userID: "imAdmin" }, { operationID: "1" });
    token = (r.data as { token: string }).token;
    const sig = new TLSSigAPIv2.Api(TENCENT_APPID, TENCENT_KEY).genUserSig("administrator", 3600);
    tencentApi = (name, body) =>
      post(`${server.url}/v4/recentcontact/${name}?sdkappid=${TENCENT_APPID}&identifier=administrator&usersig=${encodeURIComponent(sig)}&random=7&contenttype=json`, body);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("a custom single-chat ID: keyed by (owner, userID), stored verbatim, every read prints it and finds it by it", async () => {
    expect(await set({ conversationID: "my-chat-7", conversationType: 1, userID: "p7", isPinned: true, recvMsgOpt: 2, ex: "e7" }, ["o7"])).toEqual({ errCode: 0, errMsg: "", errDlt: "" });
    const rec = await stored("o7", ConversationType.DIRECT, "p7");
    expect(rec?.vendorConversationId).toBe("my-chat-7");
    expect(rec?.settings).toMatchObject({ pinned: true, ex: "e7" });
    const conversation = { ownerUserID: "o7", conversationID: "my-chat-7", conversationType: 1, userID: "p7", groupID: "", isPinned: true, recvMsgOpt: 2, ex: "e7" };
    expect(await read("o7", "my-chat-7")).toMatchObject({ errCode: 0, data: { conversation } });
    // The derived ID names another OpenIM conversation, which does not exist.
    expect(await read("o7", "si_o7_p7")).toMatchObject({ errCode: 1004 });
    // IDs convmark could not store (too long, or a key too long to hold) are simply not found.
    expect(await read("o7", "x".repeat(2000))).toMatchObject({ errCode: 1004 });
    expect(await read("o7", `si_o7_${"p".repeat(300)}`)).toMatchObject({ errCode: 1004 });
    expect(idsOf(await api("/conversation/get_conversations", { ownerUserID: "o7", conversationIDs: ["si_o7_p7", "my-chat-7", "nope"] }))).toEqual(["my-chat-7"]);
    expect(idsOf(await api("/conversation/get_all_conversations", { ownerUserID: "o7" }))).toEqual(["my-chat-7"]);
    expect(await api("/conversation/get_owner_conversation", { userID: "o7", pagination: { pageNumber: 1, showNumber: 10 } })).toMatchObject({
      data: { total: 1, conversations: [conversation] },
    });
    expect(await api("/conversation/get_pinned_conversation_ids", { userID: "o7" })).toMatchObject({ data: { conversationIDs: ["my-chat-7"] } });
    expect(await api("/conversation/get_not_notify_conversation_ids", { userID: "o7" })).toMatchObject({ data: { conversationIDs: ["my-chat-7"] } });
    expect(await api("/conversation/get_full_conversation_ids", { userID: "o7", idHash: 0 })).toMatchObject({ data: { conversationIDs: ["my-chat-7"] } });
    const inc = await api("/conversation/get_incremental_conversations", { userID: "o7", versionID: "", version: 0 });
    expect(inc).toMatchObject({ errCode: 0, data: { full: true, insert: [{ conversationID: "my-chat-7" }] } });
    const cursor = (inc.data as { versionID: string }).versionID;

    // A set under the same ID updates that conversation; a delete by it removes it, and the deletion
    // in the incremental sync names it as sent.
    expect(await set({ conversationID: "my-chat-7", conversationType: 1, userID: "p7", attachedInfo: "a7" }, ["o7"])).toMatchObject({ errCode: 0 });
    expect((await stored("o7", ConversationType.DIRECT, "p7"))?.settings).toMatchObject({ pinned: true, attachedInfo: "a7" });
    expect(await api("/conversation/delete_conversations", { ownerUserID: "o7", conversationIDs: ["my-chat-7"] })).toEqual({ errCode: 0, errMsg: "", errDlt: "" });
    expect(await stored("o7", ConversationType.DIRECT, "p7")).toMatchObject({ version: 0n });
    const after = await api("/conversation/get_incremental_conversations", { userID: "o7", versionID: cursor, version: 0 });
    expect(after).toMatchObject({ errCode: 0, data: { full: false, delete: ["my-chat-7"] } });
  });

  it("si_ in either order names the same chat for both participants, each owner keeping the ID as sent", async () => {
    const r = await set({ conversationID: "si_6965946400_4365007572", conversationType: 1, userID: "4365007572", isPinned: true }, ["6965946400", "4365007572", "111"]);
    expect(r).toMatchObject({ errCode: 0 });
    expect(await stored("6965946400", ConversationType.DIRECT, "4365007572")).toMatchObject({ vendorConversationId: "si_6965946400_4365007572", settings: { pinned: true } });
    expect(await stored("4365007572", ConversationType.DIRECT, "6965946400")).toMatchObject({ vendorConversationId: "si_6965946400_4365007572", settings: { pinned: true } });
    expect(await stored("111", ConversationType.DIRECT, "4365007572")).toMatchObject({ vendorConversationId: "si_6965946400_4365007572" });
    expect(await read("6965946400", "si_6965946400_4365007572")).toMatchObject({
      errCode: 0,
      data: { conversation: { conversationID: "si_6965946400_4365007572", userID: "4365007572" } },
    });
    expect(await read("6965946400", "si_4365007572_6965946400")).toMatchObject({ errCode: 1004 });
  });

  it("sg_<group> decides the group; a custom group ID falls back to groupID and reads back as sent", async () => {
    expect(await set({ conversationID: "sg_parsed", conversationType: 3, groupID: "named", isPinned: true }, ["g1"])).toMatchObject({ errCode: 0 });
    expect((await stored("g1", ConversationType.GROUP, "parsed"))?.settings).toMatchObject({ pinned: true });
    expect((await stored("g1", ConversationType.GROUP, "named"))?.version).toBe(0n);
    expect(await set({ conversationID: "team-room", conversationType: 3, groupID: "named", recvMsgOpt: 2 }, ["g1"])).toMatchObject({ errCode: 0 });
    expect(await read("g1", "team-room")).toMatchObject({ errCode: 0, data: { conversation: { conversationID: "team-room", groupID: "named", conversationType: 3, recvMsgOpt: 2 } } });
    expect(await read("g1", "sg_named")).toMatchObject({ errCode: 1004 });
    expect(await read("g1", "sg_parsed")).toMatchObject({ errCode: 0, data: { conversation: { conversationID: "sg_parsed", groupID: "parsed" } } });
  });

  it("an ID already stored for an owner is that conversation, whatever type and userID the request names (OpenIM updates what FindConversations finds)", async () => {
    expect(await set({ conversationID: "shared-id", conversationType: 1, userID: "peerA", isPinned: true }, ["o9"])).toMatchObject({ errCode: 0 });
    expect(await set({ conversationID: "shared-id", conversationType: 3, groupID: "grp", ex: "x" }, ["o9", "o10"])).toMatchObject({ errCode: 0 });
    // o9 had it: its chat with peerA is updated; o10 had none: the request's group gets it.
    expect(await stored("o9", ConversationType.DIRECT, "peerA")).toMatchObject({ vendorConversationId: "shared-id", settings: { pinned: true, ex: "x" } });
    expect((await stored("o9", ConversationType.GROUP, "grp"))?.version).toBe(0n);
    expect(await stored("o10", ConversationType.GROUP, "grp")).toMatchObject({ vendorConversationId: "shared-id", settings: { ex: "x" } });
  });

  it("two IDs for one convmark key: the record keeps the latest one sent; the earlier ID is no longer found", async () => {
    expect(await set({ conversationID: "first-id", conversationType: 1, userID: "pp", isPinned: true }, ["oo"])).toMatchObject({ errCode: 0 });
    expect(await set({ conversationID: "second-id", conversationType: 1, userID: "pp", ex: "2" }, ["oo"])).toMatchObject({ errCode: 0 });
    expect(await stored("oo", ConversationType.DIRECT, "pp")).toMatchObject({ vendorConversationId: "second-id", settings: { pinned: true, ex: "2" } });
    expect(await read("oo", "second-id")).toMatchObject({ errCode: 0, data: { conversation: { conversationID: "second-id", isPinned: true, ex: "2" } } });
    expect(await read("oo", "first-id")).toMatchObject({ errCode: 1004 });
  });

  it("an empty conversationID is not refused; the conversation then reads under the derived ID", async () => {
    expect(await set({ conversationID: "", conversationType: 1, userID: "p8", isPinned: true }, ["o8"])).toMatchObject({ errCode: 0 });
    expect(await stored("o8", ConversationType.DIRECT, "p8")).toMatchObject({ vendorConversationId: "", settings: { pinned: true } });
    expect(await read("o8", "si_o8_p8")).toMatchObject({ errCode: 0, data: { conversation: { conversationID: "si_o8_p8" } } });
  });

  it("cross-dialect: a custom-ID conversation is the same record for ZEGO, Tencent and MarkService; theirs read under the derived ID", async () => {
    expect(await set({ conversationID: "vip-line", conversationType: 1, userID: "zz", isPinned: true }, ["xx"])).toMatchObject({ errCode: 0 });
    const zego = await post(setConvMarkUrl(server.url, publicParams(), "QueryConversationList"), { FromUserId: "xx" });
    expect(zego).toMatchObject({ Code: 0, ConvList: [{ ConvId: "zz", IsPinned: true }] });
    // Tencent marks it: OpenIM still finds it by its own ID, and MarkService reads the ID too.
    expect(
      await tencentApi("mark_contact", { From_Account: "xx", MarkItem: [{ OptType: 1, ContactItem: { Type: 1, To_Account: "zz" }, SetMark: [3] }] }),
    ).toMatchObject({ ActionStatus: "OK", ResultItem: [{ ResultCode: 0 }] });
    expect(await read("xx", "vip-line")).toMatchObject({ errCode: 0, data: { conversation: { conversationID: "vip-line", isPinned: true } } });
    expect(await stored("xx", ConversationType.DIRECT, "zz")).toMatchObject({ marks: [3], vendorConversationId: "vip-line" });
    // A conversation only Tencent wrote has no stored ID: OpenIM prints and finds the derived one.
    await tencentApi("mark_contact", { From_Account: "xx", MarkItem: [{ OptType: 1, ContactItem: { Type: 1, To_Account: "aa" }, SetMark: [1] }] });
    expect(await read("xx", "si_aa_xx")).toMatchObject({ errCode: 0, data: { conversation: { conversationID: "si_aa_xx", userID: "aa" } } });
    expect(idsOf(await api("/conversation/get_all_conversations", { ownerUserID: "xx" })).sort()).toEqual(["si_aa_xx", "vip-line"]);
  });

  it("the feed carries each set_conversations change with its conversationID (what a 1300 bridge sends)", async () => {
    // Every owner's feed from its current end (a trusted, in-process-equivalent caller on loopback).
    let cursor = "";
    for (;;) {
      const page = await server.marks.syncConversations({ ownerUserId: "", cursor, pageSize: 1000 });
      cursor = page.nextCursor;
      if (!page.hasMore) break;
    }
    expect(await set({ conversationID: "si_bridge_b2", conversationType: 1, userID: "b2", isPinned: true }, ["bridge", "b2"])).toMatchObject({ errCode: 0 });
    const page = await server.marks.syncConversations({ ownerUserId: "", cursor, pageSize: 1000 });
    const changes = page.changes.map((ch) => [ch.conversation!.key!.ownerUserId, ch.conversation!.vendorConversationId, ch.deleted]);
    expect(changes).toEqual([
      ["bridge", "si_bridge_b2", false],
      ["b2", "si_bridge_b2", false],
    ]);
    await api("/conversation/delete_conversations", { ownerUserID: "b2", conversationIDs: ["si_bridge_b2"] });
    const del = await server.marks.syncConversations({ ownerUserId: "", cursor: page.nextCursor, pageSize: 1000 });
    expect(del.changes.map((ch) => [ch.conversation!.key!.ownerUserId, ch.conversation!.vendorConversationId, ch.deleted])).toEqual([["b2", "si_bridge_b2", true]]);
  });
});
