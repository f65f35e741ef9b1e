/**
 * The Connect request handler for node:http and node:http2: connect-node's `connectNodeAdapter`,
 * with every universal handler wrapped by `withRequestParseErrors` (see request-errors.ts).
 */
import { Code, ConnectError, createConnectRouter, type ConnectRouter, type ConnectRouterOptions, type ContextValues } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import type { Logger } from "pino";
import type { NodeHandlerFn, NodeServerRequest, NodeServerResponse } from "./listener.js";
import { withRequestParseErrors } from "./request-errors.js";

export interface ConnectHandlerOptions extends ConnectRouterOptions {
  readonly routes: (router: ConnectRouter) => void;
  readonly contextValues?: (req: NodeServerRequest) => ContextValues;
  readonly logger: Logger;
  /** Unmatched paths (as connect-node's `fallback`): the vendor gateways. Default: a bare 404. */
  readonly fallback?: NodeHandlerFn;
}

export function createConnectHandler(options: ConnectHandlerOptions): NodeHandlerFn {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options });
  options.routes(router);
  const readMaxBytes = options.readMaxBytes ?? 0xffffffff;
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) {
    paths.set(h.requestPath, withRequestParseErrors(h, { readMaxBytes, ...(options.jsonOptions ? { jsonOptions: options.jsonOptions } : {}) }));
  }
  return (req: NodeServerRequest, res: NodeServerResponse) => {
    const handler = paths.get((req.url ?? "").split("?", 1)[0]!);
    if (!handler) {
      if (options.fallback) return options.fallback(req, res);
      res.writeHead(404);
      res.end();
      return;
    }
    const uReq = universalRequestFromNodeRequest(req, res, undefined, options.contextValues?.(req));
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.error({ err: reason, procedure: `/${handler.service.typeName}/${handler.method.name}` }, "rpc handler failed");
      });
  };
}
