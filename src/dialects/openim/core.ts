/**
 * The two OpenIM operations, shared by the REST gateway and the Connect/gRPC services: rate limit,
 * auth, validation and translation to MarkService. Every outcome is an OpenIM envelope message.
 */
import { ResultView } from "../../../gen/convmark/v1/mark_service_pb.js";
import { timingSafeEqual, createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { RateLimiterRes } from "rate-limiter-flexible";
import type { KickRegistry } from "../../cluster/nonce-store.js";
import { createRateLimiter } from "../../cluster/rate-limit.js";
import { LRUCache } from "lru-cache";
import { createRateLimit } from "../kernel.js";
import { createReadOps } from "./reads.js";
import { ConvType } from "../../domain/conversation.js";
import { Reason } from "../../domain/reasons.js";
import { reasonOf } from "../../service/convert.js";
import type { DialectDeps } from "../dialect.js";
import {
  GetAdminTokenDataSchema,
  GetAdminTokenResponseSchema,
  type GetAdminTokenRequest,
  type GetAdminTokenResponse,
} from "../../../gen/vendor/openim/v1/auth_service_pb.js";
import {
  SetConversationsDataSchema,
  SetConversationsResponseSchema,
  type SetConversationsRequest,
  type SetConversationsResponse,
} from "../../../gen/vendor/openim/v1/conversation_service_pb.js";
import type { OpenimConfig } from "./config.js";
import type { ForceLogoutRequest, GetUserTokenRequest, ParseTokenRequest } from "../../../gen/vendor/openim/v1/auth_service_pb.js";
import type {
  Conversation,
  GetAllConversationsRequest,
  GetConversationRequest,
  GetConversationsRequest,
  GetNotNotifyConversationIdsRequest,
  GetOwnerConversationRequest,
  GetPinnedConversationIdsRequest,
  GetIncrementalConversationsRequest,
  DeleteConversationsRequest,
  GetFullConversationIdsRequest,
} from "../../../gen/vendor/openim/v1/conversation_service_pb.js";
import { apiLayerError, isOpenimError, OpenimCode, openimError, type OpenimError } from "./errors.js";
import { ADMIN_PLATFORM_ID, cachedTokenVerifier, mintToken, type TokenClaims } from "./token.js";
import { planSetConversations, type SetPlan } from "./translate.js";

/** What travels outside the body: headers `operationID` and `token` (REST) or metadata `operationid`, `token`. */
export interface OpenimAuth {
  readonly operationId?: string | undefined;
  readonly token?: string | undefined;
  /** The caller's IP address: failed secret checks of get_admin_token are throttled per address. */
  readonly clientAddress?: string | undefined;
}

interface Caller {
  readonly userId: string;
  readonly admin: boolean;
  readonly claims: TokenClaims;
}

/** Reads and parses the request (REST: the body) when the pipeline gets to it. */
export type Loader<R> = () => Promise<R | OpenimError>;

/** The answer of a read: its data, or the OpenIM error. */
export type ReadResult<D> = { ok: D } | OpenimError;

export interface OpenimCore {
  getUserToken(auth: OpenimAuth, load: Loader<GetUserTokenRequest>): Promise<ReadResult<{ token: string; expireTimeSeconds: bigint }>>;
  parseToken(auth: OpenimAuth, load: Loader<ParseTokenRequest>): Promise<ReadResult<{ userId: string; platformId: number; expireTimeSeconds: bigint }>>;
  forceLogout(auth: OpenimAuth, load: Loader<ForceLogoutRequest>): Promise<ReadResult<Record<string, never>>>;
  getOwnerConversation(auth: OpenimAuth, load: Loader<GetOwnerConversationRequest>): Promise<ReadResult<{ total: bigint; conversations: Conversation[] }>>;
  getConversations(auth: OpenimAuth, load: Loader<GetConversationsRequest>): Promise<ReadResult<{ conversations: Conversation[] }>>;
  getConversation(auth: OpenimAuth, load: Loader<GetConversationRequest>): Promise<ReadResult<{ conversation: Conversation }>>;
  getAllConversations(auth: OpenimAuth, load: Loader<GetAllConversationsRequest>): Promise<ReadResult<{ conversations: Conversation[] }>>;
  getPinnedConversationIds(auth: OpenimAuth, load: Loader<GetPinnedConversationIdsRequest>): Promise<ReadResult<{ conversationIds: string[] }>>;
  getNotNotifyConversationIds(auth: OpenimAuth, load: Loader<GetNotNotifyConversationIdsRequest>): Promise<ReadResult<{ conversationIds: string[] }>>;
  getIncrementalConversations(auth: OpenimAuth, load: Loader<GetIncrementalConversationsRequest>): Promise<ReadResult<object>>;
  deleteConversations(auth: OpenimAuth, load: Loader<DeleteConversationsRequest>): Promise<ReadResult<object>>;
  getFullConversationIds(auth: OpenimAuth, load: Loader<GetFullConversationIdsRequest>): Promise<ReadResult<object>>;
  /** `load` is called only after the header checks (and the secret throttle), as for every other route. */
  getAdminToken(auth: OpenimAuth, load: Loader<GetAdminTokenRequest>): Promise<GetAdminTokenResponse>;
  setConversations(auth: OpenimAuth, load: Loader<SetConversationsRequest>): Promise<SetConversationsResponse>;
}

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest();
function secretMatches(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected));
}

const REASON_CODES: Record<string, OpenimCode> = {
  [Reason.UserNotFound]: OpenimCode.UserIDNotFoundError,
  [Reason.PeerNotFound]: OpenimCode.UserIDNotFoundError,
  [Reason.GroupNotFound]: OpenimCode.GroupIDNotFoundError,
  [Reason.GroupDismissed]: OpenimCode.DismissedAlreadyError,
  [Reason.NotGroupMember]: OpenimCode.NotInGroupYetError,
};

function codeOfStatus(code: number, reason: string | undefined): OpenimCode {
  if (reason !== undefined && REASON_CODES[reason] !== undefined) return REASON_CODES[reason];
  if (code === Code.InvalidArgument) return OpenimCode.ArgsError;
  if (code === Code.NotFound) return OpenimCode.RecordNotFoundError;
  return OpenimCode.ServerInternalError;
}

function list(ids: readonly string[]): string {
  const shown = ids.slice(0, 10).map((id) => JSON.stringify(id));
  return `[${shown.join(", ")}${ids.length > 10 ? `, … ${ids.length - 10} more` : ""}]`;
}

export function createOpenimCore(deps: DialectDeps, config: OpenimConfig): OpenimCore {
  const rateLimit = createRateLimit("openim", config.rateLimitPerSecond);
  const reads = createReadOps(deps.marks);
  // force_logout: tokens of (user, platform) issued at or before this second are kicked (1506).
  const kicked: KickRegistry = deps.kicks ?? new LRUCache<string, number>({ max: 100_000 });
  const kickKey = (userId: string, platformId: number) => `${platformId}\u0000${userId}`;
  const admins = new Set(config.adminUserIds);
  // Tokens verified once are only checked against the clock again (the kernel's credential cache);
  // the kick list below is checked on every call.
  const verifyToken = config.secret === undefined ? undefined : cachedTokenVerifier(config.secret);
  // Failed get_admin_token secret checks per client address in a fixed 60 s window; past the limit
  // the address is answered 429 without its secret being checked, so guessing gets no answers.
  const secretFailures = createRateLimiter({ points: config.secretFailuresPerMinute, durationSeconds: 60, keyPrefix: "openim-secret" });

  /** The refusal for an address over its failed-secret budget (with seconds until it may retry). */
  async function secretThrottled(address: string): Promise<OpenimError | undefined> {
    const res = await secretFailures.get(address);
    if (!res || res.consumedPoints < config.secretFailuresPerMinute) return undefined;
    const retryAfterSeconds = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
    return openimError(OpenimCode.TooManyRequests, `${config.secretFailuresPerMinute} wrong secrets from this address within a minute, retry in ${retryAfterSeconds} s`);
  }

  async function recordSecretFailure(address: string): Promise<void> {
    // consume() rejects once the budget is used up; the failure is counted either way.
    await secretFailures.consume(address).catch((e: unknown) => {
      if (!(e instanceof RateLimiterRes)) deps.logger.error({ err: e }, "openim: secret-failure limiter failed");
    });
  }

  async function rateLimited(): Promise<OpenimError | undefined> {
    switch (await rateLimit("openim")) {
      case "ok":
        return undefined;
      case "limited":
        return openimError(OpenimCode.TooManyRequests, `rate limit of ${config.rateLimitPerSecond} calls per second exceeded`);
      case "error":
        deps.logger.error("openim: rate limiter failed");
        return openimError(OpenimCode.ServerInternalError, "rate limiter failed");
    }
  }

  /** A token force_logout kicked (issued at or before the kick; admins' tokens are never kicked): 1506. Every call, cached token or not. */
  function kickedRefusal(claims: TokenClaims): OpenimError | undefined {
    const kickedAt = admins.has(claims.userId) ? undefined : kicked.get(kickKey(claims.userId, claims.platformId));
    return kickedAt !== undefined && (claims.issuedAt ?? 0) <= kickedAt ? openimError(OpenimCode.TokenKickedError, "token has been kicked") : undefined;
  }

  /**
   * mw.GinParseToken after GinParseOperationID: the caller of a token-protected API, or its error.
   * A token force_logout kicked is TokenKickedError (admins' tokens are never kicked, as in OpenIM).
   */
  async function caller(auth: OpenimAuth): Promise<Caller | OpenimError> {
    const pre = (await rateLimited()) ?? operationIdMissing(auth);
    if (pre) return pre;
    if (verifyToken === undefined) return openimError(OpenimCode.TokenNotExistError, "OPENIM_SECRET is not configured, so no token is valid");
    if (!auth.token) return apiLayerError(OpenimCode.ArgsError); // "header must have token"
    const claims = await verifyToken(auth.token, deps.now());
    if (isOpenimError(claims)) return claims;
    const out = kickedRefusal(claims);
    if (out) return out;
    return { userId: claims.userId, admin: admins.has(claims.userId), claims };
  }

  /** authverify.CheckAccessV3: an admin, or the user the request concerns. */
  function access(c: Caller, ...userIds: string[]): OpenimError | undefined {
    if (c.admin || userIds.every((u) => u === c.userId)) return undefined;
    return openimError(OpenimCode.NoPermissionError, `no permission for user ${c.userId} to access ${userIds.filter((u) => u !== c.userId).slice(0, 3).join(", ")}`);
  }

  /** The pipeline of a token-protected read: caller, body, owner-or-admin, the read. Never throws. */
  async function read<R, D>(auth: OpenimAuth, load: Loader<R>, owner: (r: R) => string, run: (r: R) => Promise<D | OpenimError>): Promise<{ ok: D } | OpenimError> {
    try {
      const c = await caller(auth);
      if (isOpenimError(c)) return c;
      // The body is read only once the token is accepted.
      const request = await load();
      if (isOpenimError(request)) return request;
      const denied = access(c, owner(request));
      if (denied) return denied;
      const d = await run(request);
      return isOpenimError(d) ? d : { ok: d };
    } catch (e) {
      const err = ConnectError.from(e);
      if (err.code === Code.InvalidArgument) return openimError(OpenimCode.ArgsError, err.rawMessage);
      deps.logger.error({ err, operationID: auth.operationId }, "openim: read failed");
      return openimError(OpenimCode.ServerInternalError, "the read failed");
    }
  }

  /** mw.GinParseOperationID: every POST needs the operationID header. */
  function operationIdMissing(auth: OpenimAuth): OpenimError | undefined {
    return auth.operationId ? undefined : apiLayerError(OpenimCode.ArgsError); // "header must have operationID"
  }

  /** Strict directory: the refusals OpenIM itself would make, all checked before anything is written. */
  async function directoryRefusal(plan: SetPlan): Promise<OpenimError | undefined> {
    const dir = deps.directory;
    if (!dir.strict) return undefined;
    if (plan.type === ConvType.Group && plan.groupId !== undefined) {
      const [group] = await dir.groups([plan.groupId]);
      if (!group) return openimError(OpenimCode.GroupIDNotFoundError, `group ${JSON.stringify(plan.groupId)} not found`);
      if (group.dismissed) return openimError(OpenimCode.DismissedAlreadyError, "group dismissed");
    }
    const exists = await dir.usersExist(plan.userIdsToCheck);
    const unknown = plan.userIdsToCheck.filter((_, i) => !exists[i]);
    if (unknown.length > 0) return openimError(OpenimCode.UserIDNotFoundError, `userIDs ${list(unknown)} not found`);
    if (plan.type === ConvType.Group && plan.groupId !== undefined) {
      const members = await dir.areMembers(plan.groupId, plan.owners);
      const outside = plan.owners.filter((_, i) => !members[i]);
      if (outside.length > 0) {
        return openimError(OpenimCode.NotInGroupYetError, `userIDs ${list(outside)} are not members of group ${JSON.stringify(plan.groupId)}`);
      }
    }
    return undefined;
  }

  /**
   * OpenIM updates the conversation an owner already has under the request's conversationID
   * (FindConversations by (owner, conversationID), then UpdateByMap), whatever the request's type and
   * userID/groupID say: an owner with a conversation stored under that ID gets its key.
   */
  async function toStoredKeys(plan: SetPlan, conversationId: string): Promise<SetPlan> {
    const stored = await reads.storedKeys(plan.owners, conversationId);
    if (stored.every((k) => k === undefined)) return plan;
    const byOwner = new Map(plan.owners.map((o, i) => [o, stored[i]]));
    return { ...plan, updates: plan.updates.map((u) => ({ ...u, key: byOwner.get(u.key.ownerUserId) ?? u.key })) };
  }

  async function apply(plan: SetPlan, operationId: string): Promise<OpenimError | undefined> {
    let results;
    try {
      const resp = await deps.marks.updateConversations({
        updates: plan.updates.map((u) => ({
          key: u.key,
          settings: u.settings,
          ...(u.vendorConversationId !== undefined ? { vendorConversationId: u.vendorConversationId } : {}),
        })),
        resultView: ResultView.STATUS,
      });
      results = resp.results;
    } catch (e) {
      const err = ConnectError.from(e);
      if (err.code === Code.InvalidArgument) return openimError(OpenimCode.ArgsError, err.rawMessage);
      deps.logger.error({ err, operationID: operationId }, "openim: UpdateConversations failed");
      return openimError(OpenimCode.ServerInternalError, "the update could not be applied");
    }
    const failed: { owner: string; code: OpenimCode; message: string }[] = [];
    results.forEach((r, i) => {
      const status = r.status;
      if (status && status.code !== 0) {
        failed.push({ owner: plan.updates[i]!.key.ownerUserId, code: codeOfStatus(status.code, reasonOf(status)), message: status.message });
      }
    });
    if (failed.length === 0) return undefined;
    const first = failed[0]!;
    if (first.code === OpenimCode.ServerInternalError) {
      deps.logger.error({ operationID: operationId, failed: failed.length, message: first.message }, "openim: set_conversations partly failed");
    }
    const applied = plan.updates.length - failed.length;
    return openimError(
      first.code,
      `not applied for userIDs ${list(failed.map((f) => f.owner))}: ${first.message}; ` +
        `${applied} of ${plan.updates.length} users were applied`,
    );
  }

  const adminTokenFailure = (e: OpenimError) => create(GetAdminTokenResponseSchema, e);
  const setFailure = (e: OpenimError) => create(SetConversationsResponseSchema, e);

  return {
    async getAdminToken(auth, load) {
      const pre = (await rateLimited()) ?? operationIdMissing(auth);
      if (pre) return adminTokenFailure(pre);
      // A throttled address is answered before its body is read (its secret is never looked at).
      const address = auth.clientAddress ?? "unknown";
      const throttled = await secretThrottled(address);
      if (throttled) return adminTokenFailure(throttled);
      const request = await load();
      if (isOpenimError(request)) return adminTokenFailure(request);
      // internal/rpc/auth GetAdminToken: the secret first (ErrNoPermission "secret invalid"), then the admin list (ErrArgs).
      if (config.secret === undefined || !secretMatches(request.secret, config.secret)) {
        await recordSecretFailure(address);
        return adminTokenFailure(openimError(OpenimCode.NoPermissionError, "secret invalid"));
      }
      if (!admins.has(request.userId)) {
        return adminTokenFailure(openimError(OpenimCode.ArgsError, `userID is error: ${JSON.stringify(request.userId)} is not an admin user ID`));
      }
      const token = await mintToken(config.secret, request.userId, ADMIN_PLATFORM_ID, deps.now(), config.tokenTtlSeconds);
      return create(GetAdminTokenResponseSchema, {
        errCode: 0,
        errMsg: "",
        errDlt: "",
        data: create(GetAdminTokenDataSchema, { token, expireTimeSeconds: BigInt(config.tokenTtlSeconds) }),
      });
    },

    async setConversations(auth, load) {
      // GinParseToken: a missing token header is an ArgsError; a bad token is the token's own error.
      const c = await caller(auth);
      if (isOpenimError(c)) return setFailure(c);
      // The body is read only once the token is accepted.
      const request = await load();
      if (isOpenimError(request)) return setFailure(request);
      // authverify.CheckAccessV3 per user: an admin, or a user setting only its own conversations.
      const denied = access(c, ...request.userIds);
      if (denied) return setFailure(denied);
      const planned = planSetConversations(request, { maxUserIds: config.maxUserIds });
      if (isOpenimError(planned)) return setFailure(planned);
      const operationId = auth.operationId ?? "";
      let plan: SetPlan = planned;
      let refused: OpenimError | undefined;
      try {
        plan = await toStoredKeys(planned, request.conversation!.conversationId);
        refused = await directoryRefusal(plan);
      } catch (e) {
        deps.logger.error({ err: e, operationID: operationId }, "openim: directory lookup failed");
        refused = openimError(OpenimCode.ServerInternalError, "directory lookup failed");
      }
      if (refused) return setFailure(refused);
      const failed = await apply(plan, operationId);
      if (failed) return setFailure(failed);
      return create(SetConversationsResponseSchema, { errCode: 0, errMsg: "", errDlt: "", data: create(SetConversationsDataSchema) });
    },

    getUserToken: (auth, load) =>
      read(auth, load, () => "", async (r) => {
        // internal/rpc/auth GetUserToken: admin only; never platform 10, never an admin user.
        if (r.platformId === ADMIN_PLATFORM_ID) return openimError(OpenimCode.NoPermissionError, "platformID invalid. platformID must not be adminPlatformID");
        if (r.userId === "") return openimError(OpenimCode.ArgsError, "userID is empty");
        if (admins.has(r.userId)) return openimError(OpenimCode.NoPermissionError, "don't get Admin token");
        if (deps.directory.strict && !(await deps.directory.usersExist([r.userId]))[0]) return openimError(OpenimCode.UserIDNotFoundError, "user not found");
        const token = await mintToken(config.secret!, r.userId, r.platformId, deps.now(), config.tokenTtlSeconds);
        return { token, expireTimeSeconds: BigInt(config.tokenTtlSeconds) };
      }),

    async parseToken(auth, load) {
      const pre = (await rateLimited()) ?? operationIdMissing(auth);
      if (pre) return pre;
      const request = await load();
      if (isOpenimError(request)) return request;
      if (verifyToken === undefined) return openimError(OpenimCode.TokenNotExistError, "OPENIM_SECRET is not configured, so no token is valid");
      const claims = await verifyToken(request.token, deps.now());
      if (isOpenimError(claims)) return claims;
      const out = kickedRefusal(claims);
      if (out) return out;
      return { ok: { userId: claims.userId, platformId: claims.platformId, expireTimeSeconds: BigInt(claims.expiresAt ?? 0) } };
    },

    forceLogout: (auth, load) =>
      read(auth, load, () => "", async (r) => {
        if (r.userId === "") return openimError(OpenimCode.ArgsError, "userID is empty");
        kicked.set(kickKey(r.userId, r.platformId), Math.floor(deps.now() / 1000));
        return {};
      }),

    getOwnerConversation: (auth, load) => read(auth, load, (r) => r.userId, reads.getOwnerConversation),
    getConversations: (auth, load) => read(auth, load, (r) => r.ownerUserId, reads.getConversations),
    getConversation: (auth, load) => read(auth, load, (r) => r.ownerUserId, reads.getConversation),
    getAllConversations: (auth, load) => read(auth, load, (r) => r.ownerUserId, reads.getAllConversations),
    getPinnedConversationIds: (auth, load) => read(auth, load, (r) => r.userId, (r) => reads.pinnedIds(r.userId)),
    getNotNotifyConversationIds: (auth, load) => read(auth, load, (r) => r.userId, (r) => reads.notNotifyIds(r.userId)),
    getIncrementalConversations: (auth, load) => read(auth, load, (r) => r.userId, reads.incremental),
    deleteConversations: (auth, load) => read(auth, load, (r) => r.ownerUserId, reads.deleteConversations),
    getFullConversationIds: (auth, load) => read(auth, load, (r) => r.userId, (r) => reads.fullIds(r)),
  };
}
