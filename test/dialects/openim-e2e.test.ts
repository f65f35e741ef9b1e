// End to end: the real server (all dialects wired, SQLite in a temp dir) over real HTTP.
// Needs the OpenIM dialect wired in src/bootstrap.ts (createOpenimDialect + openimConfigFromEnv).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationType, ReceiveOption } from "../../gen/convmark/v1/mark_service_pb.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const ENV = { OPENIM_SECRET: "openIM123" };

async function postJson(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json", ...headers }, signal: AbortSignal.timeout(10_000) });
  const text = await r.text();
  try {
    return { status: r.status, json: JSON.parse(text) as Record<string, unknown> };
  } catch {
    throw new Error(`HTTP ${r.status} with a non-JSON body ${JSON.stringify(text.slice(0, 200))}: is the OpenIM dialect wired in src/bootstrap.ts?`);
  }
}

describe("OpenIM dialect end to end", () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer(ENV);
    const r = await postJson(`${server.url}/auth/get_admin_token`, '{"secret":"openIM123","userID":"imAdmin"}', { operationID: "1" });
    expect(r.json).toMatchObject({ errCode: 0, errMsg: "", errDlt: "", data: { expireTimeSeconds: 7_776_000 } });
    token = (r.json.data as { token: string }).token;
  });
  afterAll(async () => {
    await server?.close();
  });

  it("the seed's request gets the documented response and reads back through MarkService", async () => {
    const body =
      '{"userIDs":["6965946400"],"conversation":{"conversationID":"si_4365007572_6965946400","conversationType":1,"userID":"4365007572",' +
      '"groupID":"","recvMsgOpt":0,"attachedInfo":"attached","isPinned":false,"isPrivateChat":true,"ex":"","burnDuration":30}}';
    const r = await postJson(`${server.url}/conversation/set_conversations`, body, { operationID: "1646445464564", token });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ errCode: 0, errMsg: "", errDlt: "" });
    const { conversation } = await server.marks.getConversation({
      key: { ownerUserId: "6965946400", type: ConversationType.DIRECT, conversationId: "4365007572" },
    });
    expect(conversation?.settings).toMatchObject({
      pinned: false,
      privateChat: true,
      burnDurationSeconds: 30,
      attachedInfo: "attached",
      ex: "",
      receiveOption: ReceiveOption.RECEIVE,
    });
  });

  it("Connect JSON on ConversationService/SetConversations: OpenIM's field names, token and operationid in metadata", async () => {
    const body = '{"userIDs":["u1","u2"],"conversation":{"conversationID":"sg_g1","conversationType":3,"groupID":"g1","isPinned":true}}';
    const r = await postJson(`${server.url}/vendor.openim.v1.ConversationService/SetConversations`, body, { operationid: "2", token });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ errCode: 0 });
    const got = await server.marks.batchGetConversations({
      keys: ["u1", "u2"].map((o) => ({ ownerUserId: o, type: ConversationType.GROUP, conversationId: "g1" })),
    });
    expect(got.conversations.map((c) => c.settings?.pinned)).toEqual([true, true]);
  });

  it("errors come back in OpenIM's envelope", async () => {
    const r = await postJson(`${server.url}/conversation/set_conversations`, "{}", { operationID: "3" });
    // An API-layer error: the released server prints ErrArgs without a detail (errDlt "").
    expect(r.json).toEqual({ errCode: 1001, errMsg: "ArgsError", errDlt: "" });
    const noOp = await postJson(`${server.url}/conversation/set_conversations`, "{}", { token });
    expect(noOp.json).toEqual({ errCode: 1001, errMsg: "ArgsError", errDlt: "" });
    const check = await postJson(`${server.url}/conversation/set_conversations`, '{"userIDs":["u1"]}', { operationID: "3", token });
    expect(check.json).toEqual({ errCode: 1001, errMsg: "ArgsError", errDlt: "" });
    const bind = await postJson(`${server.url}/conversation/set_conversations`, '{"userIDs":"u1"}', { operationID: "3", token });
    expect(bind.json).toEqual({ errCode: 1001, errMsg: expect.stringContaining("request body is invalid"), errDlt: "" });
    // An RPC-layer error keeps "<detail>: [code]Name".
    const rpc = await postJson(`${server.url}/conversation/set_conversations`, '{"userIDs":["u1"],"conversation":{"conversationID":"sg_g","conversationType":3,"groupID":"g","recvMsgOpt":7}}', { operationID: "3", token });
    expect(rpc.json).toEqual({ errCode: 1001, errMsg: "ArgsError", errDlt: expect.stringMatching(/recvMsgOpt 7 is invalid.*: \[1001\]ArgsError$/) });
    const bad = await postJson(`${server.url}/conversation/set_conversations`, "{}", { operationID: "3", token: `${token}x` });
    expect(bad.json).toMatchObject({ errCode: 1505, errMsg: "TokenUnknownError" });
  });

  it("an invalid OpenIM setting stops the server from starting", async () => {
    await expect(startTestServer({ ...ENV, OPENIM_TOKEN_TTL_SECONDS: "ninety days" })).rejects.toThrow("OPENIM_TOKEN_TTL_SECONDS");
  });
});
