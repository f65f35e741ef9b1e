/** Configuration of the unified API's authentication, parsed from the environment before anything opens. */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { ConfigError, integer, oneOf, optional, parseEnv, text, withDefault } from "../env.js";

/**
 * - "jwt": bearer tokens required (a secret and/or a JWKS file is configured).
 * - "protected": nothing configured: only loopback clients with a loopback Host header are served.
 * - "off": CONVMARK_AUTH=off, no authentication at all (explicit).
 */
export type AuthMode = "jwt" | "protected" | "off";

export interface AuthConfig {
  readonly mode: AuthMode;
  /** HS256 shared secret (at least 32 bytes). */
  readonly secret?: Uint8Array;
  /** Parsed JWKS ({ keys: [...] }) for RS256/ES256 tokens. */
  readonly jwks?: { keys: Record<string, unknown>[] };
  readonly jwksFile?: string;
  readonly issuer?: string;
  readonly audience?: string;
  /** The scope that makes a token a service caller. Default "convmark:service". */
  readonly serviceScope: string;
  /** Accepted clock skew for exp/nbf/iat, in seconds. Default 30, at most 300. */
  readonly clockToleranceSec: number;
}

const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

export function authConfigFromEnv(env: NodeJS.ProcessEnv): AuthConfig {
  const e = parseEnv(env, {
    CONVMARK_AUTH: optional(oneOf(["on", "off"])),
    CONVMARK_AUTH_JWT_SECRET: optional(z.string().min(32, "must be at least 32 bytes (HS256 keys shorter than the hash are weak)")),
    CONVMARK_AUTH_JWKS_FILE: optional(text),
    CONVMARK_AUTH_ISSUER: optional(text),
    CONVMARK_AUTH_AUDIENCE: optional(text),
    CONVMARK_AUTH_SERVICE_SCOPE: withDefault(z.string().trim().regex(SCOPE_TOKEN, "must be one OAuth 2 scope token (no spaces or quotes)"), "convmark:service"),
    CONVMARK_AUTH_CLOCK_SKEW_SECONDS: withDefault(integer(0, 300), 30),
  });
  const hasCredentials = e.CONVMARK_AUTH_JWT_SECRET !== undefined || e.CONVMARK_AUTH_JWKS_FILE !== undefined;
  if (e.CONVMARK_AUTH === "off" && hasCredentials) {
    throw new ConfigError("invalid configuration: CONVMARK_AUTH=off together with CONVMARK_AUTH_JWT_SECRET/CONVMARK_AUTH_JWKS_FILE: choose one");
  }
  if (e.CONVMARK_AUTH === "on" && !hasCredentials) {
    throw new ConfigError("invalid configuration: CONVMARK_AUTH=on needs CONVMARK_AUTH_JWT_SECRET or CONVMARK_AUTH_JWKS_FILE");
  }
  const base = {
    serviceScope: e.CONVMARK_AUTH_SERVICE_SCOPE,
    clockToleranceSec: e.CONVMARK_AUTH_CLOCK_SKEW_SECONDS,
    ...(e.CONVMARK_AUTH_ISSUER ? { issuer: e.CONVMARK_AUTH_ISSUER } : {}),
    ...(e.CONVMARK_AUTH_AUDIENCE ? { audience: e.CONVMARK_AUTH_AUDIENCE } : {}),
  };
  if (e.CONVMARK_AUTH === "off") return { mode: "off", ...base };
  if (!hasCredentials) return { mode: "protected", ...base };
  return {
    mode: "jwt",
    ...base,
    ...(e.CONVMARK_AUTH_JWT_SECRET ? { secret: new TextEncoder().encode(e.CONVMARK_AUTH_JWT_SECRET) } : {}),
    ...(e.CONVMARK_AUTH_JWKS_FILE ? { jwks: readJwks(e.CONVMARK_AUTH_JWKS_FILE), jwksFile: e.CONVMARK_AUTH_JWKS_FILE } : {}),
  };
}

function readJwks(file: string): { keys: Record<string, unknown>[] } {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new ConfigError(`invalid configuration: CONVMARK_AUTH_JWKS_FILE: ${(err as Error).message}`);
  }
  const keys = (json as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === "object" && k !== null && typeof (k as { kty?: unknown }).kty === "string")) {
    throw new ConfigError(`invalid configuration: CONVMARK_AUTH_JWKS_FILE: ${file} is not a JWK set ({"keys": [{"kty": ...}, ...]})`);
  }
  for (const k of keys as Record<string, unknown>[]) {
    if ("d" in k) throw new ConfigError(`invalid configuration: CONVMARK_AUTH_JWKS_FILE: ${file} holds a private key; give only public keys`);
  }
  return { keys: keys as Record<string, unknown>[] };
}
