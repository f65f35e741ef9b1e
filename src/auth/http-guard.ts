/** The auth rule for plain HTTP routes outside Connect (the /metrics endpoint). */
import { Code, ConnectError } from "@connectrpc/connect";
import type { NodeHandlerFn } from "../server/listener.js";
import type { Authenticator } from "./authenticate.js";
import { actsForAnyOwner } from "./caller.js";
import { peerOf } from "./peer.js";

/**
 * Requests for `path` must pass the same rule as DirectoryService: a service token (jwt mode),
 * a loopback client with a loopback Host (protected mode), anyone (CONVMARK_AUTH=off).
 */
export function guardPath(next: NodeHandlerFn, path: string, authenticate: Authenticator): NodeHandlerFn {
  return (req, res) => {
    if ((req.url ?? "").split("?", 1)[0] !== path) return next(req, res);
    authenticate(req.headers.authorization, peerOf(req)).then(
      (caller) => {
        if (actsForAnyOwner(caller)) return next(req, res);
        res.writeHead(403, { "content-type": "text/plain" });
        res.end(`${path} needs a service token\n`);
      },
      (err: unknown) => {
        const e = ConnectError.from(err);
        res.writeHead(e.code === Code.Unauthenticated ? 401 : 403, { "content-type": "text/plain", ...(e.code === Code.Unauthenticated ? { "www-authenticate": "Bearer" } : {}) });
        res.end(`${e.rawMessage}\n`);
      },
    );
  };
}
