/**
 * The vendor REST routes as a real caller drives them: valid auth on every request and the example
 * body of each vendor's published document (docs in shared/seeds, bodies copied verbatim below).
 */
import { createHash, randomBytes } from "node:crypto";
import { Api as TlsSigApi } from "tls-sig-api-v2";
import type autocannon from "autocannon";

export type VendorName = "zego" | "tencent" | "openim";
export const VENDORS: readonly VendorName[] = ["zego", "tencent", "openim"];

const ZEGO = { appId: "1234567890", serverSecret: "0123456789abcdef0123456789abcdef" };
const TENCENT = { sdkAppId: 1400000000, secretKey: "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e", admin: "administrator" };
const OPENIM = { secret: "openIM123", admin: "imAdmin" };

/** Credentials for the server, and the vendor rate limiters raised so the bench measures throughput. */
export const VENDOR_SERVER_ENV: Record<string, string> = {
  ZEGO_APP_ID: ZEGO.appId,
  ZEGO_SERVER_SECRET: ZEGO.serverSecret,
  // The highest the ZEGO dialect accepts (its replay cache is sized from it); on a fast machine it can
  // bind: rate-limited answers count as errors of the ZEGO row.
  ZEGO_RATE_LIMIT_PER_SECOND: "1000",
  TENCENT_SDKAPPID: String(TENCENT.sdkAppId),
  TENCENT_SECRET_KEY: TENCENT.secretKey,
  TENCENT_ADMIN_IDENTIFIERS: TENCENT.admin,
  TENCENT_RATE_LIMIT_PER_SECOND: "1000000",
  OPENIM_SECRET: OPENIM.secret,
  OPENIM_ADMIN_USER_IDS: OPENIM.admin,
  OPENIM_RATE_LIMIT_PER_SECOND: "0", // 0: no limiter (OpenIM's default)
};

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

function zegoRoute(): VendorRoute {
  const noncePrefix = randomBytes(4).toString("hex");
  let n = 0;
  const body = JSON.stringify(ZEGO_SEED);
  return {
    name: "zego",
    label: "ZEGO SetConvMark",
    request: {
      method: "POST",
      path: "/",
      headers: JSON_HEADERS,
      body,
      // A fresh nonce per request: the replay check must not refuse it.
      setupRequest(req) {
        const nonce = noncePrefix + (n++ >>> 0).toString(16).padStart(8, "0");
        const ts = String(Math.floor(Date.now() / 1000));
        const signature = createHash("md5").update(ZEGO.appId + nonce + ZEGO.serverSecret + ts).digest("hex");
        return {
          ...req,
          path: `/?Action=SetConvMark&AppId=${ZEGO.appId}&SignatureNonce=${nonce}&Timestamp=${ts}&SignatureVersion=2.0&Signature=${signature}`,
        };
      },
    },
    verify(text) {
      const res = parse(text) as { Code?: unknown; FailList?: unknown[] } | undefined;
      return res?.Code === 0 && (res.FailList === undefined || res.FailList === null || res.FailList.length === 0);
    },
  };
}

function tencentRoute(): VendorRoute {
  // One UserSig for the whole run, as a real admin client caches it.
  const userSig = new TlsSigApi(TENCENT.sdkAppId, TENCENT.secretKey).genSig(TENCENT.admin, 86_400);
  const base = `/v4/recentcontact/mark_contact?sdkappid=${TENCENT.sdkAppId}&identifier=${TENCENT.admin}&usersig=${encodeURIComponent(userSig)}`;
  return {
    name: "tencent",
    label: "Tencent mark_contact",
    request: {
      method: "POST",
      path: `${base}&random=1&contenttype=json`,
      headers: JSON_HEADERS,
      body: JSON.stringify(TENCENT_SEED),
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

async function openimRoute(url: string): Promise<Prepared> {
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
      name: "openim",
      label: "OpenIM set_conversations",
      request: {
        method: "POST",
        path: "/conversation/set_conversations",
        headers: { ...headers, operationID: "bench-0" },
        body: JSON.stringify(OPENIM_SEED),
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

function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Builds the route and sends it once; a route the server does not serve (yet) comes back with the reason. */
export async function prepareVendor(name: VendorName, url: string): Promise<Prepared> {
  let route: VendorRoute;
  if (name === "openim") {
    const p = await openimRoute(url);
    if (!p.ok) return p;
    route = p.route;
  } else {
    route = name === "zego" ? zegoRoute() : tencentRoute();
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
