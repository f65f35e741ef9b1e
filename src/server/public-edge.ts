/**
 * The unified API's HTTP edge: CORS, GET /openapi.json (no credentials), the /metrics rule, and the
 * REST routes of MarkService and DirectoryService (the transcoder), in front of everything else.
 */
import type { ContextValues, Interceptor, ServiceImpl } from "@connectrpc/connect";
import type { DescService, Registry } from "@bufbuild/protobuf";
import openapiDocument from "../../gen/openapi/openapi.json" with { type: "json" };
import type { Authenticator } from "../auth/authenticate.js";
import { guardPath } from "../auth/http-guard.js";
import { peerKey, peerOf } from "../auth/peer.js";
import { createInProcessServicesTransport } from "../service/in-process-transport.js";
import { createTranscoder, type Transcoder, type TranscodeResponse } from "../transcode/index.js";
import { clientAddressContextValues } from "./client-address.js";
import { withCors, type CorsConfig } from "./cors.js";
import type { NodeHandlerFn, NodeServerRequest } from "./listener.js";

export interface PublicEdgeOptions {
  /** The services served over REST, with their implementations. */
  readonly services: readonly { service: DescService; impl: ServiceImpl<DescService> }[];
  /** The same interceptors the Connect handler runs (logging, metrics, auth), outermost first. */
  readonly interceptors: readonly Interceptor[];
  readonly authenticate: Authenticator;
  readonly cors: CorsConfig;
  readonly registry?: Registry;
  readonly maxBodyBytes?: number;
  /** Path of the Prometheus endpoint to guard, or false. */
  readonly metricsPath: string | false;
}

const OPENAPI_TEXT = JSON.stringify(openapiDocument);

export function createPublicEdge(opts: PublicEdgeOptions): { edge: (next: NodeHandlerFn) => NodeHandlerFn; transcoder: Transcoder } {
  const transcoder = createTranscoder({
    services: opts.services.map((s) => s.service),
    transport: createInProcessServicesTransport(opts.services, opts.interceptors),
    ...(opts.registry ? { registry: opts.registry } : {}),
    ...(opts.maxBodyBytes ? { maxBodyBytes: opts.maxBodyBytes } : {}),
    prefixes: ["/v1"],
    // Same context values as the Connect handler: the peer (protected mode) and the client address.
    contextValues: (req): ContextValues => {
      const r = req as NodeServerRequest;
      return clientAddressContextValues(r).set(peerKey, peerOf(r));
    },
  });
  const edge = (next: NodeHandlerFn): NodeHandlerFn => {
    const guarded = opts.metricsPath === false ? next : guardPath(next, opts.metricsPath, opts.authenticate);
    const inner: NodeHandlerFn = (req, res) => {
      const path = (req.url ?? "/").split("?", 1)[0];
      if (path === "/openapi.json" && (req.method === "GET" || req.method === "HEAD")) {
        res.writeHead(200, { "content-type": "application/json", "cache-control": "no-cache" });
        if (req.method === "HEAD") res.end();
        else res.end(OPENAPI_TEXT);
        return;
      }
      // connect-node narrows the http2 response's write() signature; the object is Node's own response.
      transcoder.handle(req, res as TranscodeResponse).then(
        (handled) => {
          if (!handled) guarded(req, res);
        },
        () => {
          if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
          res.end("internal error\n");
        },
      );
    };
    return withCors(inner, opts.cors);
  };
  return { edge, transcoder };
}
