/**
 * Tencent Cloud IM dialect: POST /v4/recentcontact/mark_contact (REST gateway) and
 * vendor.tencent.v1.RecentContactService/MarkContact (gRPC, gRPC-Web, Connect), one core function.
 */
import { create, fromJson, type DescMessage, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  CreateContactGroupRequestSchema,
  CreateContactGroupResponseSchema,
  DelContactGroupRequestSchema,
  DelContactGroupResponseSchema,
  GetContactGroupRequestSchema,
  GetContactGroupResponseSchema,
  GetListRequestSchema,
  GetListResponseSchema,
  MarkContactRequestSchema,
  MarkContactResponseSchema,
  RecentContactService,
  SearchContactGroupRequestSchema,
  SearchContactGroupResponseSchema,
  UpdateContactGroupRequestSchema,
  UpdateContactGroupResponseSchema,
  type MarkContactRequest,
  type MarkContactResponse,
} from "../../../gen/vendor/tencent/v1/recent_contact_pb.js";
import { ResultView, type ConversationUpdate } from "../../../gen/convmark/v1/mark_service_pb.js";
import { VENDOR_SERVICE_OPTIONS, type Dialect, type DialectDeps, type GatewayRequest, type GatewayResponse } from "../dialect.js";
import { sendJson } from "../http.js";
import { bodyLoader, createCredentialCache, createRateLimit, printJson, runCall, type Load, type VendorSpec } from "../kernel.js";
import type { TencentConfig } from "./config.js";
import { TencentCode, TencentError } from "./errors.js";
import { createGroupOps } from "./groups.js";
import { checkOwner, checkRequest, codeOfResult, failResponse, okResponse, planItem, resultItem, type ItemFailure } from "./translate.js";
import { verifyUserSig, type UserSigClaims } from "./usersig.js";

export const MARK_CONTACT_PATH = "/v4/recentcontact/mark_contact";
/** Every path of the recentcontact service convmark answers (others under /v4 get 60009). */
export const TENCENT_PATHS = {
  markContact: MARK_CONTACT_PATH,
  createContactGroup: "/v4/recentcontact/create_contact_group",
  delContactGroup: "/v4/recentcontact/del_contact_group",
  updateContactGroup: "/v4/recentcontact/update_contact_group",
  searchContactGroup: "/v4/recentcontact/search_contact_group",
  getContactGroup: "/v4/recentcontact/get_contact_group",
  getList: "/v4/recentcontact/get_list",
} as const;

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
export type RequestLoader = Load<MarkContactRequest>;

export interface TencentDialect extends Dialect {
  /** The core: auth, rate limit, translation, one UpdateConversations call. Never throws. */
  markContact(auth: TencentAuthParams, load: RequestLoader): Promise<MarkContactResponse>;
  /** Checks the auth parameters and the UserSig (no rate limit). */
  authenticate(auth: TencentAuthParams): TencentCaller | TencentError;
}

const UINT32 = /^[0-9]{1,10}$/;
const isUint32 = (s: string) => UINT32.test(s) && Number(s) <= 0xffff_ffff;
const present = (v: string | null | undefined): v is string => v !== undefined && v !== null && v !== "";

interface Envelope {
  actionStatus: string;
  errorCode: number;
  errorInfo: string;
  errorDisplay: string;
}

/** Prints a response with Tencent's field names; a refused request carries the envelope alone. */
export function printAny<D extends DescMessage>(schema: D, resp: MessageShape<D> & Envelope): JsonObject {
  if (resp.errorCode !== 0) {
    return { ActionStatus: resp.actionStatus, ErrorCode: resp.errorCode, ErrorInfo: resp.errorInfo, ErrorDisplay: resp.errorDisplay };
  }
  return printJson(schema, resp, TENCENT_OMIT_EMPTY);
}

/** Lists Tencent leaves out when empty (get_list's and get_contact_group's examples). */
const TENCENT_OMIT_EMPTY = new Set(["ContactGroupId"]);

/** Prints a mark_contact response (a refused request carries no ResultItem). */
export function printResponse(resp: MarkContactResponse): JsonObject {
  return printAny(MarkContactResponseSchema, resp);
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
  // Callers reuse one admin UserSig for its whole lifetime; verifying it again on every call cost ~5% CPU.
  const verifiedSigs = createCredentialCache<UserSigClaims>();
  const groups = createGroupOps(deps.marks);

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
    const { identifier, usersig } = a;
    const secretKey = config.secretKey;
    // A UserSig already verified with this app's key needs only its claims checked again (no zlib, no
    // HMAC); anything else is verified in full, so its refusal is the uncached one.
    const verdict = verifiedSigs.check(
      usersig,
      (c) => c.sdkAppId === sdkAppId && c.identifier === identifier && c.time + c.expire > nowSeconds,
      (): UserSigClaims | TencentError => {
        const v = verifyUserSig(usersig, { sdkAppId, identifier, secretKey, nowSeconds });
        return v.ok ? v.claims : new TencentError(v.code, v.info);
      },
      (r): r is UserSigClaims => !(r instanceof TencentError),
    );
    if (verdict instanceof TencentError) return verdict;
    if (!admins.has(a.identifier)) return new TencentError(TencentCode.AdminRequired, "the request needs an App admin account as identifier");
    return { sdkAppId, identifier: a.identifier };
  }

  const spec: VendorSpec<TencentAuthParams, TencentCaller, TencentError> = {
    name: "tencent",
    logger: log,
    authenticate(a) {
      const r = authenticate(a);
      if (r instanceof TencentError) log.info({ code: r.code, identifier: a.identifier ?? undefined }, "tencent auth refused");
      return r;
    },
    isError: (x): x is TencentError => x instanceof TencentError,
    rateKey: (c) => String(c.sdkAppId),
    rateLimit: createRateLimit("tencent", config.rateLimitPerSecond),
    limited: () => new TencentError(TencentCode.FrequencyLimit, `REST API call frequency exceeds ${config.rateLimitPerSecond} calls per second`),
    bodyError(problem, message) {
      switch (problem) {
        case "too_large":
          return new TencentError(TencentCode.HttpParse, message);
        case "aborted":
          return new TencentError(TencentCode.HttpFormat, message);
        default:
          return new TencentError(TencentCode.JsonParse, `HTTP request JSON parse error: ${message}`);
      }
    },
    parseError: (message) => new TencentError(TencentCode.BadParameter, message),
    invalid: (message) => new TencentError(TencentCode.BadParameter, message),
    internal: () => new TencentError(TencentCode.Internal, "internal server error, retry"),
  };

  /** From_Account checked, and imported when the directory is strict (50001). */
  async function owner(fromAccount: string | undefined): Promise<string | TencentError> {
    const o = checkOwner(fromAccount);
    if (o instanceof TencentError) return o;
    if (deps.directory.strict) {
      const [exists] = await deps.directory.usersExist([o]);
      if (!exists) return new TencentError(TencentCode.UserNotImported, `From_Account ${o} was not imported`);
    }
    return o;
  }

  async function markContactOp(req: MarkContactRequest): Promise<MarkContactResponse | TencentError> {
    const checked = checkRequest(req);
    if (checked instanceof TencentError) return checked;
    const o = await owner(checked);
    if (o instanceof TencentError) return o;
    const outcomes: (ItemFailure | number)[] = [];
    const updates: ConversationUpdate[] = [];
    for (const item of req.markItem) {
      const plan = planItem(o, item);
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

  /** One route: its request/response messages and the operation (owner checked first). */
  interface Route {
    readonly request: DescMessage;
    readonly response: DescMessage;
    run(req: never): Promise<object | TencentError>;
  }
  const withOwner = <R extends { fromAccount?: string | undefined }>(op: (owner: string, req: R) => Promise<object>) =>
    async (req: R): Promise<object | TencentError> => {
      const o = await owner(req.fromAccount);
      return o instanceof TencentError ? o : op(o, req);
    };
  const routes: Record<string, Route> = {
    [TENCENT_PATHS.markContact]: { request: MarkContactRequestSchema, response: MarkContactResponseSchema, run: markContactOp as Route["run"] },
    [TENCENT_PATHS.createContactGroup]: { request: CreateContactGroupRequestSchema, response: CreateContactGroupResponseSchema, run: withOwner(groups.create) as Route["run"] },
    [TENCENT_PATHS.delContactGroup]: { request: DelContactGroupRequestSchema, response: DelContactGroupResponseSchema, run: withOwner(groups.del) as Route["run"] },
    [TENCENT_PATHS.updateContactGroup]: { request: UpdateContactGroupRequestSchema, response: UpdateContactGroupResponseSchema, run: withOwner(groups.update) as Route["run"] },
    [TENCENT_PATHS.searchContactGroup]: { request: SearchContactGroupRequestSchema, response: SearchContactGroupResponseSchema, run: withOwner(groups.search) as Route["run"] },
    [TENCENT_PATHS.getContactGroup]: { request: GetContactGroupRequestSchema, response: GetContactGroupResponseSchema, run: withOwner(groups.get) as Route["run"] },
    [TENCENT_PATHS.getList]: {
      request: GetListRequestSchema,
      response: GetListResponseSchema,
      run: withOwner((o, r: Parameters<typeof groups.list>[1]) => groups.list(o, r, Math.floor(deps.now() / 1000))) as Route["run"],
    },
  };

  /** The pipeline for one route; the answer is always the route's response message. */
  async function call(route: Route, auth: TencentAuthParams, load: Parameters<typeof runCall<TencentAuthParams, TencentCaller, TencentError, unknown, object>>[2]): Promise<object> {
    const r = await runCall(spec, auth, load, (_caller, req) => route.run(req as never));
    if (r instanceof TencentError) return create(route.response, { actionStatus: "FAIL", errorCode: r.code, errorInfo: r.info, errorDisplay: "" } as never);
    return r;
  }

  async function markContact(auth: TencentAuthParams, load: RequestLoader): Promise<MarkContactResponse> {
    const r = await runCall(spec, auth, load, (_caller, req) => markContactOp(req));
    return r instanceof TencentError ? failResponse(r) : r;
  }

  const metadataAuth = (ctx: HandlerContext): TencentAuthParams => {
    const h = ctx.requestHeader;
    return {
      sdkappid: h.get("sdkappid"),
      identifier: h.get("identifier"),
      usersig: h.get("usersig"),
      random: h.get("random"),
      // The RPC protocol carries the content type; metadata may still say "json".
      contenttype: h.get("contenttype") ?? "json",
    };
  };
  const rpc = (path: string) => (req: object, ctx: HandlerContext) => call(routes[path]!, metadataAuth(ctx), () => Promise.resolve(req)) as Promise<never>;

  function reply(res: GatewayResponse, schema: DescMessage, resp: object): void {
    sendJson(res, 200, printAny(schema, resp as MessageShape<DescMessage> & Envelope));
  }

  return {
    name: "tencent",
    services: [RecentContactService],
    markContact,
    authenticate,

    routes(router: ConnectRouter) {
      router.service(RecentContactService, {
        markContact: rpc(TENCENT_PATHS.markContact),
        createContactGroup: rpc(TENCENT_PATHS.createContactGroup),
        delContactGroup: rpc(TENCENT_PATHS.delContactGroup),
        updateContactGroup: rpc(TENCENT_PATHS.updateContactGroup),
        searchContactGroup: rpc(TENCENT_PATHS.searchContactGroup),
        getContactGroup: rpc(TENCENT_PATHS.getContactGroup),
        getList: rpc(TENCENT_PATHS.getList),
      }, VENDOR_SERVICE_OPTIONS);
    },

    async handle(req: GatewayRequest, res: GatewayResponse, url: URL): Promise<boolean> {
      const path = url.pathname;
      if (path !== "/v4" && !path.startsWith("/v4/")) return false;
      const route = routes[path];
      if (!route) {
        req.resume();
        reply(res, MarkContactResponseSchema, failResponse(new TencentError(TencentCode.UnknownResource, `request resource error: ${path} is not a supported API`)));
        return true;
      }
      if (req.method !== "POST") {
        req.resume();
        reply(res, MarkContactResponseSchema, failResponse(new TencentError(TencentCode.HttpParse, `the REST API must be called with POST, not ${req.method}`)));
        return true;
      }
      const q = url.searchParams;
      let bodyRead = false;
      const load = bodyLoader(req, route.request, deps.maxBodyBytes);
      const resp = await call(
        route,
        {
          sdkappid: q.get("sdkappid"),
          identifier: q.get("identifier"),
          usersig: q.get("usersig"),
          random: q.get("random"),
          contenttype: q.get("contenttype"),
        },
        () => {
          bodyRead = true;
          return load();
        },
      );
      if (!bodyRead) req.resume();
      reply(res, route.response, resp);
      return true;
    },
  };
}
