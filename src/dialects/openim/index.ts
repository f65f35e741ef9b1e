/**
 * The OpenIM dialect: POST /auth/get_admin_token and POST /conversation/set_conversations over REST,
 * and vendor.openim.v1.AuthService / ConversationService over gRPC, gRPC-Web and Connect.
 */
import { fromJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { VENDOR_SERVICE_OPTIONS, type Dialect, type DialectDeps, type GatewayRequest, type GatewayResponse } from "../dialect.js";
import { readJsonBody, sendJson } from "../http.js";
import { clientAddressFromContext, clientAddressOf } from "../../server/client-address.js";
import { AuthService, GetAdminTokenRequestSchema } from "../../../gen/vendor/openim/v1/auth_service_pb.js";
import { ConversationService, SetConversationsRequestSchema } from "../../../gen/vendor/openim/v1/conversation_service_pb.js";
import type { OpenimConfig } from "./config.js";
import { createOpenimCore, type OpenimAuth, type OpenimCore } from "./core.js";
import { OpenimCode, openimError, type OpenimError } from "./errors.js";

export { openimConfigFromEnv, type OpenimConfig } from "./config.js";
export { createOpenimCore, type OpenimAuth, type OpenimCore } from "./core.js";
export { OpenimCode } from "./errors.js";

export const OPENIM_ADMIN_TOKEN_PATH = "/auth/get_admin_token";
export const OPENIM_SET_CONVERSATIONS_PATH = "/conversation/set_conversations";

export interface OpenimDialect extends Dialect {
  readonly core: OpenimCore;
}

function header(req: GatewayRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function metadataAuth(ctx: HandlerContext): OpenimAuth {
  return {
    operationId: ctx.requestHeader.get("operationid") ?? undefined,
    token: ctx.requestHeader.get("token") ?? undefined,
    clientAddress: clientAddressFromContext(ctx),
  };
}

const BODY_PROBLEMS: Record<string, string> = {
  too_large: "request body too large",
  malformed_json: "request body is not valid JSON",
  not_utf8: "request body is not valid UTF-8",
  aborted: "request body could not be read",
};

/** Reads and parses the body as OpenIM's gin binding would; every problem is an ArgsError. */
async function parseBody<D extends DescMessage>(req: GatewayRequest, schema: D, maxBytes: number): Promise<MessageShape<D> | OpenimError> {
  const body = await readJsonBody(req, maxBytes);
  if (!body.ok) return openimError(OpenimCode.ArgsError, `${BODY_PROBLEMS[body.problem] ?? body.problem}: ${body.message}`);
  // encoding/json decodes null into a struct as a no-op; arrays and scalars are type errors.
  const json = body.json === null ? {} : body.json;
  if (typeof json !== "object" || Array.isArray(json)) {
    return openimError(OpenimCode.ArgsError, "request body must be a JSON object");
  }
  try {
    return fromJson(schema, json as JsonValue, { ignoreUnknownFields: true });
  } catch (e) {
    return openimError(OpenimCode.ArgsError, `request body is invalid: ${(e as Error).message}`);
  }
}

interface Envelope {
  errCode: number;
  errMsg: string;
  errDlt: string;
}

/** OpenIM's apiresp.ApiResponse: data only on success (omitempty); HTTP 200 except for the rate limit (429). */
function sendEnvelope(res: GatewayResponse, r: Envelope, data: unknown): void {
  const body = r.errCode === 0 ? { errCode: 0, errMsg: "", errDlt: "", data } : { errCode: r.errCode, errMsg: r.errMsg, errDlt: r.errDlt };
  sendJson(res, r.errCode === OpenimCode.TooManyRequests ? 429 : 200, body);
}

export function createOpenimDialect(deps: DialectDeps, config: OpenimConfig): OpenimDialect {
  const core = createOpenimCore(deps, config);

  return {
    name: "openim",
    core,
    services: [AuthService, ConversationService],

    routes(router: ConnectRouter) {
      router.service(AuthService, {
        getAdminToken: (req, ctx) => core.getAdminToken(metadataAuth(ctx), req),
      }, VENDOR_SERVICE_OPTIONS);
      router.service(ConversationService, {
        setConversations: (req, ctx) => core.setConversations(metadataAuth(ctx), req),
      }, VENDOR_SERVICE_OPTIONS);
    },

    async handle(req, res, url) {
      const path = url.pathname;
      if (path !== OPENIM_ADMIN_TOKEN_PATH && path !== OPENIM_SET_CONVERSATIONS_PATH) return false;
      if (req.method !== "POST") {
        // gin answers a route registered for POST only with its plain 404.
        req.resume();
        res.writeHead(404, { "content-type": "text/plain", "content-length": "18" });
        res.end("404 page not found");
        return true;
      }
      const auth: OpenimAuth = { operationId: header(req, "operationid"), token: header(req, "token"), clientAddress: clientAddressOf(req) };
      if (path === OPENIM_ADMIN_TOKEN_PATH) {
        const request = await parseBody(req, GetAdminTokenRequestSchema, deps.maxBodyBytes);
        const r = await core.getAdminToken(auth, request);
        sendEnvelope(res, r, r.data ? { token: r.data.token, expireTimeSeconds: Number(r.data.expireTimeSeconds) } : null);
      } else {
        const request = await parseBody(req, SetConversationsRequestSchema, deps.maxBodyBytes);
        const r = await core.setConversations(auth, request);
        sendEnvelope(res, r, null);
      }
      return true;
    },
  };
}
