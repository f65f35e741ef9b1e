/** Bearer-token verification with jose: HS256 with a shared secret and/or RS256/ES256 against a JWK set. */
import { Code, ConnectError } from "@connectrpc/connect";
import { createLocalJWKSet, errors, jwtVerify, type JWTVerifyGetKey, type JWK } from "jose";
import type { Caller } from "./caller.js";
import type { AuthConfig } from "./config.js";

export type TokenVerifier = (token: string) => Promise<Extract<Caller, { kind: "user" | "service" }>>;

const ASYMMETRIC = ["RS256", "ES256"];

/** A verifier for a "jwt" mode configuration; it throws UNAUTHENTICATED ConnectErrors. */
export function createTokenVerifier(config: AuthConfig): TokenVerifier {
  if (!config.secret && !config.jwks) throw new Error("createTokenVerifier needs a secret or a JWK set");
  const secret = config.secret;
  const jwks = config.jwks ? createLocalJWKSet({ keys: config.jwks.keys as JWK[] }) : undefined;
  const algorithms = [...(secret ? ["HS256"] : []), ...(jwks ? ASYMMETRIC : [])];
  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (header.alg === "HS256" && secret) return secret;
    if (jwks && header.alg !== undefined && ASYMMETRIC.includes(header.alg)) return jwks(header, token);
    throw new errors.JOSEAlgNotAllowed(`alg ${String(header.alg)} is not accepted`);
  };
  return async (token) => {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        algorithms,
        requiredClaims: ["exp", "sub"],
        clockTolerance: config.clockToleranceSec,
        ...(config.issuer ? { issuer: config.issuer } : {}),
        ...(config.audience ? { audience: config.audience } : {}),
      }));
    } catch (err) {
      throw new ConnectError(`invalid bearer token: ${describe(err)}`, Code.Unauthenticated);
    }
    const sub = payload.sub!;
    if (sub.length === 0) throw new ConnectError("invalid bearer token: sub is empty", Code.Unauthenticated);
    const scopes = typeof payload.scope === "string" ? payload.scope.split(" ").filter((s) => s.length > 0) : [];
    if (payload.scope !== undefined && typeof payload.scope !== "string") {
      throw new ConnectError("invalid bearer token: scope must be a space-separated string", Code.Unauthenticated);
    }
    return scopes.includes(config.serviceScope) ? { kind: "service", subject: sub, scopes } : { kind: "user", userId: sub, scopes };
  };
}

function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "expired";
  if (err instanceof errors.JWTClaimValidationFailed) return `claim ${err.claim} ${err.reason === "missing" ? "is missing" : "is not accepted"}`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return "signature verification failed";
  if (err instanceof errors.JWKSNoMatchingKey) return "no key in the JWK set matches";
  if (err instanceof errors.JOSEAlgNotAllowed) return "algorithm not accepted";
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return "malformed";
  if (err instanceof errors.JOSEError) return err.code;
  return "malformed";
}
