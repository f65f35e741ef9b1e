/**
 * The OpenIM dialect: /auth/* and /conversation/* over REST (OPENIM_PATHS), and
 * vendor.openim.v1.AuthService / ConversationService over gRPC, gRPC-Web and Connect.
 */
import { create, type DescMessage, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { VENDOR_SERVICE_OPTIONS, type Dialect, type DialectDeps, type GatewayRequest, type GatewayResponse } from "../dialect.js";
import { readJsonBody, sendJson } from "../http.js";
import { foldJsonNames, parseInto, printJson } from "../kernel.js";
import { clientAddressFromContext, clientAddressOf } from "../../server/client-address.js";
import {
  AuthService,
  ForceLogoutRequestSchema,
  ForceLogoutResponseSchema,
  GetAdminTokenDataSchema,
  GetAdminTokenRequestSchema,
  GetUserTokenRequestSchema,
  GetUserTokenResponseSchema,
  ParseTokenDataSchema,
  ParseTokenRequestSchema,
  ParseTokenResponseSchema,
} from "../../../gen/vendor/openim/v1/auth_service_pb.js";
import {
  ConversationDataSchema,
  ConversationIdsDataSchema,
  ConversationService,
  ConversationsDataSchema,
  GetAllConversationsRequestSchema,
  GetAllConversationsResponseSchema,
  GetConversationRequestSchema,
  GetConversationResponseSchema,
  GetConversationsRequestSchema,
  GetConversationsResponseSchema,
  GetNotNotifyConversationIdsRequestSchema,
  GetNotNotifyConversationIdsResponseSchema,
  GetOwnerConversationDataSchema,
  GetOwnerConversationRequestSchema,
  GetOwnerConversationResponseSchema,
  GetPinnedConversationIdsRequestSchema,
  GetPinnedConversationIdsResponseSchema,
  SetConversationsRequestSchema,
  DeleteConversationsRequestSchema,
  DeleteConversationsResponseSchema,
  GetFullConversationIdsDataSchema,
  GetFullConversationIdsRequestSchema,
  GetFullConversationIdsResponseSchema,
  GetIncrementalConversationsDataSchema,
  GetIncrementalConversationsRequestSchema,
  GetIncrementalConversationsResponseSchema,
} from "../../../gen/vendor/openim/v1/conversation_service_pb.js";
import type { OpenimConfig } from "./config.js";
import { createOpenimCore, type Loader, type OpenimAuth, type OpenimCore, type ReadResult } from "./core.js";
import { bindError, OpenimCode, openimError, type OpenimError } from "./errors.js";

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
  if (!body.ok) return bindError(`${BODY_PROBLEMS[body.problem] ?? body.problem}: ${body.message}`);
  // encoding/json decodes null into a struct as a no-op; arrays and scalars are type errors.
  const json = body.json === null ? {} : body.json;
  if (typeof json !== "object" || Array.isArray(json)) {
    return bindError("request body must be a JSON object");
  }
  // Go's encoding/json matches names case-insensitively: userId works like userID.
  const parsed = parseInto(schema, json, { normalize: (o) => foldJsonNames(schema, o) });
  return "parseError" in parsed ? bindError(parsed.parseError.replace(/^invalid request body/, "request body is invalid")) : (parsed as MessageShape<D>);
}

interface Envelope {
  errCode: number;
  errMsg: string;
  errDlt: string;
}

/**
 * OpenIM's apiresp.ApiResponse: `data` only on success and only when it has exported fields (an
 * empty response such as SetConversationsResp is omitted, as the released server prints it); HTTP 200
 * except for the rate limit (429).
 */
function sendEnvelope(res: GatewayResponse, r: Envelope, data?: unknown): void {
  const body = r.errCode === 0 ? { errCode: 0, errMsg: "", errDlt: "", ...(data !== undefined ? { data } : {}) } : { errCode: r.errCode, errMsg: r.errMsg, errDlt: r.errDlt };
  sendJson(res, r.errCode === OpenimCode.TooManyRequests ? 429 : 200, body);
}

/** encoding/json's view of a proto message: every field printed, 64-bit integers as numbers. */
export const goJson = (schema: DescMessage, message: MessageShape<DescMessage>): JsonObject => printJson(schema, message);

/** One token-protected route: request schema, the core call, and how its data is made. */
interface Route {
  readonly request: DescMessage;
  readonly response: DescMessage;
  readonly data?: DescMessage;
  run(auth: OpenimAuth, load: Loader<never>): Promise<ReadResult<object>>;
}

export const OPENIM_PATHS = {
  getUserToken: "/auth/get_user_token",
  parseToken: "/auth/parse_token",
  forceLogout: "/auth/force_logout",
  getOwnerConversation: "/conversation/get_owner_conversation",
  getConversations: "/conversation/get_conversations",
  getConversation: "/conversation/get_conversation",
  getAllConversations: "/conversation/get_all_conversations",
  getPinnedConversationIds: "/conversation/get_pinned_conversation_ids",
  getNotNotifyConversationIds: "/conversation/get_not_notify_conversation_ids",
  getIncrementalConversations: "/conversation/get_incremental_conversations",
  deleteConversations: "/conversation/delete_conversations",
  getFullConversationIds: "/conversation/get_full_conversation_ids",
} as const;

export function createOpenimDialect(deps: DialectDeps, config: OpenimConfig): OpenimDialect {
  const core = createOpenimCore(deps, config);
  const routes: Record<keyof typeof OPENIM_PATHS, Route> = {
    getUserToken: { request: GetUserTokenRequestSchema, response: GetUserTokenResponseSchema, data: GetAdminTokenDataSchema, run: (a, l) => core.getUserToken(a, l) },
    parseToken: { request: ParseTokenRequestSchema, response: ParseTokenResponseSchema, data: ParseTokenDataSchema, run: (a, l) => core.parseToken(a, l) },
    forceLogout: { request: ForceLogoutRequestSchema, response: ForceLogoutResponseSchema, run: (a, l) => core.forceLogout(a, l) },
    getOwnerConversation: { request: GetOwnerConversationRequestSchema, response: GetOwnerConversationResponseSchema, data: GetOwnerConversationDataSchema, run: (a, l) => core.getOwnerConversation(a, l) },
    getConversations: { request: GetConversationsRequestSchema, response: GetConversationsResponseSchema, data: ConversationsDataSchema, run: (a, l) => core.getConversations(a, l) },
    getConversation: { request: GetConversationRequestSchema, response: GetConversationResponseSchema, data: ConversationDataSchema, run: (a, l) => core.getConversation(a, l) },
    getAllConversations: { request: GetAllConversationsRequestSchema, response: GetAllConversationsResponseSchema, data: ConversationsDataSchema, run: (a, l) => core.getAllConversations(a, l) },
    getPinnedConversationIds: { request: GetPinnedConversationIdsRequestSchema, response: GetPinnedConversationIdsResponseSchema, data: ConversationIdsDataSchema, run: (a, l) => core.getPinnedConversationIds(a, l) },
    getNotNotifyConversationIds: { request: GetNotNotifyConversationIdsRequestSchema, response: GetNotNotifyConversationIdsResponseSchema, data: ConversationIdsDataSchema, run: (a, l) => core.getNotNotifyConversationIds(a, l) },
    getIncrementalConversations: {
      request: GetIncrementalConversationsRequestSchema,
      response: GetIncrementalConversationsResponseSchema,
      data: GetIncrementalConversationsDataSchema,
      run: (a, l) => core.getIncrementalConversations(a, l),
    },
    deleteConversations: { request: DeleteConversationsRequestSchema, response: DeleteConversationsResponseSchema, run: (a, l) => core.deleteConversations(a, l) },
    getFullConversationIds: {
      request: GetFullConversationIdsRequestSchema,
      response: GetFullConversationIdsResponseSchema,
      data: GetFullConversationIdsDataSchema,
      run: (a, l) => core.getFullConversationIds(a, l),
    },
  };
  const byPath = new Map<string, Route>(Object.entries(OPENIM_PATHS).map(([k, p]) => [p, routes[k as keyof typeof OPENIM_PATHS]]));

  /** The route's response message (gRPC/Connect): the envelope, data on success. */
  function message(route: Route, r: ReadResult<object>): MessageShape<DescMessage> {
    const make = (init: object) => (create as unknown as (s: DescMessage, i: object) => MessageShape<DescMessage>)(route.response, init);
    if ("ok" in r) return make({ errCode: 0, errMsg: "", errDlt: "", ...(route.data ? { data: (create as unknown as (s: DescMessage, i: object) => object)(route.data, r.ok) } : {}) });
    return make(r);
  }

  const rpc = (name: keyof typeof routes) => async (req: object, ctx: HandlerContext) =>
    message(routes[name], await routes[name].run(metadataAuth(ctx), (() => Promise.resolve(req)) as Loader<never>)) as never;

  return {
    name: "openim",
    core,
    services: [AuthService, ConversationService],

    routes(router: ConnectRouter) {
      router.service(AuthService, {
        getAdminToken: (req, ctx) => core.getAdminToken(metadataAuth(ctx), () => Promise.resolve(req)),
        getUserToken: rpc("getUserToken"),
        parseToken: rpc("parseToken"),
        forceLogout: rpc("forceLogout"),
      }, VENDOR_SERVICE_OPTIONS);
      router.service(ConversationService, {
        setConversations: (req, ctx) => core.setConversations(metadataAuth(ctx), () => Promise.resolve(req)),
        getOwnerConversation: rpc("getOwnerConversation"),
        getConversations: rpc("getConversations"),
        getConversation: rpc("getConversation"),
        getAllConversations: rpc("getAllConversations"),
        getPinnedConversationIds: rpc("getPinnedConversationIds"),
        getNotNotifyConversationIds: rpc("getNotNotifyConversationIds"),
        getIncrementalConversations: rpc("getIncrementalConversations"),
        deleteConversations: rpc("deleteConversations"),
        getFullConversationIds: rpc("getFullConversationIds"),
      }, VENDOR_SERVICE_OPTIONS);
    },

    async handle(req, res, url) {
      const path = url.pathname;
      const route = byPath.get(path);
      const known = route !== undefined || path === OPENIM_ADMIN_TOKEN_PATH || path === OPENIM_SET_CONVERSATIONS_PATH;
      if (!known) {
        if (!path.startsWith("/auth/") && !path.startsWith("/conversation/")) return false;
        // An API convmark does not serve still answers in OpenIM's envelope (docs/dialects/openim.md).
        req.resume();
        const e = openimError(OpenimCode.RecordNotFoundError, `${path} is not an API this server provides`);
        sendJson(res, 404, { errCode: e.errCode, errMsg: e.errMsg, errDlt: e.errDlt });
        return true;
      }
      if (req.method !== "POST") {
        // gin answers a route registered for POST only with its plain 404.
        req.resume();
        res.writeHead(404, { "content-type": "text/plain", "content-length": "18" });
        res.end("404 page not found");
        return true;
      }
      const auth: OpenimAuth = { operationId: header(req, "operationid"), token: header(req, "token"), clientAddress: clientAddressOf(req) };
      // Every route reads its body only when the core asks for it, after the header/token checks.
      let bodyRead = false;
      const loader = <D extends DescMessage>(schema: D): Loader<MessageShape<D>> => () => {
        bodyRead = true;
        return parseBody(req, schema, deps.maxBodyBytes);
      };
      if (path === OPENIM_ADMIN_TOKEN_PATH) {
        const r = await core.getAdminToken(auth, loader(GetAdminTokenRequestSchema));
        if (!bodyRead) req.resume();
        sendEnvelope(res, r, r.data ? { token: r.data.token, expireTimeSeconds: Number(r.data.expireTimeSeconds) } : undefined);
      } else if (path === OPENIM_SET_CONVERSATIONS_PATH) {
        const r = await core.setConversations(auth, loader(SetConversationsRequestSchema));
        if (!bodyRead) req.resume();
        sendEnvelope(res, r);
      } else {
        const r = await route!.run(auth, loader(route!.request) as Loader<never>);
        if (!bodyRead) req.resume();
        if ("ok" in r) {
          const data = route!.data ? goJson(route!.data, (create as unknown as (s: DescMessage, i: object) => MessageShape<DescMessage>)(route!.data, r.ok)) : undefined;
          sendEnvelope(res, { errCode: 0, errMsg: "", errDlt: "" }, data);
        } else sendEnvelope(res, r);
      }
      return true;
    },
  };
}
