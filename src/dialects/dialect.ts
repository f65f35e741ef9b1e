/** What a vendor dialect plugs into the server: vendor-shaped proto services plus a REST gateway. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import type { Client, ConnectRouter } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import type { KickRegistry, NonceRegistry } from "../cluster/nonce-store.js";
import type { DirectoryLookup } from "../directory/directory.js";

export type GatewayRequest = IncomingMessage | Http2ServerRequest;
export type GatewayResponse = ServerResponse | Http2ServerResponse;

export interface DialectDeps {
  /** MarkService through an in-process transport: validation, caps, logging and metrics apply once. */
  readonly marks: Client<typeof MarkService>;
  readonly directory: DirectoryLookup;
  readonly logger: Logger;
  readonly now: () => number;
  /** Largest request body a gateway route reads before answering with the vendor's error. */
  readonly maxBodyBytes: number;
  /** The replay cache shared by all workers of a cluster; absent: each dialect keeps its own in memory. */
  readonly nonces?: NonceRegistry;
  /** OpenIM's force_logout list shared by all workers of a cluster; absent: in memory. */
  readonly kicks?: KickRegistry;
}

export interface Dialect {
  readonly name: string;
  /** The vendor proto services, for reflection (their implementations are registered by `routes`). */
  readonly services: readonly DescService[];
  /** Registers the vendor proto services on the Connect router (gRPC, gRPC-Web, Connect). */
  routes(router: ConnectRouter): void;
  /**
   * REST gateway: handles the request and returns true when the path is this vendor's (even to
   * answer with the vendor's own error); returns false to let the next handler try.
   */
  handle(req: GatewayRequest, res: GatewayResponse, url: URL): Promise<boolean>;
}

/**
 * Handler options for the vendor proto services: vendors always print every field (ErrorCode 0,
 * ResultCode 0, ...), and clients check them, so JSON over Connect emits zero values too.
 */
export const VENDOR_SERVICE_OPTIONS = { jsonOptions: { alwaysEmitImplicit: true } } as const;
