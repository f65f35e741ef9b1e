/**
 * The ZEGO ZIM dialect: `POST /?Action=SetConvMark&<public parameters>` (REST, ZEGO's JSON) and
 * vendor.zego.v1.ZimServerService/SetConvMark (gRPC/Connect, public parameters as metadata). Both go
 * through one core function: authentication, per-AppId rate limit, validation, one
 * MarkService.UpdateConversations call, ZEGO's response.
 */
import { randomFillSync } from "node:crypto";
import { create, toJson, type DescMessage, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { ResultView, type UpdateResult } from "../../../gen/convmark/v1/mark_service_pb.js";
import {
  ConvPinnedRequestSchema,
  DeleteConvRequestSchema,
  DeleteConvResponseSchema,
  ConvPinnedResponseSchema,
  QueryConversationListRequestSchema,
  QueryConversationListResponseSchema,
  SetConvMarkRequestSchema,
  SetConvMarkResponseSchema,
  SilenceConvNotificationRequestSchema,
  SilenceConvNotificationResponseSchema,
  ZimServerService,
  type SetConvMarkRequest,
  type SetConvMarkResponse,
} from "../../../gen/vendor/zego/v1/zim_server_pb.js";
import { VENDOR_SERVICE_OPTIONS, type Dialect, type DialectDeps, type GatewayRequest, type GatewayResponse } from "../dialect.js";
import { sendJson } from "../http.js";
import { bodyLoader, createRateLimit, printJson, runCall, type Load, type VendorSpec } from "../kernel.js";
import { createVerifier, type VerifiedCall, type ZegoAuthParams, type ZegoError } from "./auth.js";
import { ZegoCode } from "./codes.js";
import type { ZegoConfig } from "./config.js";
import { createConversationOps } from "./conversations.js";
import { buildResponse, errorResponse, planUpdates, validateRequest } from "./translate.js";

export const SET_CONV_MARK_ACTION = "SetConvMark";
/** Every Action convmark answers; any other is 100000007. */
export const ZEGO_ACTIONS = ["SetConvMark", "QueryConversationList", "ConvPinned", "SilenceConvNotification", "DeleteConv"] as const;

/** Metadata keys of the public parameters on the gRPC/Connect path (the query names, lower-cased). */
export const AUTH_METADATA = {
  appId: "appid",
  signatureNonce: "signaturenonce",
  timestamp: "timestamp",
  signatureVersion: "signatureversion",
  signature: "signature",
} as const;

/** Query-string names of the public parameters on the REST path. */
export const AUTH_QUERY = {
  appId: "AppId",
  signatureNonce: "SignatureNonce",
  timestamp: "Timestamp",
  signatureVersion: "SignatureVersion",
  signature: "Signature",
} as const;

type Lookup = (name: string) => string | null | undefined;

function authParams(get: Lookup, names: Record<keyof ZegoAuthParams, string>): ZegoAuthParams {
  const v = (k: keyof ZegoAuthParams) => get(names[k]) ?? undefined;
  return {
    appId: v("appId"),
    signatureNonce: v("signatureNonce"),
    timestamp: v("timestamp"),
    signatureVersion: v("signatureVersion"),
    signature: v("signature"),
  };
}

/** Random bytes for request IDs, drawn 4 KiB at a time (one system call per 512 IDs, not one each). */
const idPool = Buffer.alloc(4096);
let idOffset = idPool.length;

/** A unique request ID: a random 63-bit decimal string, the shape of ZEGO's ("343649807833778782"). */
export function newRequestId(): string {
  if (idOffset === idPool.length) {
    randomFillSync(idPool);
    idOffset = 0;
  }
  const id = idPool.readBigUInt64BE(idOffset) >> 1n;
  idOffset += 8;
  return id.toString();
}

/** ZEGO's JSON for a response: every documented field, except a user entry's empty inner FailList (as in the document's example). */
export function responseToJson(resp: SetConvMarkResponse): JsonObject {
  const json = toJson(SetConvMarkResponseSchema, resp, { alwaysEmitImplicit: true }) as JsonObject;
  for (const entry of (json["FailList"] ?? []) as JsonObject[]) {
    if (Array.isArray(entry["FailList"]) && entry["FailList"].length === 0) delete entry["FailList"];
  }
  return json;
}

const isZegoError = (x: unknown): x is ZegoError =>
  typeof x === "object" && x !== null && !("$typeName" in x) && "code" in x && "message" in x;

export interface ZegoDialect extends Dialect {
  /**
   * SetConvMark through the kernel: auth, rate limit, then `load` supplies the request (REST reads and
   * parses the body only after auth), validation and translation. Never throws.
   */
  setConvMark(auth: ZegoAuthParams, load: Load<SetConvMarkRequest>): Promise<SetConvMarkResponse>;
}

interface Envelope {
  code: number;
  message: string;
  requestId: string;
}

export function createZegoDialect(deps: DialectDeps, config: ZegoConfig): ZegoDialect {
  const log = deps.logger.child({ dialect: "zego" });
  const verify = createVerifier({
    credentials: config.credentials,
    now: deps.now,
    rateLimitPerSecond: config.rateLimitPerSecond,
    ...(deps.nonces ? { nonces: deps.nonces } : {}),
  });
  const ops = createConversationOps(deps.marks);
  const general = (): ZegoError => ({ code: ZegoCode.GeneralError, message: "general error, please retry" });

  const spec: VendorSpec<ZegoAuthParams, VerifiedCall, ZegoError> = {
    name: "zego",
    logger: log,
    authenticate(a) {
      const v = verify(a);
      return v.ok ? v : v.error;
    },
    isError: isZegoError,
    rateKey: (c) => String(c.appId),
    rateLimit: createRateLimit("zego", config.rateLimitPerSecond),
    limited: () => ({ code: ZegoCode.AppRateLimited, message: `the AppId exceeded ${config.rateLimitPerSecond} calls per second, please retry later` }),
    // Only admitted calls take a slot in the replay cache, so refused ones cannot flush it.
    admit: (c) => c.claimNonce(),
    bodyError: (problem, message) => (problem === "aborted" ? { code: ZegoCode.RequestBodyUnreadable, message } : { code: ZegoCode.BadParameter, message }),
    parseError: (message) => ({ code: ZegoCode.BadParameter, message }),
    invalid: (message) => ({ code: ZegoCode.BadParameter, message }),
    internal: general,
  };

  /** Strict directory: FromUserId must be registered (SetConvMark: 660800001; the conversation APIs: 660500002). */
  async function registered(fromUserId: string, code: number): Promise<ZegoError | undefined> {
    if (!deps.directory.strict) return undefined;
    const [exists] = await deps.directory.usersExist([fromUserId]);
    return exists ? undefined : { code, message: `user lookup error: FromUserId ${JSON.stringify(fromUserId)} is not a registered user` };
  }

  async function setConvMarkOp(req: SetConvMarkRequest): Promise<SetConvMarkResponse | ZegoError> {
    const bad = validateRequest(req);
    if (bad) return bad;
    let refused: ZegoError | undefined;
    try {
      refused = await registered(req.fromUserId, ZegoCode.UserLookupError);
    } catch (err) {
      log.error({ err }, "directory lookup of FromUserId failed");
      return { code: ZegoCode.UserLookupError, message: "user lookup error" };
    }
    if (refused) return refused;
    const plan = planUpdates(req);
    let results: UpdateResult[] = [];
    if (plan.updates.length > 0) {
      results = (await deps.marks.updateConversations({ updates: plan.updates, resultView: ResultView.STATUS })).results;
    }
    return buildResponse(plan, results, "");
  }

  const strictly = <R extends { fromUserId: string }, P>(op: (req: R) => Promise<P | ZegoError>) => async (req: R): Promise<P | ZegoError> =>
    (await registered(req.fromUserId, ZegoCode.UserNotRegistered)) ?? op(req);

  interface Action {
    readonly request: DescMessage;
    readonly response: DescMessage;
    run(req: never): Promise<object | ZegoError>;
  }
  const actions: Record<(typeof ZEGO_ACTIONS)[number], Action> = {
    SetConvMark: { request: SetConvMarkRequestSchema, response: SetConvMarkResponseSchema, run: setConvMarkOp as Action["run"] },
    QueryConversationList: { request: QueryConversationListRequestSchema, response: QueryConversationListResponseSchema, run: strictly(ops.query) as Action["run"] },
    ConvPinned: { request: ConvPinnedRequestSchema, response: ConvPinnedResponseSchema, run: strictly(ops.pin) as Action["run"] },
    SilenceConvNotification: { request: SilenceConvNotificationRequestSchema, response: SilenceConvNotificationResponseSchema, run: strictly(ops.silence) as Action["run"] },
    DeleteConv: { request: DeleteConvRequestSchema, response: DeleteConvResponseSchema, run: strictly(ops.del) as Action["run"] },
  };

  /** One action through the kernel; every outcome is the action's response with a fresh RequestId. */
  async function call(action: Action, auth: ZegoAuthParams, load: Load<unknown>): Promise<object & Envelope> {
    const requestId = newRequestId();
    const r = await runCall(spec, auth, load, (_c, req) => action.run(req as never));
    if (isZegoError(r)) return create(action.response, { code: r.code, message: r.message, requestId } as never) as unknown as object & Envelope;
    const resp = r as object & Envelope;
    resp.requestId = requestId;
    return resp;
  }

  async function setConvMark(auth: ZegoAuthParams, load: Load<SetConvMarkRequest>): Promise<SetConvMarkResponse> {
    return (await call(actions.SetConvMark, auth, load)) as SetConvMarkResponse;
  }

  function print(action: Action | undefined, resp: object & Envelope): JsonObject {
    if (!action || action.response === SetConvMarkResponseSchema) return responseToJson(resp as SetConvMarkResponse);
    // A refused call prints the envelope alone, as SetConvMark does.
    if (resp.code !== ZegoCode.Success && resp.code !== ZegoCode.AllConversationsFailed) return { Code: resp.code, Message: resp.message, RequestId: resp.requestId };
    return printJson(action.response, resp as unknown as MessageShape<DescMessage>);
  }

  function send(res: GatewayResponse, action: Action | undefined, resp: object & Envelope): void {
    sendJson(res, 200, print(action, resp));
  }

  const rpc = (name: keyof typeof actions) => (req: object, ctx: HandlerContext) =>
    call(actions[name], authParams((n) => ctx.requestHeader.get(n), AUTH_METADATA), () => Promise.resolve(req)) as Promise<never>;

  return {
    name: "zego",
    services: [ZimServerService],
    setConvMark,

    routes(router: ConnectRouter) {
      router.service(ZimServerService, {
        setConvMark: rpc("SetConvMark"),
        queryConversationList: rpc("QueryConversationList"),
        convPinned: rpc("ConvPinned"),
        silenceConvNotification: rpc("SilenceConvNotification"),
        deleteConv: rpc("DeleteConv"),
      }, VENDOR_SERVICE_OPTIONS);
    },

    async handle(req: GatewayRequest, res: GatewayResponse, url: URL): Promise<boolean> {
      if (url.pathname !== "/") return false;
      try {
        const name = url.searchParams.get("Action");
        if (!name) {
          req.resume();
          send(res, undefined, errorResponse({ code: ZegoCode.ActionEmpty, message: "Action is empty" }, newRequestId()));
          return true;
        }
        const action = Object.prototype.hasOwnProperty.call(actions, name) ? actions[name as keyof typeof actions] : undefined;
        if (!action) {
          req.resume();
          send(res, undefined, errorResponse({ code: ZegoCode.ActionUnsupported, message: `unsupported Action ${JSON.stringify(name)}` }, newRequestId()));
          return true;
        }
        const auth = authParams((n) => url.searchParams.get(n), AUTH_QUERY);
        let bodyRead = false;
        const load = bodyLoader(req, action.request, deps.maxBodyBytes);
        const resp = await call(action, auth, () => {
          if (req.method !== "POST") return Promise.resolve({ parseError: `${name} must be called with POST and a JSON body` });
          bodyRead = true;
          return load();
        });
        if (!bodyRead) req.resume();
        send(res, action, resp);
      } catch (err) {
        log.error({ err }, "ZEGO gateway failed");
        if (!res.headersSent) send(res, undefined, errorResponse(general(), newRequestId()));
        else res.end();
      }
      return true;
    },
  };
}
