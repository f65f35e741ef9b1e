/** The Connect interceptor that authenticates calls to the unified API and records the caller in the context. */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Authenticator } from "./authenticate.js";
import { actsForAnyOwner, callerKey, type Caller } from "./caller.js";
import { peerKey, type Peer } from "./peer.js";

export interface AuthInterceptorOptions {
  /** Services whose calls are authenticated; owners are then checked per item by the service itself. */
  readonly perOwner: readonly string[];
  /** Services only service callers (and trusted callers) may use at all. */
  readonly serviceOnly: readonly string[];
}

/**
 * The rule itself, for the interceptor and for routes served outside connect-node (the lean unary
 * route): the caller of a call to `service`, undefined for services that are not authenticated here
 * (health, reflection, vendor protos with their own auth); throws the ConnectError to answer with.
 */
export type CallAuthorizer = (service: string, authorization: string | null | undefined, peer: Peer | undefined) => Promise<Caller | undefined>;

export function createCallAuthorizer(authenticate: Authenticator, opts: AuthInterceptorOptions): CallAuthorizer {
  const perOwner = new Set(opts.perOwner);
  const serviceOnly = new Set(opts.serviceOnly);
  return async (name, authorization, peer) => {
    if (!perOwner.has(name) && !serviceOnly.has(name)) return undefined;
    const caller = await authenticate(authorization, peer);
    if (serviceOnly.has(name) && !actsForAnyOwner(caller)) {
      throw new ConnectError(`${name} needs a service token`, Code.PermissionDenied);
    }
    return caller;
  };
}

/** Calls to other services (health, reflection, vendor protos with their own auth) pass untouched. */
export function createAuthInterceptor(authenticate: Authenticator, opts: AuthInterceptorOptions): Interceptor {
  return authInterceptor(createCallAuthorizer(authenticate, opts));
}

/** The interceptor for an authorizer made with createCallAuthorizer. */
export function authInterceptor(authorize: CallAuthorizer): Interceptor {
  return (next) => async (req) => {
    const caller = await authorize(req.service.typeName, req.header.get("authorization"), req.contextValues.get(peerKey));
    if (caller !== undefined) req.contextValues.set(callerKey, caller);
    return next(req);
  };
}

/** Sets a fixed caller: for in-process clients (the vendor dialects), which authenticate their own way. */
export function fixedCallerInterceptor(caller: Caller): Interceptor {
  return (next) => async (req) => {
    req.contextValues.set(callerKey, caller);
    return next(req);
  };
}
