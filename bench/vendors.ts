/**
 * The vendor REST routes as a real caller drives them: valid auth on every request and the example
 * body of each vendor's published document (docs in shared/seeds, bodies copied verbatim below).
 */
import { createHash, randomBytes } from "node:crypto";
import { Api as TlsSigApi } from "tls-sig-api-v2";
import type autocannon from "autocannon";

/** One bench row per vendor route: the write routes, then the read-back and CRUD routes. */
export const VENDORS = [
  "zego",
  "tencent",
  "openim",
  "zego_query_conversation_list",
  "zego_conv_pinned",
  "zego_silence_conv_notification",
  "tencent_create_contact_group",
  "tencent_del_contact_group",
  "tencent_update_contact_group",
  "tencent_search_contact_group",
  "tencent_get_contact_group",
  "tencent_get_list",
  "openim_get_owner_conversation",
  "openim_get_conversation",
  "openim_get_conversations",
  "openim_get_all_conversations",
  "openim_get_pinned_conversation_ids",
  "openim_get_not_notify_conversation_ids",
  "openim_parse_token",
  "zego_delete_conv",
  "openim_get_incremental_conversations",
  "openim_get_full_conversation_ids",
  "openim_delete_conversations",
] as const;
export type VendorName = (typeof VENDORS)[number];

const ZEGO = { appId: "1234567890", serverSecret: "0123456789abcdef0123456789abcdef" };
const TENCENT = { sdkAppId: 1400000000, secretKey: "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e", admin: "administrator" };
const OPENIM = { secret: "openIM123", admin: "imAdmin" };

/** The ZEGO routes: one per-AppId rate limit covers all of them (ZEGO documents 20 calls/s; 660300005). */
export const ZEGO_ROUTES = VENDORS.filter((v) => v.startsWith("zego"));

/** Credentials for the server, and the vendor rate limiters raised so the bench measures throughput. */
export const VENDOR_SERVER_ENV: Record<string, string> = {
  ZEGO_APP_ID: ZEGO.appId,
  ZEGO_SERVER_SECRET: ZEGO.serverSecret,
  // The highest the ZEGO dialect accepts (its replay cache is sized from it). It is below what one
  // server answers, so the ZEGO rows are driven at ZEGO_BENCH_RATE and compared with the echo at the
  // same rate by server CPU per request (bench/run.ts); rate-limited answers count as errors.
  ZEGO_RATE_LIMIT_PER_SECOND: "1000",
  TENCENT_SDKAPPID: String(TENCENT.sdkAppId),
  TENCENT_SECRET_KEY: TENCENT.secretKey,
  TENCENT_ADMIN_IDENTIFIERS: TENCENT.admin,
  TENCENT_RATE_LIMIT_PER_SECOND: "1000000",
  OPENIM_SECRET: OPENIM.secret,
  OPENIM_ADMIN_USER_IDS: OPENIM.admin,
  OPENIM_RATE_LIMIT_PER_SECOND: "0", // 0: no limiter (OpenIM's default)
};

/** Requests per second of the ZEGO rows and their paced echo: 80% of the server's ZEGO limit, so no call is refused. */
export const ZEGO_BENCH_RATE = Math.floor(0.8 * Number(VENDOR_SERVER_ENV.ZEGO_RATE_LIMIT_PER_SECOND));

// Request examples of the vendor documents (zego-SetConvMark.zh.md, tencent-mark_contact.*, openim-set_conversations.en.txt).
const ZEGO_SEED = {
  FromUserId: "user_test",
  ConvMarkInfoList: ["userA", "userB"].map((UserId) => ({
    UserId,
    SetMarkC2c: { conv_c2c_1: { MarkContent: 2 }, conv_c2c_2: { MarkContent: 2 } },
    SetMarkGroup: { conv_group_1: { MarkContent: 2 }, conv_group_2: { MarkContent: 2 } },
    Action: true,
  })),
};
const TENCENT_SEED = {
  From_Account: "user_0001",
  MarkItem: [{ OptType: 3, ContactItem: { Type: 1, To_Account: "user_0002" }, SetMark: [1, 2, 3], CustomMark: "abcd" }],
};
const OPENIM_SEED = {
  userIDs: ["6965946400"],
  conversation: {
    conversationID: "si_4365007572_6965946400",
    conversationType: 1,
    userID: "4365007572",
    groupID: "",
    recvMsgOpt: 0,
    attachedInfo: "attached",
    isPinned: false,
    isPrivateChat: true,
    ex: "",
    burnDuration: 30,
  },
};

export interface VendorRoute {
  readonly name: VendorName;
  readonly label: string;
  /** For autocannon; setupRequest makes each request's auth fresh where the vendor needs it. */
  readonly request: autocannon.RequestSpec;
  /** Does an HTTP 200 body say the whole request succeeded? */
  readonly verify: (body: string) => boolean;
}

export type Prepared = { readonly ok: true; readonly route: VendorRoute } | { readonly ok: false; readonly reason: string };

const JSON_HEADERS = { "content-type": "application/json" };

const zegoOk = (text: string) => {
  const res = parse(text) as { Code?: unknown; FailList?: unknown[]; ErrorList?: unknown[] } | undefined;
  return res?.Code === 0 && (res.FailList ?? []).length === 0 && (res.ErrorList ?? []).length === 0;
};

function zegoRoute(name: VendorName = "zego", action = "SetConvMark", seed: unknown = ZEGO_SEED, label = "ZEGO SetConvMark"): VendorRoute {
  const noncePrefix = randomBytes(4).toString("hex");
  let n = 0;
  const body = JSON.stringify(seed);
  return {
    name,
    label,
    request: {
      method: "POST",
      path: "/",
      headers: JSON_HEADERS,
      body,
      setupRequest(req) {
        const nonce = noncePrefix + (n++ >>> 0).toString(16).padStart(8, "0");
        const ts = String(Math.floor(Date.now() / 1000));
        const signature = createHash("md5").update(ZEGO.appId + nonce + ZEGO.serverSecret + ts).digest("hex");
        return {
          ...req,
          path: `/?Action=${action}&AppId=${ZEGO.appId}&SignatureNonce=${nonce}&Timestamp=${ts}&SignatureVersion=2.0&Signature=${signature}`,
        };
      },
    },
    verify: zegoOk,
  };
}

function tencentRoute(name: VendorName = "tencent", api = "mark_contact", seed: unknown = TENCENT_SEED, label = "Tencent mark_contact"): VendorRoute {
  const userSig = new TlsSigApi(TENCENT.sdkAppId, TENCENT.secretKey).genSig(TENCENT.admin, 86_400);
  const base = `/v4/recentcontact/${api}?sdkappid=${TENCENT.sdkAppId}&identifier=${TENCENT.admin}&usersig=${encodeURIComponent(userSig)}`;
  return {
    name,
    label,
    request: {
      method: "POST",
      path: `${base}&random=1&contenttype=json`,
      headers: JSON_HEADERS,
      body: JSON.stringify(seed),
      setupRequest(req) {
        return { ...req, path: `${base}&random=${(Math.random() * 0x1_0000_0000) >>> 0}&contenttype=json` };
      },
    },
    verify(text) {
      const res = parse(text) as { ActionStatus?: unknown; ErrorCode?: unknown; ResultItem?: { ResultCode?: unknown }[] } | undefined;
      return res?.ActionStatus === "OK" && res.ErrorCode === 0 && (res.ResultItem ?? []).every((r) => r.ResultCode === 0);
    },
  };
}

async function openimRoute(url: string, name: VendorName = "openim", path = "/conversation/set_conversations", seed: unknown = OPENIM_SEED, label = "OpenIM set_conversations"): Promise<Prepared> {
  let token: string | undefined;
  let detail: string;
  try {
    const res = await fetch(`${url}/auth/get_admin_token`, {
      method: "POST",
      headers: { ...JSON_HEADERS, operationID: String(Date.now()) },
      body: JSON.stringify({ secret: OPENIM.secret, userID: OPENIM.admin }),
    });
    const text = await res.text();
    const body = parse(text) as { errCode?: unknown; data?: { token?: unknown } } | undefined;
    if (res.ok && body?.errCode === 0 && typeof body.data?.token === "string") token = body.data.token;
    detail = `POST /auth/get_admin_token answered HTTP ${res.status}: ${text.slice(0, 200)}`;
  } catch (e) {
    detail = `POST /auth/get_admin_token failed: ${(e as Error).message}`;
  }
  if (!token) return { ok: false, reason: detail };
  let op = 0;
  const headers = { ...JSON_HEADERS, token };
  return {
    ok: true,
    route: {
      name,
      label,
      request: {
        method: "POST",
        path,
        headers: { ...headers, operationID: "bench-0" },
        body: JSON.stringify(typeof seed === "function" ? (seed as (t: string) => unknown)(token) : seed),
        setupRequest(req) {
          return { ...req, headers: { ...headers, operationID: `bench-${op++}` } };
        },
      },
      verify(text) {
        return (parse(text) as { errCode?: unknown } | undefined)?.errCode === 0;
      },
    },
  };
}

/**
 * Tencent del_contact_group, measured as a create/delete cycle: each connection (one request in
 * flight, pipelining 1) alternates creating its own group for its own From_Account and deleting it
 * with the documented body (`{"From_Account":…,"GroupName":[…]}`, the page's example), so every
 * delete removes a real group. Half the row's requests are therefore creates.
 */
export function tencentDelCycleRoute(): VendorRoute {
  const create = tencentRoute("tencent_del_contact_group", "create_contact_group", {}, "");
  const del = tencentRoute("tencent_del_contact_group", "del_contact_group", {}, "");
  const run = randomBytes(4).toString("hex");
  let connections = 0;
  return {
    name: "tencent_del_contact_group",
    label: "Tencent del_contact_group (each after its create_contact_group)",
    request: {
      ...del.request,
      setupRequest(req, context) {
        const ctx = context as { conn?: number; n?: number };
        ctx.conn ??= connections++;
        ctx.n = (ctx.n ?? -1) + 1;
        const owner = `user_del_${run}_${ctx.conn}`;
        const group = `bench_del_${ctx.conn}`;
        const creating = ctx.n % 2 === 0;
        const body = creating
          ? { From_Account: owner, GroupContactItem: [{ GroupName: group, ContactItem: [{ Type: 1, To_Account: "user0" }] }] }
          : { From_Account: owner, GroupName: [group] };
        return { ...(creating ? create : del).request.setupRequest!(req, context), body: JSON.stringify(body) };
      },
    },
    verify: del.verify,
  };
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Builds the route and sends it once; a route the server does not serve (yet) comes back with the reason. */
// Seed-style bodies of the read-back and CRUD routes (the vendors' documented examples).
const EXTRA: Record<Exclude<VendorName, "zego" | "tencent" | "openim">, (url: string) => VendorRoute | Promise<Prepared>> = {
  zego_query_conversation_list: () => zegoRoute("zego_query_conversation_list", "QueryConversationList", { FromUserId: "userA", Limit: 100, Next: 0 }, "ZEGO QueryConversationList"),
  zego_conv_pinned: () =>
    zegoRoute("zego_conv_pinned", "ConvPinned", { FromUserId: "user0", ConvList: [{ ConvId: "user1", ConvType: 0 }, { ConvId: "user2", ConvType: 0 }], PinnedType: 1 }, "ZEGO ConvPinned"),
  zego_silence_conv_notification: () =>
    zegoRoute("zego_silence_conv_notification", "SilenceConvNotification", { FromUserId: "user0", ConvType: 0, ConvIds: ["user1", "user2"], Enable: true }, "ZEGO SilenceConvNotification"),
  tencent_create_contact_group: () =>
    tencentRoute("tencent_create_contact_group", "create_contact_group", { From_Account: "user15", GroupContactItem: [{ GroupName: "test0", ContactItem: [{ Type: 1, To_Account: "user0" }] }] }, "Tencent create_contact_group"),
  tencent_del_contact_group: () => tencentDelCycleRoute(),
  tencent_update_contact_group: () =>
    tencentRoute(
      "tencent_update_contact_group",
      "update_contact_group",
      { From_Account: "user15", UpdateType: 1, UpdateGroup: { UpdateGroupType: 2, OldGroupName: "test0", ContactUpdateItem: [{ ContactOptType: 1, ContactItem: { Type: 1, To_Account: "user1" } }] } },
      "Tencent update_contact_group",
    ),
  tencent_search_contact_group: () =>
    tencentRoute("tencent_search_contact_group", "search_contact_group", { From_Account: "user15", ContactItem: [{ Type: 1, To_Account: "user0" }] }, "Tencent search_contact_group"),
  tencent_get_contact_group: () => tencentRoute("tencent_get_contact_group", "get_contact_group", { From_Account: "user15", StartIndex: 0 }, "Tencent get_contact_group"),
  tencent_get_list: () =>
    tencentRoute("tencent_get_list", "get_list", { From_Account: "user_0001", TimeStamp: 0, StartIndex: 0, TopTimeStamp: 0, TopStartIndex: 0, AssistFlags: 63 }, "Tencent get_list"),
  openim_get_owner_conversation: (url) =>
    openimRoute(url, "openim_get_owner_conversation", "/conversation/get_owner_conversation", { userID: "6965946400", pagination: { pageNumber: 1, showNumber: 20 } }, "OpenIM get_owner_conversation"),
  openim_get_conversation: (url) =>
    openimRoute(url, "openim_get_conversation", "/conversation/get_conversation", { conversationID: "si_4365007572_6965946400", ownerUserID: "6965946400" }, "OpenIM get_conversation"),
  openim_get_conversations: (url) =>
    openimRoute(url, "openim_get_conversations", "/conversation/get_conversations", { ownerUserID: "6965946400", conversationIDs: ["si_4365007572_6965946400"] }, "OpenIM get_conversations"),
  openim_get_all_conversations: (url) => openimRoute(url, "openim_get_all_conversations", "/conversation/get_all_conversations", { ownerUserID: "6965946400" }, "OpenIM get_all_conversations"),
  openim_get_pinned_conversation_ids: (url) =>
    openimRoute(url, "openim_get_pinned_conversation_ids", "/conversation/get_pinned_conversation_ids", { userID: "6965946400" }, "OpenIM get_pinned_conversation_ids"),
  openim_get_not_notify_conversation_ids: (url) =>
    openimRoute(url, "openim_get_not_notify_conversation_ids", "/conversation/get_not_notify_conversation_ids", { userID: "6965946400" }, "OpenIM get_not_notify_conversation_ids"),
  openim_parse_token: (url) => openimRoute(url, "openim_parse_token", "/auth/parse_token", (token: string) => ({ token }), "OpenIM parse_token"),
  // Deletes of conversations nobody reads in the other rows (deleting a missing one succeeds too).
  zego_delete_conv: () => zegoRoute("zego_delete_conv", "DeleteConv", { FromUserId: "user_del", ConvId: "user1", ConvType: 0 }, "ZEGO DeleteConv"),
  openim_get_incremental_conversations: (url) =>
    openimRoute(url, "openim_get_incremental_conversations", "/conversation/get_incremental_conversations", { userID: "6965946400", versionID: "", version: 0 }, "OpenIM get_incremental_conversations"),
  openim_get_full_conversation_ids: (url) =>
    openimRoute(url, "openim_get_full_conversation_ids", "/conversation/get_full_conversation_ids", { idHash: 0, userID: "6965946400" }, "OpenIM get_full_conversation_ids"),
  openim_delete_conversations: (url) =>
    openimRoute(url, "openim_delete_conversations", "/conversation/delete_conversations", { ownerUserID: "user_del", conversationIDs: ["si_user_del_x"] }, "OpenIM delete_conversations"),
};

/** Every bench row's label (the report prints it). */
export const VENDOR_LABELS: Record<VendorName, string> = {
  zego: "ZEGO SetConvMark",
  tencent: "Tencent mark_contact",
  openim: "OpenIM set_conversations",
  ...(Object.fromEntries(Object.keys(EXTRA).map((k) => [k, k.replace(/^(zego|tencent|openim)_/, (_, v: string) => `${v === "zego" ? "ZEGO" : v === "tencent" ? "Tencent" : "OpenIM"} `)])) as Record<keyof typeof EXTRA, string>),
};

/** Builds the route and sends it once; a route the server does not serve (yet) comes back with the reason. */
export async function prepareVendor(name: VendorName, url: string): Promise<Prepared> {
  let route: VendorRoute;
  if (name === "openim") {
    const p = await openimRoute(url);
    if (!p.ok) return p;
    route = p.route;
  } else if (name === "zego" || name === "tencent") {
    route = name === "zego" ? zegoRoute() : tencentRoute();
  } else {
    const r = await EXTRA[name](url);
    if ("ok" in r) {
      if (!r.ok) return r;
      route = r.route;
    } else route = r;
  }
  const spec = route.request.setupRequest ? route.request.setupRequest({ ...route.request }, {}) : route.request;
  try {
    const res = await fetch(url + spec.path, { method: spec.method ?? "POST", headers: spec.headers ?? {}, body: spec.body ?? "" });
    const text = await res.text();
    if (res.status === 200 && route.verify(text)) return { ok: true, route };
    return { ok: false, reason: `${spec.method ?? "POST"} ${spec.path?.split("?")[0]} answered HTTP ${res.status}: ${text.slice(0, 200)}` };
  } catch (e) {
    return { ok: false, reason: `request failed: ${(e as Error).message}` };
  }
}
