/** The Connect interceptor that authenticates calls to the unified API and records the caller in the context. */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Authenticator } from "./authenticate.js";
import { actsForAnyOwner, callerKey, type Caller } from "./caller.js";
import { peerKey } from "./peer.js";

export interface AuthInterceptorOptions {
  /** Services whose calls are authenticated; owners are then checked per item by the service itself. */
  readonly perOwner: readonly string[];
  /** Services only service callers (and trusted callers) may use at all. */
  readonly serviceOnly: readonly string[];
}

/** Calls to other services (health, reflection, vendor protos with their own auth) pass untouched. */
export function createAuthInterceptor(authenticate: Authenticator, opts: AuthInterceptorOptions): Interceptor {
  const perOwner = new Set(opts.perOwner);
  const serviceOnly = new Set(opts.serviceOnly);
  return (next) => async (req) => {
    const name = req.service.typeName;
    if (!perOwner.has(name) && !serviceOnly.has(name)) return next(req);
    const caller = await authenticate(req.header.get("authorization"), req.contextValues.get(peerKey));
    if (serviceOnly.has(name) && !actsForAnyOwner(caller)) {
      throw new ConnectError(`${name} needs a service token`, Code.PermissionDenied);
    }
    req.contextValues.set(callerKey, caller);
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
