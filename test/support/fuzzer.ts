/**
 * A seeded HTTP fuzzer for a running convmark on loopback: Connect JSON and binary, gRPC frames
 * over h2c, and every vendor REST route with valid and broken auth. Used by
 * test/hardening/fuzz.e2e.test.ts (a few thousand bodies) and `npm run fuzz` (scripts/fuzz.ts).
 *
 * A response counts as a failure when its HTTP status is ≥ 500, its gRPC status is INTERNAL,
 * UNKNOWN or DATA_LOSS, a vendor route answers outside its vendor's envelope, or no answer came
 * within 5 s (a hang).
 */
import { createHash, randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import { createRequire } from "node:module";

/** mulberry32: small, fast, seeded. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FuzzConfig {
  readonly url: string;
  readonly seed: number;
  /** Bodies per target (each target is one route × auth variant). */
  readonly perTarget: number;
  readonly concurrency?: number;
  readonly zego: { appId: number; secret: string };
  readonly tencent: { sdkAppId: number; key: string; admin: string };
  readonly openim: { secret: string; admin: string };
}

export interface FuzzReport {
  requests: number;
  byTarget: Record<string, { requests: number; statuses: Record<string, number> }>;
  /** Every failure counted; the first 50 are kept in failures. */
  failureCount: number;
  failures: { target: string; reason: string; body: string }[];
  hangs: number;
  maxLatencyMs: number;
  elapsedMs: number;
}

type Rand = () => number;

const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

const ODD_STRINGS = ["", " ", "__proto__", "constructor", "toString", "\u0000", "\ud800", "😀".repeat(50), "a".repeat(300), "x".repeat(5000), "-1", "1e309", "NaN", "null", "{}", "[]", "%00", "../..", "<script>"];

function randomValue(r: Rand, depth = 0): unknown {
  switch (Math.floor(r() * 10)) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return pick(r, [0, -1, 1, 2, 3, 4, 30, 31, 64, 65, 255, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 63), 1e308, 0.5]);
    case 3:
      return pick(r, ODD_STRINGS);
    case 4:
      return String(Math.floor(r() * 1e6));
    case 5:
      return depth > 3 ? [] : Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
    case 6:
      return depth > 3 ? {} : Object.fromEntries(Array.from({ length: Math.floor(r() * 4) }, () => [pick(r, ODD_STRINGS), randomValue(r, depth + 1)]));
    case 7:
      return "18446744073709551616";
    case 8:
      return Math.floor(r() * 100);
    default:
      return randomBytes(Math.floor(r() * 16)).toString("base64");
  }
}

/** Mutates a JSON document: replaced values, dropped and added keys, deep copies; sometimes corrupts the text. */
function mutateJson(r: Rand, seed: unknown): string {
  const doc = JSON.parse(JSON.stringify(seed)) as unknown;
  const nodes: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach((x, i) => (nodes.push({ parent: v, key: i }), walk(x)));
    else if (v && typeof v === "object") for (const k of Object.keys(v)) nodes.push({ parent: v as Record<string, unknown>, key: k }), walk((v as Record<string, unknown>)[k]);
  };
  walk(doc);
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n && nodes.length > 0; i++) {
    const { parent, key } = pick(r, nodes);
    const op = r();
    if (op < 0.6) (parent as Record<string | number, unknown>)[key] = randomValue(r);
    else if (op < 0.8 && !Array.isArray(parent)) delete parent[key as string];
    else if (!Array.isArray(parent)) Object.defineProperty(parent, pick(r, ODD_STRINGS), { value: randomValue(r), enumerable: true, configurable: true, writable: true });
  }
  let text = JSON.stringify(doc) ?? "null";
  const c = r();
  if (c < 0.1) text = text.slice(0, Math.floor(r() * text.length));
  else if (c < 0.15) text = text.slice(0, Math.floor(r() * text.length)) + String.fromCharCode(Math.floor(r() * 256)) + text.slice(Math.floor(r() * text.length));
  else if (c < 0.17) text = "[".repeat(2000);
  return text;
}

/** Random or mutated protobuf wire bytes. */
function mutateBinary(r: Rand, seed: Uint8Array): Buffer {
  const op = r();
  if (op < 0.25) return randomBytes(Math.floor(r() * 64));
  const b = Buffer.from(seed);
  if (op < 0.5) return b.subarray(0, Math.floor(r() * b.length));
  if (op < 0.8) {
    for (let i = 0; i < 1 + Math.floor(r() * 4) && b.length > 0; i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    return b;
  }
  // A field with an absurd length or a deep nesting of length-delimited field 1.
  return r() < 0.5 ? Buffer.concat([b, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])]) : Buffer.concat(Array.from({ length: 200 }, () => Buffer.from([0x0a, 0x7f])));
}

// Hand-encoded valid seeds (protobuf wire format) so the fuzzer does not depend on generated code.
const str = (field: number, s: string) => {
  const v = Buffer.from(s, "utf8");
  return Buffer.concat([Buffer.from([(field << 3) | 2, v.length]), v]);
};
const msg = (field: number, inner: Buffer) => Buffer.concat([Buffer.from([(field << 3) | 2, inner.length]), inner]);
const KEY = Buffer.concat([str(1, "alice"), Buffer.from([0x10, 0x01]), str(3, "bob")]);
const BINARY_SEEDS = { get: msg(1, KEY), update: msg(1, Buffer.concat([msg(1, KEY), Buffer.from([0x10, 0x02])])), list: str(1, "alice") };

const JSON_SEEDS = {
  "/convmark.v1.MarkService/UpdateConversations": { updates: [{ key: { ownerUserId: "alice", type: "CONVERSATION_TYPE_DIRECT", conversationId: "bob" }, setMarks: [1, 2], customMark: "vip", labels: ["a"], settings: { pinned: true } }] },
  "/convmark.v1.MarkService/GetConversation": { key: { ownerUserId: "alice", type: "CONVERSATION_TYPE_DIRECT", conversationId: "bob" } },
  "/convmark.v1.MarkService/ListConversations": { ownerUserId: "alice", pageSize: 10, filter: { marksAny: [1] } },
};

const ZEGO_BODY = { FromUserId: "user_test", ConvMarkInfoList: [{ UserId: "userA", SetMarkC2c: { conv_c2c_1: { MarkContent: 2 } }, SetMarkGroup: { g1: { MarkContent: 2 } }, Action: true }] };
const TENCENT_BODY = { From_Account: "user0", MarkItem: [{ OptType: 3, ContactItem: { Type: 1, To_Account: "user1" }, SetMark: [1, 2, 3], CustomMark: "abcd" }] };
const OPENIM_SET = { userIDs: ["u1"], conversation: { conversationID: "si_u1_u2", conversationType: 1, userID: "u2", groupID: "", recvMsgOpt: 0, isPinned: true, ex: "" } };

interface Target {
  readonly name: string;
  readonly kind: "connect" | "grpc" | "zego" | "tencent" | "openim";
  request(r: Rand): { path: string; headers: Record<string, string>; body: Buffer | string };
}

function zegoQuery(cfg: FuzzConfig, action: string, valid: boolean, r: Rand): string {
  const nonce = randomBytes(8).toString("hex");
  const ts = String(Math.floor(Date.now() / 1000));
  const sig = createHash("md5").update(`${cfg.zego.appId}${nonce}${cfg.zego.secret}${ts}`).digest("hex");
  const q = new URLSearchParams({ Action: action, AppId: String(cfg.zego.appId), SignatureNonce: nonce, Timestamp: ts, SignatureVersion: "2.0", Signature: valid ? sig : sig.replace(/./, "0") });
  if (!valid && r() < 0.5) q.delete(pick(r, ["AppId", "Timestamp", "Signature", "SignatureNonce", "SignatureVersion"]));
  return `/?${q.toString()}`;
}

export async function targets(cfg: FuzzConfig): Promise<Target[]> {
  const require = createRequire(import.meta.url);
  const TLS = require("tls-sig-api-v2") as { Api: new (id: number, key: string) => { genUserSig(id: string, exp: number): string } };
  const usersig = new TLS.Api(cfg.tencent.sdkAppId, cfg.tencent.key).genUserSig(cfg.tencent.admin, 86400);
  const tokenRes = await fetch(`${cfg.url}/auth/get_admin_token`, { method: "POST", headers: { "content-type": "application/json", operationID: "fuzz" }, body: JSON.stringify({ secret: cfg.openim.secret, userID: cfg.openim.admin }) });
  const token = ((await tokenRes.json()) as { data: { token: string } }).data.token;
  const list: Target[] = [];
  for (const [path, seed] of Object.entries(JSON_SEEDS)) {
    list.push({ name: `connect-json ${path}`, kind: "connect", request: (r) => ({ path, headers: { "content-type": "application/json" }, body: mutateJson(r, seed) }) });
  }
  const binaryPaths = [
    ["/convmark.v1.MarkService/GetConversation", BINARY_SEEDS.get],
    ["/convmark.v1.MarkService/UpdateConversations", BINARY_SEEDS.update],
    ["/convmark.v1.MarkService/ListConversations", BINARY_SEEDS.list],
  ] as const;
  for (const [path, seed] of binaryPaths) {
    list.push({ name: `connect-proto ${path}`, kind: "connect", request: (r) => ({ path, headers: { "content-type": "application/proto" }, body: mutateBinary(r, seed) }) });
    list.push({
      name: `grpc ${path}`,
      kind: "grpc",
      request: (r) => {
        const payload = mutateBinary(r, seed);
        const head = Buffer.alloc(5);
        head.writeUInt32BE(r() < 0.1 ? payload.length + 7 : payload.length, 1);
        return { path, headers: { "content-type": "application/grpc", te: "trailers" }, body: Buffer.concat([head, payload]) };
      },
    });
  }
  for (const action of ["SetConvMark", "QueryConversationList", "DeleteConv", "SilenceConvNotification", "ConvPinned"]) {
    for (const valid of [true, false]) {
      list.push({ name: `zego ${action} ${valid ? "signed" : "badsig"}`, kind: "zego", request: (r) => ({ path: zegoQuery(cfg, action, valid, r), headers: { "content-type": "application/json" }, body: mutateJson(r, ZEGO_BODY) }) });
    }
  }
  const tencentPaths = ["mark_contact", "get_list", "create_contact_group", "del_contact_group", "update_contact_group", "search_contact_group", "get_contact_group"];
  for (const p of tencentPaths) {
    for (const valid of [true, false]) {
      list.push({
        name: `tencent ${p} ${valid ? "signed" : "badsig"}`,
        kind: "tencent",
        request: (r) => {
          const q = new URLSearchParams({ sdkappid: String(cfg.tencent.sdkAppId), identifier: cfg.tencent.admin, usersig: valid ? usersig : usersig.slice(0, Math.floor(r() * usersig.length)), random: String(Math.floor(r() * 4294967295)), contenttype: "json" });
          return { path: `/v4/recentcontact/${p}?${q.toString()}`, headers: { "content-type": "application/json" }, body: mutateJson(r, TENCENT_BODY) };
        },
      });
    }
  }
  const openimPaths = ["/auth/get_admin_token", "/conversation/set_conversations", "/conversation/get_conversations", "/conversation/get_all_conversations", "/conversation/get_owner_conversation", "/conversation/delete_conversations", "/conversation/get_pinned_conversation_ids"];
  for (const p of openimPaths) {
    for (const valid of [true, false]) {
      list.push({
        name: `openim ${p} ${valid ? "token" : "badtoken"}`,
        kind: "openim",
        request: (r) => ({ path: p, headers: { "content-type": "application/json", operationID: "fuzz", token: valid ? token : token.slice(0, Math.floor(r() * token.length)) }, body: mutateJson(r, p === "/auth/get_admin_token" ? { secret: cfg.openim.secret, userID: cfg.openim.admin } : OPENIM_SET) }),
      });
    }
  }
  return list;
}

/** Is this body the vendor's envelope? */
function inEnvelope(kind: Target["kind"], text: string): boolean {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return false;
  }
  if (kind === "zego") return typeof j.Code === "number" && typeof j.RequestId === "string";
  if (kind === "tencent") return (j.ActionStatus === "OK" || j.ActionStatus === "FAIL") && typeof j.ErrorCode === "number";
  if (kind === "openim") return typeof j.errCode === "number" && typeof j.errMsg === "string";
  return true;
}

const BAD_GRPC = new Set(["2", "13", "15"]); // UNKNOWN, INTERNAL, DATA_LOSS

export async function fuzz(cfg: FuzzConfig, onProgress?: (done: number, total: number) => void): Promise<FuzzReport> {
  const list = await targets(cfg);
  const report: FuzzReport = { requests: 0, byTarget: {}, failureCount: 0, failures: [], hangs: 0, maxLatencyMs: 0, elapsedMs: 0 };
  const session = http2.connect(cfg.url);
  session.on("error", () => {});
  const started = performance.now();
  const total = list.length * cfg.perTarget;
  const jobs: { target: Target; r: Rand }[] = [];
  list.forEach((t, ti) => {
    const r = prng(cfg.seed * 7919 + ti);
    for (let i = 0; i < cfg.perTarget; i++) jobs.push({ target: t, r });
  });
  // Interleave targets so a slow route does not run alone at the end.
  const order = prng(cfg.seed);
  for (let i = jobs.length - 1; i > 0; i--) {
    const j = Math.floor(order() * (i + 1));
    [jobs[i], jobs[j]] = [jobs[j]!, jobs[i]!];
  }
  let next = 0;
  const record = (t: Target, status: string, latency: number, failure?: string, body?: Buffer | string) => {
    report.requests++;
    const s = (report.byTarget[t.name] ??= { requests: 0, statuses: {} });
    s.requests++;
    s.statuses[status] = (s.statuses[status] ?? 0) + 1;
    report.maxLatencyMs = Math.max(report.maxLatencyMs, latency);
    if (failure) {
      report.failureCount++;
      if (report.failures.length < 50) report.failures.push({ target: t.name, reason: failure, body: (typeof body === "string" ? body : body?.toString("base64") ?? "").slice(0, 300) });
    }
    if (onProgress && report.requests % 1000 === 0) onProgress(report.requests, total);
  };
  const worker = async () => {
    while (next < jobs.length) {
      const { target, r } = jobs[next++]!;
      const req = target.request(r);
      const t0 = performance.now();
      if (target.kind === "grpc") {
        const outcome = await new Promise<{ status: string; grpc?: string; hang?: boolean }>((resolve) => {
          const st = session.request({ ":method": "POST", ":path": req.path, ...req.headers });
          let status = "-";
          let grpc: string | undefined;
          const timer = setTimeout(() => {
            st.close(http2.constants.NGHTTP2_CANCEL);
            resolve({ status, hang: true });
          }, 5000);
          st.on("response", (h) => {
            status = String(h[":status"]);
            if (h["grpc-status"] !== undefined) grpc = String(h["grpc-status"]);
          });
          st.on("trailers", (h) => {
            if (h["grpc-status"] !== undefined) grpc = String(h["grpc-status"]);
          });
          st.on("data", () => {});
          st.on("error", () => {});
          st.on("close", () => {
            clearTimeout(timer);
            resolve({ status, ...(grpc !== undefined ? { grpc } : {}) });
          });
          st.end(req.body);
        });
        const latency = performance.now() - t0;
        if (outcome.hang) report.hangs++;
        const bad = outcome.hang ? "hang" : Number(outcome.status) >= 500 || outcome.status === "-" ? `HTTP ${outcome.status}` : outcome.grpc === undefined ? "no grpc-status" : BAD_GRPC.has(outcome.grpc) ? `grpc-status ${outcome.grpc}` : undefined;
        record(target, `grpc ${outcome.grpc ?? outcome.status}`, latency, bad, req.body);
        continue;
      }
      try {
        const res = await fetch(`${cfg.url}${req.path}`, { method: "POST", headers: req.headers, body: req.body, signal: AbortSignal.timeout(5000) });
        const text = await res.text();
        const latency = performance.now() - t0;
        const bad = res.status >= 500 ? `HTTP ${res.status}: ${text.slice(0, 200)}` : target.kind !== "connect" && !inEnvelope(target.kind, text) ? `not in the ${target.kind} envelope: ${text.slice(0, 200)}` : undefined;
        record(target, String(res.status), latency, bad, req.body);
      } catch (e) {
        const latency = performance.now() - t0;
        const hang = (e as Error).name === "TimeoutError";
        if (hang) report.hangs++;
        record(target, hang ? "hang" : "error", latency, hang ? "hang" : `request failed: ${(e as Error).message}`, req.body);
      }
    }
  };
  await Promise.all(Array.from({ length: cfg.concurrency ?? 16 }, worker));
  session.close();
  report.elapsedMs = performance.now() - started;
  return report;
}
