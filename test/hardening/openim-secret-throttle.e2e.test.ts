// Issue 7, item 8, against the real server on loopback: wrong get_admin_token secrets are throttled
// per client address, answered in OpenIM's envelope (errCode 429, HTTP 429).
import * as http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/harness.js";

const SECRET = "openIM123";

/** POST from a chosen local address (any 127/8 address reaches the server on 127.0.0.1). */
function post(url: string, path: string, body: unknown, localAddress = "127.0.0.1", headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const u = new URL(path, url);
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname, method: "POST", localAddress, agent: false, headers: { "content-type": "application/json", operationID: "op-1", "content-length": Buffer.byteLength(data), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown> }));
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}

describe("OpenIM get_admin_token throttles wrong secrets per client address (item 8)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ OPENIM_SECRET: SECRET, OPENIM_SECRET_FAILURES_PER_MINUTE: "5" });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("answers 1002 for the allowed wrong guesses, then 429 even for the right secret, only for that address", async () => {
    for (let i = 0; i < 5; i++) {
      const r = await post(server.url, "/auth/get_admin_token", { secret: `guess${i}`, userID: "imAdmin" });
      expect(r).toMatchObject({ status: 200, json: { errCode: 1002, errMsg: "NoPermissionError" } });
    }
    const limited = await post(server.url, "/auth/get_admin_token", { secret: "guess5", userID: "imAdmin" });
    expect(limited.status).toBe(429);
    expect(limited.json).toEqual({ errCode: 429, errMsg: "too many requests, please try again later", errDlt: expect.stringMatching(/wrong secrets from this address.*: \[429\]/) });
    // While throttled the secret is not even checked: the right one gets the same answer.
    const right = await post(server.url, "/auth/get_admin_token", { secret: SECRET, userID: "imAdmin" });
    expect(right).toMatchObject({ status: 429, json: { errCode: 429 } });
    // The same budget covers the Connect/gRPC service.
    const connect = await fetch(`${server.url}/vendor.openim.v1.AuthService/GetAdminToken`, {
      method: "POST",
      headers: { "content-type": "application/json", operationid: "op-2" },
      body: JSON.stringify({ secret: SECRET, userID: "imAdmin" }),
    });
    expect(connect.status).toBe(200);
    expect(await connect.json()).toMatchObject({ errCode: 429 });
    // Another client address is not affected.
    const other = await post(server.url, "/auth/get_admin_token", { secret: SECRET, userID: "imAdmin" }, "127.0.0.2");
    expect(other).toMatchObject({ status: 200, json: { errCode: 0, data: { token: expect.any(String) } } });
    // set_conversations with a valid token is not throttled by the secret guesses.
    const token = (other.json.data as { token: string }).token;
    const set = await post(server.url, "/conversation/set_conversations", { userIDs: ["u1"], conversation: { conversationID: "sg_g1", conversationType: 3, groupID: "g1", isPinned: true } }, "127.0.0.1", { token });
    expect(set.json).toMatchObject({ errCode: 0 });
  });

  it("counts only wrong secrets: correct ones from a fresh address never run into the limit", async () => {
    for (let i = 0; i < 8; i++) {
      const r = await post(server.url, "/auth/get_admin_token", { secret: SECRET, userID: "imAdmin" }, "127.0.0.3");
      expect(r.json.errCode).toBe(0);
    }
  });
});
