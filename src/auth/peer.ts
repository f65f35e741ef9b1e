/** What the HTTP layer knows about a request's origin, carried into the call's context for protected mode. */
import { createContextKey, type ContextValues, createContextValues } from "@connectrpc/connect";
import { isIP } from "node:net";

export interface Peer {
  /** The TCP peer is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x). */
  readonly loopbackAddress: boolean;
  /** The Host (or :authority) header names a loopback host: localhost, *.localhost, 127.x, [::1]. */
  readonly loopbackHost: boolean;
}

/** Absent for calls that did not come over the network. */
export const peerKey = createContextKey<Peer | undefined>(undefined, { description: "convmark peer" });

export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith("::ffff:") ? address.slice(7) : address;
  if (isIP(a) === 4) return a.startsWith("127.");
  return a === "::1";
}

/** Host header → loopback? The port is ignored; anything else (a DNS name, a LAN address) is not. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  let name = host.trim().toLowerCase();
  if (name.startsWith("[")) {
    const end = name.indexOf("]");
    if (end < 0) return false;
    return isLoopbackAddress(name.slice(1, end));
  }
  const colon = name.lastIndexOf(":");
  if (colon >= 0) name = name.slice(0, colon);
  if (name.endsWith(".")) name = name.slice(0, -1);
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  return isIP(name) === 4 && name.startsWith("127.");
}

/** Minimal shape of Node's http/http2 request that peerOf reads. */
export interface PeerSource {
  readonly socket?: { readonly remoteAddress?: string | undefined } | null;
  readonly headers: Record<string, string | string[] | undefined>;
}

export function peerOf(req: PeerSource): Peer {
  const host = req.headers[":authority"] ?? req.headers.host;
  return {
    loopbackAddress: isLoopbackAddress(req.socket?.remoteAddress),
    loopbackHost: isLoopbackHost(Array.isArray(host) ? host[0] : host),
  };
}

/** Context values for a network request (connect-node's contextValues option). */
export function peerContextValues(req: PeerSource): ContextValues {
  return createContextValues().set(peerKey, peerOf(req));
}
