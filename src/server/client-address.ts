/** The client's IP address, for per-client limits: from the socket (REST) or a context value (Connect handlers). */
import { createContextKey, createContextValues, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import type { NodeServerRequest } from "./listener.js";

/** Set on every Connect/gRPC call by the app (connectNodeAdapter contextValues). */
export const clientAddressKey = createContextKey<string | undefined>(undefined, { description: "client IP address" });

/** The peer address of a request's socket, IPv4-mapped IPv6 (::ffff:a.b.c.d) reduced to IPv4. */
export function clientAddressOf(req: Pick<NodeServerRequest, "socket">): string | undefined {
  const a = req.socket?.remoteAddress;
  return a?.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}

export function clientAddressContextValues(req: NodeServerRequest): ContextValues {
  return createContextValues().set(clientAddressKey, clientAddressOf(req));
}

export function clientAddressFromContext(ctx: Pick<HandlerContext, "values">): string | undefined {
  return ctx.values.get(clientAddressKey);
}
