/**
 * The lean unary route (src/server/unary-route.ts) against connect-node, differentially: the same
 * requests (valid, malformed, refused, compressed, oversize, every error path) go to a server with
 * the route and to one without it (leanUnary: false), over HTTP/1.1 and HTTP/2, Connect and gRPC;
 * status, headers, trailers and bodies must be the same (update times aside), and so must
 * /metrics afterwards. A second part puts the route in front of a recording `next`, to show which
 * requests it serves itself and that those it hands on reach connect-node with their body intact.
 */
import { fromBinary, toJson, type DescMessage } from "@bufbuild/protobuf";
import { SignJWT } from "jose";
import * as http from "node:http";
import * as http2 from "node:http2";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import { pino } from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DirectoryService } from "../../gen/convmark/v1/directory_service_pb.js";
import { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { createAuthenticator, createCallAuthorizer } from "../../src/auth/index.js";
import { authConfigFromEnv } from "../../src/auth/config.js";
import { coreConfigFromEnv } from "../../src/config.js";
import { createHealthRegistry, createHealthService, ServingStatus } from "../../src/server/health.js";
import { createRpcRecorder } from "../../src/server/interceptors.js";
import type { NodeHandlerFn } from "../../src/server/listener.js";
import { leanUnaryRoute } from "../../src/server/unary-route.js";
import { anyTypeRegistry } from "../../src/service/json-registry.js";
import { createMarkService } from "../../src/service/mark-service.js";
import { openSqliteStore } from "../../src/store/sqlite-store.js";
import { startTestServer, type TestServer } from "../support/harness.js";

interface Wire {
  status: number;
  headers: Record<string, string>;
  trailers: Record<string, string>;
  body: Buffer;
}

interface Req {
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer | string;
  readonly method?: string;
  /** HTTP/1.1: send the body in chunks without a content-length. */
  readonly chunked?: boolean;
}

const flat = (h: http.IncomingHttpHeaders | http2.IncomingHttpHeaders): Record<string, string> => {
  const o: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !k.startsWith(":")) o[k] = Array.isArray(v) ? v.join(", ") : String(v);
  return o;
};

function h1(port: number, r: Req): Promise<Wire> {
  return new Promise((resolve, reject) => {
    const body = r.body === undefined ? undefined : Buffer.from(r.body);
    const headers: Record<string, string> = { ...r.headers };
    if (body && !r.chunked) headers["content-length"] = String(body.length);
    const req = http.request({ host: "127.0.0.1", port, path: r.path, method: r.method ?? "POST", headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: flat(res.headers), trailers: flat(res.trailers), body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body && r.chunked) {
      for (let i = 0; i < body.length; i += 1000) req.write(body.subarray(i, i + 1000));
      req.end();
    } else req.end(body);
  });
}

function h2(session: http2.ClientHttp2Session, r: Req): Promise<Wire> {
  return new Promise((resolve, reject) => {
    const body = r.body === undefined ? undefined : Buffer.from(r.body);
    const stream = session.request({ ":method": r.method ?? "POST", ":path": r.path, ...r.headers });
    let status = 0;
    let headers: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      headers = flat(h);
    });
    stream.on("trailers", (t) => (trailers = flat(t)));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve({ status, headers, trailers, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    stream.end(body);
  });
}

const OUTPUT = new Map<string, DescMessage>(
  [MarkService, DirectoryService, Health].flatMap((s) => s.methods.map((m) => [`/${s.typeName}/${m.name}`, m.output] as const)),
);

/** A response as compared: the body decompressed and decoded, update times replaced (they differ between the two servers). */
function comparable(path: string, w: Wire): unknown {
  const { date: _date, ...headers } = w.headers;
  let body = w.body;
  if (w.headers["content-length"] !== undefined) expect(Number(w.headers["content-length"])).toBe(body.length);
  delete headers["content-length"];
  const encoding = w.headers["content-encoding"];
  if (encoding === "gzip") body = gunzipSync(body);
  else if (encoding === "br") body = brotliDecompressSync(body);
  const type = w.headers["content-type"] ?? "";
  let decoded: unknown = body.toString("base64");
  const schema = OUTPUT.get(path.split("?")[0]!);
  const stripTimes = (json: string) => json.replace(/"updateTime":"[^"]*"/g, '"updateTime":"T"');
  if (type.startsWith("application/json")) decoded = JSON.parse(stripTimes(body.toString("utf8")));
  else if (type === "application/proto" && w.status === 200 && schema) decoded = JSON.parse(stripTimes(JSON.stringify(toJson(schema, fromBinary(schema, body)))));
  else if (type.startsWith("application/grpc") && schema) {
    const frames: unknown[] = [];
    for (let at = 0; at + 5 <= body.length; ) {
      const len = body.readUInt32BE(at + 1);
      let payload = body.subarray(at + 5, at + 5 + len);
      if (body[at]! & 0x80) {
        frames.push({ trailer: payload.toString() });
        at += 5 + len;
        continue;
      }
      if (body[at]! & 1) payload = w.headers["grpc-encoding"] === "br" ? brotliDecompressSync(payload) : gunzipSync(payload);
      frames.push({ flags: body[at]! & 1, message: JSON.parse(stripTimes(JSON.stringify(toJson(schema, fromBinary(schema, payload))))) });
      at += 5 + len;
    }
    decoded = frames;
  }
  return { status: w.status, headers, trailers: w.trailers, body: decoded };
}

const SECRET = "unary-route-differential-test-secret-0123456789";
const token = (sub: string, scope?: string) =>
  new SignJWT(scope ? { scope } : {})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setExpirationTime("1h")
    .sign(new TextEncoder().encode(SECRET));

const U = MarkService.typeName;
const D = DirectoryService.typeName;
const H = Health.typeName;
const json = { "content-type": "application/json" };
const proto = { "content-type": "application/proto" };
const grpcH = { "content-type": "application/grpc", te: "trailers" };
const env = (payload: Buffer, flags = 0) => {
  const b = Buffer.alloc(5 + payload.length);
  b[0] = flags;
  b.writeUInt32BE(payload.length, 1);
  payload.copy(b, 5);
  return b;
};
const update = (owner: string, conv: string, marks: number[]) =>
  JSON.stringify({ updates: [{ key: { ownerUserId: owner, type: "CONVERSATION_TYPE_DIRECT", conversationId: conv }, setMarks: marks, customMark: "c".repeat(250) }] });
// UpdateConversationsRequest{updates:[{key:{owner_user_id:"p",type:1,conversation_id:"c"},set_marks:[3]}]} in protobuf
const updateProto = Buffer.from([0x0a, 0x0d, 0x0a, 0x08, 0x0a, 0x01, 0x70, 0x10, 0x01, 0x1a, 0x01, 0x63, 0x12, 0x01, 0x03]);
const getProto = Buffer.from([0x0a, 0x08, 0x0a, 0x01, 0x70, 0x10, 0x01, 0x1a, 0x01, 0x63]);

/** The requests both servers get, in order (writes included, so both stores go through the same states). */
function cases(tokens: { alice: string; bob: string; service: string }): { name: string; req: Req; h2?: boolean }[] {
  const list: { name: string; req: Req; h2?: boolean }[] = [];
  const both = (name: string, req: Req) => {
    list.push({ name: `${name} (h1)`, req });
    list.push({ name: `${name} (h2)`, req, h2: true });
  };
  const alice = { authorization: `Bearer ${tokens.alice}` };
  const service = { authorization: `Bearer ${tokens.service}` };
  both("valid update, JSON", { path: `/${U}/UpdateConversations`, headers: { ...json, ...alice, "connect-protocol-version": "1" }, body: update("alice", "a1", [1]) });
  both("valid update, charset", { path: `/${U}/UpdateConversations`, headers: { "content-type": "application/json; charset=utf-8", ...alice }, body: update("alice", "a2", [2]) });
  both("valid update, proto", { path: `/${U}/UpdateConversations`, headers: { ...proto, ...service }, body: updateProto });
  both("get, proto", { path: `/${U}/GetConversation`, headers: { ...proto, ...service }, body: getProto });
  both("get, not found", { path: `/${U}/GetConversation`, headers: { ...json, ...alice }, body: JSON.stringify({ key: { ownerUserId: "alice", type: 1, conversationId: "none" } }) });
  both("unknown JSON fields are ignored", { path: `/${U}/ListConversations`, headers: { ...json, ...alice }, body: JSON.stringify({ ownerUserId: "alice", nope: 1 }) });
  both("invalid JSON", { path: `/${U}/UpdateConversations`, headers: { ...json, ...alice }, body: "{" });
  both("JSON of the wrong shape", { path: `/${U}/UpdateConversations`, headers: { ...json, ...alice }, body: '{"updates":5}' });
  both("invalid protobuf", { path: `/${U}/UpdateConversations`, headers: { ...proto, ...alice }, body: Buffer.from([0x0a, 0xff, 0xff]) });
  // Malformed messages: answered by the route itself (INVALID_ARGUMENT, counted), exactly as connect-node.
  const L = `/${U}/ListConversations`;
  const G = `/${U}/GetConversation`;
  both("empty JSON body", { path: L, headers: { ...json, ...alice }, body: "" });
  both("JSON null", { path: L, headers: { ...json, ...alice }, body: "null" });
  both("JSON array", { path: L, headers: { ...json, ...alice }, body: "[]" });
  both("truncated JSON", { path: L, headers: { ...json, ...alice }, body: '{"ownerUserId":"al' });
  both("JSON string for a number", { path: L, headers: { ...json, ...alice }, body: '{"ownerUserId":"alice","pageSize":"x"}' });
  both("JSON number for a string", { path: L, headers: { ...json, ...alice }, body: '{"ownerUserId":5}' });
  both("JSON string in a repeated int", { path: `/${U}/UpdateConversations`, headers: { ...json, ...alice }, body: '{"updates":[{"setMarks":["a"]}]}' });
  both("JSON unknown enum name", { path: G, headers: { ...json, ...alice }, body: '{"key":{"ownerUserId":"alice","type":"NOPE","conversationId":"a"}}' });
  both("JSON unknown field with a bad value", { path: L, headers: { ...json, ...alice }, body: '{"ownerUserId":"alice","nope":{"x":[}}' });
  both("JSON duplicate oneof", { path: L, headers: { ...json, ...alice }, body: '{"ownerUserId":"alice","filter":{"marksAny":[1],"marksAny":[2]}}' });
  both("JSON deep nesting", { path: L, headers: { ...json, ...alice }, body: `{"a":${"[".repeat(200)}${"]".repeat(200)}}` });
  both("bad UTF-8 in JSON (decoded with U+FFFD)", { path: L, headers: { ...json, ...alice }, body: Buffer.concat([Buffer.from('{"ownerUserId":"al'), Buffer.from([0xff]), Buffer.from('"}')]) });
  both("bad UTF-8 in invalid JSON", { path: L, headers: { ...json, ...alice }, body: Buffer.concat([Buffer.from('{"ownerUserId":'), Buffer.from([0xff])]) });
  both("gzip JSON that does not parse", { path: L, headers: { ...json, ...alice, "content-encoding": "gzip" }, body: gzipSync("{") });
  both("invalid JSON, gzip error response", { path: L, headers: { ...json, ...alice, "accept-encoding": "gzip" }, body: `{"${"x".repeat(300)}` });
  both("invalid JSON without a token", { path: L, headers: { ...json }, body: "{" });
  both("truncated varint", { path: L, headers: { ...proto, ...alice }, body: Buffer.from([0x10, 0x80]) });
  both("truncated length-delimited field", { path: L, headers: { ...proto, ...alice }, body: Buffer.from([0x0a, 0x05, 0x61]) });
  both("wrong wire type for a string", { path: L, headers: { ...proto, ...alice }, body: Buffer.from([0x08, 0x01]) });
  both("wrong wire type for a message", { path: G, headers: { ...proto, ...alice }, body: Buffer.from([0x08, 0x01]) });
  both("fixed64 cut short", { path: L, headers: { ...proto, ...alice }, body: Buffer.from([0x09, 0x01, 0x02]) });
  both("invalid wire type 7", { path: L, headers: { ...proto, ...alice }, body: Buffer.from([0x0f, 0x01]) });
  both("field number 0", { path: L, headers: { ...proto, ...alice }, body: Buffer.from([0x00, 0x01]) });
  both("unterminated group", { path: L, headers: { ...proto, ...alice }, body: Buffer.from([0xfb, 0xff, 0xff, 0xff, 0x0f]) });
  both("varint of 11 bytes", { path: L, headers: { ...proto, ...alice }, body: Buffer.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]) });
  both("bad UTF-8 in a protobuf string", { path: G, headers: { ...proto, ...alice }, body: Buffer.from([0x0a, 0x07, 0x0a, 0x01, 0xff, 0x10, 0x01, 0x1a, 0x00]) });
  both("unknown protobuf fields", { path: L, headers: { ...proto, ...alice }, body: Buffer.from([0x0a, 0x05, ...Buffer.from("alice"), 0xa0, 0x06, 0x01]) });
  both("invalid protobuf without a token", { path: L, headers: { ...proto }, body: Buffer.from([0x0a, 0xff]) });
  both("invalid health check, proto", { path: `/${H}/Check`, headers: proto, body: Buffer.from([0x0a, 0x05]) });
  both("wrong content type", { path: `/${U}/UpdateConversations`, headers: { "content-type": "text/plain", ...alice }, body: "{}" });
  both("no content type", { path: `/${U}/UpdateConversations`, headers: { ...alice }, body: "{}" });
  both("oversize body", { path: `/${U}/UpdateConversations`, headers: { ...json, ...alice }, body: update("alice", "big", [1]).replace("c".repeat(250), "c".repeat(5000)) });
  list.push({ name: "oversize chunked body (h1)", req: { path: `/${U}/UpdateConversations`, headers: { ...json, ...alice }, body: update("alice", "big", [1]).replace("c".repeat(250), "c".repeat(5000)), chunked: true } });
  list.push({ name: "chunked body (h1)", req: { path: `/${U}/UpdateConversations`, headers: { ...json, ...alice }, body: update("alice", "a3", [3]), chunked: true } });
  both("missing token", { path: `/${U}/UpdateConversations`, headers: { ...json }, body: update("alice", "a1", [4]) });
  both("malformed authorization", { path: `/${U}/UpdateConversations`, headers: { ...json, authorization: "Basic eA==" }, body: update("alice", "a1", [4]) });
  both("bad token", { path: `/${U}/UpdateConversations`, headers: { ...json, authorization: "Bearer a.b.c" }, body: update("alice", "a1", [4]) });
  both("another owner's conversation (per item)", { path: `/${U}/UpdateConversations`, headers: { ...json, authorization: `Bearer ${tokens.bob}` }, body: update("alice", "a1", [5]) });
  both("another owner's get", { path: `/${U}/GetConversation`, headers: { ...json, authorization: `Bearer ${tokens.bob}` }, body: JSON.stringify({ key: { ownerUserId: "alice", type: 1, conversationId: "a1" } }) });
  both("restore needs a service token", { path: `/${U}/RestoreConversations`, headers: { ...json, ...alice }, body: JSON.stringify({ conversations: [] }) });
  both("empty updates", { path: `/${U}/UpdateConversations`, headers: { ...json, ...alice }, body: "{}" });
  both("bad page token", { path: `/${U}/ListConversations`, headers: { ...json, ...alice }, body: JSON.stringify({ ownerUserId: "alice", pageToken: "!!" }) });
  both("directory with a user token", { path: `/${D}/GetUsers`, headers: { ...json, ...alice }, body: JSON.stringify({ userIds: ["alice"] }) });
  both("directory with a service token", { path: `/${D}/GetUsers`, headers: { ...json, ...service }, body: JSON.stringify({ userIds: ["alice"] }) });
  both("connect-timeout-ms 0", { path: `/${U}/ListConversations`, headers: { ...json, ...alice, "connect-timeout-ms": "0" }, body: JSON.stringify({ ownerUserId: "alice" }) });
  both("invalid connect-timeout-ms", { path: `/${U}/ListConversations`, headers: { ...json, ...alice, "connect-timeout-ms": "soon" }, body: JSON.stringify({ ownerUserId: "alice" }) });
  both("gzip request", { path: `/${U}/UpdateConversations`, headers: { ...json, ...alice, "content-encoding": "gzip" }, body: gzipSync(update("alice", "g1", [1])) });
  both("gzip request that is not gzip", { path: `/${U}/UpdateConversations`, headers: { ...json, ...alice, "content-encoding": "gzip" }, body: "{}" });
  both("unknown request encoding", { path: `/${U}/UpdateConversations`, headers: { ...json, ...alice, "content-encoding": "zstd" }, body: "{}" });
  both("gzip response", { path: `/${U}/ListConversations`, headers: { ...json, ...alice, "accept-encoding": "gzip" }, body: JSON.stringify({ ownerUserId: "alice" }) });
  both("br response", { path: `/${U}/ListConversations`, headers: { ...json, ...alice, "accept-encoding": "br, gzip" }, body: JSON.stringify({ ownerUserId: "alice" }) });
  both("compressed error response", { path: `/${U}/ListConversations`, headers: { ...json, ...alice, "accept-encoding": "gzip" }, body: JSON.stringify({ ownerUserId: "x".repeat(400) }) });
  both("GET", { method: "GET", path: `/${U}/ListConversations?connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify({ ownerUserId: "alice" }))}`, headers: { ...alice } });
  both("query string on POST", { path: `/${U}/ListConversations?x=1`, headers: { ...json, ...alice }, body: JSON.stringify({ ownerUserId: "alice" }) });
  both("unknown method", { path: `/${U}/Nope`, headers: { ...json, ...alice }, body: "{}" });
  both("streaming method over Connect unary", { path: `/${U}/WatchConversations`, headers: { ...json, ...alice }, body: "{}" });
  // gRPC: HTTP/2 only (on HTTP/1.1 it goes to connect-node, compared too).
  const g = (name: string, req: Req) => list.push({ name: `gRPC ${name}`, req, h2: true });
  g("valid update", { path: `/${U}/UpdateConversations`, headers: { ...grpcH, ...service }, body: env(updateProto) });
  g("valid update, +proto, grpc-js accept-encoding", { path: `/${U}/UpdateConversations`, headers: { ...grpcH, "content-type": "application/grpc+proto", "grpc-accept-encoding": "identity,deflate,gzip", ...service }, body: env(updateProto) });
  g("gzip-compressed message", { path: `/${U}/GetConversation`, headers: { ...grpcH, "grpc-encoding": "gzip", ...service }, body: env(gzipSync(getProto), 1) });
  g("compressed flag without encoding", { path: `/${U}/GetConversation`, headers: { ...grpcH, ...service }, body: env(gzipSync(getProto), 1) });
  g("compressed flag, not gzip", { path: `/${U}/GetConversation`, headers: { ...grpcH, "grpc-encoding": "gzip", ...service }, body: env(getProto, 1) });
  g("unknown encoding", { path: `/${U}/GetConversation`, headers: { ...grpcH, "grpc-encoding": "zstd", ...service }, body: env(getProto) });
  g("invalid protobuf", { path: `/${U}/GetConversation`, headers: { ...grpcH, ...service }, body: env(Buffer.from([0x0a, 0xff])) });
  g("empty body", { path: `/${U}/GetConversation`, headers: { ...grpcH, ...service }, body: Buffer.alloc(0) });
  g("two messages", { path: `/${U}/GetConversation`, headers: { ...grpcH, ...service }, body: Buffer.concat([env(getProto), env(getProto)]) });
  g("incomplete envelope", { path: `/${U}/GetConversation`, headers: { ...grpcH, ...service }, body: env(getProto).subarray(0, 8) });
  g("truncated varint", { path: L, headers: { ...grpcH, ...service }, body: env(Buffer.from([0x10, 0x80])) });
  g("wrong wire type", { path: G, headers: { ...grpcH, ...service }, body: env(Buffer.from([0x08, 0x01])) });
  g("bad UTF-8 in a string", { path: G, headers: { ...grpcH, ...service }, body: env(Buffer.from([0x0a, 0x07, 0x0a, 0x01, 0xff, 0x10, 0x01, 0x1a, 0x00])) });
  g("invalid protobuf without a token", { path: G, headers: { ...grpcH }, body: env(Buffer.from([0x0a, 0xff])) });
  g("invalid protobuf, gzip-compressed", { path: G, headers: { ...grpcH, "grpc-encoding": "gzip", ...service }, body: env(gzipSync(Buffer.from([0x0a, 0xff])), 1) });
  g("invalid protobuf, compressed response offered", { path: G, headers: { ...grpcH, "grpc-accept-encoding": "gzip", ...service }, body: env(Buffer.from([0x0a, 0xff])) });
  g("compressed flag without encoding, invalid protobuf", { path: G, headers: { ...grpcH, ...service }, body: env(Buffer.from([0x0a, 0xff]), 1) });
  g("envelope length too long", { path: G, headers: { ...grpcH, ...service }, body: Buffer.concat([env(getProto).subarray(0, 1), Buffer.from([0, 0, 0, 40]), getProto]) });
  g("envelope length too short", { path: G, headers: { ...grpcH, ...service }, body: Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), getProto]) });
  g("end-stream flag", { path: G, headers: { ...grpcH, ...service }, body: env(getProto, 0x02) });
  g("trailer flag", { path: G, headers: { ...grpcH, ...service }, body: env(getProto, 0x80) });
  g("unknown flag bits", { path: G, headers: { ...grpcH, ...service }, body: env(getProto, 0x04) });
  g("four-byte body", { path: G, headers: { ...grpcH, ...service }, body: Buffer.from([0, 0, 0, 0]) });
  g("empty envelope", { path: `/${H}/Check`, headers: grpcH, body: env(Buffer.alloc(0)) });
  g("invalid message, then a second envelope", { path: G, headers: { ...grpcH, ...service }, body: Buffer.concat([env(Buffer.from([0x0a, 0xff])), env(getProto)]) });
  g("oversize envelope length", { path: G, headers: { ...grpcH, ...service }, body: Buffer.concat([Buffer.from([0, 0xff, 0xff, 0xff, 0xff]), getProto]) });
  g("oversize message", { path: `/${U}/UpdateConversations`, headers: { ...grpcH, ...service }, body: env(Buffer.alloc(5000, 0)) });
  g("not found (error with grpc-message)", { path: `/${U}/GetConversation`, headers: { ...grpcH, ...service }, body: env(Buffer.from([0x0a, 0x08, 0x0a, 0x01, 0x70, 0x10, 0x01, 0x1a, 0x01, 0x7a])) });
  g("missing token", { path: `/${U}/GetConversation`, headers: { ...grpcH }, body: env(getProto) });
  g("grpc-timeout", { path: `/${U}/GetConversation`, headers: { ...grpcH, ...service, "grpc-timeout": "1n" }, body: env(getProto) });
  g("invalid grpc-timeout", { path: `/${U}/GetConversation`, headers: { ...grpcH, ...service, "grpc-timeout": "1x" }, body: env(getProto) });
  g("compressed response", { path: `/${U}/ListConversations`, headers: { ...grpcH, ...service, "grpc-accept-encoding": "gzip" }, body: env(Buffer.from([0x0a, 0x05, ...Buffer.from("alice")])) });
  g("directory, user token", { path: `/${D}/GetUsers`, headers: { ...grpcH, ...alice }, body: env(Buffer.from([0x0a, 0x01, 0x61])) });
  // grpc.health.v1.Health: Check and List (unary, no auth), Watch (streaming, handed on).
  both("health check", { path: `/${H}/Check`, headers: json, body: "{}" });
  both("health check of a service", { path: `/${H}/Check`, headers: { ...json, ...alice }, body: JSON.stringify({ service: U }) });
  both("health check, proto", { path: `/${H}/Check`, headers: proto, body: Buffer.alloc(0) });
  both("health check of an unknown service", { path: `/${H}/Check`, headers: json, body: JSON.stringify({ service: "nope.v1.Nope" }) });
  both("health check, invalid JSON", { path: `/${H}/Check`, headers: json, body: "{" });
  both("health check, gzip response", { path: `/${H}/Check`, headers: { ...json, "accept-encoding": "gzip" }, body: "{}" });
  both("health list", { path: `/${H}/List`, headers: json, body: "{}" });
  both("health watch over Connect unary", { path: `/${H}/Watch`, headers: json, body: "{}" });
  g("health check", { path: `/${H}/Check`, headers: grpcH, body: env(Buffer.alloc(0)) });
  g("health check, grpc-js accept-encoding", { path: `/${H}/Check`, headers: { ...grpcH, "content-type": "application/grpc+proto", "grpc-accept-encoding": "identity,deflate,gzip" }, body: env(Buffer.alloc(0)) });
  g("health check of a service", { path: `/${H}/Check`, headers: grpcH, body: env(Buffer.from([0x0a, U.length, ...Buffer.from(U)])) });
  g("health check of an unknown service", { path: `/${H}/Check`, headers: grpcH, body: env(Buffer.from([0x0a, 0x04, ...Buffer.from("nope")])) });
  g("health check, invalid protobuf", { path: `/${H}/Check`, headers: grpcH, body: env(Buffer.from([0x0a, 0xff])) });
  g("health list", { path: `/${H}/List`, headers: grpcH, body: env(Buffer.alloc(0)) });
  g("gRPC-Web", { path: `/${U}/GetConversation`, headers: { "content-type": "application/grpc-web+proto", ...service }, body: env(getProto) });
  list.push({ name: "gRPC over HTTP/1.1", req: { path: `/${U}/GetConversation`, headers: { ...grpcH, ...service }, body: env(getProto) } });
  return list;
}

const metricsOf = async (port: number, authorization?: string): Promise<string[]> => {
  const w = await h1(port, { method: "GET", path: "/metrics", headers: authorization ? { authorization } : {} });
  expect(w.status).toBe(200);
  return w.body
    .toString()
    .split("\n")
    .filter((l) => /^grpc_server_(started|handled)_total|^grpc_server_handling_seconds_count/.test(l));
};

describe("lean unary route vs connect-node", () => {
  const limits = { CONVMARK_READ_MAX_BYTES: "4096", CONVMARK_COMPRESS_MIN_BYTES: "200" };
  let lean: TestServer, plain: TestServer, leanProtected: TestServer, plainProtected: TestServer;
  const sessions: http2.ClientHttp2Session[] = [];
  let tokens: { alice: string; bob: string; service: string };
  beforeAll(async () => {
    const jwt = { ...limits, CONVMARK_AUTH_JWT_SECRET: SECRET };
    [lean, plain, leanProtected, plainProtected] = await Promise.all([
      startTestServer(jwt),
      startTestServer(jwt, { leanUnary: false }),
      startTestServer(limits),
      startTestServer(limits, { leanUnary: false }),
    ]);
    tokens = { alice: await token("alice"), bob: await token("bob"), service: await token("svc", "convmark:service") };
  });
  afterAll(async () => {
    for (const s of sessions) s.close();
    await Promise.all([lean, plain, leanProtected, plainProtected].map((s) => s?.close()));
  });
  const session = (port: number) => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    sessions.push(s);
    return s;
  };

  it("answers every request exactly as connect-node does, and counts the same in /metrics", async () => {
    const [a, b] = [session(lean.port), session(plain.port)];
    const list = cases(tokens);
    const served = new Set<number>();
    for (const c of list) {
      const [x, y] = await Promise.all([c.h2 ? h2(a, c.req) : h1(lean.port, c.req), c.h2 ? h2(b, c.req) : h1(plain.port, c.req)]);
      served.add(x.status);
      expect(comparable(c.req.path, x), c.name).toEqual(comparable(c.req.path, y));
    }
    // The cases cover success and the error statuses (both protocols).
    expect([...served].sort()).toEqual(expect.arrayContaining([200, 400, 401, 403, 404, 415]));
    const auth = `Bearer ${tokens.service}`;
    const [ma, mb] = await Promise.all([metricsOf(lean.port, auth), metricsOf(plain.port, auth)]);
    expect(ma.length).toBeGreaterThan(10);
    expect(ma).toEqual(mb);
    // Malformed requests are counted (connect-node's withRequestParseErrors), refused calls too.
    for (const code of ["OK", "InvalidArgument", "Unauthenticated", "PermissionDenied", "NotFound"]) {
      expect(ma.some((l) => l.startsWith("grpc_server_handled_total") && l.includes(`grpc_code="${code}"`) && !l.endsWith(" 0")), code).toBe(true);
    }
  });

  it("refuses the same calls in protected mode (a non-loopback Host) and serves loopback ones", async () => {
    const [a, b] = [session(leanProtected.port), session(plainProtected.port)];
    const reqs: { req: Req; h2?: boolean }[] = [
      { req: { path: `/${U}/ListConversations`, headers: { ...json }, body: JSON.stringify({ ownerUserId: "alice" }) } },
      { req: { path: `/${U}/ListConversations`, headers: { ...json, host: "convmark.example.com" }, body: JSON.stringify({ ownerUserId: "alice" }) } },
      { req: { path: `/${U}/ListConversations`, headers: { ...json, ":authority": "convmark.example.com" } as never, body: JSON.stringify({ ownerUserId: "alice" }) }, h2: true },
      { req: { path: `/${D}/GetUsers`, headers: { ...grpcH, ":authority": "convmark.example.com" } as never, body: env(Buffer.from([0x0a, 0x01, 0x61])) }, h2: true },
      { req: { path: `/${D}/GetUsers`, headers: { ...grpcH }, body: env(Buffer.from([0x0a, 0x01, 0x61])) }, h2: true },
    ];
    const statuses: string[] = [];
    for (const c of reqs) {
      const [x, y] = await Promise.all([c.h2 ? h2(a, c.req) : h1(leanProtected.port, c.req), c.h2 ? h2(b, c.req) : h1(plainProtected.port, c.req)]);
      statuses.push(`${x.status}/${x.trailers["grpc-status"] ?? "-"}`);
      expect(comparable(c.req.path, x)).toEqual(comparable(c.req.path, y));
    }
    expect(statuses).toEqual(["200/-", "403/-", "403/-", "200/7", "200/0"]);
  });
});

describe("lean unary route: graceful shutdown", () => {
  it("answers a call in flight when the server starts closing (HTTP/1.1 and HTTP/2), on both routes alike", async () => {
    const answers: string[] = [];
    for (const leanUnary of [true, false]) {
      const server = await startTestServer({}, { leanUnary });
      const body = Buffer.from(update("shut", "c1", [1]));
      const session = http2.connect(`http://127.0.0.1:${server.port}`);
      // Both calls send half their body, the server starts closing, then the rest follows.
      const h2call = new Promise<Wire>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": `/${U}/UpdateConversations`, "content-type": "application/json", "content-length": String(body.length) });
        const chunks: Buffer[] = [];
        let status = 0;
        stream.on("response", (h) => (status = Number(h[":status"])));
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => resolve({ status, headers: {}, trailers: {}, body: Buffer.concat(chunks) }));
        stream.on("error", reject);
        stream.write(body.subarray(0, 20));
        setTimeout(() => stream.end(body.subarray(20)), 300);
      });
      const h1call = new Promise<Wire>((resolve, reject) => {
        const req = http.request(
          { host: "127.0.0.1", port: server.port, path: `/${U}/UpdateConversations`, method: "POST", headers: { "content-type": "application/json", "content-length": String(body.length) }, agent: false },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve({ status: res.statusCode!, headers: flat(res.headers), trailers: {}, body: Buffer.concat(chunks) }));
          },
        );
        req.on("error", reject);
        req.write(body.subarray(0, 20));
        setTimeout(() => req.end(body.subarray(20)), 300);
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const closed = server.close();
      const [a, b] = await Promise.all([h1call, h2call]);
      await closed;
      session.close();
      for (const w of [a, b]) answers.push(`${leanUnary ? "lean" : "connect-node"} ${w.status} ${JSON.parse(w.body.toString()).results?.length ?? "-"} ${w.headers.connection ?? ""}`);
    }
    expect(answers).toEqual(["lean 200 1 close", "lean 200 1 ", "connect-node 200 1 close", "connect-node 200 1 "]);
  });
});

describe("lean unary route: what it serves and what it hands on", () => {
  const dir = mkdtempSync(join(tmpdir(), "convmark-unary-route-"));
  const core = coreConfigFromEnv({ CONVMARK_DATA_DIR: dir });
  const store = openSqliteStore({ path: join(dir, "m.db"), limits: { maxMarkedPerOwner: core.limits.maxMarkedPerOwner, maxLabelsPerConversation: core.limits.maxLabelsPerConversation } });
  const handedOn: { path: string; body: Buffer }[] = [];
  const health = createHealthRegistry([U]);
  // connect-node's place: reads the body as connect-node does (the request's async iterator).
  const next: NodeHandlerFn = (req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
      handedOn.push({ path: req.url ?? "", body: Buffer.concat(chunks) });
      res.writeHead(299);
      res.end();
    })();
  };
  const route = leanUnaryRoute({
    services: [
      { service: MarkService, impl: createMarkService({ store, limits: core.limits }) },
      { service: Health, impl: createHealthService(health) },
    ],
    authorize: createCallAuthorizer(createAuthenticator(authConfigFromEnv({ CONVMARK_AUTH: "off" })), { perOwner: [U], serviceOnly: [D] }),
    record: createRpcRecorder(pino({ level: "silent" }), new Registry()),
    readMaxBytes: 4096,
    compressMinBytes: 1 << 20,
    jsonOptions: { registry: anyTypeRegistry },
  })(next);
  const server = http.createServer(route);
  let port = 0;
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves well-formed unary calls itself, and answers the malformed messages in them", async () => {
    handedOn.length = 0;
    const a = await h1(port, { path: `/${U}/UpdateConversations`, headers: json, body: update("o", "c", [1]) });
    expect(a.status, a.body.toString()).toBe(200);
    expect(JSON.parse(a.body.toString()).results[0].changed, a.body.toString()).toBe(true);
    const b = await h1(port, { path: `/${U}/UpdateConversations`, headers: { ...json, "content-encoding": "gzip" }, body: gzipSync(update("o", "c", [2])), chunked: true });
    expect(b.status).toBe(200);
    const c = await h1(port, { path: `/${U}/GetConversation`, headers: json, body: JSON.stringify({ key: { ownerUserId: "o", type: 1, conversationId: "nope" } }) });
    expect([c.status, JSON.parse(c.body.toString()).code]).toEqual([404, "not_found"]);
    const d = await h1(port, { path: `/${H}/Check`, headers: json, body: JSON.stringify({ service: U }) });
    expect([d.status, d.body.toString()]).toEqual([200, '{"status":"SERVING"}']);
    health.set(U, ServingStatus.NOT_SERVING);
    const e = await h1(port, { path: `/${H}/Check`, headers: json, body: JSON.stringify({ service: U }) });
    expect([e.status, e.body.toString()]).toEqual([200, '{"status":"NOT_SERVING"}']);
    // Malformed messages in well-formed requests are answered here too.
    const f = await h1(port, { path: `/${U}/UpdateConversations`, headers: json, body: "{" });
    expect([f.status, JSON.parse(f.body.toString()).code]).toEqual([400, "invalid_argument"]);
    const g = await h1(port, { path: `/${U}/UpdateConversations`, headers: proto, body: Buffer.from([0x0a, 0xff]), chunked: true });
    expect([g.status, JSON.parse(g.body.toString())]).toEqual([400, { code: "invalid_argument", message: "parse binary: premature EOF" }]);
    expect(handedOn).toEqual([]);
  });

  it("hands on everything else, with the body as sent, also when it had read part of it", async () => {
    handedOn.length = 0;
    const big = update("o", "c", [1]).replace("c".repeat(250), "c".repeat(9000));
    const sent: [Req, string][] = [
      [{ path: `/${U}/UpdateConversations`, headers: json, body: big, chunked: true }, "oversize, chunked"],
      [{ path: `/${U}/UpdateConversations`, headers: json, body: big }, "oversize content-length"],
      [{ path: `/${U}/UpdateConversations`, headers: { ...json, "content-encoding": "gzip" }, body: "{}" }, "not gzip"],
      [{ path: `/${U}/UpdateConversations`, headers: { ...json, "content-encoding": "zstd" }, body: "{}" }, "unknown encoding"],
      [{ path: `/${U}/UpdateConversations`, headers: { ...json, "connect-timeout-ms": "x" }, body: "{}" }, "bad timeout"],
      [{ path: `/${U}/UpdateConversations`, headers: { "content-type": "application/connect+json" }, body: "{}" }, "streaming content type"],
      [{ path: `/${U}/UpdateConversations`, headers: grpcH, body: env(updateProto) }, "gRPC on HTTP/1.1"],
      [{ path: `/${U}/WatchConversations`, headers: json, body: "{}" }, "streaming method"],
      [{ path: `/${H}/Watch`, headers: json, body: "{}" }, "streaming health method"],
      [{ path: `/${U}/Nope`, headers: json, body: "{}" }, "unknown path"],
      [{ path: `/${U}/ListConversations`, method: "PUT", headers: json, body: "{}" }, "other method"],
    ];
    for (const [req, name] of sent) {
      const w = await h1(port, req);
      expect(w.status, name).toBe(299);
    }
    expect(handedOn.map((h) => h.body.toString("base64"))).toEqual(sent.map(([r]) => Buffer.from(r.body ?? "").toString("base64")));
  });
});
