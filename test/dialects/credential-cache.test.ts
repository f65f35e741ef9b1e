/**
 * The dialect kernel's credential cache (src/dialects/kernel.ts) and its two users: OpenIM tokens
 * and Tencent UserSigs. A cached credential must answer exactly as an uncached one: expiry (and,
 * for OpenIM, the kick list) is checked on every call.
 */
import { create } from "@bufbuild/protobuf";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { SignJWT } from "jose";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import {
  ForceLogoutRequestSchema,
  ParseTokenRequestSchema,
} from "../../gen/vendor/openim/v1/auth_service_pb.js";
import { GetAllConversationsRequestSchema } from "../../gen/vendor/openim/v1/conversation_service_pb.js";
import { createOpenimCore, type OpenimAuth } from "../../src/dialects/openim/index.js";
import { cachedTokenVerifier, mintToken } from "../../src/dialects/openim/token.js";
import { createCredentialCache } from "../../src/dialects/kernel.js";
import { DEFAULT_LIMITS } from "../../src/domain/limits.js";
import { createMarkService } from "../../src/service/mark-service.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import { fakeDirectory } from "../support/fake-directory.js";

const SECRET = "openIM123";
const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);

describe("createCredentialCache", () => {
  type V = { user: string; until: number };
  const isV = (r: V | string): r is V => typeof r !== "string";

  it("verifies a credential once while it stays valid, again once it does not", () => {
    const cache = createCredentialCache<V>();
    let calls = 0;
    let now = 0;
    const check = (cred: string) =>
      cache.check(cred, (v) => now < v.until, (): V | string => (calls++, now < 10 ? { user: cred, until: 10 } : "expired"), isV);
    expect(check("a")).toEqual({ user: "a", until: 10 });
    expect(check("a")).toEqual({ user: "a", until: 10 });
    expect(calls).toBe(1);
    now = 10;
    // No longer valid: verified in full again, and its refusal is the answer.
    expect(check("a")).toBe("expired");
    expect(calls).toBe(2);
  });

  it("never caches a refused credential", async () => {
    const cache = createCredentialCache<V>();
    let calls = 0;
    for (let i = 0; i < 3; i++) {
      expect(cache.check("bad", () => true, (): V | string => (calls++, "refused"), isV)).toBe("refused");
      expect(await cache.checkAsync("bad2", () => true, async (): Promise<V | string> => (calls++, "refused"), isV)).toBe("refused");
    }
    expect(calls).toBe(6);
    expect(cache.size).toBe(0);
  });

  it("is bounded by the characters of the credentials it holds", () => {
    const cache = createCredentialCache<V>({ maxChars: 1000 });
    for (let i = 0; i < 100; i++) cache.check(`${i}`.padStart(100, "x"), () => true, () => ({ user: "u", until: 1 }), isV);
    expect(cache.size).toBeLessThanOrEqual(9);
    expect(cache.size).toBeGreaterThan(0);
  });
});

describe("OpenIM tokens through the cache", () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (closers.length) await closers.pop()!();
  });

  function start(ttlSeconds = 60) {
    const store = openSqliteStore({ path: ":memory:", limits: DEFAULT_LIMITS });
    closers.push(() => store.close());
    const marks = createClient(MarkService, createRouterTransport((r) => r.service(MarkService, createMarkService({ store, limits: DEFAULT_LIMITS }))));
    const clock = { now: T0 };
    const core = createOpenimCore(
      { marks, directory: fakeDirectory({ strict: false }), logger: pino({ level: "silent" }), now: () => clock.now, maxBodyBytes: 65536 },
      { secret: SECRET, adminUserIds: ["imAdmin"], tokenTtlSeconds: ttlSeconds, maxUserIds: 1000, rateLimitPerSecond: 0, secretFailuresPerMinute: 10 },
    );
    const auth = (token: string): OpenimAuth => ({ operationId: "op", token });
    const readAll = (token: string, owner: string) =>
      core.getAllConversations(auth(token), () => Promise.resolve(create(GetAllConversationsRequestSchema, { ownerUserId: owner })));
    const parse = (admin: string, token: string) => core.parseToken(auth(admin), () => Promise.resolve(create(ParseTokenRequestSchema, { token })));
    const codeOf = (r: object) => ("errCode" in r ? (r as { errCode: number }).errCode : 0);
    return { core, clock, auth, readAll, parse, codeOf };
  }

  it("a cached token gets 1501 once expired, on a read and on parse_token", async () => {
    const h = start(60);
    const user = await mintToken(SECRET, "u1", 1, T0, 60);
    const admin = await mintToken(SECRET, "imAdmin", 10, T0, 3600);
    expect(h.codeOf(await h.readAll(user, "u1"))).toBe(0);
    expect(h.codeOf(await h.parse(admin, user))).toBe(0);
    h.clock.now = T0 + 59_000;
    expect(h.codeOf(await h.readAll(user, "u1"))).toBe(0);
    h.clock.now = T0 + 60_000;
    expect(h.codeOf(await h.readAll(user, "u1"))).toBe(1501);
    expect(h.codeOf(await h.parse(admin, user))).toBe(1501);
  });

  it("a cached token gets 1506 once kicked; a token issued after the kick works", async () => {
    const h = start(3600);
    const user = await mintToken(SECRET, "u2", 2, T0, 3600);
    const admin = await mintToken(SECRET, "imAdmin", 10, T0, 3600);
    expect(h.codeOf(await h.readAll(user, "u2"))).toBe(0);
    expect(h.codeOf(await h.parse(admin, user))).toBe(0);
    h.clock.now = T0 + 5_000;
    const out = await h.core.forceLogout(h.auth(admin), () => Promise.resolve(create(ForceLogoutRequestSchema, { userId: "u2", platformId: 2 })));
    expect(h.codeOf(out)).toBe(0);
    expect(h.codeOf(await h.readAll(user, "u2"))).toBe(1506);
    expect(h.codeOf(await h.parse(admin, user))).toBe(1506);
    h.clock.now = T0 + 6_000;
    const fresh = await mintToken(SECRET, "u2", 2, h.clock.now, 3600);
    expect(h.codeOf(await h.readAll(fresh, "u2"))).toBe(0);
  });

  it("a cached token's nbf and iat are checked again (a clock set back)", async () => {
    const verify = cachedTokenVerifier(SECRET);
    const iat = T0 / 1000;
    const token = await new SignJWT({ UserID: "u3", PlatformID: 1, exp: iat + 3600, nbf: iat - 300, iat })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .sign(new TextEncoder().encode(SECRET));
    expect(await verify(token, T0)).toMatchObject({ userId: "u3" });
    expect(await verify(token, T0 - 301_000)).toMatchObject({ errCode: 1504 });
    expect(await verify(token, T0 - 1_000)).toMatchObject({ errCode: 1505 });
    expect(await verify(token, T0)).toMatchObject({ userId: "u3" });
  });

  it("a token with a bad signature is refused every time, before and after a good one", async () => {
    const verify = cachedTokenVerifier(SECRET);
    const good = await mintToken(SECRET, "u4", 1, T0, 3600);
    const forged = await mintToken("another-secret", "u4", 1, T0, 3600);
    for (let i = 0; i < 2; i++) {
      expect(await verify(forged, T0)).toMatchObject({ errCode: 1505 });
      expect(await verify(good, T0)).toMatchObject({ userId: "u4" });
    }
  });
});
