// Issue 7 (item 5, continued), against the real server on loopback: a streaming or enveloped call
// whose request carries no message, or two, is the client's fault: INVALID_ARGUMENT in the caller's
// protocol, never UNIMPLEMENTED (connect-es' "protocol error: missing input message"), and counted
// as such in /metrics.
import * as http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/harness.js";

const WATCH = "/convmark.v1.MarkService/WatchConversations";
const HEALTH_WATCH = "/grpc.health.v1.Health/Watch";
const HEALTH_CHECK = "/grpc.health.v1.Health/Check";
const SYNC = "/convmark.v1.MarkService/SyncConversations";
// WatchConversationsRequest { owner_user_id: "u1" }; an empty message is a valid HealthCheckRequest.
const WATCH_REQ = Buffer.from([0x0a, 0x02, 0x75, 0x31]);

const envelope = (payload: Buffer, flags = 0) => {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
};

type Protocol = "connect" | "grpc-web" | "grpc";
const CONTENT_TYPE: Record<Protocol, string> = { connect: "application/connect+proto", "grpc-web": "application/grpc-web+proto", grpc: "application/grpc+proto" };
const UNARY_CONTENT_TYPE: Record<Exclude<Protocol, "connect">, string> = { "grpc-web": "application/grpc-web+proto", grpc: "application/grpc+proto" };

/** The call's status, in the protocol's own terms: a Connect error code name, or a grpc-status number. */
interface Answer {
  readonly httpStatus: number;
  readonly status: string;
}

/** Reads the status from a response body and headers/trailers of any of the three protocols. */
function statusOf(protocol: Protocol, headers: Record<string, string | undefined>, trailers: Record<string, string | undefined>, body: Buffer): string {
  if (protocol === "grpc") return trailers["grpc-status"] ?? headers["grpc-status"] ?? "none";
  if (protocol === "grpc-web") {
    if (headers["grpc-status"] !== undefined) return headers["grpc-status"];
    return /grpc-status: ?(\d+)/.exec(body.toString("latin1"))?.[1] ?? "none";
  }
  // Connect streaming: the end-of-stream envelope (flag 0x02) holds {"error": {"code": ...}} or {}.
  for (let at = 0; at + 5 <= body.length; ) {
    const flags = body[at]!;
    const len = body.readUInt32BE(at + 1);
    const payload = body.subarray(at + 5, at + 5 + len);
    at += 5 + len;
    if (flags & 0x02) {
      const end = JSON.parse(payload.toString("utf8")) as { error?: { code?: string } };
      return end.error?.code ?? "ok";
    }
  }
  return "none";
}

async function overHttp1(server: TestServer, protocol: Protocol, path: string, body: Buffer, contentType = CONTENT_TYPE[protocol]): Promise<Answer> {
  const r = await fetch(`${server.url}${path}`, {
    method: "POST",
    headers: { "content-type": contentType, ...(protocol === "grpc-web" ? { "x-grpc-web": "1" } : {}) },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  const bytes = Buffer.from(await r.arrayBuffer());
  return { httpStatus: r.status, status: statusOf(protocol, Object.fromEntries(r.headers), {}, bytes) };
}

function overHttp2(session: http2.ClientHttp2Session, protocol: Protocol, path: string, body: Buffer, contentType = CONTENT_TYPE[protocol]): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" });
    const timer = setTimeout(() => {
      req.close();
      reject(new Error(`no answer within 10 s (${protocol} ${path})`));
    }, 10_000);
    let headers: Record<string, string | undefined> = {};
    let trailers: Record<string, string | undefined> = {};
    const chunks: Buffer[] = [];
    req.on("response", (h) => (headers = h as Record<string, string | undefined>));
    req.on("trailers", (t) => (trailers = t as Record<string, string | undefined>));
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.on("end", () => {
      clearTimeout(timer);
      resolve({ httpStatus: Number(headers[":status"]), status: statusOf(protocol, headers, trailers, Buffer.concat(chunks)) });
    });
    req.end(body);
  });
}

/** What INVALID_ARGUMENT looks like in each protocol. */
const INVALID: Record<Protocol, string> = { connect: "invalid_argument", "grpc-web": "3", grpc: "3" };
const OK: Record<Protocol, string> = { connect: "ok", "grpc-web": "0", grpc: "0" };

describe("a request with no message or two is INVALID_ARGUMENT, not UNIMPLEMENTED", () => {
  let server: TestServer;
  let session: http2.ClientHttp2Session;
  beforeAll(async () => {
    // Streams end after the first heartbeat-free moment: a short grace so close() does not wait.
    server = await startTestServer({ CONVMARK_SHUTDOWN_GRACE_MS: "500" });
    session = http2.connect(server.url);
    session.on("error", () => {});
  });
  afterAll(async () => {
    session?.close();
    await server?.close();
  });

  const bodies = { none: Buffer.alloc(0), two: Buffer.concat([envelope(WATCH_REQ), envelope(WATCH_REQ)]) };

  describe.each([
    ["Connect streaming over HTTP/1.1", "connect", 1],
    ["Connect streaming over HTTP/2", "connect", 2],
    ["gRPC-Web over HTTP/1.1", "grpc-web", 1],
    ["gRPC-Web over HTTP/2", "grpc-web", 2],
    ["gRPC over HTTP/2 (the lean Watch route)", "grpc", 2],
  ] as const)("WatchConversations, %s", (_name, protocol, version) => {
    const call = (path: string, body: Buffer) => (version === 1 ? overHttp1(server, protocol, path, body) : overHttp2(session, protocol, path, body));
    it.each(Object.keys(bodies) as (keyof typeof bodies)[])("%s request message(s)", async (count) => {
      const a = await call(WATCH, bodies[count]);
      expect(a.status).toBe(INVALID[protocol]);
      expect(a.httpStatus).toBe(200);
    });
  });

  // gRPC over HTTP/2 to connect-node (Health.Watch does not take the lean route).
  it.each(Object.keys(bodies) as (keyof typeof bodies)[])("Health.Watch over gRPC (connect-node on HTTP/2), %s request message(s)", async (count) => {
    const body = count === "two" ? Buffer.concat([envelope(Buffer.alloc(0)), envelope(Buffer.alloc(0))]) : bodies.none;
    const a = await overHttp2(session, "grpc", HEALTH_WATCH, body);
    expect(a.status).toBe("3");
  });

  // Unary calls in the enveloped protocols: connect-es checks the count before any interceptor runs.
  describe.each([
    ["gRPC-Web over HTTP/1.1", "grpc-web", 1],
    ["gRPC-Web over HTTP/2", "grpc-web", 2],
    ["gRPC over HTTP/2", "grpc", 2],
  ] as const)("unary, %s", (_name, protocol, version) => {
    const call = (path: string, body: Buffer) =>
      version === 1 ? overHttp1(server, protocol, path, body, UNARY_CONTENT_TYPE[protocol]) : overHttp2(session, protocol, path, body, UNARY_CONTENT_TYPE[protocol]);
    it.each([
      ["Health.Check", HEALTH_CHECK],
      ["MarkService.SyncConversations", SYNC],
    ])("%s with no message, or two", async (_m, path) => {
      expect((await call(path, Buffer.alloc(0))).status).toBe(INVALID[protocol]);
      expect((await call(path, Buffer.concat([envelope(WATCH_REQ), envelope(WATCH_REQ)]))).status).toBe(INVALID[protocol]);
    });
  });

  it("one message is still served, and the refused calls are counted as InvalidArgument, none as Unimplemented", async () => {
    expect((await overHttp1(server, "grpc-web", HEALTH_CHECK, envelope(Buffer.alloc(0)), UNARY_CONTENT_TYPE["grpc-web"])).status).toBe(OK["grpc-web"]);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const handled = (method: string, code: string) =>
      Number(new RegExp(`grpc_server_handled_total\\{[^}]*grpc_method="${method}",grpc_code="${code}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    expect(handled("WatchConversations", "InvalidArgument")).toBe(10);
    expect(handled("Watch", "InvalidArgument")).toBe(2);
    expect(metrics).not.toMatch(/grpc_server_handled_total\{[^}]*grpc_code="Unimplemented"/);
  });
});
