/**
 * The three vendor dialects and MarkService share one record per (owner, conversation): what one
 * writes, the others change and MarkService reads back. Real server, real HTTP, vendor-made auth.
 */
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationType, ReceiveOption } from "../../gen/convmark/v1/mark_service_pb.js";
import { APP_ID, SECRET, publicParams, setConvMarkUrl } from "../dialects/zego-fixtures.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const TLSSigAPIv2 = createRequire(import.meta.url)("tls-sig-api-v2") as {
  Api: new (sdkappid: number, key: string) => { genUserSig(identifier: string, expire: number): string };
};
const TENCENT_APPID = 1400000002;
const TENCENT_KEY = "cross-dialect-test-key";
const OPENIM_SECRET = "openIM123";

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  expect(r.status).toBe(200);
  return (await r.json()) as Record<string, unknown>;
}

describe("one record, three dialects", () => {
  let server: TestServer;
  let zego: (body: unknown) => Promise<Record<string, unknown>>;
  let tencent: (body: unknown) => Promise<Record<string, unknown>>;
  let openim: (body: unknown) => Promise<Record<string, unknown>>;
  let zegoAction: (action: string, body: unknown) => Promise<Record<string, unknown>>;
  let tencentApi: (api: string, body: unknown) => Promise<Record<string, unknown>>;
  let openimApi: (path: string, body: unknown) => Promise<Record<string, unknown>>;

  beforeAll(async () => {
    server = await startTestServer({
      ZEGO_APP_ID: String(APP_ID),
      ZEGO_SERVER_SECRET: SECRET,
      TENCENT_SDKAPPID: String(TENCENT_APPID),
      TENCENT_SECRET_KEY: TENCENT_KEY,
      OPENIM_SECRET,
    });
    zego = (body) => post(setConvMarkUrl(server.url, publicParams()), body);
    const sig = new TLSSigAPIv2.Api(TENCENT_APPID, TENCENT_KEY).genUserSig("administrator", 3600);
    tencent = (body) =>
      post(`${server.url}/v4/recentcontact/mark_contact?sdkappid=${TENCENT_APPID}&identifier=administrator&usersig=${encodeURIComponent(sig)}&random=42&contenttype=json`, body);
    const token = ((await post(`${server.url}/auth/get_admin_token`, { secret: OPENIM_SECRET, userID: "imAdmin" }, { operationID: "1" })).data as { token: string }).token;
    openim = (body) => post(`${server.url}/conversation/set_conversations`, body, { operationID: "2", token });
    zegoAction = (action, body) => post(setConvMarkUrl(server.url, publicParams(), action), body);
    tencentApi = (api, body) =>
      post(`${server.url}/v4/recentcontact/${api}?sdkappid=${TENCENT_APPID}&identifier=administrator&usersig=${encodeURIComponent(sig)}&random=42&contenttype=json`, body);
    openimApi = (path, body) => post(`${server.url}${path}`, body, { operationID: "3", token });
  });
  afterAll(() => server.close());

  it("a direct conversation: ZEGO sets, Tencent adds and clears, OpenIM pins, MarkService reads it all", async () => {
    expect(await zego({ FromUserId: "alice", ConvMarkInfoList: [{ UserId: "alice", SetMarkC2c: { bob: { MarkContent: 2 } }, Action: true }] })).toMatchObject({ Code: 0 });
    expect(
      await tencent({ From_Account: "alice", MarkItem: [{ OptType: 3, ContactItem: { Type: 1, To_Account: "bob" }, SetMark: [1, 40], CustomMark: "vip" }] }),
    ).toMatchObject({ ActionStatus: "OK", ErrorCode: 0, ResultItem: [{ ResultCode: 0 }] });
    expect(
      await openim({ userIDs: ["alice"], conversation: { conversationID: "si_alice_bob", conversationType: 1, userID: "bob", isPinned: true, recvMsgOpt: 2 } }),
    ).toMatchObject({ errCode: 0 });

    const key = { ownerUserId: "alice", type: ConversationType.DIRECT, conversationId: "bob" };
    let c = (await server.marks.getConversation({ key })).conversation!;
    expect(c.marks).toEqual([1, 2, 40]);
    expect(c.customMark).toBe("vip");
    expect(c.settings?.pinned).toBe(true);
    expect(c.settings?.receiveOption).toBe(ReceiveOption.RECEIVE_SILENTLY);
    expect(c.version).toBe(3n);

    // Tencent clears the mark ZEGO set; ZEGO cancels the one Tencent set.
    await tencent({ From_Account: "alice", MarkItem: [{ OptType: 1, ContactItem: { Type: 1, To_Account: "bob" }, ClearMark: [2] }] });
    await zego({ FromUserId: "alice", ConvMarkInfoList: [{ UserId: "alice", SetMarkC2c: { bob: { MarkContent: 1 } }, Action: false }] });
    c = (await server.marks.getConversation({ key })).conversation!;
    expect(c.marks).toEqual([40]);
    expect(c.customMark).toBe("vip");
    expect(c.settings?.pinned).toBe(true);
  });

  it("a group conversation: the same group ID through each dialect is one record", async () => {
    await zego({ FromUserId: "carol", ConvMarkInfoList: [{ UserId: "carol", SetMarkGroup: { team: { MarkContent: 3 } }, Action: true }] });
    await tencent({ From_Account: "carol", MarkItem: [{ OptType: 1, ContactItem: { Type: 2, ToGroupId: "team" }, SetMark: [4] }] });
    await openim({ userIDs: ["carol"], conversation: { conversationID: "sg_team", conversationType: 3, groupID: "team", ex: "x" } });
    const listed = await server.marks.listConversations({ ownerUserId: "carol" });
    expect(listed.conversations).toHaveLength(1);
    const c = listed.conversations[0]!;
    expect(c.key?.type).toBe(ConversationType.GROUP);
    expect(c.key?.conversationId).toBe("team");
    expect(c.marks).toEqual([3, 4]);
    expect(c.settings?.ex).toBe("x");
  });

  it("MarkService writes are what the dialects then change", async () => {
    const key = { ownerUserId: "dave", type: ConversationType.DIRECT, conversationId: "erin" };
    await server.marks.updateConversations({ updates: [{ key, setMarks: [5, 6], customMark: "old" }] });
    await tencent({ From_Account: "dave", MarkItem: [{ OptType: 2, ContactItem: { Type: 1, To_Account: "erin" }, CustomMark: "new", SetMark: [7] }] });
    const c = (await server.marks.getConversation({ key })).conversation!;
    expect(c.customMark).toBe("new");
    expect(c.marks).toEqual([5, 6]); // OptType 2 ignores SetMark, as Tencent documents
  });

  it("reads: an OpenIM pin shows in ZEGO's and Tencent's lists, a Tencent group in MarkService, a delete anywhere removes it everywhere", async () => {
    await openim({ userIDs: ["frank"], conversation: { conversationID: "si_frank_gina", conversationType: 1, userID: "gina", isPinned: true } });
    await tencentApi("create_contact_group", { From_Account: "frank", GroupContactItem: [{ GroupName: "friends", ContactItem: [{ Type: 1, To_Account: "gina" }] }] });
    const q = await zegoAction("QueryConversationList", { FromUserId: "frank" });
    expect(q).toMatchObject({ Code: 0, TotalCount: 1, ConvList: [{ ConvId: "gina", ConvType: 0, IsPinned: true }] });
    const l = await tencentApi("get_list", { From_Account: "frank", TimeStamp: 0, StartIndex: 0, TopTimeStamp: 0, TopStartIndex: 0, AssistFlags: 63 });
    expect(l).toMatchObject({ ActionStatus: "OK", SessionItem: [{ To_Account: "gina", TopFlag: 1 }] });
    const key = { ownerUserId: "frank", type: ConversationType.DIRECT, conversationId: "gina" };
    expect((await server.marks.getConversation({ key })).conversation?.labels).toEqual(["friends"]);

    // ZEGO deletes it: gone for OpenIM, Tencent and MarkService, and a deletion in the feed.
    const before = await server.marks.syncConversations({ ownerUserId: "frank" });
    expect(await zegoAction("DeleteConv", { FromUserId: "frank", ConvId: "gina", ConvType: 0 })).toMatchObject({ Code: 0 });
    expect(await openimApi("/conversation/get_conversation", { conversationID: "si_frank_gina", ownerUserID: "frank" })).toMatchObject({ errCode: 1004 });
    expect(await tencentApi("get_contact_group", { From_Account: "frank", StartIndex: 0 })).toMatchObject({ ContactItem: [], GroupItem: [] });
    const after = await server.marks.syncConversations({ ownerUserId: "frank", cursor: before.nextCursor });
    expect(after.changes.map((c) => [c.conversation?.key?.conversationId, c.deleted])).toEqual([["gina", true]]);
  });
});
