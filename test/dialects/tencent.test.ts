// The Tencent dialect in process: real MarkService over in-memory SQLite, the gateway behind a real
// node:http server on 127.0.0.1:0, UserSigs made with Tencent's own tls-sig-api-v2 package.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { PassThrough } from "node:stream";
import type { AddressInfo } from "node:net";
import { createRequire } from "node:module";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { pino } from "pino";
import { create } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { ConversationType, MarkService, UpdateResultSchema } from "../../gen/convmark/v1/mark_service_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { RecentContactService } from "../../gen/vendor/tencent/v1/recent_contact_pb.js";
import type { DialectDeps } from "../../src/dialects/dialect.js";
import { createTencentDialect, type TencentDialect } from "../../src/dialects/tencent/dialect.js";
import { codeOfResult } from "../../src/dialects/tencent/translate.js";
import type { TencentConfig } from "../../src/dialects/tencent/config.js";
import type { DirectoryLookup } from "../../src/directory/directory.js";
import { fakeDirectory } from "../support/fake-directory.js";
import { createDirectoryGuard } from "../../src/directory/guard.js";
import { DEFAULT_LIMITS, type Limits } from "../../src/domain/limits.js";
import { createMarkService } from "../../src/service/mark-service.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";

interface TlsApi {
  genUserSig(identifier: string, expire: number): string;
}
const TLSSigAPIv2 = createRequire(import.meta.url)("tls-sig-api-v2") as { Api: new (sdkappid: number, key: string) => TlsApi };

const APPID = 1400000001;
const KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
const ADMIN = "administrator";
const tls = new TLSSigAPIv2.Api(APPID, KEY);
const SIG = tls.genUserSig(ADMIN, 86400);
const MAX_BODY = 64 * 1024;
const MARKED_CAP = 5;

// ---------- fixtures ----------

interface Env {
  url: string;
  marks: Client<typeof MarkService>;
  dialect: TencentDialect;
  close(): Promise<void>;
}

const servers: Env[] = [];

async function startEnv(config: Partial<TencentConfig> = {}, directory: DirectoryLookup = fakeDirectory({ strict: false })): Promise<Env> {
  const limits: Limits = { ...DEFAULT_LIMITS, maxMarkedPerOwner: MARKED_CAP };
  const store = openSqliteStore({ path: ":memory:", limits });
  const service = createMarkService({ store, limits, guard: createDirectoryGuard(directory) });
  const marks = createClient(MarkService, createRouterTransport((r) => r.service(MarkService, service)));
  const deps: DialectDeps = { marks, directory, logger: pino({ level: "silent" }), now: () => Date.now(), maxBodyBytes: MAX_BODY };
  const dialect = createTencentDialect(deps, {
    sdkAppId: APPID,
    secretKey: KEY,
    adminIdentifiers: [ADMIN, "admin2"],
    rateLimitPerSecond: 10_000,
    ...config,
  });
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    dialect.handle(req, res, url).then(
      (mine) => {
        if (!mine) {
          res.writeHead(404, { "content-type": "text/plain" });
          res.end("not tencent");
        }
      },
      (err: unknown) => {
        res.writeHead(599);
        res.end(String(err));
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const env: Env = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    marks,
    dialect,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
    },
  };
  servers.push(env);
  return env;
}

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});
afterEach(() => vi.restoreAllMocks());

interface Query {
  sdkappid?: string;
  identifier?: string;
  usersig?: string;
  random?: string;
  contenttype?: string;
}

function markUrl(base: string, q: Query = {}, path = "/v4/recentcontact/mark_contact"): string {
  const params = { sdkappid: String(APPID), identifier: ADMIN, usersig: SIG, random: "99999999", contenttype: "json", ...q };
  const qs = Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${encodeURIComponent(v!)}`)
    .join("&");
  return `${base}${path}?${qs}`;
}

interface Reply {
  status: number;
  contentType: string | null;
  json: Record<string, unknown>;
}

async function post(url: string, body: string | Buffer | object, init: RequestInit = {}): Promise<Reply> {
  const payload = typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const r = await fetch(url, { method: "POST", body: payload, signal: AbortSignal.timeout(10_000), ...init });
  const text = await r.text();
  return { status: r.status, contentType: r.headers.get("content-type"), json: JSON.parse(text) as Record<string, unknown> };
}

const fail = (code: number) => ({ ActionStatus: "FAIL", ErrorCode: code, ErrorDisplay: "" });

function expectFail(r: Reply, code: number): void {
  expect(r.status).toBe(200);
  expect(r.json).toMatchObject(fail(code));
  expect(typeof r.json.ErrorInfo).toBe("string");
  expect((r.json.ErrorInfo as string).length).toBeGreaterThan(0);
  expect(r.json).not.toHaveProperty("ResultItem");
}

async function getConv(marks: Client<typeof MarkService>, owner: string, id: string, type = ConversationType.DIRECT) {
  try {
    return (await marks.getConversation({ key: { ownerUserId: owner, type, conversationId: id } })).conversation;
  } catch (e) {
    if (e instanceof ConnectError && e.code === Code.NotFound) return undefined;
    throw e;
  }
}

const c2c = (to: string) => ({ Type: 1, To_Account: to });
const item = (to: string, extra: object = { OptType: 1, SetMark: [1] }) => ({ ...extra, ContactItem: c2c(to) });

// ---------- tests ----------

describe("mark_contact: the documented examples", () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
  });

  it("the Chinese original's request, sent verbatim, gets the documented response and is stored", async () => {
    const body = `{
    "From_Account":"user0",
    "MarkItem":[
        {
            "OptType":3,
            "ContactItem":{
                "Type":1,                   
                "To_Account":"user1"
            },
            "SetMark":[1,2,3],
            "CustomMark":"abcd"
        }
    ]
}`;
    const r = await post(markUrl(env.url), body, { headers: { "content-type": "application/json" } });
    expect(r.status).toBe(200);
    expect(r.contentType).toMatch(/^application\/json/);
    expect(r.json).toEqual({
      ResultItem: [{ OptType: 3, ContactItem: { Type: 1, To_Account: "user1" }, ResultCode: 0, ResultInfo: "" }],
      ActionStatus: "OK",
      ErrorCode: 0,
      ErrorInfo: "",
      ErrorDisplay: "",
    });
    const conv = await getConv(env.marks, "user0", "user1");
    expect(conv?.marks).toEqual([1, 2, 3]);
    expect(conv?.markBits).toBe(0b111n);
    expect(conv?.customMark).toBe("abcd");
  });

  it("the English translation's request (user_0001 → user_0002) as well", async () => {
    const body =
      '{"From_Account": "user_0001","MarkItem": [{"OptType": 3,"ContactItem": {"Type": 1,"To_Account": "user_0002"},"SetMark": [1,2,3],"CustomMark": "abcd"}]}';
    const r = await post(markUrl(env.url), body);
    expect(r.json).toMatchObject({
      ResultItem: [{ OptType: 3, ContactItem: { Type: 1, To_Account: "user_0002" }, ResultCode: 0, ResultInfo: "" }],
      ActionStatus: "OK",
      ErrorCode: 0,
      ErrorInfo: "",
    });
    const conv = await getConv(env.marks, "user_0001", "user_0002");
    expect(conv?.marks).toEqual([1, 2, 3]);
    expect(conv?.customMark).toBe("abcd");
  });
});

describe("mark_contact semantics", () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
  });

  it("group conversations, ClearMark, OptType scoping, clearing the custom mark", async () => {
    const first = await post(markUrl(env.url), {
      From_Account: "s1",
      MarkItem: [
        { OptType: 3, ContactItem: { Type: 2, ToGroupId: "@TGS#g1" }, SetMark: [4, 64], CustomMark: "grp" },
        { OptType: 1, ContactItem: c2c("p1"), SetMark: [1, 2, 33], CustomMark: "ignored" },
      ],
    });
    expect((first.json.ResultItem as { ResultCode: number }[]).map((x) => x.ResultCode)).toEqual([0, 0]);
    const g = await getConv(env.marks, "s1", "@TGS#g1", ConversationType.GROUP);
    expect(g?.marks).toEqual([4, 64]);
    expect(g?.customMark).toBe("grp");
    expect((await getConv(env.marks, "s1", "p1"))?.customMark).toBe("");

    const second = await post(markUrl(env.url), {
      From_Account: "s1",
      MarkItem: [
        { OptType: 1, ContactItem: c2c("p1"), SetMark: [3], ClearMark: [1, 33] },
        // OptType 2: SetMark/ClearMark are ignored, even when invalid; "" removes the custom mark.
        { OptType: 2, ContactItem: { Type: 2, ToGroupId: "@TGS#g1" }, SetMark: [99], ClearMark: [4], CustomMark: "" },
      ],
    });
    expect(second.json).toMatchObject({ ActionStatus: "OK", ErrorCode: 0 });
    expect((second.json.ResultItem as { ResultCode: number }[]).map((x) => x.ResultCode)).toEqual([0, 0]);
    expect((await getConv(env.marks, "s1", "p1"))?.marks).toEqual([2, 3]);
    const g2 = await getConv(env.marks, "s1", "@TGS#g1", ConversationType.GROUP);
    expect(g2?.marks).toEqual([4, 64]);
    expect(g2?.customMark).toBe("");
  });

  it("an absent CustomMark under OptType 2 leaves the custom mark alone", async () => {
    await post(markUrl(env.url), { From_Account: "s2", MarkItem: [item("p", { OptType: 2, CustomMark: "keep" })] });
    const r = await post(markUrl(env.url), { From_Account: "s2", MarkItem: [item("p", { OptType: 2 })] });
    expect(r.json).toMatchObject({ ActionStatus: "OK", ResultItem: [{ ResultCode: 0 }] });
    expect((await getConv(env.marks, "s2", "p"))?.customMark).toBe("keep");
  });

  it("51006 for an empty MarkItem, 101 items, or none at all; nothing is applied", async () => {
    expectFail(await post(markUrl(env.url), { From_Account: "s3", MarkItem: [] }), 51006);
    expectFail(await post(markUrl(env.url), { From_Account: "s3" }), 51006);
    const many = Array.from({ length: 101 }, (_, i) => item(`p${i}`));
    expectFail(await post(markUrl(env.url), { From_Account: "s3", MarkItem: many }), 51006);
    expect(await getConv(env.marks, "s3", "p0")).toBeUndefined();
    // 100 is allowed.
    const ok = await post(markUrl(env.url), { From_Account: "s3b", MarkItem: many.slice(0, 100).map((x) => ({ ...x, SetMark: [] })) });
    expect(ok.json).toMatchObject({ ActionStatus: "OK", ErrorCode: 0 });
    expect((ok.json.ResultItem as unknown[]).length).toBe(100);
  });

  it("51008 for the conversations beyond the per-user cap; the others succeed", async () => {
    const items = Array.from({ length: MARKED_CAP + 2 }, (_, i) => item(`cap${i}`));
    const r = await post(markUrl(env.url), { From_Account: "s4", MarkItem: items });
    expect(r.json).toMatchObject({ ActionStatus: "OK", ErrorCode: 0 });
    const codes = (r.json.ResultItem as { ResultCode: number }[]).map((x) => x.ResultCode);
    expect(codes).toEqual([...Array(MARKED_CAP).fill(0), 51008, 51008]);
    const last = (r.json.ResultItem as { ContactItem: unknown; ResultInfo: string }[])[MARKED_CAP + 1]!;
    expect(last.ContactItem).toEqual(c2c(`cap${MARKED_CAP + 1}`));
    expect(last.ResultInfo.length).toBeGreaterThan(0);
    expect(await getConv(env.marks, "s4", `cap${MARKED_CAP}`)).toBeUndefined();
    // Already-marked conversations can still change at the cap.
    const again = await post(markUrl(env.url), { From_Account: "s4", MarkItem: [item("cap0", { OptType: 1, SetMark: [2] })] });
    expect(again.json).toMatchObject({ ResultItem: [{ ResultCode: 0 }] });
  });

  it("50002 for whole-request problems: no ResultItem, nothing applied", async () => {
    const good = [item("w1")];
    expectFail(await post(markUrl(env.url), { MarkItem: good }), 50002);
    expectFail(await post(markUrl(env.url), { From_Account: "", MarkItem: good }), 50002);
    expectFail(await post(markUrl(env.url), { From_Account: 12345, MarkItem: good }), 50002);
    expectFail(await post(markUrl(env.url), { From_Account: "x".repeat(257), MarkItem: good }), 50002);
    expectFail(await post(markUrl(env.url), { From_Account: "w", MarkItem: "all" }), 50002);
    expectFail(await post(markUrl(env.url), { From_Account: "w", MarkItem: [{ OptType: "three", ContactItem: c2c("w1") }] }), 50002);
    expectFail(await post(markUrl(env.url), { From_Account: "w", MarkItem: [{ OptType: 1, ContactItem: c2c("w1"), SetMark: [1.5] }] }), 50002);
    expectFail(await post(markUrl(env.url), { From_Account: "w", MarkItem: [{ OptType: 1, ContactItem: c2c("w1"), SetMark: "1" }] }), 50002);
    expectFail(await post(markUrl(env.url), [{ From_Account: "w" }]), 50002);
    expectFail(await post(markUrl(env.url), "42"), 50002);
    expectFail(await post(markUrl(env.url), "null"), 50002);
    expect(await getConv(env.marks, "w", "w1")).toBeUndefined();
  });

  it("50002 for item-local problems: that item alone fails, echoed, the others apply", async () => {
    const items = [
      item("ok1"),
      { ContactItem: c2c("bad1"), SetMark: [1] }, // no OptType
      { OptType: 4, ContactItem: c2c("bad2"), SetMark: [1] },
      { OptType: 1, SetMark: [1] }, // no ContactItem
      { OptType: 1, ContactItem: { To_Account: "bad4" }, SetMark: [1] },
      { OptType: 1, ContactItem: { Type: 1, ToGroupId: "bad5" }, SetMark: [1] },
      { OptType: 1, ContactItem: { Type: 2, To_Account: "bad6" }, SetMark: [1] },
      { OptType: 1, ContactItem: { Type: 7, To_Account: "bad7" }, SetMark: [1] },
      { OptType: 1, ContactItem: c2c("bad8"), SetMark: [65] },
      { OptType: 3, ContactItem: c2c("bad9"), ClearMark: [0] },
      { OptType: 1, ContactItem: c2c("bad10"), SetMark: [5], ClearMark: [5] },
      { OptType: 2, ContactItem: c2c("bad11"), CustomMark: "x".repeat(257) },
      { OptType: 1, ContactItem: c2c("x".repeat(300)), SetMark: [1] }, // too long for convmark: MarkService says INVALID_ARGUMENT
      item("ok2", { OptType: 2, CustomMark: "y".repeat(256) }),
    ];
    const r = await post(markUrl(env.url), { From_Account: "s5", MarkItem: items });
    expect(r.json).toMatchObject({ ActionStatus: "OK", ErrorCode: 0, ErrorInfo: "" });
    const res = r.json.ResultItem as { OptType?: number; ContactItem?: unknown; ResultCode: number; ResultInfo: string }[];
    expect(res.map((x) => x.ResultCode)).toEqual([0, ...Array(12).fill(50002), 0]);
    for (const x of res.slice(1, -1)) expect(x.ResultInfo.length).toBeGreaterThan(0);
    // Echo: as given, absent stays absent.
    expect(res[1]).not.toHaveProperty("OptType");
    expect(res[1]!.ContactItem).toEqual(c2c("bad1"));
    expect(res[2]!.OptType).toBe(4);
    expect(res[3]).not.toHaveProperty("ContactItem");
    expect(res[4]!.ContactItem).toEqual({ To_Account: "bad4" });
    expect(res[6]!.ContactItem).toEqual({ Type: 2, To_Account: "bad6" });
    expect((await getConv(env.marks, "s5", "ok1"))?.marks).toEqual([1]);
    expect((await getConv(env.marks, "s5", "ok2"))?.customMark).toBe("y".repeat(256));
    for (const bad of ["bad1", "bad2", "bad8", "bad9", "bad10", "bad11"]) expect(await getConv(env.marks, "s5", bad)).toBeUndefined();
  });

  it("unknown JSON fields are ignored", async () => {
    const r = await post(markUrl(env.url), { From_Account: "s6", Extra: 1, MarkItem: [{ ...item("u"), Foo: "bar" }] });
    expect(r.json).toMatchObject({ ActionStatus: "OK", ResultItem: [{ ResultCode: 0 }] });
  });
});

describe("request format errors", () => {
  let env: Env;
  beforeAll(async () => {
    env = await startEnv();
  });

  it("60003 for malformed JSON, an empty body and non-UTF-8", async () => {
    expectFail(await post(markUrl(env.url), '{"From_Account":"a",'), 60003);
    expectFail(await post(markUrl(env.url), ""), 60003);
    expectFail(await post(markUrl(env.url), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), 60003);
  });

  it("60002 for an oversized body, which is not applied", async () => {
    const big = { From_Account: "big", MarkItem: [item("b", { OptType: 2, CustomMark: "z" })], Pad: "p".repeat(MAX_BODY) };
    expectFail(await post(markUrl(env.url), big), 60002);
    expect(await getConv(env.marks, "big", "b")).toBeUndefined();
  });

  it("60009 for other /v4 APIs; 60002 for a method other than POST; other paths are not claimed", async () => {
    for (const path of ["/v4/recentcontact/delete", "/v4/openim/sendmsg", "/v4", "/v4/recentcontact/mark_contact/"]) {
      expectFail(await post(markUrl(env.url, {}, path), {}), 60009);
    }
    const get = await fetch(markUrl(env.url), { signal: AbortSignal.timeout(10_000) });
    expect(get.status).toBe(200);
    expect(await get.json()).toMatchObject(fail(60002));
    const other = await fetch(`${env.url}/v5/recentcontact/mark_contact`, { method: "POST", body: "{}", signal: AbortSignal.timeout(10_000) });
    expect(other.status).toBe(404);
    expect(await other.text()).toBe("not tencent");
  });
});

describe("authentication", () => {
  let env: Env;
  const body = { From_Account: "auth_owner", MarkItem: [item("auth_peer")] };
  beforeAll(async () => {
    env = await startEnv();
  });

  async function expectRefused(q: Query, code: number): Promise<void> {
    expectFail(await post(markUrl(env.url, q), body), code);
  }

  it("query parameters: 60012 no sdkappid, 60002 malformed, 60004 no identifier/usersig, 60002 random/contenttype", async () => {
    await expectRefused({ sdkappid: undefined }, 60012);
    await expectRefused({ sdkappid: "" }, 60012);
    await expectRefused({ sdkappid: "14000x" }, 60002);
    await expectRefused({ sdkappid: "4294967296" }, 60002);
    await expectRefused({ identifier: undefined }, 60004);
    await expectRefused({ usersig: undefined }, 60004);
    await expectRefused({ usersig: "" }, 60004);
    await expectRefused({ random: undefined }, 60002);
    await expectRefused({ random: "-1" }, 60002);
    await expectRefused({ random: "4294967296" }, 60002);
    await expectRefused({ random: "12ab" }, 60002);
    await expectRefused({ contenttype: undefined }, 60002);
    await expectRefused({ contenttype: "JSON" }, 60002);
    await expectRefused({ contenttype: "xml" }, 60002);
    // Boundaries that are fine.
    const ok = await post(markUrl(env.url, { random: "4294967295" }), body);
    expect(ok.json).toMatchObject({ ActionStatus: "OK" });
    const zero = await post(markUrl(env.url, { random: "0" }), body);
    expect(zero.json).toMatchObject({ ActionStatus: "OK" });
  });

  it("70020 for another SDKAppID in the URL", async () => {
    await expectRefused({ sdkappid: "1400000002", usersig: new TLSSigAPIv2.Api(1400000002, KEY).genUserSig(ADMIN, 86400) }, 70020);
  });

  it("70001 for an expired UserSig", async () => {
    vi.spyOn(Date, "now").mockReturnValue(Date.now() - 3_600_000);
    const expired = tls.genUserSig(ADMIN, 60);
    vi.restoreAllMocks();
    await expectRefused({ usersig: expired }, 70001);
  });

  it("70001 once a UserSig that was accepted (and cached) has expired", async () => {
    const shortLived = tls.genUserSig(ADMIN, 60);
    expect((await post(markUrl(env.url, { usersig: shortLived }), body)).json).toMatchObject({ ActionStatus: "OK" });
    const later = Date.now() + 120_000;
    vi.spyOn(Date, "now").mockReturnValue(later);
    try {
      await expectRefused({ usersig: shortLived }, 70001);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it("70013 for a UserSig accepted (and cached) for another identifier", async () => {
    expect((await post(markUrl(env.url, { usersig: SIG }), body)).json).toMatchObject({ ActionStatus: "OK" });
    await expectRefused({ identifier: "admin2", usersig: SIG }, 70013);
  });

  it("70013 for a UserSig of another identifier, 70014 of another SDKAppID", async () => {
    await expectRefused({ usersig: tls.genUserSig("admin2", 86400) }, 70013);
    await expectRefused({ usersig: new TLSSigAPIv2.Api(1400000009, KEY).genUserSig(ADMIN, 86400) }, 70014);
  });

  it("70009 for a UserSig made with another key; 70003 for a garbled one", async () => {
    await expectRefused({ usersig: new TLSSigAPIv2.Api(APPID, "not-the-key").genUserSig(ADMIN, 86400) }, 70009);
    await expectRefused({ usersig: "garbage" }, 70003);
    const mid = Math.floor(SIG.length / 2);
    await expectRefused({ usersig: SIG.slice(0, mid) + (SIG[mid] === "A" ? "B" : "A") + SIG.slice(mid + 1) }, 70003);
  });

  it("50003 for a valid UserSig of an account that is not an App admin", async () => {
    await expectRefused({ identifier: "user0", usersig: tls.genUserSig("user0", 86400) }, 50003);
    // A second configured admin is accepted.
    const ok = await post(markUrl(env.url, { identifier: "admin2", usersig: tls.genUserSig("admin2", 86400) }), body);
    expect(ok.json).toMatchObject({ ActionStatus: "OK", ErrorCode: 0 });
  });

  it("nothing refused was applied", async () => {
    const fresh = { From_Account: "never", MarkItem: [item("never_peer")] };
    for (const q of [{ usersig: "garbage" }, { identifier: "user0", usersig: tls.genUserSig("user0", 86400) }, { random: undefined }] as Query[]) {
      await post(markUrl(env.url, q), fresh);
    }
    expect(await getConv(env.marks, "never", "never_peer")).toBeUndefined();
  });

  it("unconfigured: 70020 without an SDKAppID, 70016 without a key", async () => {
    const none = await startEnv({ sdkAppId: undefined, secretKey: undefined });
    expectFail(await post(markUrl(none.url), body), 70020);
    const noKey = await startEnv({ secretKey: undefined });
    expectFail(await post(markUrl(noKey.url), body), 70016);
  });
});

describe("rate limit", () => {
  it("60007 beyond the configured calls per second per SDKAppID", async () => {
    const env = await startEnv({ rateLimitPerSecond: 3 });
    const body = { From_Account: "rl", MarkItem: [item("p")] };
    const replies = await Promise.all(Array.from({ length: 5 }, () => post(markUrl(env.url), body)));
    const codes = replies.map((r) => r.json.ErrorCode).sort();
    expect(codes).toEqual([0, 0, 0, 60007, 60007]);
    for (const r of replies.filter((x) => x.json.ErrorCode === 60007)) expectFail(r, 60007);
    // Refused calls do not use up the limit: the next second allows calls again.
    await new Promise((r) => setTimeout(r, 1100));
    expect((await post(markUrl(env.url), body)).json).toMatchObject({ ErrorCode: 0 });
  });
});

describe("strict directory", () => {
  let env: Env;
  beforeAll(async () => {
    const dir = fakeDirectory({
      strict: true,
      users: ["alice", "bob"],
      groups: { g_live: { members: ["alice"] }, g_dead: { dismissed: true, members: ["alice"] }, g_other: { members: ["bob"] } },
    });
    env = await startEnv({}, dir);
  });

  it("50001 for an unknown From_Account, as a whole", async () => {
    expectFail(await post(markUrl(env.url), { From_Account: "mallory", MarkItem: [item("alice")] }), 50001);
  });

  it("per item: 50001 unknown peer, 51007 missing or dismissed group, 10007 not a member", async () => {
    const r = await post(markUrl(env.url), {
      From_Account: "alice",
      MarkItem: [
        item("bob"),
        item("nobody"),
        { OptType: 1, ContactItem: { Type: 2, ToGroupId: "g_live" }, SetMark: [1] },
        { OptType: 1, ContactItem: { Type: 2, ToGroupId: "g_missing" }, SetMark: [1] },
        { OptType: 1, ContactItem: { Type: 2, ToGroupId: "g_dead" }, SetMark: [1] },
        { OptType: 1, ContactItem: { Type: 2, ToGroupId: "g_other" }, SetMark: [1] },
      ],
    });
    expect(r.json).toMatchObject({ ActionStatus: "OK", ErrorCode: 0 });
    expect((r.json.ResultItem as { ResultCode: number }[]).map((x) => x.ResultCode)).toEqual([0, 50001, 0, 51007, 51007, 10007]);
    expect(await getConv(env.marks, "alice", "nobody")).toBeUndefined();
    expect((await getConv(env.marks, "alice", "g_live", ConversationType.GROUP))?.marks).toEqual([1]);
  });
});

describe("gRPC/Connect: RecentContactService.MarkContact with metadata auth", () => {
  let env: Env;
  let client: Client<typeof RecentContactService>;
  beforeAll(async () => {
    env = await startEnv();
    client = createClient(RecentContactService, createRouterTransport((r) => env.dialect.routes(r)));
  });
  const headers = (over: Record<string, string | undefined> = {}) => {
    const h = new Headers();
    for (const [k, v] of Object.entries({ sdkappid: String(APPID), identifier: ADMIN, usersig: SIG, random: "7", ...over })) if (v !== undefined) h.set(k, v);
    return h;
  };

  it("applies the same request as REST and answers with the same envelope", async () => {
    const resp = await client.markContact(
      {
        fromAccount: "grpc_owner",
        markItem: [{ optType: 3, contactItem: { type: 1, toAccount: "grpc_peer" }, setMark: [1n, 2n, 3n], customMark: "abcd" }],
      },
      { headers: headers() },
    );
    expect(resp).toMatchObject({ actionStatus: "OK", errorCode: 0, errorInfo: "", errorDisplay: "" });
    expect(resp.resultItem).toHaveLength(1);
    expect(resp.resultItem[0]).toMatchObject({ optType: 3, contactItem: { type: 1, toAccount: "grpc_peer" }, resultCode: 0, resultInfo: "" });
    const conv = await getConv(env.marks, "grpc_owner", "grpc_peer");
    expect(conv?.marks).toEqual([1, 2, 3]);
    expect(conv?.customMark).toBe("abcd");
  });

  it("auth and limits errors travel in the response, not as RPC errors", async () => {
    const req = { fromAccount: "grpc_owner", markItem: [{ optType: 1, contactItem: { type: 1, toAccount: "x" }, setMark: [1n] }] };
    expect(await client.markContact(req, { headers: headers({ usersig: undefined }) })).toMatchObject({ actionStatus: "FAIL", errorCode: 60004 });
    expect(await client.markContact(req, { headers: headers({ random: "nope" }) })).toMatchObject({ errorCode: 60002 });
    expect(await client.markContact(req, { headers: headers({ contenttype: "xml" }) })).toMatchObject({ errorCode: 60002 });
    expect(await client.markContact(req, { headers: headers({ usersig: tls.genUserSig("admin2", 60) }) })).toMatchObject({ errorCode: 70013 });
    expect(await client.markContact({ fromAccount: "grpc_owner", markItem: [] }, { headers: headers() })).toMatchObject({ errorCode: 51006, resultItem: [] });
    expect(await client.markContact({ markItem: req.markItem }, { headers: headers() })).toMatchObject({ errorCode: 50002 });
  });
});

describe("internal errors", () => {
  /** The shared fake directory with one of its lookups failing. */
  const brokenDirectory = (brokenCall: "usersExist" | "groups"): DirectoryLookup => {
    const base = fakeDirectory({ strict: true, users: ["alice"] });
    const down = () => Promise.reject(new Error("directory down"));
    return { ...base, usersExist: brokenCall === "usersExist" ? down : base.usersExist, groups: brokenCall === "groups" ? down : base.groups };
  };

  it("50004 when the directory fails (the dialect's From_Account check or MarkService's guard); nothing applied", async () => {
    const a = await startEnv({}, brokenDirectory("usersExist"));
    expectFail(await post(markUrl(a.url), { From_Account: "alice", MarkItem: [item("bob")] }), 50004);
    const b = await startEnv({}, brokenDirectory("groups"));
    const body = { From_Account: "alice", MarkItem: [{ OptType: 1, ContactItem: { Type: 2, ToGroupId: "g" }, SetMark: [1] }] };
    expectFail(await post(markUrl(b.url), body), 50004);
    expect(await getConv(b.marks, "alice", "g", ConversationType.GROUP)).toBeUndefined();
  });

  it("per-item result codes from MarkService statuses", () => {
    const failed = (code: number, reason?: string) => {
      const status = { code, message: "m", details: reason ? [anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { reason, domain: "convmark" }))] : [] };
      return create(UpdateResultSchema, { status });
    };
    expect(codeOfResult(create(UpdateResultSchema, { status: { code: 0 } })).code).toBe(0);
    expect(codeOfResult(failed(Code.Internal)).code).toBe(50004);
    expect(codeOfResult(failed(Code.Unavailable)).code).toBe(50004);
    expect(codeOfResult(undefined).code).toBe(50004);
    expect(codeOfResult(failed(Code.InvalidArgument)).code).toBe(50002);
    expect(codeOfResult(failed(Code.ResourceExhausted, "OWNER_MARKED_LIMIT")).code).toBe(51008);
    expect(codeOfResult(failed(Code.NotFound, "USER_NOT_FOUND")).code).toBe(50001);
    expect(codeOfResult(failed(Code.NotFound, "PEER_NOT_FOUND")).code).toBe(50001);
    expect(codeOfResult(failed(Code.NotFound, "GROUP_NOT_FOUND")).code).toBe(51007);
    expect(codeOfResult(failed(Code.FailedPrecondition, "GROUP_DISMISSED")).code).toBe(51007);
    expect(codeOfResult(failed(Code.PermissionDenied, "NOT_GROUP_MEMBER")).code).toBe(10007);
  });

  it("60008 when the request body cannot be read (client gone)", async () => {
    const env = await startEnv();
    const req = Object.assign(new PassThrough(), { method: "POST", headers: {} as Record<string, string> });
    let status = 0;
    let text = "";
    const res = {
      writeHead(s: number) {
        status = s;
        return this;
      },
      end(t: string) {
        text = t;
      },
    };
    const url = new URL(markUrl("http://x"));
    const done = env.dialect.handle(req as unknown as IncomingMessage, res as unknown as ServerResponse, url);
    req.write('{"From_Account":"gone","MarkItem":[');
    setTimeout(() => req.destroy(new Error("socket hang up")), 20);
    expect(await done).toBe(true);
    expect(status).toBe(200);
    expect(JSON.parse(text)).toMatchObject(fail(60008));
  });
});
