import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { authConfigFromEnv, createAuthenticator, isLoopbackAddress, isLoopbackHost, ownerRefusal } from "../../src/auth/index.js";
import { ConfigError } from "../../src/env.js";

const SECRET = "0123456789abcdef0123456789abcdef";
const dir = mkdtempSync(join(tmpdir(), "convmark-auth-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const loopback = { loopbackAddress: true, loopbackHost: true };
async function codeOf(p: Promise<unknown>): Promise<Code | "OK"> {
  try {
    await p;
    return "OK";
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

describe("authConfigFromEnv", () => {
  it("is protected without credentials, off only when asked, jwt with a secret or JWKS", () => {
    expect(authConfigFromEnv({}).mode).toBe("protected");
    expect(authConfigFromEnv({ CONVMARK_AUTH: "off" }).mode).toBe("off");
    expect(authConfigFromEnv({ CONVMARK_AUTH_JWT_SECRET: SECRET }).mode).toBe("jwt");
    expect(authConfigFromEnv({ CONVMARK_AUTH_JWT_SECRET: "" }).mode).toBe("protected");
    expect(authConfigFromEnv({}).serviceScope).toBe("convmark:service");
    expect(authConfigFromEnv({ CONVMARK_AUTH_SERVICE_SCOPE: "marks.admin" }).serviceScope).toBe("marks.admin");
  });

  it("rejects weak secrets, contradictions, bad scopes, skews and JWKS files, naming the variable", () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ CONVMARK_AUTH_JWT_SECRET: "short" }, /CONVMARK_AUTH_JWT_SECRET/],
      [{ CONVMARK_AUTH: "off", CONVMARK_AUTH_JWT_SECRET: SECRET }, /choose one/],
      [{ CONVMARK_AUTH: "on" }, /CONVMARK_AUTH=on needs/],
      [{ CONVMARK_AUTH: "maybe" }, /CONVMARK_AUTH/],
      [{ CONVMARK_AUTH_SERVICE_SCOPE: "two words" }, /CONVMARK_AUTH_SERVICE_SCOPE/],
      [{ CONVMARK_AUTH_CLOCK_SKEW_SECONDS: "3600" }, /CONVMARK_AUTH_CLOCK_SKEW_SECONDS/],
      [{ CONVMARK_AUTH_JWKS_FILE: join(dir, "missing.json") }, /CONVMARK_AUTH_JWKS_FILE/],
    ];
    writeFileSync(join(dir, "notjwks.json"), JSON.stringify({ hello: 1 }));
    bad.push([{ CONVMARK_AUTH_JWKS_FILE: join(dir, "notjwks.json") }, /not a JWK set/]);
    for (const [env, msg] of bad) {
      expect(() => authConfigFromEnv(env), JSON.stringify(env)).toThrow(ConfigError);
      expect(() => authConfigFromEnv(env)).toThrow(msg);
    }
  });

  it("refuses a JWKS file holding a private key", async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    writeFileSync(join(dir, "private.json"), JSON.stringify({ keys: [await exportJWK(privateKey)] }));
    expect(() => authConfigFromEnv({ CONVMARK_AUTH_JWKS_FILE: join(dir, "private.json") })).toThrow(/private key/);
  });
});

describe("authenticator", () => {
  const sign = (claims: Record<string, unknown>, alg = "HS256") =>
    new SignJWT(claims).setProtectedHeader({ alg }).sign(new TextEncoder().encode(SECRET));
  const exp = () => Math.floor(Date.now() / 1000) + 60;

  it("protected mode serves only loopback peers with a loopback Host", async () => {
    const a = createAuthenticator(authConfigFromEnv({}));
    expect(await a(undefined, loopback)).toEqual({ kind: "trusted", via: "loopback" });
    expect(await codeOf(a(undefined, { loopbackAddress: true, loopbackHost: false }))).toBe(Code.PermissionDenied);
    expect(await codeOf(a(undefined, { loopbackAddress: false, loopbackHost: true }))).toBe(Code.PermissionDenied);
    expect(await codeOf(a(undefined, undefined))).toBe(Code.PermissionDenied);
  });

  it("tells users from services by the configured scope", async () => {
    const a = createAuthenticator(authConfigFromEnv({ CONVMARK_AUTH_JWT_SECRET: SECRET, CONVMARK_AUTH_SERVICE_SCOPE: "push" }));
    expect(await a(`Bearer ${await sign({ sub: "u1", exp: exp(), scope: "convmark:service" })}`, loopback)).toMatchObject({ kind: "user", userId: "u1" });
    expect(await a(`bearer ${await sign({ sub: "svc", exp: exp(), scope: "a push b" })}`, loopback)).toMatchObject({ kind: "service", subject: "svc" });
  });

  it("bounds clock skew: a token expired within the skew passes, beyond it fails", async () => {
    const a = createAuthenticator(authConfigFromEnv({ CONVMARK_AUTH_JWT_SECRET: SECRET, CONVMARK_AUTH_CLOCK_SKEW_SECONDS: "30" }));
    const t = (offset: number) => sign({ sub: "u", exp: Math.floor(Date.now() / 1000) + offset });
    expect(await codeOf(a(`Bearer ${await t(-10)}`, undefined))).toBe("OK");
    expect(await codeOf(a(`Bearer ${await t(-120)}`, undefined))).toBe(Code.Unauthenticated);
  });

  it("refuses tokens without sub, with alg none or an unconfigured algorithm", async () => {
    const a = createAuthenticator(authConfigFromEnv({ CONVMARK_AUTH_JWT_SECRET: SECRET }));
    expect(await codeOf(a(`Bearer ${await sign({ exp: exp() })}`, undefined))).toBe(Code.Unauthenticated);
    const none = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify({ sub: "u", exp: exp() })).toString("base64url")}.`;
    expect(await codeOf(a(`Bearer ${none}`, undefined))).toBe(Code.Unauthenticated);
    expect(await codeOf(a(`Bearer ${await sign({ sub: "u", exp: exp() }, "HS512")}`, undefined))).toBe(Code.Unauthenticated);
  });
});

describe("peers and owners", () => {
  it("knows loopback addresses and Host names", () => {
    for (const a of ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"]) expect(isLoopbackAddress(a), a).toBe(true);
    for (const a of ["10.0.0.1", "::ffff:10.0.0.1", "0.0.0.0", "", undefined]) expect(isLoopbackAddress(a), String(a)).toBe(false);
    for (const h of ["localhost", "localhost:8080", "LOCALHOST.", "app.localhost:3000", "127.0.0.1:80", "[::1]:8080"]) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ["evil.test", "localhost.evil.test", "127.0.0.1.nip.io", "[::2]", "10.0.0.1", "", undefined]) expect(isLoopbackHost(h), String(h)).toBe(false);
  });

  it("limits user callers to their own owner", () => {
    const user = { kind: "user" as const, userId: "alice", scopes: [] };
    expect(ownerRefusal(user, "alice")).toBeUndefined();
    expect(ownerRefusal(user, "bob")?.code).toBe(Code.PermissionDenied);
    expect(ownerRefusal({ kind: "service", subject: "s", scopes: [] }, "bob")).toBeUndefined();
    expect(ownerRefusal(undefined, "bob")?.code).toBe(Code.PermissionDenied);
  });
});
