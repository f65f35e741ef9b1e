// End to end: the real server (all dialects wired, SQLite in a temp dir) over real HTTP.
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationType } from "../../gen/convmark/v1/mark_service_pb.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const TLSSigAPIv2 = createRequire(import.meta.url)("tls-sig-api-v2") as {
  Api: new (sdkappid: number, key: string) => { genUserSig(identifier: string, expire: number): string };
};

const APPID = 1400000001;
const KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
const SIG = new TLSSigAPIv2.Api(APPID, KEY).genUserSig("administrator", 86400);
const ENV = { TENCENT_SDKAPPID: String(APPID), TENCENT_SECRET_KEY: KEY };
const QUERY = `sdkappid=${APPID}&identifier=administrator&usersig=${SIG}&random=99999999&contenttype=json`;

async function postJson(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(url, { method: "POST", body, headers, signal: AbortSignal.timeout(10_000) });
  const text = await r.text();
  try {
    return { status: r.status, json: JSON.parse(text) as Record<string, unknown> };
  } catch {
    throw new Error(`HTTP ${r.status} with a non-JSON body ${JSON.stringify(text.slice(0, 200))}: is the Tencent dialect wired in src/bootstrap.ts?`);
  }
}

describe("Tencent dialect end to end", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(ENV);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("the seed's request gets the documented response and reads back through MarkService", async () => {
    const body = '{"From_Account":"user0","MarkItem":[{"OptType":3,"ContactItem":{"Type":1,"To_Account":"user1"},"SetMark":[1,2,3],"CustomMark":"abcd"}]}';
    const r = await postJson(`${server.url}/v4/recentcontact/mark_contact?${QUERY}`, body);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      ResultItem: [{ OptType: 3, ContactItem: { Type: 1, To_Account: "user1" }, ResultCode: 0, ResultInfo: "" }],
      ActionStatus: "OK",
      ErrorCode: 0,
      ErrorInfo: "",
      ErrorDisplay: "",
    });
    const { conversation } = await server.marks.getConversation({ key: { ownerUserId: "user0", type: ConversationType.DIRECT, conversationId: "user1" } });
    expect(conversation?.marks).toEqual([1, 2, 3]);
    expect(conversation?.customMark).toBe("abcd");
  });

  it("Connect JSON on RecentContactService/MarkContact speaks Tencent's field names, auth in metadata", async () => {
    const body = '{"From_Account":"user0","MarkItem":[{"OptType":1,"ContactItem":{"Type":2,"ToGroupId":"g1"},"SetMark":[33]}]}';
    const headers = { "content-type": "application/json", sdkappid: String(APPID), identifier: "administrator", usersig: SIG, random: "1" };
    const r = await postJson(`${server.url}/vendor.tencent.v1.RecentContactService/MarkContact`, body, headers);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ ActionStatus: "OK", ErrorCode: 0, ResultItem: [{ OptType: 1, ContactItem: { Type: 2, ToGroupId: "g1" }, ResultCode: 0 }] });
    const { conversation } = await server.marks.getConversation({ key: { ownerUserId: "user0", type: ConversationType.GROUP, conversationId: "g1" } });
    expect(conversation?.marks).toEqual([33]);

    const refused = await postJson(`${server.url}/vendor.tencent.v1.RecentContactService/MarkContact`, body, { ...headers, usersig: "x" });
    expect(refused.json).toMatchObject({ ActionStatus: "FAIL", ErrorCode: 70003 });
  });

  it("other /v4 APIs get 60009, bad JSON 60003", async () => {
    const r = await postJson(`${server.url}/v4/openim/sendmsg?${QUERY}`, "{}");
    expect(r).toMatchObject({ status: 200, json: { ActionStatus: "FAIL", ErrorCode: 60009 } });
    const bad = await postJson(`${server.url}/v4/recentcontact/mark_contact?${QUERY}`, "{nope");
    expect(bad).toMatchObject({ status: 200, json: { ActionStatus: "FAIL", ErrorCode: 60003 } });
  });
});

describe("Tencent dialect end to end: configuration", () => {
  const started: TestServer[] = [];
  afterAll(async () => {
    await Promise.all(started.map((s) => s.close()));
  });

  it("unconfigured: every call gets 70020", async () => {
    const s = await startTestServer({});
    started.push(s);
    const r = await postJson(`${s.url}/v4/recentcontact/mark_contact?${QUERY}`, '{"From_Account":"a","MarkItem":[]}');
    expect(r).toMatchObject({ status: 200, json: { ActionStatus: "FAIL", ErrorCode: 70020 } });
  });

  it("TENCENT_RATE_LIMIT_PER_SECOND=2: the third call in a second gets 60007", async () => {
    const s = await startTestServer({ ...ENV, TENCENT_RATE_LIMIT_PER_SECOND: "2" });
    started.push(s);
    const body = '{"From_Account":"rl","MarkItem":[{"OptType":1,"ContactItem":{"Type":1,"To_Account":"p"},"SetMark":[1]}]}';
    const codes = (await Promise.all([1, 2, 3].map(() => postJson(`${s.url}/v4/recentcontact/mark_contact?${QUERY}`, body)))).map((r) => r.json.ErrorCode);
    expect(codes.sort()).toEqual([0, 0, 60007]);
  });

  it("an invalid TENCENT_SDKAPPID stops the start with a ConfigError", async () => {
    const attempt = startTestServer({ TENCENT_SDKAPPID: "not-a-number" }).then((s) => {
      started.push(s);
      return s;
    });
    await expect(attempt).rejects.toThrow(/TENCENT_SDKAPPID/);
  });
});
