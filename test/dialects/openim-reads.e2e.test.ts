// OpenIM's auth and conversation reads end to end: the real server, tokens obtained the OpenIM way
// (get_admin_token, then get_user_token), the documented example requests sent verbatim.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationType } from "../../gen/convmark/v1/mark_service_pb.js";
import { startTestServer, type TestServer } from "../support/harness.js";
import { SEED_BODY } from "../support/openim-seed.js";

type Json = Record<string, unknown>;


describe("OpenIM auth and conversation reads", () => {
  let server: TestServer;
  let admin: string;
  const post = async (path: string, body: string, token?: string): Promise<{ status: number; json: Json }> => {
    const headers: Record<string, string> = { "content-type": "application/json", operationID: String(Date.now()) };
    if (token) headers.token = token;
    const r = await fetch(`${server.url}${path}`, { method: "POST", body, headers, signal: AbortSignal.timeout(10_000) });
    return { status: r.status, json: (await r.json()) as Json };
  };
  const userToken = async (userID: string, platformID = 1) => {
    const r = await post("/auth/get_user_token", JSON.stringify({ platformID, userID }), admin);
    expect(r.json).toMatchObject({ errCode: 0, data: { expireTimeSeconds: 7_776_000 } });
    return (r.json.data as { token: string }).token;
  };

  beforeAll(async () => {
    server = await startTestServer({ OPENIM_SECRET: "openIM123" });
    const r = await post("/auth/get_admin_token", '{"secret":"openIM123","userID":"imAdmin"}');
    admin = (r.json.data as { token: string }).token;
    expect((await post("/conversation/set_conversations", SEED_BODY, admin)).json.errCode).toBe(0);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("get_owner_conversation: the documented request shape, 1-based pages, total, every field printed", async () => {
    await server.marks.updateConversations({
      updates: [
        { key: { ownerUserId: "1008432211", type: ConversationType.GROUP, conversationId: "1012900607" }, settings: { pinned: true } },
        { key: { ownerUserId: "1008432211", type: ConversationType.DIRECT, conversationId: "42" }, settings: { receiveOption: 3 } },
      ],
    });
    const r = await post("/conversation/get_owner_conversation", '{\n"userID": "1008432211",\n"pagination": {\n"pageNumber": 1,\n"showNumber": 20\n}\n}', admin);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ errCode: 0, errMsg: "", errDlt: "", data: { total: 2 } });
    const convs = (r.json.data as { conversations: Json[] }).conversations;
    expect(convs.find((c) => c.conversationID === "sg_1012900607")).toEqual({
      ownerUserID: "1008432211",
      conversationID: "sg_1012900607",
      recvMsgOpt: 0,
      conversationType: 3,
      userID: "",
      groupID: "1012900607",
      isPinned: true,
      attachedInfo: "",
      isPrivateChat: false,
      groupAtType: 0,
      ex: "",
      burnDuration: 0,
      minSeq: 0,
      maxSeq: 0,
      msgDestructTime: 0,
      latestMsgDestructTime: 0,
      isMsgDestruct: false,
    });
    const page2 = await post("/conversation/get_owner_conversation", '{"userID":"1008432211","pagination":{"pageNumber":2,"showNumber":1}}', admin);
    expect((page2.json.data as { total: number; conversations: Json[] }).conversations).toHaveLength(1);
    expect(await post("/conversation/get_owner_conversation", '{"userID":"1008432211","pagination":{"pageNumber":0,"showNumber":1}}', admin)).toMatchObject({ json: { errCode: 1001 } });

    const pinned = await post("/conversation/get_pinned_conversation_ids", '{"userID":"1008432211"}', admin);
    expect(pinned.json).toMatchObject({ errCode: 0, data: { conversationIDs: ["sg_1012900607"] } });
    const quiet = await post("/conversation/get_not_notify_conversation_ids", '{"userID":"1008432211"}', admin);
    expect(quiet.json).toMatchObject({ errCode: 0, data: { conversationIDs: ["si_1008432211_42"] } });
  });

  it("get_conversation / get_conversations / get_all_conversations read the seed's write; 1004 when missing", async () => {
    const one = await post("/conversation/get_conversation", '{"conversationID":"si_4365007572_6965946400","ownerUserID":"6965946400"}', admin);
    expect(one.json).toMatchObject({
      errCode: 0,
      data: { conversation: { ownerUserID: "6965946400", conversationID: "si_4365007572_6965946400", conversationType: 1, userID: "4365007572", attachedInfo: "attached", isPrivateChat: true, burnDuration: 30 } },
    });
    const missing = await post("/conversation/get_conversation", '{"conversationID":"si_1_6965946400","ownerUserID":"6965946400"}', admin);
    expect(missing.json).toMatchObject({ errCode: 1004, errMsg: "RecordNotFoundError" });
    expect(missing.json.data).toBeUndefined();
    const many = await post("/conversation/get_conversations", '{"ownerUserID":"6965946400","conversationIDs":["si_4365007572_6965946400","si_x_6965946400","junk"]}', admin);
    expect((many.json.data as { conversations: Json[] }).conversations.map((c) => c.conversationID)).toEqual(["si_4365007572_6965946400"]);
    const all = await post("/conversation/get_all_conversations", '{"ownerUserID":"6965946400"}', admin);
    expect((all.json.data as { conversations: Json[] }).conversations).toHaveLength(1);
  });

  it("JSON names match case-insensitively, as Go's encoding/json does", async () => {
    const r = await post("/conversation/get_conversation", '{"conversationId":"si_4365007572_6965946400","ownerUserId":"6965946400"}', admin);
    expect(r.json).toMatchObject({ errCode: 0, data: { conversation: { burnDuration: 30 } } });
  });

  it("owner-or-admin access: a user token reads and sets its own conversations only", async () => {
    const own = await userToken("6965946400");
    expect((await post("/conversation/get_all_conversations", '{"ownerUserID":"6965946400"}', own)).json.errCode).toBe(0);
    expect((await post("/conversation/get_all_conversations", '{"ownerUserID":"1008432211"}', own)).json).toMatchObject({ errCode: 1002, errMsg: "NoPermissionError" });
    expect((await post("/conversation/set_conversations", SEED_BODY.replace('"isPinned": false', '"isPinned": true'), own)).json.errCode).toBe(0);
    const { conversation } = await server.marks.getConversation({ key: { ownerUserId: "6965946400", type: ConversationType.DIRECT, conversationId: "4365007572" } });
    expect(conversation?.settings?.pinned).toBe(true);
    // get_user_token needs an admin token; never for an admin or platform 10.
    expect((await post("/auth/get_user_token", '{"platformID":1,"userID":"x"}', own)).json.errCode).toBe(1002);
    expect((await post("/auth/get_user_token", '{"platformID":10,"userID":"x"}', admin)).json.errCode).toBe(1002);
    expect((await post("/auth/get_user_token", '{"platformID":1,"userID":"imAdmin"}', admin)).json.errCode).toBe(1002);
  });

  it("parse_token and force_logout: a kicked token gets 1506, a new one works", async () => {
    const t = await userToken("kickme", 2);
    const parsed = await post("/auth/parse_token", JSON.stringify({ token: t }), admin);
    expect(parsed.json).toMatchObject({ errCode: 0, data: { userID: "kickme", platformID: 2 } });
    expect((parsed.json.data as { expireTimeSeconds: number }).expireTimeSeconds).toBeGreaterThan(Date.now() / 1000);
    const out = await post("/auth/force_logout", '{"platformID":2,"userID":"kickme"}', admin);
    expect(out.json).toEqual({ errCode: 0, errMsg: "", errDlt: "" });
    expect((await post("/auth/parse_token", JSON.stringify({ token: t }), admin)).json).toMatchObject({ errCode: 1506, errMsg: "TokenKickedError" });
    expect((await post("/conversation/get_all_conversations", '{"ownerUserID":"kickme"}', t)).json.errCode).toBe(1506);
    // A token issued in a later second is valid again.
    await new Promise((r) => setTimeout(r, 1100));
    const fresh = await userToken("kickme", 2);
    expect((await post("/conversation/get_all_conversations", '{"ownerUserID":"kickme"}', fresh)).json.errCode).toBe(0);
    expect((await post("/auth/force_logout", '{"platformID":2,"userID":"kickme"}', fresh)).json.errCode).toBe(1002);
  });

  it("bad input and unknown APIs answer in OpenIM's envelope, never 500", async () => {
    expect(await post("/conversation/get_conversation", "{nope", admin)).toMatchObject({ status: 200, json: { errCode: 1001 } });
    expect(await post("/conversation/get_conversations", '{"ownerUserID":"a","conversationIDs":"x"}', admin)).toMatchObject({ json: { errCode: 1001 } });
    expect(await post("/conversation/get_pinned_conversation_ids", "{}", admin)).toMatchObject({ json: { errCode: 1001 } });
    expect(await post("/conversation/get_pinned_conversation_ids", '{"userID":"a"}')).toMatchObject({ json: { errCode: 1001 } });
    expect(await post("/conversation/get_pinned_conversation_ids", '{"userID":"a"}', "garbage")).toMatchObject({ json: { errCode: 1503 } });
    expect(await post("/auth/no_such", "{}", admin)).toMatchObject({ status: 404, json: { errCode: 1004 } });
    expect(await post("/conversation/get_incremental_conversations_v9", "{}", admin)).toMatchObject({ status: 404, json: { errCode: 1004 } });
  });

  it("get_incremental_conversations on the feed, delete_conversations removes everywhere", async () => {
    const owner = "inc_owner";
    await server.marks.updateConversations({ updates: [{ key: { ownerUserId: owner, type: ConversationType.DIRECT, conversationId: "p1" }, settings: { pinned: true } }] });
    const first = await post("/conversation/get_incremental_conversations", JSON.stringify({ userID: owner, versionID: "", version: 0 }), admin);
    expect(first.json).toMatchObject({ errCode: 0, data: { full: true, delete: [], insert: [{ conversationID: "si_inc_owner_p1", isPinned: true }], update: [] } });
    const d1 = first.json.data as { version: number; versionID: string };
    expect(d1.version).toBeGreaterThan(0);
    const full = await post("/conversation/get_full_conversation_ids", JSON.stringify({ idHash: 0, userID: owner }), admin);
    expect(full.json).toMatchObject({ errCode: 0, data: { equal: false, conversationIDs: ["si_inc_owner_p1"], versionID: d1.versionID, version: d1.version } });
    // A change made through ZEGO-like settings elsewhere (MarkService) and a second conversation.
    await server.marks.updateConversations({
      updates: [
        { key: { ownerUserId: owner, type: ConversationType.DIRECT, conversationId: "p1" }, settings: { pinned: false } },
        { key: { ownerUserId: owner, type: ConversationType.GROUP, conversationId: "g9" }, setMarks: [1] },
      ],
    });
    const second = await post("/conversation/get_incremental_conversations", JSON.stringify({ userID: owner, versionID: d1.versionID, version: d1.version }), admin);
    expect(second.json).toMatchObject({ errCode: 0, data: { full: false, insert: [{ conversationID: "sg_g9" }], update: [{ conversationID: "si_inc_owner_p1", isPinned: false }] } });
    const d2 = second.json.data as { versionID: string; version: number };

    const del = await post("/conversation/delete_conversations", JSON.stringify({ ownerUserID: owner, conversationIDs: ["sg_g9"] }), admin);
    expect(del.json).toEqual({ errCode: 0, errMsg: "", errDlt: "" });
    const { conversations } = await server.marks.batchGetConversations({ keys: [{ ownerUserId: owner, type: ConversationType.GROUP, conversationId: "g9" }] });
    expect(conversations[0]!.version).toBe(0n);
    const third = await post("/conversation/get_incremental_conversations", JSON.stringify({ userID: owner, versionID: d2.versionID, version: d2.version }), admin);
    expect(third.json).toMatchObject({ errCode: 0, data: { full: false, delete: ["sg_g9"], insert: [], update: [] } });
    // Empty conversationIDs deletes all of the owner's conversations.
    expect((await post("/conversation/delete_conversations", JSON.stringify({ ownerUserID: owner }), admin)).json.errCode).toBe(0);
    expect((await post("/conversation/get_all_conversations", JSON.stringify({ ownerUserID: owner }), admin)).json).toMatchObject({ data: { conversations: [] } });
    // Another user's token may not delete; a bad versionID is an ArgsError.
    const other = await userToken("someone");
    expect((await post("/conversation/delete_conversations", JSON.stringify({ ownerUserID: "6965946400" }), other)).json.errCode).toBe(1002);
    expect((await post("/conversation/get_incremental_conversations", JSON.stringify({ userID: owner, versionID: "garbage", version: 1 }), admin)).json.errCode).toBe(1001);
  });

  it("Connect JSON on ConversationService/GetConversation, token in metadata", async () => {
    const r = await fetch(`${server.url}/vendor.openim.v1.ConversationService/GetConversation`, {
      method: "POST",
      headers: { "content-type": "application/json", operationid: "1", token: admin },
      body: '{"conversationID":"si_4365007572_6965946400","ownerUserID":"6965946400"}',
    });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ errCode: 0, data: { conversation: { conversationID: "si_4365007572_6965946400", burnDuration: 30 } } });
  });
});
