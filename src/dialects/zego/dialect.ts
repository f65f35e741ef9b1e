/**
 * The ZEGO ZIM dialect: `POST /?Action=SetConvMark&<public parameters>` (REST, ZEGO's JSON) and
 * vendor.zego.v1.ZimServerService/SetConvMark (gRPC/Connect, public parameters as metadata). Both go
 * through one core function: authentication, per-AppId rate limit, validation, one
 * MarkService.UpdateConversations call, ZEGO's response.
 */
import { randomBytes } from "node:crypto";
import { fromJson, toJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { RateLimiterMemory } from "rate-limiter-flexible";
import { ResultView, type UpdateResult } from "../../../gen/convmark/v1/mark_service_pb.js";
import {
  SetConvMarkRequestSchema,
  SetConvMarkResponseSchema,
  ZimServerService,
  type SetConvMarkRequest,
  type SetConvMarkResponse,
} from "../../../gen/vendor/zego/v1/zim_server_pb.js";
import { VENDOR_SERVICE_OPTIONS, type Dialect, type DialectDeps, type GatewayRequest, type GatewayResponse } from "../dialect.js";
import { readJsonBody, sendJson } from "../http.js";
import { createVerifier, type ZegoAuthParams, type ZegoError } from "./auth.js";
import { ZegoCode } from "./codes.js";
import type { ZegoConfig } from "./config.js";
import { buildResponse, errorResponse, planUpdates, validateRequest } from "./translate.js";

export const SET_CONV_MARK_ACTION = "SetConvMark";

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

/** A unique request ID: a random 63-bit decimal string, the shape of ZEGO's ("343649807833778782"). */
export function newRequestId(): string {
  return (randomBytes(8).readBigUInt64BE() >> 1n).toString();
}

/** ZEGO's JSON for a response: every documented field, except a user entry's empty inner FailList (as in the document's example). */
export function responseToJson(resp: SetConvMarkResponse): JsonObject {
  const json = toJson(SetConvMarkResponseSchema, resp, { alwaysEmitImplicit: true }) as JsonObject;
  for (const entry of (json["FailList"] ?? []) as JsonObject[]) {
    if (Array.isArray(entry["FailList"]) && entry["FailList"].length === 0) delete entry["FailList"];
  }
  return json;
}

const isZegoError = (x: SetConvMarkRequest | ZegoError): x is ZegoError => !("$typeName" in x);

export interface ZegoDialect extends Dialect {
  /**
   * The core: auth, rate limit, then `load` supplies the request (REST reads and parses the body
   * only after auth), validation and translation. Never throws.
   */
  setConvMark(auth: ZegoAuthParams, load: () => Promise<SetConvMarkRequest | ZegoError>): Promise<SetConvMarkResponse>;
}

export function createZegoDialect(deps: DialectDeps, config: ZegoConfig): ZegoDialect {
  const log = deps.logger.child({ dialect: "zego" });
  const verify = createVerifier({ credentials: config.credentials, now: deps.now, rateLimitPerSecond: config.rateLimitPerSecond });
  const limiter = new RateLimiterMemory({ points: config.rateLimitPerSecond, duration: 1, keyPrefix: "zego" });

  async function core(requestId: string, auth: ZegoAuthParams, load: () => Promise<SetConvMarkRequest | ZegoError>): Promise<SetConvMarkResponse> {
    const v = verify(auth);
    if (!v.ok) return errorResponse(v.error, requestId);
    try {
      await limiter.consume(String(v.appId));
    } catch (e) {
      if (e instanceof Error) throw e;
      return errorResponse({ code: ZegoCode.AppRateLimited, message: `the AppId exceeded ${config.rateLimitPerSecond} calls per second, please retry later` }, requestId);
    }
    // Only admitted calls take a slot in the replay cache, so refused ones cannot flush it.
    const replayed = v.claimNonce();
    if (replayed) return errorResponse(replayed, requestId);
    const req = await load();
    if (isZegoError(req)) return errorResponse(req, requestId);
    const bad = validateRequest(req);
    if (bad) return errorResponse(bad, requestId);

    if (deps.directory.strict) {
      let exists: boolean | undefined;
      try {
        [exists] = await deps.directory.usersExist([req.fromUserId]);
      } catch (err) {
        log.error({ err, requestId }, "directory lookup of FromUserId failed");
        return errorResponse({ code: ZegoCode.UserLookupError, message: "user lookup error" }, requestId);
      }
      if (!exists) {
        return errorResponse({ code: ZegoCode.UserLookupError, message: `user lookup error: FromUserId ${JSON.stringify(req.fromUserId)} is not a registered user` }, requestId);
      }
    }

    const plan = planUpdates(req);
    let results: UpdateResult[] = [];
    if (plan.updates.length > 0) {
      try {
        results = (await deps.marks.updateConversations({ updates: plan.updates, resultView: ResultView.STATUS })).results;
      } catch (err) {
        const ce = ConnectError.from(err);
        if (ce.code === Code.InvalidArgument) return errorResponse({ code: ZegoCode.BadParameter, message: ce.rawMessage }, requestId);
        log.error({ err, requestId }, "MarkService.UpdateConversations failed");
        return errorResponse({ code: ZegoCode.GeneralError, message: "general error, please retry" }, requestId);
      }
    }
    return buildResponse(plan, results, requestId);
  }

  async function setConvMark(auth: ZegoAuthParams, load: () => Promise<SetConvMarkRequest | ZegoError>): Promise<SetConvMarkResponse> {
    const requestId = newRequestId();
    try {
      return await core(requestId, auth, load);
    } catch (err) {
      log.error({ err, requestId }, "SetConvMark failed");
      return errorResponse({ code: ZegoCode.GeneralError, message: "general error, please retry" }, requestId);
    }
  }

  async function loadBody(req: GatewayRequest, maxBytes: number): Promise<SetConvMarkRequest | ZegoError> {
    if (req.method !== "POST") return { code: ZegoCode.BadParameter, message: "SetConvMark must be called with POST and a JSON body" };
    const body = await readJsonBody(req, maxBytes);
    if (!body.ok) {
      return body.problem === "aborted"
        ? { code: ZegoCode.RequestBodyUnreadable, message: body.message }
        : { code: ZegoCode.BadParameter, message: body.message };
    }
    try {
      return fromJson(SetConvMarkRequestSchema, body.json as JsonValue, { ignoreUnknownFields: true });
    } catch (e) {
      return { code: ZegoCode.BadParameter, message: `invalid request body: ${(e as Error).message}` };
    }
  }

  function send(res: GatewayResponse, resp: SetConvMarkResponse): void {
    sendJson(res, 200, responseToJson(resp));
  }

  return {
    name: "zego",
    services: [ZimServerService],
    setConvMark,

    routes(router: ConnectRouter) {
      router.service(ZimServerService, {
        async setConvMark(req, ctx) {
          return setConvMark(authParams((n) => ctx.requestHeader.get(n), AUTH_METADATA), async () => req);
        },
      }, VENDOR_SERVICE_OPTIONS);
    },

    async handle(req: GatewayRequest, res: GatewayResponse, url: URL): Promise<boolean> {
      if (url.pathname !== "/") return false;
      try {
        const action = url.searchParams.get("Action");
        if (!action) {
          send(res, errorResponse({ code: ZegoCode.ActionEmpty, message: "Action is empty" }, newRequestId()));
        } else if (action !== SET_CONV_MARK_ACTION) {
          send(res, errorResponse({ code: ZegoCode.ActionUnsupported, message: `unsupported Action ${JSON.stringify(action)}` }, newRequestId()));
        } else {
          const auth = authParams((n) => url.searchParams.get(n), AUTH_QUERY);
          send(res, await setConvMark(auth, () => loadBody(req, deps.maxBodyBytes)));
        }
      } catch (err) {
        log.error({ err }, "ZEGO gateway failed");
        if (!res.headersSent) send(res, errorResponse({ code: ZegoCode.GeneralError, message: "general error, please retry" }, newRequestId()));
        else res.end();
      }
      return true;
    },
  };
}
