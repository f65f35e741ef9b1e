/** The unified API with bearer tokens, over every protocol: gRPC, gRPC-Web, Connect and REST. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { Validator } from "@seriousme/openapi-schema-validator";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DirectoryService } from "../../gen/convmark/v1/directory_service_pb.js";
import { ConversationType, MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { anyTypeRegistry } from "../../src/service/json-registry.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const SECRET = "a-test-secret-that-is-long-enough-for-hs256!";
const ISSUER = "https://issuer.test";
const AUDIENCE = "convmark";
const ORIGIN = "http://app.test:5173";
const now = () => Math.floor(Date.now() / 1000);

let server: TestServer;
let dir: string;
let es256: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];
let tokens: Record<"alice" | "bob" | "service" | "expired" | "forged" | "noExp" | "wrongAudience", string>;

async function hs256(claims: Record<string, unknown>, secret = SECRET): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(secret));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "convmark-auth-"));
  const pair = await generateKeyPair("ES256", { extractable: true });
  es256 = pair.privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  writeFileSync(join(dir, "jwks.json"), JSON.stringify({ keys: [jwk] }));
  const std = { iss: ISSUER, aud: AUDIENCE };
  tokens = {
    alice: await hs256({ ...std, sub: "alice", exp: now() + 600 }),
    bob: await hs256({ ...std, sub: "bob", exp: now() + 600 }),
    service: await new SignJWT({ ...std, sub: "push-service", scope: "openid convmark:service", exp: now() + 600 })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .sign(es256),
    expired: await hs256({ ...std, sub: "alice", exp: now() - 3600 }),
    forged: await hs256({ ...std, sub: "alice", exp: now() + 600 }, "another-secret-that-is-long-enough-for-hs256"),
    noExp: await hs256({ ...std, sub: "alice" }),
    wrongAudience: await hs256({ iss: ISSUER, aud: "someone-else", sub: "alice", exp: now() + 600 }),
  };
  server = await startTestServer({
    CONVMARK_AUTH_JWT_SECRET: SECRET,
    CONVMARK_AUTH_JWKS_FILE: join(dir, "jwks.json"),
    CONVMARK_AUTH_ISSUER: ISSUER,
    CONVMARK_AUTH_AUDIENCE: AUDIENCE,
    CONVMARK_CORS_ORIGINS: ORIGIN,
  });
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const transports: Record<string, () => Transport> = {
  grpc: () => createGrpcTransport({ baseUrl: server.url }),
  "grpc-web": () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  connect: () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: false, jsonOptions: { registry: anyTypeRegistry } }),
};

const key = (owner: string, id: string) => ({ ownerUserId: owner, type: ConversationType.DIRECT, conversationId: id });
const auth = (t: string | undefined) => (t === undefined ? {} : { headers: { authorization: `Bearer ${t}` } });

async function codeOf(p: Promise<unknown>): Promise<Code | "OK"> {
  try {
    await p;
    return "OK";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

async function rest(method: string, path: string, token?: string, body?: unknown, extra: Record<string, string> = {}) {
  const res = await fetch(server.url + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}), ...extra },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text.startsWith("{") ? (JSON.parse(text) as Record<string, any>) : undefined };
}

describe.each(Object.keys(transports))("over %s", (protocol) => {
  let marks: Client<typeof MarkService>;
  let directory: Client<typeof DirectoryService>;
  beforeAll(() => {
    const t = transports[protocol]!();
    marks = createClient(MarkService, t);
    directory = createClient(DirectoryService, t);
  });

  it("a user token reads and writes its own conversations", async () => {
    const id = `peer-${protocol}`;
    const res = await marks.updateConversations({ updates: [{ key: key("alice", id), setMarks: [1] }] }, auth(tokens.alice));
    expect(res.results[0]!.status!.code).toBe(0);
    const got = await marks.getConversation({ key: key("alice", id) }, auth(tokens.alice));
    expect(got.conversation!.marks).toEqual([1]);
    const list = await marks.listConversations({ ownerUserId: "alice" }, auth(tokens.alice));
    expect(list.conversations.some((c) => c.key!.conversationId === id)).toBe(true);
  });

  it("a user token is refused on another user's conversations (PERMISSION_DENIED), per item inside a batch, nothing applied", async () => {
    expect(await codeOf(marks.getConversation({ key: key("bob", "x") }, auth(tokens.alice)))).toBe(Code.PermissionDenied);
    expect(await codeOf(marks.listConversations({ ownerUserId: "bob" }, auth(tokens.alice)))).toBe(Code.PermissionDenied);
    expect(await codeOf(marks.batchGetConversations({ keys: [key("alice", "a"), key("bob", "b")] }, auth(tokens.alice)))).toBe(Code.PermissionDenied);
    const id = `mixed-${protocol}`;
    const res = await marks.updateConversations(
      { updates: [{ key: key("alice", id), setMarks: [2] }, { key: key("bob", id), setMarks: [2] }] },
      auth(tokens.alice),
    );
    expect(res.results.map((r) => r.status!.code)).toEqual([0, Code.PermissionDenied]);
    expect(res.results[1]!.status!.message).toMatch(/own owner_user_id/);
    // Bob's conversation was not written: the service sees it was never stored.
    expect(await codeOf(marks.getConversation({ key: key("bob", id) }, auth(tokens.service)))).toBe(Code.NotFound);
    expect(await codeOf(marks.getConversation({ key: key("alice", id) }, auth(tokens.service)))).toBe("OK");
    const del = await marks.deleteConversations({ keys: [key("bob", id), key("alice", id)] }, auth(tokens.alice));
    expect(del.results.map((r) => [r.status!.code, r.deleted])).toEqual([
      [Code.PermissionDenied, false],
      [0, true],
    ]);
    // Bob's was refused before the store: a service still finds it untouched (never written here).
    expect(await codeOf(marks.getConversation({ key: key("alice", id) }, auth(tokens.service)))).toBe(Code.NotFound);
  });

  it("Watch and Sync are refused for another user's feed and for the all-owners feed", async () => {
    const watch = async (owner: string, token: string) => {
      for await (const _ of marks.watchConversations({ ownerUserId: owner }, auth(token))) break;
    };
    expect(await codeOf(watch("bob", tokens.alice))).toBe(Code.PermissionDenied);
    expect(await codeOf(watch("", tokens.alice))).toBe(Code.PermissionDenied);
    expect(await codeOf(marks.syncConversations({ ownerUserId: "bob" }, auth(tokens.alice)))).toBe(Code.PermissionDenied);
    expect(await codeOf(marks.syncConversations({ ownerUserId: "" }, auth(tokens.bob)))).toBe(Code.PermissionDenied);
  });

  it("a service token acts for any owner and uses DirectoryService; a user token may not", async () => {
    const res = await marks.updateConversations({ updates: [{ key: key("carol", `svc-${protocol}`), setMarks: [3] }] }, auth(tokens.service));
    expect(res.results[0]!.status!.code).toBe(0);
    const users = await directory.getUsers({ userIds: ["carol"] }, auth(tokens.service));
    expect(users.users).toHaveLength(1);
    expect(await codeOf(directory.getUsers({ userIds: ["carol"] }, auth(tokens.alice)))).toBe(Code.PermissionDenied);
  });

  it("missing, malformed, expired, forged, exp-less and wrong-audience tokens are UNAUTHENTICATED", async () => {
    const get = (headers: Record<string, string>) => codeOf(marks.getConversation({ key: key("alice", "x") }, { headers }));
    expect(await get({})).toBe(Code.Unauthenticated);
    expect(await get({ authorization: "Basic YWxpY2U6eA==" })).toBe(Code.Unauthenticated);
    expect(await get({ authorization: "Bearer not.a.jwt" })).toBe(Code.Unauthenticated);
    for (const t of [tokens.expired, tokens.forged, tokens.noExp, tokens.wrongAudience]) {
      expect(await get({ authorization: `Bearer ${t}` })).toBe(Code.Unauthenticated);
    }
    expect(await codeOf(directory.getUsers({ userIds: ["x"] }, {}))).toBe(Code.Unauthenticated);
  });
});

describe("over REST", () => {
  it("serves every MarkService route with a user token", async () => {
    const up = await rest("POST", "/v1/conversations:batchUpdate", tokens.alice, {
      updates: [{ key: { ownerUserId: "alice", type: "CONVERSATION_TYPE_DIRECT", conversationId: "r1" }, setMarks: [1, 5], customMark: "vip" }],
    });
    expect(up.status).toBe(200);
    expect(up.json!.results[0].conversation.markBits).toBe("17");
    for (const type of ["CONVERSATION_TYPE_DIRECT", "1"]) {
      const got = await rest("GET", `/v1/users/alice/conversations/${type}/r1`, tokens.alice);
      expect(got.status).toBe(200);
      expect(got.json!.conversation).toMatchObject({ marks: [1, 5], customMark: "vip" });
    }
    const list = await rest("GET", "/v1/users/alice/conversations?filter.marks_any=1&filter.marks_any=5&page_size=50", tokens.alice);
    expect(list.status).toBe(200);
    expect(list.json!.conversations.map((c: any) => c.key.conversationId)).toContain("r1");
    const bg = await rest("POST", "/v1/conversations:batchGet", tokens.alice, { keys: [{ ownerUserId: "alice", type: 1, conversationId: "r1" }] });
    expect(bg.json!.conversations[0].customMark).toBe("vip");
    const sync = await rest("GET", "/v1/users/alice/conversations:sync?page_size=1000", tokens.alice);
    expect(sync.status).toBe(200);
    expect(sync.json!.changes.some((c: any) => c.conversation.key.conversationId === "r1")).toBe(true);
    const all = await rest("GET", "/v1/conversations:sync", tokens.service);
    expect(all.status).toBe(200);
    expect(typeof all.json!.nextCursor).toBe("string");
    // Watch as NDJSON: the first line is the catch-up from the sync cursor's start; then a live change arrives.
    const ctrl = new AbortController();
    const watch = await fetch(`${server.url}/v1/users/alice/conversations:watch?cursor=${encodeURIComponent(sync.json!.nextCursor)}`, {
      headers: { authorization: `Bearer ${tokens.alice}` },
      signal: ctrl.signal,
    });
    expect(watch.status).toBe(200);
    expect(watch.headers.get("content-type")).toBe("application/x-ndjson");
    const reader = watch.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    const nextLine = async (): Promise<any> => {
      while (!buffered.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error("stream ended");
        buffered += value;
      }
      const nl = buffered.indexOf("\n");
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      return JSON.parse(line);
    };
    const first = await nextLine();
    expect(first.result.changes ?? []).toEqual([]);
    await rest("POST", "/v1/conversations:batchUpdate", tokens.alice, { updates: [{ key: { ownerUserId: "alice", type: 1, conversationId: "live" }, setMarks: [9] }] });
    let live = await nextLine();
    while ((live.result.changes ?? []).length === 0) live = await nextLine();
    expect(live.result.changes[0].conversation).toMatchObject({ key: { conversationId: "live" }, marks: [9] });
    ctrl.abort();
    const del = await rest("POST", "/v1/conversations:batchDelete", tokens.alice, {
      keys: [
        { ownerUserId: "alice", type: 1, conversationId: "live" },
        { ownerUserId: "bob", type: 1, conversationId: "r1" },
      ],
    });
    expect(del.status).toBe(200);
    expect(del.json!.results.map((r: any) => [r.status.code ?? 0, r.deleted ?? false])).toEqual([
      [0, true],
      [Code.PermissionDenied, false],
    ]);
  });

  it("maps codes to HTTP statuses with google.rpc.Status bodies", async () => {
    const none = await rest("GET", "/v1/users/alice/conversations/1/r1");
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ code: Code.Unauthenticated });
    const other = await rest("GET", "/v1/users/bob/conversations/1/r1", tokens.alice);
    expect(other.status).toBe(403);
    expect(other.json).toMatchObject({ code: Code.PermissionDenied });
    const missing = await rest("GET", "/v1/users/alice/conversations/1/never", tokens.alice);
    expect(missing.status).toBe(404);
    const bad = await rest("GET", "/v1/users/alice/conversations/CONVERSATION_TYPE_NOPE/x", tokens.alice);
    expect(bad.status).toBe(400);
    const batch = await rest("POST", "/v1/conversations:batchUpdate", tokens.alice, { updates: [{ key: { ownerUserId: "bob", type: 1, conversationId: "q" }, setMarks: [1] }] });
    expect(batch.status).toBe(200);
    expect(batch.json!.results[0].status.code).toBe(Code.PermissionDenied);
    expect((await rest("GET", "/v1/users/alice/conversations:watch", tokens.bob)).status).toBe(403);
    expect((await rest("GET", "/v1/nowhere", tokens.alice)).status).toBe(404);
    const wrong = await rest("DELETE", "/v1/users/alice/conversations", tokens.alice);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("GET");
  });

  it("serves DirectoryService routes to service tokens only", async () => {
    const reg = await rest("POST", "/v1/directory/users:batchRegister", tokens.service, { userIds: ["dora", "eve"] });
    expect(reg.status).toBe(200);
    const got = await rest("GET", "/v1/directory/users:batchGet?user_ids=dora&userIds=zed", tokens.service);
    expect(got.json!.users.map((u: any) => [u.userId, u.registered ?? false])).toEqual([["dora", true], ["zed", false]]);
    const grp = await rest("POST", "/v1/directory/groups", tokens.service, { groupId: "g1", memberUserIds: ["dora"] });
    expect(grp.status).toBe(200);
    expect((await rest("POST", "/v1/directory/groups/g1/members:batchAdd", tokens.service, { userIds: ["eve"] })).json!.memberCount).toBe(2);
    expect((await rest("GET", "/v1/directory/groups/g1", tokens.service)).json!.group.groupId).toBe("g1");
    expect((await rest("GET", "/v1/directory/groups/g1", tokens.alice)).status).toBe(403);
    expect((await rest("POST", "/v1/directory/groups/g1/members:batchRemove", tokens.service, { userIds: ["dora"] })).json!.memberCount).toBe(1);
    expect((await rest("POST", "/v1/directory/groups/g1:dismiss", tokens.service, {})).json!.changed).toBe(true);
    expect((await rest("POST", "/v1/directory/groups", tokens.service, { groupId: "g1" })).json!.recreated).toBe(true);
    const post = await rest("POST", "/v1/directory/users:batchGet", tokens.service, { userIds: ["eve"] });
    expect(post.json!.users[0].registered).toBe(true);
    const unreg = await rest("POST", "/v1/directory/users:batchUnregister", tokens.service, { userIds: ["eve"] });
    expect(unreg.json!.results[0].changed).toBe(true);
    expect((await rest("POST", "/v1/directory/groups/nope:dismiss", tokens.service, {})).status).toBe(404);
  });

  it("guards /metrics like DirectoryService and serves /openapi.json without credentials", async () => {
    expect((await rest("GET", "/metrics")).status).toBe(401);
    expect((await rest("GET", "/metrics", tokens.alice)).status).toBe(403);
    const m = await rest("GET", "/metrics", tokens.service);
    expect(m.status).toBe(200);
    expect(m.text).toMatch(/rpc_server_handled_total\{procedure="\/convmark.v1.MarkService\/GetConversation"/);
    // GetGroup and DismissGroup were called only over REST: the same metrics interceptor saw them,
    // with the codes the auth interceptor gave (PERMISSION_DENIED for the user token).
    expect(m.text).toMatch(/rpc_server_handled_total\{procedure="\/convmark.v1.DirectoryService\/GetGroup",code="OK"\} [1-9]/);
    expect(m.text).toMatch(/rpc_server_handled_total\{procedure="\/convmark.v1.DirectoryService\/GetGroup",code="PermissionDenied"\} [1-9]/);
    expect(m.text).toMatch(/rpc_server_handled_total\{procedure="\/convmark.v1.DirectoryService\/DismissGroup",code="NotFound"\} [1-9]/);
    const doc = await rest("GET", "/openapi.json");
    expect(doc.status).toBe(200);
    const result = await new Validator().validate(doc.json as Parameters<Validator["validate"]>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(Object.keys(doc.json!.paths)).toContain("/v1/users/{key.owner_user_id}/conversations/{key.type}/{key.conversation_id}");
  });
});

describe("CORS", () => {
  it("answers preflights for an allowed origin with the Connect headers plus authorization, cached", async () => {
    const res = await fetch(`${server.url}/convmark.v1.MarkService/GetConversation`, {
      method: "OPTIONS",
      headers: { origin: ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type,connect-protocol-version" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    const allowed = res.headers.get("access-control-allow-headers")!.toLowerCase().split(/, */);
    for (const h of ["authorization", "content-type", "connect-protocol-version", "x-grpc-web", "grpc-timeout"]) expect(allowed).toContain(h);
    expect(Number(res.headers.get("access-control-max-age"))).toBeGreaterThan(0);
  });

  it("refuses preflights from other origins and adds no CORS headers for them", async () => {
    const pre = await fetch(`${server.url}/v1/users/alice/conversations`, { method: "OPTIONS", headers: { origin: "http://evil.test", "access-control-request-method": "GET" } });
    expect(pre.status).toBe(403);
    const res = await rest("GET", "/v1/users/alice/conversations", tokens.alice, undefined, { origin: "http://evil.test" });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    const ok = await rest("GET", "/v1/users/alice/conversations", tokens.alice, undefined, { origin: ORIGIN });
    expect(ok.headers.get("access-control-allow-origin")).toBe(ORIGIN);
    expect(ok.headers.get("access-control-expose-headers")!.toLowerCase()).toContain("grpc-status");
  });

  it("serves Connect GET for side-effect-free methods", async () => {
    const message = encodeURIComponent(JSON.stringify({ key: { ownerUserId: "alice", type: 1, conversationId: "r1" } }));
    const res = await rest("GET", `/convmark.v1.MarkService/GetConversation?connect=v1&encoding=json&message=${message}`, tokens.alice);
    expect(res.status).toBe(200);
    expect(res.json!.conversation.customMark).toBe("vip");
  });
});
