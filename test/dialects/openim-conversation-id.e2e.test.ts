// The real server on loopback: set_conversations takes conversationID as OpenIM v3.8.3 does (stored,
// never checked). Where it parses (si_<a>_<b>, sg_<group>) it decides the convmark key; where it does
// not, the key comes from conversationType and userID/groupID. Nothing is refused for the ID.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationType } from "../../gen/convmark/v1/mark_service_pb.js";
import { startTestServer, type TestServer } from "../support/harness.js";

async function post(url: string, body: unknown, headers: Record<string, string>): Promise<Record<string, unknown>> {
  const r = await fetch(url, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", ...headers }, signal: AbortSignal.timeout(10_000) });
  return (await r.json()) as Record<string, unknown>;
}

describe("OpenIM set_conversations: conversationID as the released server takes it", () => {
  let server: TestServer;
  let token: string;
  const set = (conversation: object, userIDs: string[]) => post(`${server.url}/conversation/set_conversations`, { userIDs, conversation }, { operationID: "1", token });
  const read = (ownerUserID: string, conversationID: string) => post(`${server.url}/conversation/get_conversation`, { ownerUserID, conversationID }, { operationID: "1", token });
  const settingsOf = async (owner: string, type: ConversationType, id: string) =>
    (await server.marks.batchGetConversations({ keys: [{ ownerUserId: owner, type, conversationId: id }] })).conversations[0]?.settings;
  beforeAll(async () => {
    server = await startTestServer({ OPENIM_SECRET: "openIM123" });
    const r = await post(`${server.url}/auth/get_admin_token`, { secret: "openIM123", userID: "imAdmin" }, { operationID: "1" });
    token = (r.data as { token: string }).token;
  });
  afterAll(async () => {
    await server?.close();
  });

  it("a custom single-chat ID is accepted; the key is (owner, userID) and reads back under the derived ID", async () => {
    expect(await set({ conversationID: "my-chat-7", conversationType: 1, userID: "p7", isPinned: true, ex: "e7" }, ["o7"])).toEqual({ errCode: 0, errMsg: "", errDlt: "" });
    expect(await settingsOf("o7", ConversationType.DIRECT, "p7")).toMatchObject({ pinned: true, ex: "e7" });
    expect(await read("o7", "si_o7_p7")).toMatchObject({ errCode: 0, data: { conversation: { ownerUserID: "o7", conversationID: "si_o7_p7", conversationType: 1, userID: "p7", isPinned: true, ex: "e7" } } });
  });

  it("an empty conversationID is not refused either", async () => {
    expect(await set({ conversationID: "", conversationType: 1, userID: "p8", isPinned: true }, ["o8"])).toMatchObject({ errCode: 0 });
    expect(await settingsOf("o8", ConversationType.DIRECT, "p8")).toMatchObject({ pinned: true });
  });

  it("si_ in either order names the same chat for both participants; other owners get the request's userID", async () => {
    const r = await set({ conversationID: "si_6965946400_4365007572", conversationType: 1, userID: "4365007572", isPinned: true }, ["6965946400", "4365007572", "111"]);
    expect(r).toMatchObject({ errCode: 0 });
    expect(await settingsOf("6965946400", ConversationType.DIRECT, "4365007572")).toMatchObject({ pinned: true });
    expect(await settingsOf("4365007572", ConversationType.DIRECT, "6965946400")).toMatchObject({ pinned: true });
    expect(await settingsOf("111", ConversationType.DIRECT, "4365007572")).toMatchObject({ pinned: true });
    // The canonical (sorted) ID is the one convmark prints back.
    expect(await read("6965946400", "si_4365007572_6965946400")).toMatchObject({ errCode: 0, data: { conversation: { conversationID: "si_4365007572_6965946400", userID: "4365007572" } } });
  });

  it("sg_<group> decides the group; a custom group ID falls back to groupID", async () => {
    expect(await set({ conversationID: "sg_parsed", conversationType: 3, groupID: "named", isPinned: true }, ["g1"])).toMatchObject({ errCode: 0 });
    expect(await settingsOf("g1", ConversationType.GROUP, "parsed")).toMatchObject({ pinned: true });
    expect(await settingsOf("g1", ConversationType.GROUP, "named")).toBeUndefined();
    expect(await set({ conversationID: "team-room", conversationType: 3, groupID: "named", recvMsgOpt: 2 }, ["g1"])).toMatchObject({ errCode: 0 });
    expect(await read("g1", "sg_named")).toMatchObject({ errCode: 0, data: { conversation: { conversationID: "sg_named", groupID: "named", recvMsgOpt: 2 } } });
  });
});
