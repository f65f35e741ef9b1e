/**
 * Tencent Cloud IM dialect: POST /v4/recentcontact/mark_contact (REST gateway) and
 * vendor.tencent.v1.RecentContactService/MarkContact (gRPC, gRPC-Web, Connect), one core function.
 */
import { fromJson, toJson, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { LRUCache } from "lru-cache";
import { RateLimiterRes } from "rate-limiter-flexible";
import { createRateLimiter } from "../../cluster/rate-limit.js";
import {
  MarkContactRequestSchema,
  MarkContactResponseSchema,
  RecentContactService,
  type MarkContactRequest,
  type MarkContactResponse,
} from "../../../gen/vendor/tencent/v1/recent_contact_pb.js";
import { ResultView, type ConversationUpdate } from "../../../gen/convmark/v1/mark_service_pb.js";
import { VENDOR_SERVICE_OPTIONS, type Dialect, type DialectDeps, type GatewayRequest, type GatewayResponse } from "../dialect.js";
import { readJsonBody, sendJson } from "../http.js";
import type { TencentConfig } from "./config.js";
import { TencentCode, TencentError } from "./errors.js";
import { checkRequest, codeOfResult, failResponse, okResponse, planItem, resultItem, type ItemFailure } from "./translate.js";
import { verifyUserSig, type UserSigClaims } from "./usersig.js";

export const MARK_CONTACT_PATH = "/v4/recentcontact/mark_contact";

/** The REST query parameters (or gRPC metadata) that authenticate a call; null/undefined when absent. */
export interface TencentAuthParams {
  readonly sdkappid?: string | null | undefined;
  readonly identifier?: string | null | undefined;
  readonly usersig?: string | null | undefined;
  readonly random?: string | null | undefined;
  readonly contenttype?: string | null | undefined;
}

export interface TencentCaller {
  readonly sdkAppId: number;
  readonly identifier: string;
}

/** Loads the vendor request once authentication passed (REST reads the body only then). */
export type RequestLoader = () => Promise<MarkContactRequest | TencentError>;

export interface TencentDialect extends Dialect {
  /** The core: auth, rate limit, translation, one UpdateConversations call. Never throws. */
  markContact(auth: TencentAuthParams, load: RequestLoader): Promise<MarkContactResponse>;
  /** Checks the auth parameters and the UserSig (no rate limit). */
  authenticate(auth: TencentAuthParams): TencentCaller | TencentError;
}

const UINT32 = /^[0-9]{1,10}$/;
const isUint32 = (s: string) => UINT32.test(s) && Number(s) <= 0xffff_ffff;
const present = (v: string | null | undefined): v is string => v !== undefined && v !== null && v !== "";

/** Prints a response with Tencent's field names; a refused request carries no ResultItem. */
export function printResponse(resp: MarkContactResponse): JsonObject {
  const json = toJson(MarkContactResponseSchema, resp, { alwaysEmitImplicit: true }) as JsonObject;
  if (resp.errorCode !== 0 && resp.resultItem.length === 0) delete json.ResultItem;
  return json;
}

/** Parses a JSON body into the vendor request; wrong types and out-of-range numbers are 50002. */
export function parseMarkContactRequest(json: unknown): MarkContactRequest | TencentError {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return new TencentError(TencentCode.BadParameter, "the request body must be a JSON object");
  }
  try {
    return fromJson(MarkContactRequestSchema, json as JsonObject, { ignoreUnknownFields: true });
  } catch (e) {
    return new TencentError(TencentCode.BadParameter, `invalid request body: ${(e as Error).message}`);
  }
}

export function createTencentDialect(deps: DialectDeps, config: TencentConfig): TencentDialect {
  const log = deps.logger.child({ dialect: "tencent" });
  const admins = new Set(config.adminIdentifiers);
  const limiter = createRateLimiter({ points: config.rateLimitPerSecond, durationSeconds: 1, keyPrefix: "tencent" });
  // Callers reuse one admin UserSig for its whole lifetime; verifying it again on every call cost ~5% CPU.
  const verifiedSigs = new LRUCache<string, UserSigClaims>({ max: 10_000 });

  function authenticate(a: TencentAuthParams): TencentCaller | TencentError {
    if (config.sdkAppId === undefined) {
      return new TencentError(TencentCode.SdkAppIdUnknown, "SDKAppID does not exist: this server has no Tencent SDKAppID configured (TENCENT_SDKAPPID)");
    }
    if (config.secretKey === undefined) {
      return new TencentError(TencentCode.SigKeyMissing, "the key of this SDKAppID does not exist: no TENCENT_SECRET_KEY configured");
    }
    if (!present(a.sdkappid)) return new TencentError(TencentCode.SdkAppIdRequired, "the REST API needs sdkappid in the URL");
    if (!isUint32(a.sdkappid)) return new TencentError(TencentCode.HttpParse, "sdkappid must be a 32-bit unsigned integer");
    if (!present(a.identifier)) return new TencentError(TencentCode.AccountOrSig, "identifier is required in the URL");
    if (!present(a.usersig)) return new TencentError(TencentCode.AccountOrSig, "usersig is required in the URL");
    if (!present(a.random)) return new TencentError(TencentCode.HttpParse, "random is required in the URL");
    if (!isUint32(a.random)) return new TencentError(TencentCode.HttpParse, "random must be a 32-bit unsigned integer (0..4294967295)");
    if (a.contenttype !== "json") return new TencentError(TencentCode.HttpParse, "contenttype must be json");
    const sdkAppId = Number(a.sdkappid);
    if (sdkAppId !== config.sdkAppId) return new TencentError(TencentCode.SdkAppIdUnknown, `SDKAppID ${sdkAppId} does not exist`);
    const nowSeconds = Math.floor(deps.now() / 1000);
    const known = verifiedSigs.get(a.usersig);
    // A UserSig already verified with this app's key needs only its claims checked again (no zlib, no HMAC).
    if (!known || known.sdkAppId !== sdkAppId || known.identifier !== a.identifier || known.time + known.expire <= nowSeconds) {
      const verdict = verifyUserSig(a.usersig, { sdkAppId, identifier: a.identifier, secretKey: config.secretKey, nowSeconds });
      if (!verdict.ok) return new TencentError(verdict.code, verdict.info);
      verifiedSigs.set(a.usersig, verdict.claims);
    }
    if (!admins.has(a.identifier)) return new TencentError(TencentCode.AdminRequired, "the request needs an App admin account as identifier");
    return { sdkAppId, identifier: a.identifier };
  }

  async function rateLimited(sdkAppId: number): Promise<TencentError | undefined> {
    try {
      await limiter.consume(String(sdkAppId), 1);
      return undefined;
    } catch (e) {
      if (e instanceof RateLimiterRes) {
        return new TencentError(TencentCode.FrequencyLimit, `REST API call frequency exceeds ${config.rateLimitPerSecond} calls per second`);
      }
      log.error({ err: e }, "rate limiter failed");
      return new TencentError(TencentCode.Internal, "internal error, retry");
    }
  }

  async function apply(req: MarkContactRequest): Promise<MarkContactResponse> {
    const owner = checkRequest(req);
    if (owner instanceof TencentError) return failResponse(owner);

    if (deps.directory.strict) {
      const [exists] = await deps.directory.usersExist([owner]);
      if (!exists) return failResponse(new TencentError(TencentCode.UserNotImported, `From_Account ${owner} was not imported`));
    }

    const outcomes: (ItemFailure | number)[] = [];
    const updates: ConversationUpdate[] = [];
    for (const item of req.markItem) {
      const plan = planItem(owner, item);
      if ("code" in plan) outcomes.push(plan);
      else outcomes.push(updates.push(plan) - 1);
    }
    let results: Awaited<ReturnType<typeof deps.marks.updateConversations>>["results"] = [];
    if (updates.length > 0) {
      results = (await deps.marks.updateConversations({ updates, resultView: ResultView.STATUS })).results;
      if (results.length !== updates.length) throw new Error(`MarkService returned ${results.length} results for ${updates.length} updates`);
    }
    return okResponse(
      req.markItem.map((item, i) => {
        const o = outcomes[i]!;
        return resultItem(item, typeof o === "number" ? codeOfResult(results[o]) : o);
      }),
    );
  }

  async function markContact(auth: TencentAuthParams, load: RequestLoader): Promise<MarkContactResponse> {
    try {
      const caller = authenticate(auth);
      if (caller instanceof TencentError) {
        log.info({ code: caller.code, identifier: auth.identifier ?? undefined }, "tencent auth refused");
        return failResponse(caller);
      }
      const limited = await rateLimited(caller.sdkAppId);
      if (limited) return failResponse(limited);
      const req = await load();
      if (req instanceof TencentError) return failResponse(req);
      return await apply(req);
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.InvalidArgument) {
        return failResponse(new TencentError(TencentCode.BadParameter, e.rawMessage));
      }
      log.error({ err: e }, "tencent mark_contact failed");
      return failResponse(new TencentError(TencentCode.Internal, "internal server error, retry"));
    }
  }

  async function loadBody(req: GatewayRequest): Promise<MarkContactRequest | TencentError> {
    const body = await readJsonBody(req, deps.maxBodyBytes);
    if (!body.ok) {
      switch (body.problem) {
        case "too_large":
          return new TencentError(TencentCode.HttpParse, body.message);
        case "aborted":
          return new TencentError(TencentCode.HttpFormat, body.message);
        default:
          return new TencentError(TencentCode.JsonParse, `HTTP request JSON parse error: ${body.message}`);
      }
    }
    return parseMarkContactRequest(body.json);
  }

  function reply(res: GatewayResponse, resp: MarkContactResponse): void {
    sendJson(res, 200, printResponse(resp));
  }

  return {
    name: "tencent",
    services: [RecentContactService],
    markContact,
    authenticate,

    routes(router: ConnectRouter) {
      router.service(RecentContactService, {
        async markContact(req, ctx) {
          const h = ctx.requestHeader;
          return markContact(
            {
              sdkappid: h.get("sdkappid"),
              identifier: h.get("identifier"),
              usersig: h.get("usersig"),
              random: h.get("random"),
              // The RPC protocol carries the content type; metadata may still say "json".
              contenttype: h.get("contenttype") ?? "json",
            },
            () => Promise.resolve(req),
          );
        },
      }, VENDOR_SERVICE_OPTIONS);
    },

    async handle(req: GatewayRequest, res: GatewayResponse, url: URL): Promise<boolean> {
      const path = url.pathname;
      if (path !== "/v4" && !path.startsWith("/v4/")) return false;
      if (path !== MARK_CONTACT_PATH) {
        req.resume();
        reply(res, failResponse(new TencentError(TencentCode.UnknownResource, `request resource error: ${path} is not a supported API`)));
        return true;
      }
      if (req.method !== "POST") {
        req.resume();
        reply(res, failResponse(new TencentError(TencentCode.HttpParse, `the REST API must be called with POST, not ${req.method}`)));
        return true;
      }
      const q = url.searchParams;
      let bodyRead = false;
      const resp = await markContact(
        {
          sdkappid: q.get("sdkappid"),
          identifier: q.get("identifier"),
          usersig: q.get("usersig"),
          random: q.get("random"),
          contenttype: q.get("contenttype"),
        },
        () => {
          bodyRead = true;
          return loadBody(req);
        },
      );
      if (!bodyRead) req.resume();
      reply(res, resp);
      return true;
    },
  };
}
