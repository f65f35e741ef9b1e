// Tencent conversation groups (会话分组) and get_list end to end: the real server, UserSigs made
// with Tencent's own tls-sig-api-v2, the documented example requests sent verbatim.
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationType } from "../../gen/convmark/v1/mark_service_pb.js";
import { groupIdOf } from "../../src/dialects/tencent/groups.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const TLSSigAPIv2 = createRequire(import.meta.url)("tls-sig-api-v2") as {
  Api: new (sdkappid: number, key: string) => { genUserSig(identifier: string, expire: number): string };
};
const APPID = 1400000001;
const KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
const SIG = new TLSSigAPIv2.Api(APPID, KEY).genUserSig("administrator", 86400);
const QUERY = `sdkappid=${APPID}&identifier=administrator&usersig=${SIG}&random=99999999&contenttype=json`;

type Json = Record<string, unknown>;

describe("Tencent conversation groups and get_list", () => {
  let server: TestServer;
  const call = async (api: string, body: string): Promise<Json> => {
    const r = await fetch(`${server.url}/v4/recentcontact/${api}?${QUERY}`, { method: "POST", body, signal: AbortSignal.timeout(10_000) });
    expect(r.status).toBe(200);
    return (await r.json()) as Json;
  };
  const key = (owner: string, peer: string) => ({ ownerUserId: owner, type: ConversationType.DIRECT, conversationId: peer });
  const labelsOf = async (owner: string, peer: string) => {
    const { conversations } = await server.marks.batchGetConversations({ keys: [key(owner, peer)] });
    return conversations[0]!.labels;
  };

  beforeAll(async () => {
    server = await startTestServer({ TENCENT_SDKAPPID: String(APPID), TENCENT_SECRET_KEY: KEY });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("create_contact_group: the documented example makes a convmark label", async () => {
    const r = await call("create_contact_group", '{"From_Account":"user15","GroupContactItem":[{"GroupName":"test0","ContactItem": [{"Type": 1,"To_Account": "user0"}]}]}');
    expect(r).toEqual({
      GroupResultItem: [{ GroupItem: { GroupName: "test0", GroupId: groupIdOf("test0") }, ResultItem: [{ ContactItem: { Type: 1, To_Account: "user0" }, ResultCode: 0, ResultInfo: "" }] }],
      ActionStatus: "OK",
      ErrorCode: 0,
      ErrorInfo: "",
      ErrorDisplay: "",
    });
    expect(await labelsOf("user15", "user0")).toEqual(["test0"]);
  });

  it("search_contact_group and get_contact_group read back marks, custom mark and groups", async () => {
    await call("mark_contact", '{"From_Account":"yahaha","MarkItem":[{"OptType":3,"ContactItem":{"Type":1,"To_Account":"xixi"},"SetMark":[1,4],"CustomMark":"abcd"}]}');
    await call("create_contact_group", '{"From_Account":"yahaha","GroupContactItem":[{"GroupName":"test1x","ContactItem":[{"Type":1,"To_Account":"xixi"}]}]}');
    const s = await call("search_contact_group", '{"From_Account":"yahaha","ContactItem":[{"Type":1,"To_Account":"xixi"}]}');
    expect(s).toMatchObject({
      ActionStatus: "OK",
      ErrorCode: 0,
      ContactResultItem: [{ Type: 1, To_Account: "xixi", StandardMark: "1001", CustomMark: "abcd", ContactGroupId: [groupIdOf("test1x")] }],
      GroupItem: [{ GroupName: "test1x", GroupId: groupIdOf("test1x") }],
    });
    expect(Number((s.ContactResultItem as Json[])[0]!.Timestamp)).toBeGreaterThan(1_600_000_000);

    const g = await call("get_contact_group", '{"From_Account":"yahaha","StartIndex":0}');
    expect(g).toMatchObject({ ActionStatus: "OK", CompleteFlag: 1, NextStartIndex: 0, GroupItem: [{ GroupName: "test1x" }] });
    expect((g.ContactItem as Json[]).map((c) => c.To_Account)).toEqual(["xixi"]);
  });

  it("update_contact_group: the documented example adds a conversation; rename moves the label everywhere", async () => {
    await call("create_contact_group", '{"From_Account":"user20","GroupContactItem":[{"GroupName":"test1","ContactItem":[{"Type":1,"To_Account":"user9"}]}]}');
    const add = await call("update_contact_group", '{"From_Account":"user20","UpdateType":1,"UpdateGroup":{"UpdateGroupType":2,"OldGroupName":"test1","ContactUpdateItem":[{"ContactOptType":1,"ContactItem":{"Type": 1,"To_Account": "user1"}}]}}');
    expect(add).toMatchObject({
      ActionStatus: "OK",
      UpdateType: 1,
      UpdateGroupResult: { UpdateGroupType: 2, GroupName: "test1", ContactResultItem: [{ ContactOptType: 1, ContactItem: { Type: 1, To_Account: "user1" }, ResultCode: 0 }] },
    });
    expect(await labelsOf("user20", "user1")).toEqual(["test1"]);

    const rename = await call("update_contact_group", '{"From_Account": "user20","UpdateType": 1,"UpdateGroup": {"UpdateGroupType": 1,"OldGroupName": "test1","NewGroupName": "group_0002"}}');
    expect(rename).toMatchObject({ ActionStatus: "OK", UpdateGroupResult: { UpdateGroupType: 1, GroupName: "group_0002", GroupId: groupIdOf("group_0002") } });
    expect(await labelsOf("user20", "user1")).toEqual(["group_0002"]);
    expect(await labelsOf("user20", "user9")).toEqual(["group_0002"]);

    const remove = await call("update_contact_group", '{"From_Account":"user20","UpdateType":1,"UpdateGroup":{"UpdateGroupType":2,"OldGroupName":"group_0002","ContactUpdateItem":[{"ContactOptType":2,"ContactItem":{"Type":1,"To_Account":"user1"}}]}}');
    expect(remove).toMatchObject({ ActionStatus: "OK" });
    expect(await labelsOf("user20", "user1")).toEqual([]);
  });

  it("del_contact_group: the documented example removes the label from every conversation", async () => {
    await call("create_contact_group", '{"From_Account":"user15","GroupContactItem":[{"GroupName":"test0","ContactItem":[{"Type":2,"ToGroupId":"@TGS#1"}]}]}');
    const r = await call("del_contact_group", '{"From_Account":"user15","GroupName":["test0"]}');
    expect(r).toEqual({ GroupItem: [{ GroupName: "test0", GroupId: groupIdOf("test0") }], ActionStatus: "OK", ErrorCode: 0, ErrorInfo: "", ErrorDisplay: "" });
    expect(await labelsOf("user15", "user0")).toEqual([]);
    expect(await call("del_contact_group", '{"From_Account":"user15","GroupName":["test0"]}')).toMatchObject({ ActionStatus: "FAIL", ErrorCode: 51009 });
  });

  it("a label written through MarkService is a group in Tencent's reads", async () => {
    await server.marks.updateConversations({ updates: [{ key: key("svc_owner", "p1"), addLabels: ["work"], settings: { pinned: true } }] });
    const g = await call("get_contact_group", '{"From_Account":"svc_owner","StartIndex":0}');
    expect(g).toMatchObject({ GroupItem: [{ GroupName: "work", GroupId: groupIdOf("work") }], ContactItem: [{ To_Account: "p1", ContactGroupId: [groupIdOf("work")] }] });
    const l = await call("get_list", '{"From_Account": "svc_owner","TimeStamp": 0,"StartIndex": 0,"TopTimeStamp": 0,"TopStartIndex": 0,"AssistFlags": 63}');
    expect(l).toMatchObject({ ActionStatus: "OK", CompleteFlag: 1, SessionItem: [{ Type: 1, To_Account: "p1", TopFlag: 1, ContactGroupId: [groupIdOf("work")] }] });
  });

  it("get_list: the documented example request; pinned first, then the others, paged by index", async () => {
    const updates = [];
    for (let i = 0; i < 120; i++) updates.push({ key: key("user_0001", `peer${i}`), setMarks: [2], settings: { pinned: i < 3 } });
    await server.marks.updateConversations({ updates });
    const first = await call("get_list", '{"From_Account": "user_0001","TimeStamp": 0,"StartIndex": 0,"TopTimeStamp": 0,"TopStartIndex": 0,"AssistFlags": 63}');
    const items = first.SessionItem as Json[];
    expect(items).toHaveLength(100);
    expect(items.slice(0, 3).every((s) => s.TopFlag === 1)).toBe(true);
    expect(items[3]!.TopFlag).toBe(0);
    expect(items[0]!.StandardMark).toBe("10");
    expect(first).toMatchObject({ CompleteFlag: 0, TopStartIndex: 3, StartIndex: 97 });
    const second = await call("get_list", JSON.stringify({ From_Account: "user_0001", TimeStamp: first.TimeStamp, StartIndex: 97, TopTimeStamp: first.TopTimeStamp, TopStartIndex: 3, AssistFlags: 63 }));
    expect(second.SessionItem as Json[]).toHaveLength(20);
    expect(second.CompleteFlag).toBe(1);
    const seen = new Set([...items, ...(second.SessionItem as Json[])].map((s) => s.To_Account));
    expect(seen.size).toBe(120);
  });

  it("limits and bad input: Tencent's envelope and codes, nothing applied", async () => {
    const long = "x".repeat(33);
    expect(await call("create_contact_group", JSON.stringify({ From_Account: "lim", GroupContactItem: [{ GroupName: long, ContactItem: [{ Type: 1, To_Account: "a" }] }] }))).toMatchObject({ ActionStatus: "FAIL", ErrorCode: 51011 });
    expect(await labelsOf("lim", "a")).toEqual([]);
    for (let i = 0; i < 20; i++) {
      const r = await call("create_contact_group", JSON.stringify({ From_Account: "lim", GroupContactItem: [{ GroupName: `g${i}`, ContactItem: [{ Type: 1, To_Account: `p${i}` }] }] }));
      expect(r.ErrorCode).toBe(0);
    }
    const over = await call("create_contact_group", JSON.stringify({ From_Account: "lim", GroupContactItem: [{ GroupName: "g20", ContactItem: [{ Type: 1, To_Account: "z" }] }] }));
    expect(over).toEqual({ ActionStatus: "FAIL", ErrorCode: 51010, ErrorInfo: expect.stringContaining("20") as unknown, ErrorDisplay: "" });
    expect(await labelsOf("lim", "z")).toEqual([]);
    expect(await call("update_contact_group", '{"From_Account":"lim","UpdateType":1,"UpdateGroup":{"UpdateGroupType":1,"OldGroupName":"nope","NewGroupName":"x"}}')).toMatchObject({ ErrorCode: 51009 });
    expect(await call("update_contact_group", '{"From_Account":"lim","UpdateType":1,"UpdateGroup":{"UpdateGroupType":1,"OldGroupName":"g1","NewGroupName":"g2"}}')).toMatchObject({ ErrorCode: 50002 });
    expect(await labelsOf("lim", "p1")).toEqual(["g1"]);
    expect(await call("create_contact_group", '{"From_Account":"lim","GroupContactItem":[]}')).toMatchObject({ ErrorCode: 50002 });
    expect(await call("search_contact_group", '{"From_Account":"lim","ContactItem":[{"Type":3,"To_Account":"a"}]}')).toMatchObject({ ErrorCode: 50002 });
    expect(await call("get_contact_group", '{"StartIndex":0}')).toMatchObject({ ErrorCode: 50002 });
    expect(await call("get_contact_group", '{"From_Account":"lim","StartIndex":"x"}')).toMatchObject({ ErrorCode: 50002 });
    expect(await call("get_list", "{nope")).toMatchObject({ ActionStatus: "FAIL", ErrorCode: 60003 });
    // A per-conversation failure is reported in its ResultItem; the valid ones apply.
    const mixed = await call("create_contact_group", '{"From_Account":"mix","GroupContactItem":[{"GroupName":"m","ContactItem":[{"Type":1,"To_Account":"ok"},{"Type":9}]}]}');
    expect(mixed).toMatchObject({ ActionStatus: "OK", GroupResultItem: [{ ResultItem: [{ ResultCode: 0 }, { ResultCode: 50002 }] }] });
    expect(await labelsOf("mix", "ok")).toEqual(["m"]);
  });

  it("auth is Tencent's: a bad UserSig gets 70003 on the new routes too, over REST and Connect", async () => {
    const bad = QUERY.replace(/usersig=[^&]+/, "usersig=x");
    const r = await fetch(`${server.url}/v4/recentcontact/get_contact_group?${bad}`, { method: "POST", body: '{"From_Account":"a","StartIndex":0}' });
    expect(await r.json()).toMatchObject({ ActionStatus: "FAIL", ErrorCode: 70003 });
    const headers = { "content-type": "application/json", sdkappid: String(APPID), identifier: "administrator", usersig: SIG, random: "1" };
    const ok = await fetch(`${server.url}/vendor.tencent.v1.RecentContactService/SearchContactGroup`, { method: "POST", headers, body: '{"From_Account":"yahaha","ContactItem":[{"Type":1,"To_Account":"xixi"}]}' });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ ActionStatus: "OK", ContactResultItem: [{ To_Account: "xixi", CustomMark: "abcd" }] });
    const refused = await fetch(`${server.url}/vendor.tencent.v1.RecentContactService/GetList`, { method: "POST", headers: { ...headers, usersig: "x" }, body: '{"From_Account":"a"}' });
    expect(await refused.json()).toMatchObject({ ActionStatus: "FAIL", ErrorCode: 70003 });
  });
});
