// Issue 7, item 1, against the real server on loopback: a request answered before its body is read
// (auth failures, oversized bodies, wrong content types) must not poison its HTTP/2 connection.
import * as http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/harness.js";

const FIVE_MIB = Buffer.alloc(5 << 20, 0x20);

interface Answer {
  status: number | undefined;
  rstCode: number;
}

function call(session: http2.ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders, body: Buffer | string): Promise<Answer> {
  return new Promise((resolve) => {
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    let status: number | undefined;
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("data", () => {});
    stream.on("error", () => {});
    stream.on("close", () => resolve({ status, rstCode: stream.rstCode ?? 0 }));
    stream.end(body);
  });
}

const HEALTH = ["/grpc.health.v1.Health/Check", { "content-type": "application/json" }, "{}"] as const;

describe("HTTP/2 connections survive rejected requests (item 1)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      ZEGO_APP_ID: "1234567890",
      ZEGO_SERVER_SECRET: "0123456789abcdef0123456789abcdef",
      TENCENT_SDKAPPID: "1400000000",
      TENCENT_SECRET_KEY: "key",
      OPENIM_SECRET: "openIM123",
      CONVMARK_READ_MAX_BYTES: String(1 << 20),
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("the issue's example: three 5 MiB bodies to SetConvMark, then a health check on the same session", async () => {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    try {
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push(await call(session, "/?Action=SetConvMark", { "content-type": "application/json" }, FIVE_MIB));
      answers.push(await call(session, ...HEALTH));
      expect(answers).toEqual([
        { status: 200, rstCode: 0 },
        { status: 200, rstCode: 0 },
        { status: 200, rstCode: 0 },
        { status: 200, rstCode: 0 },
      ]);
    } finally {
      session.close();
    }
  });

  it.each([
    ["ZEGO without a signature", "/?Action=SetConvMark&AppId=1234567890", { "content-type": "application/json" }, 200],
    ["Tencent without a UserSig", "/v4/recentcontact/mark_contact", { "content-type": "application/json" }, 200],
    ["OpenIM body over the gateway limit", "/auth/get_admin_token", { "content-type": "application/json", operationid: "1" }, 200],
    ["Connect with an unsupported content type (415)", "/convmark.v1.MarkService/GetConversation", { "content-type": "text/plain" }, 415],
    ["Connect JSON over readMaxBytes", "/convmark.v1.MarkService/GetConversation", { "content-type": "application/json" }, 429],
    ["gRPC message over readMaxBytes", "/convmark.v1.MarkService/GetConversation", { "content-type": "application/grpc", te: "trailers" }, 200],
    ["an unknown path (404)", "/no/such/route", { "content-type": "application/json" }, 404],
  ] as const)("%s: every call is answered and the session stays usable", async (_name, path, headers, status) => {
    const session = http2.connect(server.url);
    session.on("error", () => {});
    try {
      for (let i = 0; i < 3; i++) expect(await call(session, path, headers, FIVE_MIB)).toEqual({ status, rstCode: 0 });
      expect(await call(session, ...HEALTH)).toEqual({ status: 200, rstCode: 0 });
    } finally {
      session.close();
    }
  });
});
