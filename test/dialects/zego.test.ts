import { create, fromJson, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { SetConvMarkRequestSchema, SetConvMarkResponseSchema, ZimServerService } from "../../gen/vendor/zego/v1/zim_server_pb.js";
import { ConfigError } from "../../src/config.js";
import { NonceCache, TIMESTAMP_WINDOW_SECONDS, nonceCapacity } from "../../src/dialects/zego/auth.js";
import { createZegoDialect, zegoConfigFromEnv, zegoSignature, type ZegoConfig } from "../../src/dialects/zego/index.js";
import { validateRequest } from "../../src/dialects/zego/translate.js";
import {
  APP_ID,
  DIRECT,
  DOC_EXAMPLE_BODY,
  GROUP,
  SECRET,
  fakeDirectory,
  makeDeps,
  md5Signature,
  postJson,
  publicParams,
  serve,
  setConvMarkUrl,
  type DepsOptions,
  type SignOptions,
} from "./zego-fixtures.js";

const CONFIGURED: ZegoConfig = { credentials: { appId: APP_ID, serverSecret: SECRET }, rateLimitPerSecond: 1000 };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function setup(o: DepsOptions & { config?: ZegoConfig } = {}) {
  const { deps, store } = makeDeps(o);
  const dialect = createZegoDialect(deps, o.config ?? CONFIGURED);
  const server = await serve(dialect);
  cleanups.push(() => store.close(), () => server.close());
  const call = (body: string, sign: SignOptions = {}, extra: Record<string, string> = {}) =>
    postJson(setConvMarkUrl(server.base, { ...publicParams(sign), ...extra }), body);
  return { deps, dialect, base: server.base, call, marks: deps.marks };
}

async function marksOf(marks: Client<typeof MarkService>, owner: string, type: number, conversationId: string): Promise<number[] | "absent"> {
  try {
    const r = await marks.getConversation({ key: { ownerUserId: owner, type, conversationId } });
    return r.conversation?.marks ?? [];
  } catch (e) {
    if (ConnectError.from(e).code === Code.NotFound) return "absent";
    throw e;
  }
}

function body(entries: unknown[], fromUserId = "user_test"): string {
  return JSON.stringify({ FromUserId: fromUserId, ConvMarkInfoList: entries });
}

const entry = (userId: string, c2c: Record<string, unknown> | undefined, group: Record<string, unknown> | undefined, action = true) => ({
  UserId: userId,
  ...(c2c ? { SetMarkC2c: c2c } : {}),
  ...(group ? { SetMarkGroup: group } : {}),
  Action: action,
});

describe("ZEGO signature", () => {
  it("matches md5(AppId + SignatureNonce + ServerSecret + Timestamp) computed independently", () => {
    expect(zegoSignature(APP_ID, "15215528852396", SECRET, 1234567890)).toBe(md5Signature(APP_ID, "15215528852396", SECRET, 1234567890));
    // Fixed vectors computed with coreutils: printf '%s' "<concatenation>" | md5sum
    expect(zegoSignature(1, "n", "s", 2)).toBe("009508540058adb70966dc9fd1947e74");
    expect(zegoSignature(1234567890, "15215528852396", "abcdefabcdefabcdefabcdefabcdefab", 1234567890)).toBe("f83c7988089124ecddbb5841645d71f0");
  });
});

describe("SetConvMark over REST: the document's example", () => {
  it("sets mark 2 for userA and userB on the four conversations, with the documented response shape", async () => {
    const { call, marks } = await setup();
    const r = await call(DOC_EXAMPLE_BODY);
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^application\/json/);
    expect(Object.keys(r.json)).toEqual(["Code", "Message", "RequestId", "FailList"]);
    expect(r.json.Code).toBe(0);
    expect(r.json.Message).toBe("success");
    expect(typeof r.json.RequestId).toBe("string");
    expect((r.json.RequestId as string).length).toBeGreaterThan(0);
    expect(r.json.FailList).toEqual([]);
    for (const user of ["userA", "userB"]) {
      for (const c of ["conv_c2c_1", "conv_c2c_2"]) expect(await marksOf(marks, user, DIRECT, c)).toEqual([2]);
      for (const g of ["conv_group_1", "conv_group_2"]) expect(await marksOf(marks, user, GROUP, g)).toEqual([2]);
      // The keys of SetMarkC2c are one-to-one conversations, not groups, and vice versa.
      expect(await marksOf(marks, user, GROUP, "conv_c2c_1")).toBe("absent");
      expect(await marksOf(marks, user, DIRECT, "conv_group_1")).toBe("absent");
    }
    // The operating user is not an owner of anything.
    expect(await marksOf(marks, "user_test", DIRECT, "conv_c2c_1")).toBe("absent");
  });

  it("Action false clears the mark, other marks stay", async () => {
    const { call, marks } = await setup();
    expect((await call(body([entry("userA", { peer: { MarkContent: 2 } }, { grp: { MarkContent: 2 } })]))).json.Code).toBe(0);
    expect((await call(body([entry("userA", { peer: { MarkContent: 7 } }, undefined)]))).json.Code).toBe(0);
    expect(await marksOf(marks, "userA", DIRECT, "peer")).toEqual([2, 7]);
    const r = await call(body([entry("userA", { peer: { MarkContent: 2 } }, { grp: { MarkContent: 2 } }, false)]));
    expect(r.json).toMatchObject({ Code: 0, Message: "success", FailList: [] });
    expect(await marksOf(marks, "userA", DIRECT, "peer")).toEqual([7]);
    expect(await marksOf(marks, "userA", GROUP, "grp")).toEqual([]);
  });

  it("gives every request its own RequestId", async () => {
    const { call } = await setup();
    const ids = new Set<unknown>();
    for (let i = 0; i < 5; i++) ids.add((await call(body([entry("u", { p: { MarkContent: 1 } }, undefined)]))).json.RequestId);
    expect(ids.size).toBe(5);
  });

  it("accepts a body sent with another Content-Type (curl -d) as JSON", async () => {
    const { base, marks } = await setup();
    const r = await postJson(setConvMarkUrl(base, publicParams()), body([entry("u1", { p: { MarkContent: 30 } }, undefined)]), { "content-type": "application/x-www-form-urlencoded" });
    expect(r.json.Code).toBe(0);
    expect(await marksOf(marks, "u1", DIRECT, "p")).toEqual([30]);
  });

  it("accepts every character of ZEGO's user-ID charset", async () => {
    const { call, marks } = await setup();
    const id = "aZ09!#$%&()+-:;<=.>?@[]^_ {}|~";
    const r = await call(body([entry(id, { p: { MarkContent: 1 } }, undefined)], id));
    expect(r.json.Code).toBe(0);
    expect(await marksOf(marks, id, DIRECT, "p")).toEqual([1]);
  });
});

describe("SetConvMark authentication", () => {
  const ok = body([entry("victim", { p: { MarkContent: 3 } }, undefined)]);

  async function expectRejected(r: Awaited<ReturnType<typeof postJson>>, code: number, marks: Client<typeof MarkService>) {
    expect(r.status).toBe(200);
    expect(r.json.Code).toBe(code);
    expect(typeof r.json.Message).toBe("string");
    expect(typeof r.json.RequestId).toBe("string");
    expect(r.json.FailList).toEqual([]);
    expect(await marksOf(marks, "victim", DIRECT, "p")).toBe("absent");
  }

  it("a wrong signature gets 100000005", async () => {
    const { call, marks } = await setup();
    await expectRejected(await call(ok, { secret: "not-the-secret" }), 100000005, marks);
  });

  it("a timestamp more than 10 minutes away, either side, gets 100000004; within 10 minutes passes", async () => {
    const { call, marks } = await setup();
    const now = Math.floor(Date.now() / 1000);
    await expectRejected(await call(ok, { timestamp: now - 660 }), 100000004, marks);
    await expectRejected(await call(ok, { timestamp: now + 660 }), 100000004, marks);
    expect((await call(ok, { timestamp: now - 540 })).json.Code).toBe(0);
  });

  it("judges the timestamp by deps.now", async () => {
    const fixed = Date.UTC(2030, 0, 1);
    const { call, marks } = await setup({ now: () => fixed });
    await expectRejected(await call(ok), 100000004, marks);
    expect((await call(ok, { timestamp: fixed / 1000 - 100 })).json.Code).toBe(0);
  });

  it("a replayed SignatureNonce gets 100000004 and is not applied twice", async () => {
    const { base, marks } = await setup();
    const params = publicParams();
    const first = await postJson(setConvMarkUrl(base, params), body([entry("victim", { p: { MarkContent: 3 } }, undefined)]));
    expect(first.json.Code).toBe(0);
    // Clear it, then replay the first signed request: it must not set the mark again.
    expect((await postJson(setConvMarkUrl(base, publicParams()), body([entry("victim", { p: { MarkContent: 3 } }, undefined, false)]))).json.Code).toBe(0);
    const replay = await postJson(setConvMarkUrl(base, params), body([entry("victim", { p: { MarkContent: 3 } }, undefined)]));
    expect(replay.json.Code).toBe(100000004);
    expect(replay.json.FailList).toEqual([]);
    expect(await marksOf(marks, "victim", DIRECT, "p")).toEqual([]);
  });

  it("a wrong AppId gets 100000010, even signed with the right secret", async () => {
    const { call, marks } = await setup();
    await expectRejected(await call(ok, { appId: 987654321 }), 100000010, marks);
  });

  it("an unconfigured dialect answers every call with 100000010", async () => {
    const { call, marks } = await setup({ config: zegoConfigFromEnv({}) });
    await expectRejected(await call(ok), 100000010, marks);
    await expectRejected(await call(ok, { appId: "x" }), 100000010, marks);
  });

  it("SignatureVersion other than 2.0 gets 100000014, none gets 100000013", async () => {
    const { base, call, marks } = await setup();
    await expectRejected(await call(ok, { version: "1.0" }), 100000014, marks);
    const p = publicParams();
    delete p.SignatureVersion;
    await expectRejected(await postJson(setConvMarkUrl(base, p), ok), 100000013, marks);
  });

  it.each([
    ["AppId", undefined, 100000001],
    ["AppId", "12ab", 100000001],
    ["AppId", "99999999999", 100000001],
    ["Timestamp", undefined, 100000002],
    ["Timestamp", "soon", 100000003],
    ["SignatureNonce", undefined, 100000008],
    ["Signature", undefined, 100000009],
  ] as const)("%s=%s gets %i", async (name, value, code) => {
    const { base, marks } = await setup();
    const p = publicParams();
    if (value === undefined) delete p[name];
    else p[name] = value;
    await expectRejected(await postJson(setConvMarkUrl(base, p), ok), code, marks);
  });

  it("accepts an upper-case hex signature", async () => {
    const { base } = await setup();
    const p = publicParams();
    p.Signature = p.Signature!.toUpperCase();
    expect((await postJson(setConvMarkUrl(base, p), ok)).json.Code).toBe(0);
  });

  it("checks auth before reading the body", async () => {
    const { call } = await setup();
    expect((await call("{not json", { secret: "wrong" })).json.Code).toBe(100000005);
  });
});

describe("SetConvMark routing", () => {
  it("an unknown Action gets 100000007, a missing one 100000006, both in ZEGO's envelope", async () => {
    const { base } = await setup();
    const unknown = await postJson(setConvMarkUrl(base, publicParams(), "SetConvMarks"), DOC_EXAMPLE_BODY);
    expect(unknown.status).toBe(200);
    expect(unknown.json).toMatchObject({ Code: 100000007, FailList: [] });
    const missing = await postJson(setConvMarkUrl(base, publicParams(), null), DOC_EXAMPLE_BODY);
    expect(missing.json).toMatchObject({ Code: 100000006, FailList: [] });
  });

  it("claims path / only", async () => {
    const { base } = await setup();
    const r = await fetch(`${base}/v4/recentcontact/mark_contact?Action=SetConvMark`, { method: "POST", body: "{}" });
    expect(r.status).toBe(404);
    await r.text();
  });

  it("GET is a bad parameter (660000002)", async () => {
    const { base } = await setup();
    const r = await fetch(setConvMarkUrl(base, publicParams()), { signal: AbortSignal.timeout(10_000) });
    expect(((await r.json()) as { Code: number }).Code).toBe(660000002);
  });
});

describe("SetConvMark whole-request validation (660000002, nothing applied)", () => {
  const c2c = (n: number, mark = 2) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}`, { MarkContent: mark }]));

  async function expectBad(text: string, o: DepsOptions = {}) {
    const { call, marks } = await setup(o);
    const r = await call(text);
    expect(r.status).toBe(200);
    expect(r.json.Code).toBe(660000002);
    expect(r.json.FailList).toEqual([]);
    // Whatever else the body asked for (user "ok", peer "p0"), nothing was applied.
    expect(await marksOf(marks, "ok", DIRECT, "p0")).toBe("absent");
    return r;
  }

  it("0 entries", () => expectBad(body([])));
  it("101 entries", () => expectBad(body(Array.from({ length: 101 }, (_, i) => (i === 0 ? entry("ok", c2c(1), undefined) : entry(`u${i}`, c2c(1), undefined))))));
  it("100 entries are fine", async () => {
    const { call, marks } = await setup();
    const r = await call(body(Array.from({ length: 100 }, (_, i) => entry(`u${i}`, c2c(1), undefined))));
    expect(r.json.Code).toBe(0);
    expect(await marksOf(marks, "u99", DIRECT, "p0")).toEqual([2]);
  });
  it("101 conversations in SetMarkC2c", () => expectBad(body([entry("ok", c2c(101), undefined)])));
  it("101 conversations in SetMarkGroup", () => expectBad(body([entry("ok", c2c(1), c2c(101))])));
  it("100 + 100 conversations are fine", async () => {
    const { call, marks } = await setup();
    const r = await call(body([entry("ok", c2c(100), c2c(100))]));
    expect(r.json).toMatchObject({ Code: 0, FailList: [] });
    expect(await marksOf(marks, "ok", GROUP, "p99")).toEqual([2]);
  });
  it("neither SetMarkC2c nor SetMarkGroup", () => expectBad(body([entry("ok", c2c(1), undefined), entry("x", undefined, undefined)])));
  it("empty SetMarkC2c and SetMarkGroup", () => expectBad(body([entry("ok", c2c(1), undefined), entry("x", {}, {})])));
  it("missing Action", () => expectBad(body([entry("ok", c2c(1), undefined), { UserId: "x", SetMarkC2c: c2c(1) }])));
  it("Action null", () => expectBad(body([entry("ok", c2c(1), undefined), { ...entry("x", c2c(1), undefined), Action: null }])));
  it("Action as a string", () => expectBad(body([entry("ok", c2c(1), undefined), { ...entry("x", c2c(1), undefined), Action: "true" }])));
  it("missing UserId", () => expectBad(body([entry("ok", c2c(1), undefined), { SetMarkC2c: c2c(1), Action: true }])));
  it("missing FromUserId", () => expectBad(JSON.stringify({ ConvMarkInfoList: [entry("ok", c2c(1), undefined)] })));
  it("FromUserId outside the charset", () => expectBad(body([entry("ok", c2c(1), undefined)], "user/test")));
  it("UserId outside the charset", () => expectBad(body([entry("ok", c2c(1), undefined), entry("bad*user", c2c(1), undefined)])));
  it("UserId with a non-ASCII letter", () => expectBad(body([entry("ok", c2c(1), undefined), entry("usér", c2c(1), undefined)])));
  it('MarkContent "x"', () => expectBad(body([entry("ok", { p0: { MarkContent: "x" } }, undefined)])));
  it("MarkContent 1.5", () => expectBad(body([entry("ok", { p0: { MarkContent: 1.5 } }, undefined)])));
  it("MarkContent missing", () => expectBad(body([entry("ok", { p0: {} }, undefined)])));
  it("MarkContent beyond int32", () => expectBad(body([entry("ok", { p0: { MarkContent: 2 ** 32 } }, undefined)])));
  it("ConvMarkInfoList not an array", () => expectBad(JSON.stringify({ FromUserId: "a", ConvMarkInfoList: { UserId: "ok" } })));
  it("a JSON array body", () => expectBad(JSON.stringify([1, 2])));
  it("malformed JSON", () => expectBad('{"FromUserId": "user_test", "ConvMarkInfoList": ['));
  it("an empty body", () => expectBad(""));
  it("an oversized body", async () => {
    const r = await expectBad(body([entry("ok", c2c(100), undefined)]), { maxBodyBytes: 512 });
    expect(r.json.Message).toMatch(/512/);
  });
  it("an oversized body sent chunked (no Content-Length)", async () => {
    const { base, marks } = await setup({ maxBodyBytes: 512 });
    const payload = new TextEncoder().encode(body([entry("ok", c2c(100), undefined)]));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < payload.length; i += 256) controller.enqueue(payload.slice(i, i + 256));
        controller.close();
      },
    });
    const res = await fetch(setConvMarkUrl(base, publicParams()), {
      method: "POST",
      body: stream,
      headers: { "content-type": "application/json" },
      duplex: "half",
      signal: AbortSignal.timeout(10_000),
    } as RequestInit);
    expect(((await res.json()) as { Code: number }).Code).toBe(660000002);
    expect(await marksOf(marks, "ok", DIRECT, "p0")).toBe("absent");
  });

  it("unknown fields are ignored", async () => {
    const { call, marks } = await setup();
    const r = await call(JSON.stringify({ FromUserId: "f", Extra: 1, ConvMarkInfoList: [{ ...entry("u", { p: { MarkContent: 4, Color: "red" } }, undefined), Note: "x" }] }));
    expect(r.json.Code).toBe(0);
    expect(await marksOf(marks, "u", DIRECT, "p")).toEqual([4]);
  });
});

describe("SetConvMark partial and total failure", () => {
  it("MarkContent 0 and 31 fail per conversation as in the document's example, the rest applies", async () => {
    const { call, marks } = await setup();
    const r = await call(
      body([
        entry("UserA", { conv_id_1: { MarkContent: 0 }, conv_id_2: { MarkContent: 31 }, ok_peer: { MarkContent: 5 } }, undefined),
        entry("UserC", { p: { MarkContent: 5 } }, undefined),
      ]),
    );
    expect(r.json).toEqual({
      Code: 0,
      Message: "success",
      RequestId: r.json.RequestId,
      FailList: [
        {
          SubCode: 0,
          SubMessage: "succ",
          UserId: "UserA",
          FailList: [
            { Code: 1, Message: "mark content is invalide", ConvId: "conv_id_1", ConvType: 0 },
            { Code: 1, Message: "mark content is invalide", ConvId: "conv_id_2", ConvType: 0 },
          ],
        },
      ],
    });
    expect(await marksOf(marks, "UserA", DIRECT, "ok_peer")).toEqual([5]);
    expect(await marksOf(marks, "UserA", DIRECT, "conv_id_1")).toBe("absent");
    expect(await marksOf(marks, "UserC", DIRECT, "p")).toEqual([5]);
  });

  it("every conversation invalid: 660800054 with the whole FailList", async () => {
    const { call } = await setup();
    const r = await call(body([entry("UserA", { a: { MarkContent: 0 } }, { g: { MarkContent: -1 } })]));
    expect(r.json.Code).toBe(660800054);
    expect(r.json.FailList).toEqual([
      {
        SubCode: 660800054,
        SubMessage: expect.any(String),
        UserId: "UserA",
        FailList: [
          { Code: 1, Message: "mark content is invalide", ConvId: "a", ConvType: 0 },
          { Code: 1, Message: "mark content is invalide", ConvId: "g", ConvType: 2 },
        ],
      },
    ]);
  });

  it("the per-owner cap: partial failure reports the refused conversation", async () => {
    const { call, marks } = await setup({ maxMarkedPerOwner: 1 });
    const r = await call(body([entry("capped", { first: { MarkContent: 1 } }, { second: { MarkContent: 1 } })]));
    expect(r.json.Code).toBe(0);
    expect(r.json.FailList).toEqual([
      { SubCode: 0, SubMessage: "succ", UserId: "capped", FailList: [{ Code: 1, Message: expect.stringMatching(/limit/), ConvId: "second", ConvType: 2 }] },
    ]);
    expect(await marksOf(marks, "capped", DIRECT, "first")).toEqual([1]);
    expect(await marksOf(marks, "capped", GROUP, "second")).toBe("absent");
  });

  it("the per-owner cap: every conversation refused gives 660800054", async () => {
    const { call, marks } = await setup({ maxMarkedPerOwner: 1 });
    expect((await call(body([entry("capped", { first: { MarkContent: 1 } }, undefined)]))).json.Code).toBe(0);
    const r = await call(body([entry("capped", { a: { MarkContent: 1 }, b: { MarkContent: 2 } }, undefined), entry("capped2", undefined, { g: { MarkContent: 0 } })]));
    expect(r.json.Code).toBe(660800054);
    const fl = r.json.FailList as { SubCode: number; UserId: string; FailList: { ConvId: string; ConvType: number; Code: number }[] }[];
    expect(fl.map((u) => [u.UserId, u.SubCode])).toEqual([
      ["capped", 660800054],
      ["capped2", 660800054],
    ]);
    expect(fl[0]!.FailList.map((c) => [c.ConvId, c.ConvType, c.Code])).toEqual([
      ["a", 0, 1],
      ["b", 0, 1],
    ]);
    expect(await marksOf(marks, "capped", DIRECT, "a")).toBe("absent");
  });

  it("an invalid conversation ID (too long for convmark) fails alone with Code 2", async () => {
    const { call, marks } = await setup();
    const long = "x".repeat(300);
    const r = await call(body([entry("u", { [long]: { MarkContent: 1 }, fine: { MarkContent: 1 } }, undefined)]));
    expect(r.json.Code).toBe(0);
    expect(r.json.FailList).toEqual([{ SubCode: 0, SubMessage: "succ", UserId: "u", FailList: [{ Code: 2, Message: expect.any(String), ConvId: long, ConvType: 0 }] }]);
    expect(await marksOf(marks, "u", DIRECT, "fine")).toEqual([1]);
  });
});

describe("SetConvMark rate limit", () => {
  it("beyond the configured calls per second per AppId gives 660300005 with an empty FailList", async () => {
    const { call, marks } = await setup({ config: { ...CONFIGURED, rateLimitPerSecond: 2 } });
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => call(body([entry("rl", { [`p${i}`]: { MarkContent: 1 } }, undefined)]))));
    const limited = results.filter((r) => r.json.Code === 660300005);
    expect(limited.length).toBeGreaterThanOrEqual(1);
    for (const r of limited) expect(r.json.FailList).toEqual([]);
    const applied = results.filter((r) => r.json.Code === 0).length;
    expect(applied + limited.length).toBe(6);
    let present = 0;
    for (let i = 0; i < 6; i++) if ((await marksOf(marks, "rl", DIRECT, `p${i}`)) !== "absent") present++;
    expect(present).toBe(applied);
  });
});

describe("SetConvMark with a strict directory", () => {
  const directory = () =>
    fakeDirectory(true, {
      users: ["user_test", "UserA", "peer_ok"],
      groups: { grp_ok: { members: ["UserA"] }, grp_gone: { dismissed: true, members: ["UserA"] }, grp_other: { members: ["peer_ok"] } },
    });

  it("an unregistered FromUserId gets 660800001 and nothing is applied", async () => {
    const { call, marks } = await setup({ directory: directory() });
    const r = await call(body([entry("UserA", { peer_ok: { MarkContent: 2 } }, undefined)], "stranger"));
    expect(r.json).toMatchObject({ Code: 660800001, FailList: [] });
    expect(await marksOf(marks, "UserA", DIRECT, "peer_ok")).toBe("absent");
  });

  it("reports unknown users at user level and directory refusals per conversation", async () => {
    const { call, marks } = await setup({ directory: directory() });
    const r = await call(
      body([
        entry("UserA", { peer_ok: { MarkContent: 2 }, ghost: { MarkContent: 2 } }, { grp_ok: { MarkContent: 2 }, grp_missing: { MarkContent: 2 }, grp_gone: { MarkContent: 2 }, grp_other: { MarkContent: 2 } }),
        entry("UserB", { peer_ok: { MarkContent: 2 } }, undefined),
      ]),
    );
    expect(r.json.Code).toBe(0);
    const fl = r.json.FailList as Record<string, unknown>[];
    expect(fl).toHaveLength(2);
    expect(fl[0]).toMatchObject({ SubCode: 0, SubMessage: "succ", UserId: "UserA" });
    expect((fl[0]!.FailList as { ConvId: string; ConvType: number; Code: number }[]).map((c) => [c.ConvId, c.ConvType, c.Code])).toEqual([
      ["ghost", 0, 1],
      ["grp_missing", 2, 1],
      ["grp_gone", 2, 1],
      ["grp_other", 2, 1],
    ]);
    // As in the document's example: a user that does not exist, without an inner FailList.
    expect(fl[1]).toEqual({ SubCode: 1, SubMessage: "user not exist", UserId: "UserB" });
    expect(await marksOf(marks, "UserA", DIRECT, "peer_ok")).toEqual([2]);
    expect(await marksOf(marks, "UserA", GROUP, "grp_ok")).toEqual([2]);
    expect(await marksOf(marks, "UserA", GROUP, "grp_gone")).toBe("absent");
    expect(await marksOf(marks, "UserB", DIRECT, "peer_ok")).toBe("absent");
  });

  it("only unknown users: 660800054 with user-level entries", async () => {
    const { call } = await setup({ directory: directory() });
    const r = await call(body([entry("Nobody", { peer_ok: { MarkContent: 2 } }, undefined)]));
    expect(r.json).toMatchObject({ Code: 660800054, FailList: [{ SubCode: 1, SubMessage: "user not exist", UserId: "Nobody" }] });
  });

  it("a failing directory gives a ZEGO error, not a crash", async () => {
    const broken = { ...directory(), usersExist: async () => Promise.reject(new Error("db down")) };
    const { call } = await setup({ directory: broken });
    const r = await call(body([entry("UserA", { peer_ok: { MarkContent: 2 } }, undefined)]));
    expect(r.status).toBe(200);
    expect([660800001, 660000001]).toContain(r.json.Code);
  });
});

describe("ZimServerService over Connect (public parameters as metadata)", () => {
  async function connectSetup(o: DepsOptions = {}) {
    const { deps, store } = makeDeps(o);
    cleanups.push(() => store.close());
    const dialect = createZegoDialect(deps, CONFIGURED);
    const client = createClient(ZimServerService, createRouterTransport((r) => dialect.routes(r)));
    const headers = (s: SignOptions = {}) => Object.fromEntries(Object.entries(publicParams(s)).map(([k, v]) => [k.toLowerCase(), v]));
    return { client, headers, marks: deps.marks, dialect };
  }

  it("sets the document's example marks", async () => {
    const { client, headers, marks } = await connectSetup();
    const req = fromJson(SetConvMarkRequestSchema, JSON.parse(DOC_EXAMPLE_BODY));
    const resp = await client.setConvMark(req, { headers: headers() });
    expect(resp.code).toBe(0);
    expect(resp.message).toBe("success");
    expect(resp.requestId).not.toBe("");
    expect(resp.failList).toEqual([]);
    expect(await marksOf(marks, "userB", GROUP, "conv_group_2")).toEqual([2]);
  });

  it("answers auth and validation failures with ZEGO codes in the response", async () => {
    const { client, headers, marks } = await connectSetup();
    const req = { fromUserId: "f", convMarkInfoList: [{ userId: "u", setMarkC2c: { p: { markContent: 2 } }, action: true }] };
    expect((await client.setConvMark(req, { headers: headers({ secret: "nope" }) })).code).toBe(100000005);
    expect((await client.setConvMark(req, {})).code).toBe(100000001);
    expect((await client.setConvMark({ ...req, convMarkInfoList: [] }, { headers: headers() })).code).toBe(660000002);
    expect((await client.setConvMark({ ...req, convMarkInfoList: [{ userId: "u", setMarkC2c: { p: { markContent: 2 } } }] }, { headers: headers() })).code).toBe(660000002);
    expect(await marksOf(marks, "u", DIRECT, "p")).toBe("absent");
    const h = headers();
    expect((await client.setConvMark(req, { headers: h })).code).toBe(0);
    expect((await client.setConvMark(req, { headers: h })).code).toBe(100000004);
  });
});

describe("response JSON", () => {
  it("names every field as ZEGO does", async () => {
    const { call } = await setup();
    const r = await call(body([entry("U", { bad: { MarkContent: 99 }, good: { MarkContent: 9 } }, undefined)]));
    const user = (r.json.FailList as Record<string, unknown>[])[0]!;
    expect(Object.keys(user)).toEqual(["SubCode", "SubMessage", "UserId", "FailList"]);
    expect(Object.keys((user.FailList as Record<string, unknown>[])[0]!)).toEqual(["Code", "Message", "ConvId", "ConvType"]);
    // And it round-trips through the vendor schema.
    const msg = fromJson(SetConvMarkResponseSchema, r.json as never);
    expect(toJson(SetConvMarkResponseSchema, create(SetConvMarkResponseSchema, msg), { alwaysEmitImplicit: true })).toMatchObject({ Code: 0 });
  });
});

describe("validateRequest (pure)", () => {
  it("accepts the document's example", () => {
    expect(validateRequest(fromJson(SetConvMarkRequestSchema, JSON.parse(DOC_EXAMPLE_BODY)))).toBeUndefined();
  });
});

describe("NonceCache", () => {
  it("refuses a nonce until its TTL passes, on the injected clock", () => {
    let now = 1_000_000;
    const c = new NonceCache(3, () => now);
    expect(c.record("a", 1000)).toBe("recorded");
    now += 500;
    expect(c.has("a")).toBe(true);
    expect(c.record("a", 1000)).toBe("replay");
    now += 600;
    expect(c.has("a")).toBe(false);
    expect(c.record("a", 1000)).toBe("recorded");
  });

  it("refuses new nonces rather than dropping live ones when full, and makes room from expired ones", () => {
    let now = 1_000_000;
    const c = new NonceCache(3, () => now);
    for (const n of ["a", "b", "c"]) expect(c.record(n, 5000)).toBe("recorded");
    expect(c.record("d", 5000)).toBe("full");
    expect(c.has("a") && c.has("b") && c.has("c")).toBe(true);
    now += 6000;
    expect(c.record("d", 5000)).toBe("recorded");
    expect(c.size).toBe(1);
  });

  it("is sized for every call the rate limit admits within the Timestamp window", () => {
    expect(nonceCapacity(20)).toBe(20 * (2 * TIMESTAMP_WINDOW_SECONDS + 3));
  });
});

describe("zegoConfigFromEnv", () => {
  it("is unconfigured without credentials, with ZEGO's 20 calls/s", () => {
    expect(zegoConfigFromEnv({})).toEqual({ rateLimitPerSecond: 20 });
    expect(zegoConfigFromEnv({ ZEGO_APP_ID: "", ZEGO_SERVER_SECRET: "" })).toEqual({ rateLimitPerSecond: 20 });
  });
  it("reads the credentials and the rate limit", () => {
    expect(zegoConfigFromEnv({ ZEGO_APP_ID: "4294967295", ZEGO_SERVER_SECRET: "s3cret", ZEGO_RATE_LIMIT_PER_SECOND: "5" })).toEqual({
      credentials: { appId: 4294967295, serverSecret: "s3cret" },
      rateLimitPerSecond: 5,
    });
  });
  it.each([
    [{ ZEGO_APP_ID: "abc", ZEGO_SERVER_SECRET: "s" }, /ZEGO_APP_ID/],
    [{ ZEGO_APP_ID: "4294967296", ZEGO_SERVER_SECRET: "s" }, /ZEGO_APP_ID/],
    [{ ZEGO_APP_ID: "-1", ZEGO_SERVER_SECRET: "s" }, /ZEGO_APP_ID/],
    [{ ZEGO_APP_ID: "12" }, /together/],
    [{ ZEGO_SERVER_SECRET: "s" }, /together/],
    [{ ZEGO_RATE_LIMIT_PER_SECOND: "0" }, /ZEGO_RATE_LIMIT_PER_SECOND/],
    [{ ZEGO_RATE_LIMIT_PER_SECOND: "fast" }, /ZEGO_RATE_LIMIT_PER_SECOND/],
  ])("rejects %j", (env, message) => {
    expect(() => zegoConfigFromEnv(env)).toThrow(ConfigError);
    expect(() => zegoConfigFromEnv(env)).toThrow(message);
  });
});
