/**
 * With bearer tokens required on the unified API, the vendor
 * dialects keep working with their own vendor auth: they call MarkService in process as trusted callers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { SignJWT } from "jose";
import { APP_ID, SECRET, publicParams, setConvMarkUrl } from "../dialects/zego-fixtures.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const OPENIM_SECRET = "openIM123";
const JWT_SECRET = "dialect-test-secret-long-enough-for-hs256";

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  expect(r.status).toBe(200);
  return (await r.json()) as Record<string, unknown>;
}

describe("vendor dialects under bearer-token auth", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      CONVMARK_AUTH_JWT_SECRET: JWT_SECRET,
      ZEGO_APP_ID: String(APP_ID),
      ZEGO_SERVER_SECRET: SECRET,
      OPENIM_SECRET,
    });
  });
  afterAll(() => server.close());

  it("ZEGO and OpenIM writes succeed while MarkService itself refuses a caller without a token", async () => {
    const zego = await post(setConvMarkUrl(server.url, publicParams()), {
      FromUserId: "alice",
      ConvMarkInfoList: [{ UserId: "alice", SetMarkC2c: { bob: { MarkContent: 2 } }, Action: true }],
    });
    expect(zego).toMatchObject({ Code: 0 });
    const token = ((await post(`${server.url}/auth/get_admin_token`, { secret: OPENIM_SECRET, userID: "imAdmin" }, { operationID: "1" })).data as { token: string }).token;
    const openim = await post(
      `${server.url}/conversation/set_conversations`,
      { userIDs: ["alice"], conversation: { conversationID: "si_alice_bob", conversationType: 1, userID: "bob", isPinned: true } },
      { operationID: "2", token },
    );
    expect(openim).toMatchObject({ errCode: 0 });
    let code: Code | undefined;
    try {
      await server.marks.getConversation({ key: { ownerUserId: "alice", type: 1, conversationId: "bob" } });
    } catch (e) {
      code = ConnectError.from(e).code;
    }
    expect(code).toBe(Code.Unauthenticated);
    // Both writes landed on one record.
    const service = await new SignJWT({ sub: "ops", scope: "convmark:service" }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m").sign(new TextEncoder().encode(JWT_SECRET));
    const got = await server.marks.getConversation(
      { key: { ownerUserId: "alice", type: 1, conversationId: "bob" } },
      { headers: { authorization: `Bearer ${service}` } },
    );
    expect(got.conversation!.marks).toContain(2);
    expect(got.conversation!.settings!.pinned).toBe(true);
  });
});
