/**
 * A seeded HTTP fuzzer for a running convmark on loopback. Used by test/hardening/fuzz.e2e.test.ts
 * (bounded, in `npm test`) and `npm run fuzz` (scripts/fuzz.ts, ≥ 100,000 bodies).
 *
 * Routes: a route is one endpoint of the server, as its clients address it: the RPC method's path
 * for the unified API (whatever the framing), the URL path and verb for REST, the Action or path for
 * the dialects. A route's bodies are dealt in turn over its targets (its framings, or valid and
 * broken auth), each with its own generator and a seed body taken from the request message of its
 * proto (or the vendor document's example where there is one):
 * - every unary method of convmark.v1.MarkService and DirectoryService in four framings: Connect
 *   JSON and Connect binary (HTTP/1.1 and h2c), gRPC frames over h2c (also frames whose length lies)
 *   and gRPC-Web (HTTP/1.1 and h2c);
 * - WatchConversations (server streaming) as gRPC (h2c), Connect streaming JSON and binary, and
 *   gRPC-Web (HTTP/1.1 and h2c): an answer is its end or its first bytes, then the fuzzer cancels;
 * - every REST operation of gen/openapi/openapi.json (/v1: path and query parameters, JSON bodies;
 *   the :watch ones streamed as above), so new ones are fuzzed without touching this file;
 * - every vendor REST route (ZEGO `?Action=` × 5, Tencent recentcontact × 7, OpenIM auth and
 *   conversation × 14, plus an unknown Action and an unknown OpenIM path), correctly signed and
 *   with broken or missing auth, mostly on HTTP/1.1 and partly on h2c;
 * - every vendor RPC method (the dialects' gRPC/Connect services) as Connect JSON with the
 *   vendor's auth in metadata, valid and broken (fewer bodies: they share the parsers above).
 *
 * A response counts as a failure when its HTTP status is ≥ 500, its gRPC status (or Connect
 * end-stream error) is UNKNOWN, INTERNAL or DATA_LOSS (or missing where the call ended), a vendor REST route answers outside its vendor's envelope,
 * or no answer came within 5 s (a hang). Every random choice comes from the seed (mulberry32),
 * so a failing body can be found again with the same seed; only ZEGO timestamps are the clock's.
 *
 * Speed: bodies are made from a per-target generator without cloning whole documents, requests go
 * over keep-alive sockets of a small HTTP/1.1 client (h1-client.ts) and a few HTTP/2 sessions with a fixed number in flight, and
 * hangs are found by one sweeper instead of a timer per request.
 */
import { createHash } from "node:crypto";
import * as http from "node:http";
import * as http2 from "node:http2";
import { createRequire } from "node:module";
import { fromJson, toBinary, type DescMessage, type DescMethod, type DescService, type JsonValue } from "@bufbuild/protobuf";
import { DirectoryService } from "../../gen/convmark/v1/directory_service_pb.js";
import { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { AuthService as OpenimAuthService } from "../../gen/vendor/openim/v1/auth_service_pb.js";
import { ConversationService as OpenimConversationService } from "../../gen/vendor/openim/v1/conversation_service_pb.js";
import { RecentContactService } from "../../gen/vendor/tencent/v1/recent_contact_pb.js";
import { ZimServerService } from "../../gen/vendor/zego/v1/zim_server_pb.js";
import { OPENIM_ADMIN_TOKEN_PATH, OPENIM_PATHS, OPENIM_SET_CONVERSATIONS_PATH } from "../../src/dialects/openim/index.js";
import { TENCENT_PATHS } from "../../src/dialects/tencent/dialect.js";
import { ZEGO_ACTIONS } from "../../src/dialects/zego/dialect.js";
import { DEFAULT_SEMI_SPACE_MB, workerExecArgv } from "../../src/server/heap.js";
import { anyTypeRegistry } from "../../src/service/json-registry.js";
import { H1Pool, type H1Response } from "./h1-client.js";
import { prng } from "./prng.js";
import { SEED_BODY as OPENIM_SEED } from "./openim-seed.js";

/** The credentials the fuzzer signs with, and the server environment that accepts them. */
export const FUZZ_CREDENTIALS = {
  zego: { appId: 1234567890, secret: "0123456789abcdef0123456789abcdef" },
  tencent: { sdkAppId: 1400000000, key: "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e", admin: "administrator" },
  openim: { secret: "openIM123", admin: "imAdmin" },
} as const;

/**
 * Vendor limits raised so that the fuzzer reaches the parsers instead of the rate limiters (ZEGO at
 * its largest, 1,000/s; refused calls are still checked for their envelope).
 */
export const FUZZ_SERVER_ENV: Record<string, string> = {
  ZEGO_APP_ID: String(FUZZ_CREDENTIALS.zego.appId),
  ZEGO_SERVER_SECRET: FUZZ_CREDENTIALS.zego.secret,
  ZEGO_RATE_LIMIT_PER_SECOND: "1000",
  TENCENT_SDKAPPID: String(FUZZ_CREDENTIALS.tencent.sdkAppId),
  TENCENT_SECRET_KEY: FUZZ_CREDENTIALS.tencent.key,
  TENCENT_ADMIN_IDENTIFIERS: FUZZ_CREDENTIALS.tencent.admin,
  TENCENT_RATE_LIMIT_PER_SECOND: "1000000",
  OPENIM_SECRET: FUZZ_CREDENTIALS.openim.secret,
  OPENIM_ADMIN_USER_IDS: FUZZ_CREDENTIALS.openim.admin,
  OPENIM_SECRET_FAILURES_PER_MINUTE: "1000000",
  // A valid WatchConversations answers (a heartbeat) within 100 ms, so the fuzzer can cancel it soon.
  CONVMARK_WATCH_HEARTBEAT_MS: "100",
};

/**
 * The fuzzed server is one process (CONVMARK_WORKERS=1, so that its memory and CPU are one
 * process's), run as each worker of `npm start` runs on this machine: with the young generation
 * the primary gives its workers (src/server/heap.ts; the README's advice for a single process).
 * Side by side, three bursts each, 2026-12-03: 6-9 % less server CPU per body than V8's default
 * (docs/reliability.md).
 */
export const FUZZ_SERVER_NODE_ARGS: readonly string[] = workerExecArgv([], undefined, DEFAULT_SEMI_SPACE_MB);

export interface FuzzConfig {
  readonly url: string;
  readonly seed: number;
  /**
   * Bodies per route named by issue 7 (dealt over its framings or auth variants): every
   * MarkService method (WatchConversations included), every ZEGO Action, Tencent route and OpenIM
   * route.
   */
  readonly perRoute: number;
  /**
   * Bodies per route whose request shapes the routes above already cover: DirectoryService's
   * methods (string lists and IDs, over the same four framings), unknown Actions and paths.
   * Default perRoute / 10.
   */
  readonly perSharedRoute?: number;
  /** Bodies per vendor RPC method (the REST routes' cores behind Connect's parser). Default perRoute / 20. */
  readonly perVendorRpc?: number;
  /** Bodies per REST operation (/v1, from gen/openapi/openapi.json). Default perSharedRoute. */
  readonly perRestRoute?: number;
  /** Requests in flight at once (half on HTTP/1.1 sockets, half on HTTP/2 streams). Default 32. */
  readonly concurrency?: number;
  /** HTTP/2 sessions the h2c requests are spread over. Default 4. */
  readonly h2Sessions?: number;
  /** A request not answered within this is a hang (and is cancelled). Default 5,000 ms. */
  readonly hangMs?: number;
  /**
   * Only the targets whose name (e.g. "grpc convmark.v1.MarkService/…", "zego SetConvMark signed")
   * matches; a route keeps its count, dealt over the targets of it that are left.
   */
  readonly only?: RegExp;
  readonly zego: { appId: number; secret: string };
  readonly tencent: { sdkAppId: number; key: string; admin: string };
  readonly openim: { secret: string; admin: string };
}

export interface FuzzReport {
  requests: number;
  /** Per route: bodies sent and the statuses seen (HTTP status, or "grpc N"). */
  byRoute: Record<string, { requests: number; statuses: Record<string, number> }>;
  /** The same per target: a route's framing ("grpc-web convmark.v1.MarkService/…") or auth ("zego SetConvMark badsig"). */
  byTarget: Record<string, { requests: number; statuses: Record<string, number> }>;
  /** Per transport: h1, h2. */
  byTransport: Record<string, number>;
  /** Every failure counted; the first 50 are kept in failures. */
  failureCount: number;
  failures: { target: string; reason: string; body: string }[];
  hangs: number;
  /**
   * Of the h2c hangs, how many sessions went on answering other streams that started after the hung
   * one (a stall of that stream: a server bug) and how many answered nothing meanwhile (the whole
   * session or process stalled: load, or a stuck event loop).
   */
  h2Hangs: { streamStalled: number; sessionStalled: number };
  /** The longest the fuzzer's own event loop was late (the sweeper's lag): time it was not running does not count towards a hang. */
  clientLagMaxMs: number;
  maxLatencyMs: number;
  elapsedMs: number;
}

type Rand = () => number;
type Kind = "connect" | "connect-stream" | "grpc" | "grpc-web" | "rest" | "zego" | "tencent" | "openim";

interface Req {
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer | string;
  /** Default POST. */
  readonly method?: string;
}

interface Target {
  /** The route it counts for (a URL path or RPC method). */
  readonly route: string;
  /** Which share of bodies the route gets (FuzzConfig perRoute, perSharedRoute, perVendorRpc). */
  readonly tier: "own" | "shared" | "rpc" | "rest";
  readonly name: string;
  readonly kind: Kind;
  /** Share of requests sent over h2c (gRPC: always). */
  readonly h2Share: number;
  /**
   * A server-streaming call (WatchConversations, REST :watch): the answer is taken at its end or at
   * its first response bytes, after which the fuzzer cancels the stream (a watch never ends itself).
   */
  readonly stream?: boolean;
  request(r: Rand): Req;
}

const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

const ODD_STRINGS = ["", " ", "__proto__", "constructor", "toString", "hasOwnProperty", "\u0000", "\ud800", "😀".repeat(50), "a".repeat(300), "x".repeat(5000), "-1", "1e309", "NaN", "null", "{}", "[]", "%00", "../..", "<script>", "si_u1_u2", "sg_g1", "CONVERSATION_TYPE_GROUP", "2024-01-01T00:00:00Z"];
/** The odd strings that may go into a header (printable ASCII). */
const ODD_HEADER_VALUES = ODD_STRINGS.filter((v) => /^[\x20-\x7e]*$/.test(v));
const ODD_NUMBERS = [0, -1, 1, 2, 3, 4, 30, 31, 32, 63, 64, 65, 255, 2 ** 31, 2 ** 31 - 1, 2 ** 32, 2 ** 53, -(2 ** 63), 1e308, 0.5, -0];

function randomBytes(r: Rand, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0;
  return b;
}

function randomValue(r: Rand, depth = 0): JsonValue {
  switch ((r() * 10) | 0) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return pick(r, ODD_NUMBERS);
    case 3:
      return pick(r, ODD_STRINGS);
    case 4:
      return String((r() * 1e6) | 0);
    case 5:
      return depth > 3 ? [] : Array.from({ length: (r() * 4) | 0 }, () => randomValue(r, depth + 1));
    case 6: {
      const o: Record<string, JsonValue> = {};
      if (depth <= 3) for (let i = (r() * 4) | 0; i > 0; i--) defineData(o, pick(r, ODD_STRINGS), randomValue(r, depth + 1));
      return o;
    }
    case 7:
      return "18446744073709551616";
    case 8:
      return (r() * 100) | 0;
    default:
      return randomBytes(r, (r() * 16) | 0).toString("base64");
  }
}

/** An own, enumerable property even for "__proto__" (a plain assignment would set the prototype). */
function defineData(o: Record<string, JsonValue>, k: string, v: JsonValue): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, configurable: true, writable: true });
}

/**
 * A mutated copy of a JSON document: 1-3 edits (a value replaced, a key dropped, an odd key added),
 * copying only the containers on the way to each edit; sometimes the text is corrupted.
 */
function mutateJson(r: Rand, seed: JsonValue): string {
  let doc = seed;
  for (let i = 1 + ((r() * 3) | 0); i > 0; i--) doc = edit(r, doc);
  let text = JSON.stringify(doc) ?? "null";
  const c = r();
  if (c < 0.08) text = text.slice(0, (r() * text.length) | 0);
  else if (c < 0.13) text = text.slice(0, (r() * text.length) | 0) + String.fromCharCode((r() * 256) | 0) + text.slice((r() * text.length) | 0);
  else if (c < 0.15) text = "[".repeat(2000);
  else if (c < 0.16) text = `{"a":${"[".repeat(200)}${"]".repeat(200)}}`;
  return text;
}

function edit(r: Rand, v: JsonValue): JsonValue {
  const descend = r() < 0.65;
  if (Array.isArray(v)) {
    if (v.length === 0 || r() < 0.15) return r() < 0.5 ? randomValue(r) : [...v, randomValue(r)];
    const i = (r() * v.length) | 0;
    const copy = v.slice();
    copy[i] = descend ? edit(r, v[i]!) : randomValue(r);
    return copy;
  }
  if (v !== null && typeof v === "object") {
    const keys = Object.keys(v);
    const copy: Record<string, JsonValue> = {};
    for (const k of keys) defineData(copy, k, v[k]!);
    const op = r();
    if (keys.length === 0 || op < 0.12) defineData(copy, pick(r, ODD_STRINGS), randomValue(r));
    else {
      const k = pick(r, keys);
      if (op < 0.25) delete copy[k];
      else defineData(copy, k, descend ? edit(r, v[k]!) : randomValue(r));
    }
    return copy;
  }
  return randomValue(r);
}

/** Random or mutated protobuf wire bytes. */
function mutateBinary(r: Rand, seed: Uint8Array): Buffer {
  const op = r();
  if (op < 0.2) return randomBytes(r, (r() * 64) | 0);
  const b = Buffer.from(seed);
  if (op < 0.45) return b.subarray(0, (r() * b.length) | 0);
  if (op < 0.8) {
    for (let i = 0; i < 1 + ((r() * 4) | 0) && b.length > 0; i++) b[(r() * b.length) | 0] = (r() * 256) | 0;
    return b;
  }
  // A field with an absurd length, a deep nesting of length-delimited field 1, or an unknown group.
  const tail = pick(r, [Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), Buffer.concat(Array.from({ length: 200 }, () => Buffer.from([0x0a, 0x7f]))), Buffer.from([0xfb, 0xff, 0xff, 0xff, 0x0f]), Buffer.from([0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])]);
  return Buffer.concat([b, tail]);
}

/**
 * A plausible JSON request for a message: every field set once (the first member of each oneof),
 * strings that look like user and conversation IDs, nested messages to depth 3.
 */
export function sampleJson(schema: DescMessage, depth = 0): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  const seenOneofs = new Set<string>();
  for (const f of schema.fields) {
    if (f.oneof) {
      if (seenOneofs.has(f.oneof.name)) continue;
      seenOneofs.add(f.oneof.name);
    }
    const one = (): JsonValue | undefined => {
      switch (f.fieldKind) {
        case "scalar":
          return scalarSample(f.name, f.scalar);
        case "enum":
          return f.enum.values[1]?.name ?? f.enum.values[0]!.name;
        case "message":
          return messageSample(f.message, depth);
        case "list":
          return f.listKind === "scalar" ? [scalarSample(f.name, f.scalar)] : f.listKind === "enum" ? [f.enum.values[1]?.name ?? 0] : wrap(messageSample(f.message, depth));
        case "map":
          return { u1: f.mapKind === "scalar" ? scalarSample(f.name, f.scalar) : f.mapKind === "enum" ? (f.enum.values[1]?.name ?? 0) : (messageSample(f.message, depth) ?? {}) };
      }
    };
    const v = one();
    if (v !== undefined) out[f.jsonName] = v;
  }
  return out;
}

const wrap = (v: JsonValue | undefined): JsonValue | undefined => (v === undefined ? undefined : [v]);

function messageSample(m: DescMessage, depth: number): JsonValue | undefined {
  switch (m.typeName) {
    case "google.protobuf.Timestamp":
      return "2024-01-01T00:00:00Z";
    case "google.protobuf.Duration":
      return "1s";
    case "google.protobuf.FieldMask":
      return "customMark";
    case "google.protobuf.Any":
    case "google.protobuf.Struct":
    case "google.protobuf.Value":
      return undefined;
  }
  if (m.typeName.startsWith("google.protobuf.")) return undefined;
  return depth >= 3 ? {} : sampleJson(m, depth + 1);
}

function scalarSample(name: string, scalar: number): JsonValue {
  // ScalarType: 9 string, 12 bytes, 8 bool; the rest are numbers (64-bit ones as JSON strings).
  if (scalar === 9) return /conversation|conv_?id/i.test(name) ? "si_u1_u2" : /group/i.test(name) ? "g1" : "u1";
  if (scalar === 12) return "AAE=";
  if (scalar === 8) return true;
  if (scalar === 1 || scalar === 2) return 1.5;
  return 1;
}

/** The wire bytes of a seed, when the JSON is valid for the schema; else an empty message. */
function binarySeed(schema: DescMessage, json: JsonValue): Uint8Array {
  try {
    return toBinary(schema, fromJson(schema, json, { registry: anyTypeRegistry, ignoreUnknownFields: true }));
  } catch {
    return new Uint8Array();
  }
}

// The vendors' documented examples, where the fuzzer starts from them instead of a sample.
const DOC_SEEDS: Record<string, JsonValue> = {
  "zego SetConvMark": { FromUserId: "user_test", ConvMarkInfoList: [{ UserId: "userA", SetMarkC2c: { conv_c2c_1: { MarkContent: 2 } }, SetMarkGroup: { g1: { MarkContent: 2 } }, Action: true }] },
  "tencent /v4/recentcontact/mark_contact": { From_Account: "user0", MarkItem: [{ OptType: 3, ContactItem: { Type: 1, To_Account: "user1" }, SetMark: [1, 2, 3], CustomMark: "abcd" }] },
  [`openim ${OPENIM_SET_CONVERSATIONS_PATH}`]: JSON.parse(OPENIM_SEED) as JsonValue,
  "convmark.v1.MarkService/UpdateConversations": { updates: [{ key: { ownerUserId: "alice", type: "CONVERSATION_TYPE_DIRECT", conversationId: "bob" }, setMarks: [1, 2], customMark: "vip", labels: ["a"], settings: { pinned: true } }] },
  "convmark.v1.MarkService/ListConversations": { ownerUserId: "alice", pageSize: 10, filter: { marksAny: [1] } },
};

const pascal = (snake: string) => snake.replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());
const methodOf = (service: DescService, name: string): DescMethod => {
  const m = service.methods.find((x) => x.name === name);
  if (!m) throw new Error(`${service.typeName} has no method ${name}`);
  return m;
};
const unary = (service: DescService) => service.methods.filter((m) => m.methodKind === "unary");

function grpcFrame(r: Rand, payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  // Now and then a frame whose length lies, or a compressed flag without a grpc-encoding.
  head.writeUInt32BE(r() < 0.08 ? payload.length + 1 + ((r() * 64) | 0) : payload.length, 1);
  if (r() < 0.03) head[0] = 1;
  return Buffer.concat([head, payload]);
}

/** A path segment: percent-encoded; a lone surrogate becomes its (invalid UTF-8) CESU-8 bytes. */
function pathSegment(v: string): string {
  try {
    return encodeURIComponent(v);
  } catch {
    return v.replace(/[\ud800-\udfff]/g, "%ED%A0%80").replace(/[^%\w.-]/g, (c) => encodeURIComponent(c));
  }
}

/**
 * One request on a connection of its own, closed after the answer (`connection: close`): nothing
 * the fuzzer sends outside its bursts leaves an idle keep-alive socket that the server counts.
 */
export function once(url: string, method: string, path: string, headers: Record<string, string> = {}, body = ""): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = http.request(`${url}${path}`, { method, agent: false, headers: { ...headers, connection: "close", ...(body ? { "content-length": String(Buffer.byteLength(body)) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      res.on("error", reject);
    });
    r.on("error", reject);
    r.end(body);
  });
}

/**
 * convmark_listener_open by kind, as /metrics reports it (absent on servers without the gauge),
 * less what this very scrape holds: its connection and its request.
 */
export async function listenerOpen(url: string): Promise<Record<string, number> | undefined> {
  const text = await once(url, "GET", "/metrics");
  const open: Record<string, number> = {};
  for (const m of text.matchAll(/^convmark_listener_open\{kind="(\w+)"\} (\d+)$/gm)) open[m[1]!] = Number(m[2]);
  if (Object.keys(open).length === 0) return undefined;
  open.connection = (open.connection ?? 1) - 1;
  open.request = (open.request ?? 1) - 1;
  return open;
}

interface RestOperation {
  readonly method: string;
  readonly path: string;
  readonly rpc: DescMethod;
  readonly query: readonly string[];
  readonly body: boolean;
}

/** The REST operations of gen/openapi/openapi.json, with the RPC each one transcodes to. */
function restOperations(): RestOperation[] {
  const require = createRequire(import.meta.url);
  const doc = require("../../gen/openapi/openapi.json") as { paths: Record<string, Record<string, { operationId: string; requestBody?: unknown; parameters?: { name: string; in: string }[] }>> };
  const services = new Map<string, DescService>([MarkService, DirectoryService].map((s) => [s.name, s]));
  const ops: RestOperation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const [service, name] = op.operationId.replace(/_\d+$/, "").split("_") as [string, string];
      const s = services.get(service);
      if (!s) throw new Error(`openapi.json: ${op.operationId} names no service the fuzzer knows`);
      ops.push({ method: method.toUpperCase(), path, rpc: methodOf(s, name), query: (op.parameters ?? []).filter((p) => p.in === "query").map((p) => p.name), body: op.requestBody !== undefined });
    }
  }
  return ops;
}

/** Every target: a route and the way its body is sent (protocol, auth variant). */
export async function targets(cfg: FuzzConfig): Promise<Target[]> {
  const require = createRequire(import.meta.url);
  const TLS = require("tls-sig-api-v2") as { Api: new (id: number, key: string) => { genUserSig(id: string, exp: number): string } };
  const usersig = new TLS.Api(cfg.tencent.sdkAppId, cfg.tencent.key).genUserSig(cfg.tencent.admin, 86400);
  const tokenRes = await once(cfg.url, "POST", OPENIM_ADMIN_TOKEN_PATH, { "content-type": "application/json", operationID: "fuzz" }, JSON.stringify({ secret: cfg.openim.secret, userID: cfg.openim.admin }));
  const token = (JSON.parse(tokenRes) as { data: { token: string } }).data.token;
  const list: Target[] = [];

  // The unified API: every unary method, four ways.
  for (const service of [MarkService, DirectoryService]) {
    for (const m of unary(service)) {
      const procedure = `${service.typeName}/${m.name}`;
      const path = `/${procedure}`;
      const json = DOC_SEEDS[procedure] ?? sampleJson(m.input);
      const bin = binarySeed(m.input, json);
      const tier = service === MarkService ? "own" : "shared";
      // One route (the method's path) in four framings, each a target of its own (lean route JSON,
      // protobuf, gRPC envelopes, gRPC-Web): the route's bodies are dealt over them in turn.
      for (const t of [
        { protocol: "connect-json", kind: "connect", h2Share: 0.3, request: (r: Rand) => ({ path, headers: { "content-type": "application/json" }, body: mutateJson(r, json) }) },
        { protocol: "connect-proto", kind: "connect", h2Share: 0.3, request: (r: Rand) => ({ path, headers: { "content-type": "application/proto" }, body: mutateBinary(r, bin) }) },
        { protocol: "grpc", kind: "grpc", h2Share: 1, request: (r: Rand) => ({ path, headers: { "content-type": "application/grpc", te: "trailers" }, body: grpcFrame(r, mutateBinary(r, bin)) }) },
        { protocol: "grpc-web", kind: "grpc-web", h2Share: 0.3, request: (r: Rand) => ({ path, headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" }, body: grpcFrame(r, mutateBinary(r, bin)) }) },
      ] as const) {
        list.push({ route: procedure, tier, name: `${t.protocol} ${procedure}`, kind: t.kind, h2Share: t.h2Share, request: t.request });
      }
    }
  }

  // WatchConversations (server streaming): gRPC (h2c), Connect streaming JSON and binary, gRPC-Web
  // (HTTP/1.1 and h2c). Mostly owners with a cursor-less or garbled request; the server's heartbeat
  // (FUZZ_SERVER_ENV) makes a valid watch answer within 100 ms, then the fuzzer cancels it.
  {
    const m = MarkService.method.watchConversations;
    const procedure = `${MarkService.typeName}/${m.name}`;
    const path = `/${procedure}`;
    const json = { ownerUserId: "u1", cursor: "" };
    const bin = binarySeed(m.input, json);
    const tier = "own";
    const envelope = (r: Rand, payload: Buffer) => grpcFrame(r, payload);
    list.push({ route: procedure, tier, name: `connect-stream-json ${procedure}`, kind: "connect-stream", h2Share: 0.5, stream: true, request: (r) => ({ path, headers: { "content-type": "application/connect+json" }, body: envelope(r, Buffer.from(mutateJson(r, json))) }) });
    list.push({ route: procedure, tier, name: `connect-stream-proto ${procedure}`, kind: "connect-stream", h2Share: 0.5, stream: true, request: (r) => ({ path, headers: { "content-type": "application/connect+proto" }, body: envelope(r, mutateBinary(r, bin)) }) });
    list.push({ route: procedure, tier, name: `grpc ${procedure}`, kind: "grpc", h2Share: 1, stream: true, request: (r) => ({ path, headers: { "content-type": "application/grpc", te: "trailers" }, body: envelope(r, mutateBinary(r, bin)) }) });
    list.push({ route: procedure, tier, name: `grpc-web ${procedure}`, kind: "grpc-web", h2Share: 0.5, stream: true, request: (r) => ({ path, headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" }, body: envelope(r, mutateBinary(r, bin)) }) });
  }

  // The REST API (/v1, google.api.http), every operation of gen/openapi/openapi.json: path
  // parameters, query parameters and JSON bodies, each sometimes replaced by odd values.
  for (const op of restOperations()) {
    const route = `rest ${op.method} ${op.path}`;
    const input = op.rpc.input;
    const json = DOC_SEEDS[`${op.rpc.parent.typeName}/${op.rpc.name}`] ?? sampleJson(input);
    const value = (r: Rand, name: string): string => {
      if (r() < 0.25) return pick(r, ODD_STRINGS);
      if (/type$/.test(name)) return pick(r, ["1", "2", "CONVERSATION_TYPE_GROUP", "0"]);
      if (/page_size/.test(name)) return pick(r, ["1", "10", "1000"]);
      if (/marks_|labels/.test(name)) return pick(r, ["1", "2", "x"]);
      if (/pinned/.test(name)) return pick(r, ["true", "false", "1"]);
      return /group/.test(name) ? "g1" : /conversation_id/.test(name) ? "si_u1_u2" : "u1";
    };
    list.push({
      route,
      tier: "rest",
      name: route,
      kind: "rest",
      h2Share: 0.3,
      stream: op.rpc.methodKind === "server_streaming",
      request: (r) => {
        const path = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => (r() < 0.05 ? pick(r, ["%zz", "..", "%2F", ""]) : pathSegment(value(r, name))));
        const query = new URLSearchParams();
        for (const q of op.query) if (r() < 0.5) query.append(q, value(r, q));
        if (r() < 0.1) query.append(pick(r, ODD_HEADER_VALUES) || "x", pick(r, ODD_HEADER_VALUES));
        const qs = query.toString();
        return { method: op.method, path: qs ? `${path}?${qs}` : path, headers: op.body ? { "content-type": "application/json" } : ({} as Record<string, string>), body: op.body ? mutateJson(r, json) : "" };
      },
    });
  }

  // ZEGO: one path, the Action in the query, md5(AppId + SignatureNonce + ServerSecret + Timestamp).
  const zegoAuth = (r: Rand, valid: boolean, odd: readonly string[] = ODD_STRINGS): Record<string, string> => {
    const nonce = randomBytes(r, 8).toString("hex");
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = createHash("md5").update(`${cfg.zego.appId}${nonce}${cfg.zego.secret}${ts}`).digest("hex");
    const p: Record<string, string> = { AppId: String(cfg.zego.appId), SignatureNonce: nonce, Timestamp: ts, SignatureVersion: "2.0", Signature: sig };
    if (!valid) {
      const broken = pick(r, ["AppId", "Timestamp", "Signature", "SignatureNonce", "SignatureVersion"]);
      if (r() < 0.5) delete p[broken];
      else p[broken] = broken === "Signature" ? sig.replace(/./, sig[0] === "0" ? "1" : "0") : pick(r, odd);
    }
    return p;
  };
  for (const action of [...ZEGO_ACTIONS, "NoSuchAction"]) {
    const route = `zego ${action}`;
    const input = ZEGO_ACTIONS.includes(action as never) ? methodOf(ZimServerService, action).input : undefined;
    const json = DOC_SEEDS[route] ?? (input ? sampleJson(input) : {});
    for (const valid of [true, false]) {
      list.push({
        route,
        tier: input ? "own" : "shared",
        name: `${route} ${valid ? "signed" : "badsig"}`,
        kind: "zego",
        h2Share: 0.2,
        request: (r) => ({ path: `/?${new URLSearchParams({ Action: action, ...zegoAuth(r, valid) }).toString()}`, headers: { "content-type": "application/json" }, body: mutateJson(r, json) }),
      });
    }
  }

  // Tencent: UserSig (tls-sig-api-v2) for the admin in the query string.
  const tencentAuth = (r: Rand, valid: boolean, odd: readonly string[] = ODD_STRINGS): Record<string, string> => {
    const p: Record<string, string> = { sdkappid: String(cfg.tencent.sdkAppId), identifier: cfg.tencent.admin, usersig, random: String((r() * 4294967295) >>> 0), contenttype: "json" };
    if (!valid) {
      const broken = pick(r, ["sdkappid", "identifier", "usersig", "usersig", "random", "contenttype"]);
      if (r() < 0.4) delete p[broken];
      else p[broken] = broken === "usersig" ? usersig.slice(0, (r() * usersig.length) | 0) : pick(r, odd);
    }
    return p;
  };
  for (const path of Object.values(TENCENT_PATHS)) {
    const route = `tencent ${path}`;
    const json = DOC_SEEDS[route] ?? sampleJson(methodOf(RecentContactService, pascal(path.split("/").pop()!)).input);
    for (const valid of [true, false]) {
      list.push({
        route,
        tier: "own",
        name: `${route} ${valid ? "signed" : "badsig"}`,
        kind: "tencent",
        h2Share: 0.2,
        request: (r) => ({ path: `${path}?${new URLSearchParams(tencentAuth(r, valid)).toString()}`, headers: { "content-type": "application/json" }, body: mutateJson(r, json) }),
      });
    }
  }

  // OpenIM: operationID and token headers; get_admin_token takes the secret in the body.
  const openimHeaders = (r: Rand, valid: boolean): Record<string, string> => {
    const h: Record<string, string> = { "content-type": "application/json", operationID: `fuzz${(r() * 1e9) | 0}`, token };
    if (!valid) {
      const broken = pick(r, ["operationID", "token", "token"]);
      if (r() < 0.4) delete h[broken];
      else h[broken] = broken === "token" ? token.slice(0, (r() * token.length) | 0) : pick(r, ODD_HEADER_VALUES);
    }
    return h;
  };
  const openimRoutes: [string, DescMethod | undefined][] = [
    [OPENIM_ADMIN_TOKEN_PATH, methodOf(OpenimAuthService, "GetAdminToken")],
    [OPENIM_SET_CONVERSATIONS_PATH, methodOf(OpenimConversationService, "SetConversations")],
    ...Object.values(OPENIM_PATHS).map((p): [string, DescMethod] => [p, methodOf(p.startsWith("/auth/") ? OpenimAuthService : OpenimConversationService, pascal(p.split("/").pop()!))]),
    ["/conversation/no_such_api", undefined],
  ];
  for (const [path, m] of openimRoutes) {
    const route = `openim ${path}`;
    const json = path === OPENIM_ADMIN_TOKEN_PATH ? { secret: cfg.openim.secret, userID: cfg.openim.admin } : (DOC_SEEDS[route] ?? (m ? sampleJson(m.input) : {}));
    const tier = m ? "own" : "shared";
    for (const valid of [true, false]) {
      list.push({ route, tier, name: `${route} ${valid ? "token" : "badtoken"}`, kind: "openim", h2Share: 0.2, request: (r) => ({ path, headers: openimHeaders(r, valid), body: mutateJson(r, json) }) });
    }
  }

  // The vendors' RPC services (Connect JSON; auth in metadata, lower-cased).
  const lower = (o: Record<string, string>) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k.toLowerCase(), v]));
  const vendorRpc: [DescService, (r: Rand, valid: boolean) => Record<string, string>][] = [
    [ZimServerService, (r, valid) => lower(zegoAuth(r, valid, ODD_HEADER_VALUES))],
    [RecentContactService, (r, valid) => tencentAuth(r, valid, ODD_HEADER_VALUES)],
    [OpenimAuthService, (r, valid) => lower(openimHeaders(r, valid))],
    [OpenimConversationService, (r, valid) => lower(openimHeaders(r, valid))],
  ];
  for (const [service, auth] of vendorRpc) {
    for (const m of unary(service)) {
      const route = `${service.typeName}/${m.name}`;
      const json = sampleJson(m.input);
      for (const valid of [true, false]) {
        list.push({ route, tier: "rpc", name: `connect-json ${route} ${valid ? "auth" : "badauth"}`, kind: "connect", h2Share: 0.3, request: (r) => ({ path: `/${route}`, headers: { ...auth(r, valid), "content-type": "application/json" }, body: mutateJson(r, json) }) });
      }
    }
  }
  return list;
}

/** Is this body the vendor's envelope? */
function inEnvelope(kind: Kind, text: string): boolean {
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
const BAD_CONNECT = new Set(["unknown", "internal", "data_loss", "unparsable end-stream message"]);

/** The error code of a Connect streaming answer's end-stream message ("ok" without error), if it came. */
function connectEndStreamCode(body: Buffer): string | undefined {
  for (let i = 0; i + 5 <= body.length; ) {
    const len = body.readUInt32BE(i + 1);
    if (body[i]! & 0x02) {
      try {
        const end = JSON.parse(body.subarray(i + 5, i + 5 + len).toString("utf8")) as { error?: { code?: string } };
        return end.error ? String(end.error.code) : "ok";
      } catch {
        return "unparsable end-stream message";
      }
    }
    i += 5 + len;
  }
  return undefined;
}

/** grpc-status of a gRPC-Web answer: in the headers (trailers-only) or in the trailer frame of the body. */
function grpcWebStatus(headers: http.IncomingHttpHeaders | http2.IncomingHttpHeaders, body: Buffer): string | undefined {
  if (headers["grpc-status"] !== undefined) return String(headers["grpc-status"]);
  for (let i = 0; i + 5 <= body.length; ) {
    const len = body.readUInt32BE(i + 1);
    if (body[i]! & 0x80) return /grpc-status:\s*(\d+)/i.exec(body.subarray(i + 5, i + 5 + len).toString("latin1"))?.[1];
    i += 5 + len;
  }
  return undefined;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders | http2.IncomingHttpHeaders;
  trailers?: http2.IncomingHttpHeaders;
  body: Buffer;
  hang?: boolean;
  error?: string;
  /** A stream the fuzzer cancelled after its first response bytes (no status to judge yet). */
  cut?: boolean;
}

interface Pending {
  deadline: number;
  cancel(): void;
}

/** Per HTTP/2 session: streams answered so far, to tell a stalled stream from a stalled session. */
interface SessionProgress {
  answered: number;
}

/** Keep-alive HTTP/1.1 connections (h1-client.ts) and a few HTTP/2 sessions; one sweeper cancels what takes longer than hangMs. */
const SWEEP_MS = 100;

class Transports {
  private readonly pool: H1Pool;
  private readonly sessions: (http2.ClientHttp2Session | undefined)[];
  private readonly pending = new Set<Pending>();
  private readonly sweeper: NodeJS.Timeout;
  private nextSession = 0;
  private readonly host: string;
  private readonly port: number;

  constructor(
    private readonly url: string,
    sockets: number,
    sessions: number,
    private readonly hangMs: number,
  ) {
    const u = new URL(url);
    this.host = u.hostname;
    this.port = Number(u.port);
    this.pool = new H1Pool(this.host, this.port, sockets);
    this.sessions = Array.from({ length: sessions }, () => undefined);
    // A sweep that comes late means this process was not running (2 cores shared under load): the
    // time it lost is added to every deadline, and a request past its deadline is cancelled only
    // after the I/O already waiting has been read (setImmediate runs after the poll phase), so an
    // answer sitting in a socket buffer is not taken for a hang.
    let lastSweep = performance.now();
    this.sweeper = setInterval(() => {
      const now = performance.now();
      const lag = now - lastSweep - SWEEP_MS;
      lastSweep = now;
      if (lag > 0) this.lagMaxMs = Math.max(this.lagMaxMs, lag);
      const late: Pending[] = [];
      for (const p of this.pending) {
        if (lag > 20) p.deadline += lag;
        if (now > p.deadline) late.push(p);
      }
      if (late.length > 0) setImmediate(() => late.forEach((p) => this.pending.has(p) && p.cancel()));
    }, SWEEP_MS);
  }

  /** See FuzzReport.clientLagMaxMs. */
  lagMaxMs = 0;
  /** See FuzzReport.h2Hangs. */
  readonly h2Hangs = { streamStalled: 0, sessionStalled: 0 };
  private readonly progress = new WeakMap<http2.ClientHttp2Session, SessionProgress>();

  private session(): http2.ClientHttp2Session {
    const i = this.nextSession++ % this.sessions.length;
    let s = this.sessions[i];
    if (!s || s.closed || s.destroyed) {
      s = http2.connect(this.url);
      s.on("error", () => {});
      this.sessions[i] = s;
    }
    return s;
  }

  send(req: Req, h2: boolean, stream = false): Promise<Answer> {
    return h2 ? this.h2(req, stream) : this.h1(req, stream);
  }

  private h1(req: Req, stream: boolean): Promise<Answer> {
    return new Promise((resolve) => {
      const body = typeof req.body === "string" ? Buffer.from(req.body) : req.body;
      let settled = false;
      let call: { done: Promise<H1Response>; cancel(): void } | undefined;
      const p: Pending = {
        deadline: performance.now() + this.hangMs,
        cancel: () => {
          done({ status: 0, headers: {}, body: Buffer.alloc(0), hang: true });
          call?.cancel();
        },
      };
      const done = (a: Answer): void => {
        if (settled) return;
        settled = true;
        this.pending.delete(p);
        resolve(a);
      };
      try {
        const method = req.method ?? "POST";
        const headers = method === "GET" && body.length === 0 ? req.headers : { ...req.headers, "content-length": String(body.length) };
        call = this.pool.request({ method, path: req.path, headers, body, stream });
      } catch (e) {
        done({ status: 0, headers: {}, body: Buffer.alloc(0), error: (e as Error).message });
        return;
      }
      call.done.then(
        (res) => done({ status: res.status, headers: res.headers, body: res.body, ...(res.cut ? { cut: true } : {}) }),
        (e: Error) => done({ status: 0, headers: {}, body: Buffer.alloc(0), error: e.message }),
      );
      this.pending.add(p);
    });
  }

  private h2(req: Req, stream: boolean): Promise<Answer> {
    return new Promise((resolve) => {
      let settled = false;
      let st: http2.ClientHttp2Stream;
      const p: Pending = {
        deadline: performance.now() + this.hangMs,
        cancel: () => {
          // Did the session answer streams meanwhile (more than were in flight when this one started)?
          if (progress) this.h2Hangs[progress.answered - answeredBefore > 32 ? "streamStalled" : "sessionStalled"]++;
          done({ status: 0, headers: {}, body: Buffer.alloc(0), hang: true });
          st?.close(http2.constants.NGHTTP2_CANCEL);
        },
      };
      const done = (a: Answer): void => {
        if (settled) return;
        settled = true;
        this.pending.delete(p);
        if (!a.hang && progress) progress.answered++;
        resolve(a);
      };
      let progress: SessionProgress | undefined;
      let answeredBefore = 0;
      try {
        const session = this.session();
        progress = this.progress.get(session);
        if (!progress) this.progress.set(session, (progress = { answered: 0 }));
        answeredBefore = progress.answered;
        st = session.request({ ":method": req.method ?? "POST", ":path": req.path, ...req.headers });
      } catch (e) {
        done({ status: 0, headers: {}, body: Buffer.alloc(0), error: (e as Error).message });
        return;
      }
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders | undefined;
      const chunks: Buffer[] = [];
      st.on("response", (h) => (headers = h));
      st.on("trailers", (h) => (trailers = h));
      st.on("data", (c: Buffer) => {
        chunks.push(c);
        if (stream && !settled) {
          done({ status: Number(headers[":status"] ?? 0), headers, body: Buffer.concat(chunks), cut: true });
          st.close(http2.constants.NGHTTP2_CANCEL);
        }
      });
      st.on("error", () => {});
      st.on("close", () => {
        const status = Number(headers[":status"] ?? 0);
        done({ status, headers, ...(trailers ? { trailers } : {}), body: Buffer.concat(chunks), ...(status === 0 ? { error: `stream closed without a response (RST ${st.rstCode})` } : {}) });
      });
      this.pending.add(p);
      if ((req.method ?? "POST") === "GET" && req.body.length === 0) st.end();
      else st.end(req.body);
    });
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const s of this.sessions) s?.close();
    this.pool.close();
  }
}

/** Counts one answer under `key` (a route or a target). */
function tally(into: FuzzReport["byRoute"], key: string, status: string): void {
  const s = (into[key] ??= { requests: 0, statuses: {} });
  s.requests++;
  s.statuses[status] = (s.statuses[status] ?? 0) + 1;
}

/** Sends perRoute / perSharedRoute / perVendorRpc bodies to every route, interleaved. */
export async function fuzz(cfg: FuzzConfig, onProgress?: (done: number, total: number) => void): Promise<FuzzReport> {
  const list = (await targets(cfg)).filter((t) => !cfg.only || cfg.only.test(t.name));
  const report: FuzzReport = { requests: 0, byRoute: {}, byTarget: {}, byTransport: {}, failureCount: 0, failures: [], hangs: 0, h2Hangs: { streamStalled: 0, sessionStalled: 0 }, clientLagMaxMs: 0, maxLatencyMs: 0, elapsedMs: 0 };
  const concurrency = cfg.concurrency ?? 32;
  const net = new Transports(cfg.url, Math.ceil(concurrency / 2), cfg.h2Sessions ?? 4, cfg.hangMs ?? 5000);
  const shared = cfg.perSharedRoute ?? Math.ceil(cfg.perRoute / 10);
  const per = { own: cfg.perRoute, shared, rpc: cfg.perVendorRpc ?? Math.ceil(cfg.perRoute / 20), rest: cfg.perRestRoute ?? shared };

  // A route's bodies are dealt round-robin over its targets; each target has its own generator.
  const byRoute = new Map<string, number[]>();
  list.forEach((t, i) => byRoute.set(t.route, [...(byRoute.get(t.route) ?? []), i]));
  const schedule: number[] = [];
  for (const ts of byRoute.values()) {
    const n = per[list[ts[0]!]!.tier];
    for (let i = 0; i < n; i++) schedule.push(ts[i % ts.length]!);
  }
  // Interleave, so a slow route does not run alone at the end.
  const order = prng(cfg.seed);
  for (let i = schedule.length - 1; i > 0; i--) {
    const j = Math.floor(order() * (i + 1));
    [schedule[i], schedule[j]] = [schedule[j]!, schedule[i]!];
  }
  const gens = list.map((_, ti) => prng(cfg.seed * 7919 + ti));
  // Transport choices have their own generator: a target's bodies do not depend on which lane sent them.
  const lanes = prng(cfg.seed * 31 + 1);
  const total = schedule.length;

  const record = (t: Target, transport: string, status: string, latency: number, failure?: string, body?: Buffer | string) => {
    report.requests++;
    report.byTransport[transport] = (report.byTransport[transport] ?? 0) + 1;
    tally(report.byRoute, t.route, status);
    tally(report.byTarget, t.name, status);
    if (latency > report.maxLatencyMs) report.maxLatencyMs = latency;
    if (failure) {
      report.failureCount++;
      if (report.failures.length < 50) report.failures.push({ target: `${t.name} (${transport})`, reason: failure, body: (typeof body === "string" ? body : (body?.toString("base64") ?? "")).slice(0, 300) });
    }
    if (onProgress && report.requests % 1000 === 0) onProgress(report.requests, total);
  };

  const started = performance.now();
  let next = 0;
  const worker = async (h2Lane: boolean) => {
    while (next < schedule.length) {
      const ti = schedule[next++]!;
      const target = list[ti]!;
      const req = target.request(gens[ti]!);
      // Half the lanes speak h2c; a target goes there with its h2 share, gRPC always.
      const h2 = target.h2Share === 1 || (target.h2Share > 0 && h2Lane && lanes() < target.h2Share * 2);
      const t0 = performance.now();
      const a = await net.send(req, h2, target.stream === true);
      const latency = performance.now() - t0;
      const transport = h2 ? "h2" : "h1";
      if (a.hang) {
        report.hangs++;
        record(target, transport, "hang", latency, "hang", req.body);
        continue;
      }
      if (a.error !== undefined && a.status === 0) {
        record(target, transport, "error", latency, `request failed: ${a.error}`, req.body);
        continue;
      }
      if (target.kind === "grpc" || target.kind === "grpc-web") {
        const g = target.kind === "grpc" ? (a.trailers?.["grpc-status"] ?? a.headers["grpc-status"]) : grpcWebStatus(a.headers, a.body);
        const grpc = g === undefined ? undefined : String(g);
        const bad =
          a.status >= 500
            ? `HTTP ${a.status}`
            : grpc === undefined
              ? a.cut
                ? undefined
                : `no grpc-status (HTTP ${a.status})`
              : BAD_GRPC.has(grpc)
                ? `grpc-status ${grpc}: ${String(a.trailers?.["grpc-message"] ?? a.headers["grpc-message"] ?? "")}`
                : undefined;
        record(target, transport, grpc !== undefined ? `grpc ${grpc}` : a.cut ? "stream" : `grpc ${a.status}`, latency, bad, req.body);
        continue;
      }
      if (target.kind === "connect-stream") {
        const code = a.status === 200 ? connectEndStreamCode(a.body) : undefined;
        const bad = a.status >= 500 ? `HTTP ${a.status}` : code !== undefined && BAD_CONNECT.has(code) ? `end-stream error ${code}` : a.status === 200 && code === undefined && !a.cut ? "no end-stream message" : undefined;
        record(target, transport, a.status !== 200 ? String(a.status) : (code ?? (a.cut ? "stream" : "end")), latency, bad, req.body);
        continue;
      }
      const text = a.body.toString("utf8");
      const bad = a.status >= 500 ? `HTTP ${a.status}: ${text.slice(0, 200)}` : target.kind !== "connect" && !inEnvelope(target.kind, text) ? `not in the ${target.kind} envelope (HTTP ${a.status}): ${text.slice(0, 200)}` : undefined;
      record(target, transport, String(a.status), latency, bad, req.body);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i % 2 === 1)));
  net.close();
  report.h2Hangs = { ...net.h2Hangs };
  report.clientLagMaxMs = Math.round(net.lagMaxMs);
  report.elapsedMs = performance.now() - started;
  return report;
}
