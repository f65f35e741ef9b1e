/**
 * OpenIM tokens: JWT HS256 signed with the server's secret, claims as openimsdk/tools
 * tokenverify.BuildClaims makes them ({UserID, PlatformID, exp, nbf = now - 5 min, iat}).
 *
 * Verification reproduces tokenverify.GetClaimFromToken over golang-jwt v4, which checks the time
 * claims before the signature and reports, in this order: malformed → 1503, expired → 1501, not
 * valid yet → 1504, anything else (bad signature, wrong algorithm, iat in the future) → 1505.
 * convmark keeps no token store, so OpenIM's 1506 (kicked) never occurs; a token without a UserID
 * (which OpenIM's token store could never hold) is 1507 TokenNotExistError.
 */
import { createCredentialCache } from "../kernel.js";
import { compactVerify, decodeJwt, decodeProtectedHeader, SignJWT } from "jose";
import { isOpenimError, OpenimCode, openimError, type OpenimError } from "./errors.js";

/** constant.AdminPlatformID in openimsdk/protocol. */
export const ADMIN_PLATFORM_ID = 10;
/** tokenverify.BuildClaims back-dates nbf by five minutes. */
const NBF_SKEW_SECONDS = 5 * 60;

/** Algorithms golang-jwt v4 knows; any other makes the token unverifiable (1505) before claims are looked at. */
const KNOWN_ALGS = new Set(["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA", "none"]);

export interface TokenClaims {
  readonly userId: string;
  readonly platformId: number;
  /** iat and exp claims (Unix seconds), when present. */
  readonly issuedAt?: number;
  readonly expiresAt?: number;
  /** nbf (Unix seconds), when present. */
  readonly notBefore?: number;
}

const keyOf = (secret: string) => new TextEncoder().encode(secret);

export async function mintToken(secret: string, userId: string, platformId: number, nowMs: number, ttlSeconds: number): Promise<string> {
  const now = Math.floor(nowMs / 1000);
  // Claim order as Go marshals tokenverify.Claims: UserID, PlatformID, then the registered claims.
  return new SignJWT({ UserID: userId, PlatformID: platformId, exp: now + ttlSeconds, nbf: now - NBF_SKEW_SECONDS, iat: now })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(keyOf(secret));
}

const isNumericDate = (v: unknown) => v === undefined || (typeof v === "number" && Number.isFinite(v));

export async function verifyToken(token: string, secret: string, nowMs: number): Promise<TokenClaims | OpenimError> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  let claims: ReturnType<typeof decodeJwt>;
  try {
    if (token.split(".").length !== 3) throw new Error("token contains an invalid number of segments");
    header = decodeProtectedHeader(token);
    claims = decodeJwt(token);
  } catch (e) {
    return openimError(OpenimCode.TokenMalformedError, `token is malformed: ${(e as Error).message}`);
  }
  const userId = claims["UserID"];
  const platformId = claims["PlatformID"];
  if (
    (userId !== undefined && typeof userId !== "string") ||
    (platformId !== undefined && !Number.isInteger(platformId)) ||
    !isNumericDate(claims.exp) ||
    !isNumericDate(claims.nbf) ||
    !isNumericDate(claims.iat)
  ) {
    return openimError(OpenimCode.TokenMalformedError, "token is malformed: a claim has the wrong type");
  }
  if (typeof header.alg !== "string" || !KNOWN_ALGS.has(header.alg)) {
    return openimError(OpenimCode.TokenUnknownError, `signing method ${String(header.alg)} is unavailable`);
  }
  const early = timeRefusal({ expiresAt: claims.exp, notBefore: claims.nbf, issuedAt: claims.iat }, nowMs);
  if (early) return early;
  try {
    await compactVerify(token, keyOf(secret), { algorithms: ["HS256"] });
  } catch (e) {
    return openimError(OpenimCode.TokenUnknownError, `token signature is invalid: ${(e as Error).message}`);
  }
  if (typeof userId !== "string" || userId === "") {
    return openimError(OpenimCode.TokenNotExistError, "token carries no UserID");
  }
  return {
    userId,
    platformId: typeof platformId === "number" ? platformId : 0,
    ...(claims.iat !== undefined ? { issuedAt: claims.iat } : {}),
    ...(claims.exp !== undefined ? { expiresAt: claims.exp } : {}),
    ...(claims.nbf !== undefined ? { notBefore: claims.nbf } : {}),
  };
}

/** The time claims' verdict at `nowMs` (golang-jwt v4's order: exp, nbf, iat); undefined: valid now. */
export function timeRefusal(c: { readonly expiresAt?: number | undefined; readonly notBefore?: number | undefined; readonly issuedAt?: number | undefined }, nowMs: number): OpenimError | undefined {
  if (c.expiresAt !== undefined && !(nowMs < c.expiresAt * 1000)) return openimError(OpenimCode.TokenExpiredError, "token is expired");
  if (c.notBefore !== undefined && nowMs < c.notBefore * 1000) return openimError(OpenimCode.TokenNotValidYetError, "token is not valid yet");
  if (c.issuedAt !== undefined && nowMs < c.issuedAt * 1000) return openimError(OpenimCode.TokenUnknownError, "token used before issued");
  return undefined;
}

/**
 * verifyToken through the dialect kernel's credential cache: a token verified before (same string,
 * same secret: the secret is fixed for the process) is only checked against the clock again.
 */
export function cachedTokenVerifier(secret: string): (token: string, nowMs: number) => Promise<TokenClaims | OpenimError> {
  const cache = createCredentialCache<TokenClaims>();
  return (token, nowMs) =>
    cache.checkAsync(token, (c) => timeRefusal(c, nowMs) === undefined, () => verifyToken(token, secret, nowMs), (r): r is TokenClaims => !isOpenimError(r));
}
