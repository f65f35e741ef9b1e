// The OpenIM dialect in process: its REST gateway behind a real node:http server, its Connect/gRPC
// services behind a real node:http2 server, MarkService over an in-memory SQLite store.
import { createServer, type Server } from "node:http";
import { createServer as createH2Server, type Http2Server, type ServerHttp2Session } from "node:http2";
import type { AddressInfo } from "node:net";
import { createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { SignJWT } from "jose";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ConversationType, MarkService, ReceiveOption } from "../../gen/convmark/v1/mark_service_pb.js";
import { AuthService } from "../../gen/vendor/openim/v1/auth_service_pb.js";
import { ConversationService } from "../../gen/vendor/openim/v1/conversation_service_pb.js";
import type { DirectoryLookup } from "../../src/directory/directory.js";
import { fakeDirectory, type FakeDirectoryData as FakeDir } from "../support/fake-directory.js";
import { createDirectoryGuard } from "../../src/directory/guard.js";
import { DEFAULT_LIMITS } from "../../src/domain/limits.js";
import { createOpenimDialect, type OpenimConfig } from "../../src/dialects/openim/index.js";
import { createMarkService, type KeyGuard } from "../../src/service/mark-service.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import { SEED_BODY } from "../support/openim-seed.js";

const SECRET = "openIM123";
const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);


interface Harness {
  url: string;
  h2url: string;
  marks: Client<typeof MarkService>;
  clock: { now: number };
  post(path: string, body: string | object, headers?: Record<string, string>): Promise<{ status: number; json: Record<string, unknown>; text: string }>;
  adminToken(userID?: string): Promise<string>;
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

async function start(
  opts: { config?: Partial<OpenimConfig>; directory?: DirectoryLookup; guard?: KeyGuard; maxBodyBytes?: number } = {},
): Promise<Harness> {
  const store = openSqliteStore({ path: ":memory:", limits: DEFAULT_LIMITS });
  const markImpl = createMarkService({ store, limits: DEFAULT_LIMITS, ...(opts.guard ? { guard: opts.guard } : {}) });
  const marks = createClient(MarkService, createRouterTransport((r) => r.service(MarkService, markImpl)));
  const clock = { now: T0 };
  const config: OpenimConfig = { secret: SECRET, adminUserIds: ["imAdmin"], tokenTtlSeconds: 7_776_000, maxUserIds: 1000, rateLimitPerSecond: 0, secretFailuresPerMinute: 10, ...opts.config };
  const dialect = createOpenimDialect(
    {
      marks,
      directory: opts.directory ?? fakeDirectory({ strict: false }),
      logger: pino({ level: "silent" }),
      now: () => clock.now,
      maxBodyBytes: opts.maxBodyBytes ?? 64 * 1024,
    },
    config,
  );
  const http1: Server = createServer((req, res) => {
    dialect.handle(req, res, new URL(req.url ?? "/", "http://x")).then(
      (handled) => {
        if (!handled) {
          res.writeHead(418);
          res.end("not handled");
        }
      },
      (e: unknown) => {
        res.writeHead(500);
        res.end(String(e));
      },
    );
  });
  const h2: Http2Server = createH2Server(connectNodeAdapter({ routes: (r) => dialect.routes(r) }));
  // Clients keep their HTTP/2 sessions open; close() would wait for them forever.
  const sessions = new Set<ServerHttp2Session>();
  h2.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((r) => http1.listen(0, "127.0.0.1", r));
  await new Promise<void>((r) => h2.listen(0, "127.0.0.1", r));
  closers.push(async () => {
    http1.closeAllConnections();
    await new Promise((r) => http1.close(r));
    for (const s of sessions) s.destroy();
    await new Promise((r) => h2.close(r));
    await store.close();
  });
  const url = `http://127.0.0.1:${(http1.address() as AddressInfo).port}`;
  const h2url = `http://127.0.0.1:${(h2.address() as AddressInfo).port}`;
  const post: Harness["post"] = async (path, body, headers = {}) => {
    const res = await fetch(url + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      /* not JSON */
    }
    return { status: res.status, json, text };
  };
  const adminToken = async (userID = "imAdmin") => {
    const r = await post("/auth/get_admin_token", { secret: SECRET, userID }, { operationID: "op-token" });
    expect(r.json.errCode).toBe(0);
    return (r.json.data as { token: string }).token;
  };
  return { url, h2url, marks, clock, post, adminToken };
}

const signed = (claims: Record<string, unknown>, secret = SECRET) =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(new TextEncoder().encode(secret));

const directKey = (owner: string, peer: string) => ({ ownerUserId: owner, type: ConversationType.DIRECT, conversationId: peer });
const groupKey = (owner: string, group: string) => ({ ownerUserId: owner, type: ConversationType.GROUP, conversationId: group });

async function versionOf(h: Harness, key: ReturnType<typeof directKey>): Promise<bigint> {
  const r = await h.marks.batchGetConversations({ keys: [key] });
  return r.conversations[0]!.version;
}

function expectError(r: { status: number; json: Record<string, unknown> }, code: number, name: string, detail?: string) {
  expect(r.status).toBe(code === 429 ? 429 : 200);
  expect(Object.keys(r.json).sort()).toEqual(["errCode", "errDlt", "errMsg"]);
  expect(r.json.errCode).toBe(code);
  expect(r.json.errMsg).toBe(name);
  expect(r.json.errDlt).toMatch(new RegExp(`: \\[${code}\\]${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`));
  if (detail !== undefined) expect(r.json.errDlt).toContain(detail);
}

/** An API-layer error (a header, the request's Check()): v3.8.3 prints ErrArgs with an empty errDlt. */
function expectApiError(r: { status: number; json: Record<string, unknown> }) {
  expect(r.status).toBe(200);
  expect(r.json).toEqual({ errCode: 1001, errMsg: "ArgsError", errDlt: "" });
}

/** A body the binding could not decode: the decoder's message is errMsg, errDlt is empty. */
function expectBindError(r: { status: number; json: Record<string, unknown> }, detail: string) {
  expect(r.status).toBe(200);
  expect(r.json).toEqual({ errCode: 1001, errMsg: expect.stringContaining(detail), errDlt: "" });
}

describe("POST /auth/get_admin_token", () => {
  it("issues an admin token: {token, expireTimeSeconds} in OpenIM's envelope", async () => {
    const h = await start();
    const r = await h.post("/auth/get_admin_token", { secret: SECRET, userID: "imAdmin" }, { operationID: "1646445464564" });
    expect(r.status).toBe(200);
    expect(Object.keys(r.json)).toEqual(["errCode", "errMsg", "errDlt", "data"]);
    expect(r.json).toMatchObject({ errCode: 0, errMsg: "", errDlt: "" });
    const data = r.json.data as Record<string, unknown>;
    expect(Object.keys(data)).toEqual(["token", "expireTimeSeconds"]);
    expect(data.expireTimeSeconds).toBe(90 * 86400);
    expect(typeof data.token).toBe("string");
    const payload = JSON.parse(Buffer.from((data.token as string).split(".")[1]!, "base64url").toString()) as Record<string, unknown>;
    expect(payload).toMatchObject({ UserID: "imAdmin", PlatformID: 10, iat: T0 / 1000, exp: T0 / 1000 + 90 * 86400 });
  });

  it("wrong secret → 1002 NoPermissionError", async () => {
    const h = await start();
    expectError(await h.post("/auth/get_admin_token", { secret: "nope", userID: "imAdmin" }, { operationID: "1" }), 1002, "NoPermissionError", "secret invalid");
  });

  it("userID not an admin → 1001 ArgsError", async () => {
    const h = await start();
    expectError(await h.post("/auth/get_admin_token", { secret: SECRET, userID: "6965946400" }, { operationID: "1" }), 1001, "ArgsError", "userID is error");
  });

  it("missing operationID → 1001 ArgsError", async () => {
    const h = await start();
    expectApiError(await h.post("/auth/get_admin_token", { secret: SECRET, userID: "imAdmin" }));
  });

  it("malformed JSON, wrong types and non-objects → 1001 ArgsError", async () => {
    const h = await start();
    expectBindError(await h.post("/auth/get_admin_token", "{", { operationID: "1" }), "not valid JSON");
    expectBindError(await h.post("/auth/get_admin_token", { secret: 123, userID: "imAdmin" }, { operationID: "1" }), "request body is invalid");
    expectBindError(await h.post("/auth/get_admin_token", "[]", { operationID: "1" }), "JSON object");
  });

  it("several admins: each may get a token", async () => {
    const h = await start({ config: { adminUserIds: ["imAdmin", "ops"] } });
    expect(await h.adminToken("ops")).toMatch(/^ey/);
  });

  it("unconfigured (no secret) → always 1002, even with the empty secret", async () => {
    const h = await start({ config: { secret: undefined } });
    expectError(await h.post("/auth/get_admin_token", { secret: "", userID: "imAdmin" }, { operationID: "1" }), 1002, "NoPermissionError");
    expectError(await h.post("/auth/get_admin_token", { secret: SECRET, userID: "imAdmin" }, { operationID: "1" }), 1002, "NoPermissionError");
  });
});

describe("POST /conversation/set_conversations", () => {
  it("the seed's example verbatim, then a call with only isPinned changes only pinned", async () => {
    const h = await start();
    const token = await h.adminToken();
    const r = await h.post("/conversation/set_conversations", SEED_BODY, { operationID: "1646445464564", token });
    expect(r.status).toBe(200);
    // The released server omits an empty data (apiresp: a struct without exported fields).
    expect(r.text).toBe('{"errCode":0,"errMsg":"","errDlt":""}');

    const first = (await h.marks.getConversation({ key: directKey("6965946400", "4365007572") })).conversation!;
    expect(first.settings).toMatchObject({
      pinned: false,
      privateChat: true,
      burnDurationSeconds: 30,
      attachedInfo: "attached",
      ex: "",
      receiveOption: ReceiveOption.RECEIVE,
    });

    const r2 = await h.post(
      "/conversation/set_conversations",
      { userIDs: ["6965946400"], conversation: { conversationID: "si_4365007572_6965946400", conversationType: 1, userID: "4365007572", isPinned: true } },
      { operationID: "2", token },
    );
    expect(r2.json.errCode).toBe(0);
    const second = (await h.marks.getConversation({ key: directKey("6965946400", "4365007572") })).conversation!;
    expect(second.settings).toMatchObject({ ...first.settings, pinned: true });
    expect(second.settings!.privateChat).toBe(true);
    expect(second.settings!.burnDurationSeconds).toBe(30);
    expect(second.settings!.attachedInfo).toBe("attached");
    expect(second.version).toBe(first.version + 1n);
    // Nothing was written for the peer's side.
    expect(await versionOf(h, directKey("4365007572", "6965946400"))).toBe(0n);
  });

  it("both participants of a single chat in one call; a group chat for several owners", async () => {
    const h = await start();
    const token = await h.adminToken();
    const r = await h.post(
      "/conversation/set_conversations",
      { userIDs: ["A", "B"], conversation: { conversationID: "si_A_B", conversationType: 1, userID: "B", recvMsgOpt: 1 } },
      { operationID: "1", token },
    );
    expect(r.json.errCode).toBe(0);
    const both = await h.marks.batchGetConversations({ keys: [directKey("A", "B"), directKey("B", "A")] });
    expect(both.conversations.map((c) => c.settings?.receiveOption)).toEqual([ReceiveOption.DO_NOT_RECEIVE, ReceiveOption.DO_NOT_RECEIVE]);

    const g = await h.post(
      "/conversation/set_conversations",
      { userIDs: ["u1", "u2", "u1"], conversation: { conversationID: "sg_g1", conversationType: 3, groupID: "g1", recvMsgOpt: 2, ex: "x", isPrivateChat: true } },
      { operationID: "2", token },
    );
    expect(g.json.errCode).toBe(0);
    const gs = await h.marks.batchGetConversations({ keys: [groupKey("u1", "g1"), groupKey("u2", "g1")] });
    for (const c of gs.conversations) {
      expect(c.settings?.receiveOption).toBe(ReceiveOption.RECEIVE_SILENTLY);
      expect(c.settings?.ex).toBe("x");
      expect(c.settings?.privateChat).toBeUndefined();
    }
  });

  describe("auth", () => {
    it("missing operationID → 1001", async () => {
      const h = await start();
      const token = await h.adminToken();
      expectApiError(await h.post("/conversation/set_conversations", SEED_BODY, { token }));
    });
    it("missing token → 1001 (OpenIM's GinParseToken)", async () => {
      const h = await start();
      expectApiError(await h.post("/conversation/set_conversations", SEED_BODY, { operationID: "1" }));
    });
    it("malformed token → 1503", async () => {
      const h = await start();
      expectError(await h.post("/conversation/set_conversations", SEED_BODY, { operationID: "1", token: "garbled" }), 1503, "TokenMalformedError");
    });
    it("wrong signature → 1505", async () => {
      const h = await start();
      const token = await signed({ UserID: "imAdmin", PlatformID: 10, exp: T0 / 1000 + 60 }, "another-secret");
      expectError(await h.post("/conversation/set_conversations", SEED_BODY, { operationID: "1", token }), 1505, "TokenUnknownError");
    });
    it("expired → 1501 (fake clock past the TTL)", async () => {
      const h = await start({ config: { tokenTtlSeconds: 60 } });
      const token = await h.adminToken();
      h.clock.now = T0 + 59_000;
      expect((await h.post("/conversation/set_conversations", SEED_BODY, { operationID: "1", token })).json.errCode).toBe(0);
      h.clock.now = T0 + 60_000;
      expectError(await h.post("/conversation/set_conversations", SEED_BODY, { operationID: "1", token }), 1501, "TokenExpiredError");
    });
    it("not valid yet → 1504", async () => {
      const h = await start();
      const token = await signed({ UserID: "imAdmin", PlatformID: 10, nbf: T0 / 1000 + 60, exp: T0 / 1000 + 3600 });
      expectError(await h.post("/conversation/set_conversations", SEED_BODY, { operationID: "1", token }), 1504, "TokenNotValidYetError");
    });
    it("a valid token without UserID → 1507", async () => {
      const h = await start();
      const token = await signed({ PlatformID: 10, exp: T0 / 1000 + 3600 });
      expectError(await h.post("/conversation/set_conversations", SEED_BODY, { operationID: "1", token }), 1507, "TokenNotExistError");
    });
    it("a valid token of a user other than the owner → 1002, nothing written", async () => {
      const h = await start();
      const token = await signed({ UserID: "4365007572", PlatformID: 1, exp: T0 / 1000 + 3600, nbf: T0 / 1000 - 300, iat: T0 / 1000 });
      expectError(await h.post("/conversation/set_conversations", SEED_BODY, { operationID: "1", token }), 1002, "NoPermissionError", "no permission");
      expect(await versionOf(h, directKey("6965946400", "4365007572"))).toBe(0n);
    });
    it("a token signed before the admin list changed stops working for a removed admin", async () => {
      const h = await start({ config: { adminUserIds: ["ops"] } });
      const token = await signed({ UserID: "imAdmin", PlatformID: 10, exp: T0 / 1000 + 3600 });
      expectError(await h.post("/conversation/set_conversations", SEED_BODY, { operationID: "1", token }), 1002, "NoPermissionError");
    });
    it("unconfigured → always 1507, whatever the token", async () => {
      const h = await start({ config: { secret: undefined } });
      const token = await signed({ UserID: "imAdmin", PlatformID: 10, exp: T0 / 1000 + 3600 });
      expectError(await h.post("/conversation/set_conversations", SEED_BODY, { operationID: "1", token }), 1507, "TokenNotExistError", "OPENIM_SECRET");
      expectError(await h.post("/conversation/set_conversations", SEED_BODY, { operationID: "1" }), 1507, "TokenNotExistError");
    });
  });

  describe("bad requests → 1001 ArgsError, nothing applied", () => {
    const conv = { conversationID: "si_4365007572_6965946400", conversationType: 1, userID: "4365007572", isPinned: true };
    // What the answer carries: an RPC-layer detail in errDlt, an API-layer Check() error (errDlt ""),
    // or a bind error (the decoder's message in errMsg, errDlt "").
    const cases: [string, string | object, string | { api: true } | { bind: string }][] = [
      ["missing userIDs", { conversation: conv }, { api: true }],
      ["empty userIDs", { userIDs: [], conversation: conv }, { api: true }],
      ["null userIDs", { userIDs: null, conversation: conv }, { api: true }],
      ["missing conversation", { userIDs: ["6965946400"] }, { api: true }],
      ["conversationType 0", { userIDs: ["6965946400"], conversation: { ...conv, conversationType: 0 } }, { api: true }],
      ["conversationType 2", { userIDs: ["6965946400"], conversation: { ...conv, conversationType: 2 } }, "conversationType 2 is not supported"],
      ["conversationType 4", { userIDs: ["6965946400"], conversation: { ...conv, conversationType: 4 } }, "conversationType 4 is not supported"],
      ['conversationType "x"', { userIDs: ["6965946400"], conversation: { ...conv, conversationType: "x" } }, { bind: "request body is invalid" }],
      ["type 1 without userID", { userIDs: ["6965946400"], conversation: { ...conv, userID: "" } }, { api: true }],
      ["type 3 without groupID", { userIDs: ["6965946400"], conversation: { conversationID: "sg_g", conversationType: 3, isPinned: true } }, { api: true }],
      ["recvMsgOpt 3", { userIDs: ["6965946400"], conversation: { ...conv, recvMsgOpt: 3 } }, "recvMsgOpt 3 is invalid"],
      ["malformed JSON", '{"userIDs": ["6965946400"', { bind: "not valid JSON" }],
      ["empty body", "", { bind: "not valid JSON" }],
      ["body is an array", "[1]", { bind: "JSON object" }],
      ["body is null (an empty request, as Go decodes it)", "null", { api: true }],
      ["isPinned a string", { userIDs: ["6965946400"], conversation: { ...conv, isPinned: "yes" } }, { bind: "request body is invalid" }],
      ["userIDs a string", { userIDs: "6965946400", conversation: conv }, { bind: "request body is invalid" }],
      ["burnDuration a fraction", { userIDs: ["6965946400"], conversation: { ...conv, burnDuration: 1.5 } }, { bind: "request body is invalid" }],
      ["burnDuration beyond int32", { userIDs: ["6965946400"], conversation: { ...conv, burnDuration: 2 ** 31 } }, { bind: "request body is invalid" }],
      ["conversation a string", { userIDs: ["6965946400"], conversation: "si_4365007572_6965946400" }, { bind: "request body is invalid" }],
    ];
    it.each(cases)("%s", async (_name, body, detail) => {
      const h = await start();
      const token = await h.adminToken();
      const r = await h.post("/conversation/set_conversations", body, { operationID: "1", token });
      if (typeof detail === "string") expectError(r, 1001, "ArgsError", detail);
      else if ("api" in detail) expectApiError(r);
      else expectBindError(r, detail.bind);
      expect(await versionOf(h, directKey("6965946400", "4365007572"))).toBe(0n);
    });

    it("a body that is not UTF-8 → 1001", async () => {
      const h = await start();
      const token = await h.adminToken();
      const res = await fetch(`${h.url}/conversation/set_conversations`, {
        method: "POST",
        headers: { operationID: "1", token },
        body: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
        signal: AbortSignal.timeout(10_000),
      });
      expectBindError({ status: res.status, json: (await res.json()) as Record<string, unknown> }, "UTF-8");
    });

    it("oversized body → 1001", async () => {
      const h = await start({ maxBodyBytes: 1024 });
      const token = await h.adminToken();
      const body = { userIDs: ["6965946400"], conversation: { ...conv, ex: "x".repeat(2000) } };
      expectBindError(await h.post("/conversation/set_conversations", body, { operationID: "1", token }), "too large");
      expect(await versionOf(h, directKey("6965946400", "4365007572"))).toBe(0n);
    });

    it("more userIDs than OPENIM_MAX_USER_IDS → 1001", async () => {
      const h = await start({ config: { maxUserIds: 2 } });
      const token = await h.adminToken();
      const body = { userIDs: ["a", "b", "c"], conversation: { conversationID: "sg_g", conversationType: 3, groupID: "g", isPinned: true } };
      expectError(await h.post("/conversation/set_conversations", body, { operationID: "1", token }), 1001, "ArgsError", "at most 2");
      expect(await versionOf(h, groupKey("a", "g"))).toBe(0n);
    });
  });

  describe("strict directory: all or nothing", () => {
    const dir = (extra: Partial<FakeDir> = {}) =>
      fakeDirectory({ strict: true, users: ["u1", "u2", "u3", "A", "B"], groups: { g1: { members: ["u1", "u2"] }, gone: { dismissed: true, members: ["u1"] } }, ...extra });
    const group = (userIDs: string[], groupID = "g1") => ({ userIDs, conversation: { conversationID: `sg_${groupID}`, conversationType: 3, groupID, isPinned: true } });

    it("registered members: applied", async () => {
      const h = await start({ directory: dir() });
      const token = await h.adminToken();
      expect((await h.post("/conversation/set_conversations", group(["u1", "u2"]), { operationID: "1", token })).json.errCode).toBe(0);
      expect(await versionOf(h, groupKey("u2", "g1"))).toBe(1n);
    });
    it("an unknown owner → 1101, nobody applied", async () => {
      const h = await start({ directory: dir() });
      const token = await h.adminToken();
      expectError(await h.post("/conversation/set_conversations", group(["u1", "nobody"]), { operationID: "1", token }), 1101, "UserIDNotFoundError", '"nobody"');
      expect(await versionOf(h, groupKey("u1", "g1"))).toBe(0n);
    });
    it("an unknown peer → 1101", async () => {
      const h = await start({ directory: dir() });
      const token = await h.adminToken();
      const body = { userIDs: ["A"], conversation: { conversationID: "si_A_Z", conversationType: 1, userID: "Z", isPinned: true } };
      expectError(await h.post("/conversation/set_conversations", body, { operationID: "1", token }), 1101, "UserIDNotFoundError", '"Z"');
    });
    it("unknown group → 1201, dismissed → 1204, non-member → 1203", async () => {
      const h = await start({ directory: dir() });
      const token = await h.adminToken();
      expectError(await h.post("/conversation/set_conversations", group(["u1"], "g9"), { operationID: "1", token }), 1201, "GroupIDNotFoundError");
      expectError(await h.post("/conversation/set_conversations", group(["u1"], "gone"), { operationID: "1", token }), 1204, "DismissedAlreadyError");
      expectError(await h.post("/conversation/set_conversations", group(["u1", "u3"]), { operationID: "1", token }), 1203, "NotInGroupYetError", '"u3"');
      expect(await versionOf(h, groupKey("u1", "g1"))).toBe(0n);
    });
    it("directory failure → 500, nothing applied", async () => {
      const h = await start({ directory: dir({ fail: true }) });
      const token = await h.adminToken();
      expectError(await h.post("/conversation/set_conversations", group(["u1"]), { operationID: "1", token }), 500, "ServerInternalError");
      expect(await versionOf(h, groupKey("u1", "g1"))).toBe(0n);
    });
    it("MarkService refusing some items after the check (a race): the error names them and says the others were applied", async () => {
      // The dialect sees a permissive directory; MarkService's guard sees one where u2 is unknown.
      const guard = createDirectoryGuard(fakeDirectory({ strict: true, users: ["u1"], groups: { g1: { members: ["u1", "u2"] } } }));
      const h = await start({ guard });
      const token = await h.adminToken();
      const r = await h.post("/conversation/set_conversations", group(["u1", "u2"]), { operationID: "1", token });
      expectError(r, 1101, "UserIDNotFoundError", 'not applied for userIDs ["u2"]');
      expect(r.json.errDlt).toContain("1 of 2 users were applied");
      expect(await versionOf(h, groupKey("u1", "g1"))).toBe(1n);
      expect(await versionOf(h, groupKey("u2", "g1"))).toBe(0n);
    });
  });

  it("rate limit: HTTP 429 with errCode 429 once the per-second budget is spent", async () => {
    const h = await start({ config: { rateLimitPerSecond: 2 } });
    const body = { secret: SECRET, userID: "imAdmin" };
    expect((await h.post("/auth/get_admin_token", body, { operationID: "1" })).json.errCode).toBe(0);
    expect((await h.post("/auth/get_admin_token", body, { operationID: "2" })).json.errCode).toBe(0);
    expectError(await h.post("/auth/get_admin_token", body, { operationID: "3" }), 429, "too many requests, please try again later");
  });
});

describe("routing", () => {
  it("other paths are not OpenIM's; GET on OpenIM's paths is gin's plain 404", async () => {
    const h = await start();
    expect((await h.post("/group/get_groups_info", {}, { operationID: "1" })).status).toBe(418);
    // An unknown /conversation/* or /auth/* API answers in OpenIM's envelope.
    const unknown = await h.post("/conversation/no_such_api", {}, { operationID: "1" });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({ errCode: 1004, errMsg: "RecordNotFoundError" });
    const get = await fetch(`${h.url}/conversation/set_conversations`, { signal: AbortSignal.timeout(10_000) });
    expect(get.status).toBe(404);
    expect(await get.text()).toBe("404 page not found");
  });
});

describe("Connect and gRPC (metadata operationid, token)", () => {
  it("the same operations and errors over both protocols", async () => {
    const h = await start();
    for (const transport of [
      createConnectTransport({ baseUrl: h.h2url, httpVersion: "2" }),
      createGrpcTransport({ baseUrl: h.h2url }),
    ]) {
      const auth = createClient(AuthService, transport);
      const conv = createClient(ConversationService, transport);
      const missing = await auth.getAdminToken({ secret: SECRET, userId: "imAdmin" });
      expect(missing.errCode).toBe(1001);
      expect(missing.errMsg).toBe("ArgsError");
      expect(missing.errDlt).toBe("");
      const t = await auth.getAdminToken({ secret: SECRET, userId: "imAdmin" }, { headers: { operationid: "g1" } });
      expect(t.errCode).toBe(0);
      expect(t.data?.expireTimeSeconds).toBe(7_776_000n);
      const token = t.data!.token;

      const noToken = await conv.setConversations({ userIds: ["u1"] }, { headers: { operationid: "g2" } });
      expect(noToken.errCode).toBe(1001);
      const bad = await conv.setConversations({ userIds: [] }, { headers: { operationid: "g3", token } });
      expect([bad.errCode, bad.errMsg]).toEqual([1001, "ArgsError"]);
      const ok = await conv.setConversations(
        { userIds: ["6965946400"], conversation: { conversationId: "si_4365007572_6965946400", conversationType: 1, userId: "4365007572", burnDuration: 7 } },
        { headers: { operationid: "g4", token } },
      );
      expect(ok.errCode).toBe(0);
      const c = await h.marks.getConversation({ key: directKey("6965946400", "4365007572") });
      expect(c.conversation?.settings?.burnDurationSeconds).toBe(7);
      await h.marks.updateConversations({ updates: [{ key: directKey("6965946400", "4365007572"), settings: { burnDurationSeconds: 0 } }] });
    }
  });
});
