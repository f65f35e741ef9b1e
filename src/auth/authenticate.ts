/** Turns a request's authorization header and peer into a Caller, by the configured mode. */
import { Code, ConnectError } from "@connectrpc/connect";
import type { Caller } from "./caller.js";
import type { AuthConfig } from "./config.js";
import type { Peer } from "./peer.js";
import { createTokenVerifier } from "./verify.js";

export type Authenticator = (authorization: string | null | undefined, peer: Peer | undefined) => Promise<Caller>;

export const PROTECTED_MODE_MESSAGE =
  "convmark is in protected mode: no credentials are configured, so only loopback clients using a loopback Host are served. " +
  "Set CONVMARK_AUTH_JWT_SECRET or CONVMARK_AUTH_JWKS_FILE to require bearer tokens, or CONVMARK_AUTH=off to serve everyone without authentication";

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

export function createAuthenticator(config: AuthConfig): Authenticator {
  if (config.mode === "off") return async () => ({ kind: "trusted", via: "auth-off" });
  if (config.mode === "protected") {
    return async (_authorization, peer) => {
      if (peer?.loopbackAddress && peer.loopbackHost) return { kind: "trusted", via: "loopback" };
      throw new ConnectError(PROTECTED_MODE_MESSAGE, Code.PermissionDenied);
    };
  }
  const verify = createTokenVerifier(config);
  return async (authorization) => {
    if (!authorization) throw new ConnectError("missing bearer token (authorization: Bearer <JWT>)", Code.Unauthenticated);
    const m = BEARER.exec(authorization);
    if (!m) throw new ConnectError("malformed authorization header: expected \"Bearer <JWT>\"", Code.Unauthenticated);
    return verify(m[1]!);
  };
}
