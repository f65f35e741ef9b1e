/**
 * Who is calling the unified API, and what they may touch. The auth interceptor sets the caller in
 * the call's context values; MarkService asks `ownerRefusal` for every owner a call touches.
 */
import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";
import { failure, type Failure } from "../domain/validate.js";
import { peerKey } from "./peer.js";

export type Caller =
  /** A token without the service scope: acts only for its own `sub`. */
  | { readonly kind: "user"; readonly userId: string; readonly scopes: readonly string[] }
  /** A token with the service scope: acts for every owner and may use DirectoryService. */
  | { readonly kind: "service"; readonly subject: string; readonly scopes: readonly string[] }
  /**
   * Not a token but a place: a caller in this process (the vendor dialects, which have their own
   * vendor auth), a loopback client in protected mode, or anyone with CONVMARK_AUTH=off.
   */
  | { readonly kind: "trusted"; readonly via: "in-process" | "loopback" | "auth-off" };

/** The principal the vendor dialects' in-process calls carry. */
export const IN_PROCESS_CALLER: Caller = { kind: "trusted", via: "in-process" };

/** The caller of the current call, set by the auth interceptor (or fixedCallerInterceptor in process). */
export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "convmark caller" });

/**
 * The caller a service should authorize. A call that came over the network (the HTTP edge set a
 * peer) but has no caller was never authenticated: undefined, which every check refuses. A call
 * with neither never left the process (an in-memory router in tests, a direct transport): trusted.
 */
export function callerOf(ctx: Pick<HandlerContext, "values">): Caller | undefined {
  const caller = ctx.values.get(callerKey);
  if (caller !== undefined) return caller;
  return ctx.values.get(peerKey) === undefined ? IN_PROCESS_CALLER : undefined;
}

/** True for callers that may act for any owner. */
export function actsForAnyOwner(caller: Caller | undefined): boolean {
  return caller !== undefined && caller.kind !== "user";
}

/** Why `caller` may not act for `owner`, or undefined when it may. */
export function ownerRefusal(caller: Caller | undefined, owner: string): Failure | undefined {
  if (caller === undefined) return failure(Code.PermissionDenied, "no caller was established for this call");
  if (caller.kind !== "user" || caller.userId === owner) return undefined;
  return failure(Code.PermissionDenied, `a user token may act only for its own owner_user_id ("${caller.userId}"), not for "${owner}"`);
}

/** Throws PERMISSION_DENIED unless the context's caller may act for `owner`; `field` names where the owner came from. */
export function requireOwner(ctx: HandlerContext, owner: string, field = "owner_user_id"): void {
  requireCallerOwner(callerOf(ctx), owner, field);
}

/** requireOwner for a caller established outside a Connect context (the lean Watch route). */
export function requireCallerOwner(caller: Caller | undefined, owner: string, field = "owner_user_id"): void {
  const refused = ownerRefusal(caller, owner);
  if (refused) throw new ConnectError(`${field}: ${refused.message}`, refused.code);
}

/** Throws PERMISSION_DENIED unless the context's caller may act for every owner (services, trusted callers). */
export function requireAnyOwner(ctx: HandlerContext, what: string): void {
  requireCallerAnyOwner(callerOf(ctx), what);
}

/** requireAnyOwner for a caller established outside a Connect context. */
export function requireCallerAnyOwner(caller: Caller | undefined, what: string): void {
  if (actsForAnyOwner(caller)) return;
  throw new ConnectError(`${what} needs a service token (a token whose scope claim holds the service scope)`, Code.PermissionDenied);
}
