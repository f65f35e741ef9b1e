/** Clients for the CLI: MarkService, DirectoryService and Health over gRPC (h2c or TLS) or Connect JSON. */
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { DirectoryService } from "../../gen/convmark/v1/directory_service_pb.js";
import { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { anyTypeRegistry } from "../service/json-registry.js";
import { UsageError } from "./errors.js";

export type Protocol = "grpc" | "connect";

export interface ConnectionOptions {
  url: string;
  token?: string | undefined;
  protocol: Protocol;
}

export interface Clients {
  marks: Client<typeof MarkService>;
  directory: Client<typeof DirectoryService>;
  health: Client<typeof Health>;
}

/** Sends `authorization: Bearer <token>` on every call when a token is given. */
function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

export function createTransport(opts: ConnectionOptions): Transport {
  let base: URL;
  try {
    base = new URL(opts.url);
  } catch {
    throw new UsageError(`--url: not a URL: ${opts.url}`);
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") throw new UsageError(`--url: must be http:// or https://, not ${base.protocol}`);
  const baseUrl = opts.url.replace(/\/+$/, "");
  const interceptors = opts.token ? [bearer(opts.token)] : [];
  const jsonOptions = { registry: anyTypeRegistry };
  return opts.protocol === "grpc"
    ? createGrpcTransport({ baseUrl, interceptors, jsonOptions })
    : createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false, interceptors, jsonOptions });
}

export function createClients(opts: ConnectionOptions): Clients {
  const transport = createTransport(opts);
  return {
    marks: createClient(MarkService, transport),
    directory: createClient(DirectoryService, transport),
    health: createClient(Health, transport),
  };
}
