// The real server on loopback: OpenIM's header and token checks come before the body is read, on
// every route (the kernel's order), so a refused caller is answered even while its body is still
// arriving, and throttled or tokenless callers never get their body parsed.
import * as http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/harness.js";

/** Sends the headers and the start of a body that never ends; resolves with the answer, or "no answer" after `ms`. */
function answerWhileBodyOpen(url: string, path: string, headers: Record<string, string>, ms = 8_000): Promise<{ status: number; json: Record<string, unknown> } | "no answer"> {
  const u = new URL(path, url);
  return new Promise((resolve) => {
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": "100000", ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown> });
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      resolve("no answer");
    }, ms);
    req.on("error", () => {});
    req.write('{"secret":"');
  });
}

describe("OpenIM get_admin_token and set_conversations check headers before the body", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ OPENIM_SECRET: "openIM123", OPENIM_SECRET_FAILURES_PER_MINUTE: "2" });
  });
  afterAll(async () => {
    await server?.close();
  });

  it.each([
    ["get_admin_token without operationID", "/auth/get_admin_token", {}, { errCode: 1001, errMsg: "ArgsError" }],
    ["set_conversations without operationID", "/conversation/set_conversations", { token: "x" }, { errCode: 1001, errMsg: "ArgsError" }],
    ["set_conversations without a token", "/conversation/set_conversations", { operationID: "1" }, { errCode: 1001, errMsg: "ArgsError" }],
    ["set_conversations with a malformed token", "/conversation/set_conversations", { operationID: "1", token: "not-a-jwt" }, { errCode: 1503 }],
    ["a new route (get_conversation) without a token, for comparison", "/conversation/get_conversation", { operationID: "1" }, { errCode: 1001 }],
  ] as const)("%s is answered while the body is still open", async (_name, path, headers, expected) => {
    const r = await answerWhileBodyOpen(server.url, path, headers);
    expect(r).not.toBe("no answer");
    expect(r).toMatchObject({ status: 200, json: expected });
  });

  it("an address over its wrong-secret budget is answered 429 before its body is read", async () => {
    const post = (body: string) =>
      fetch(`${server.url}/auth/get_admin_token`, { method: "POST", headers: { "content-type": "application/json", operationID: "1" }, body }).then(async (r) => ({ status: r.status, json: (await r.json()) as Record<string, unknown> }));
    for (let i = 0; i < 2; i++) expect(await post(`{"secret":"guess${i}","userID":"imAdmin"}`)).toMatchObject({ json: { errCode: 1002 } });
    // A malformed body from the throttled address: still 429 (not 1001), the body was never parsed.
    expect(await post("{not json")).toMatchObject({ status: 429, json: { errCode: 429 } });
    const open = await answerWhileBodyOpen(server.url, "/auth/get_admin_token", { operationID: "1" });
    expect(open).toMatchObject({ status: 429, json: { errCode: 429 } });
  });
});
