/**
 * Protected mode: with no credentials configured, the unified API answers only loopback clients
 * with a loopback Host. The non-loopback client runs in a network namespace of this test's own
 * (ip netns + veth), never on the machine's own address.
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/harness.js";

const suffix = randomBytes(3).toString("hex");
const NS = `cmpub${suffix}`;
const HOST_IF = `cmpub${suffix}h`;
const NS_IF = `cmpub${suffix}n`;
const octet = 1 + (parseInt(suffix, 16) % 250);
const HOST_IP = `10.231.${octet}.1`;
const NS_IP = `10.231.${octet}.2`;

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: "pipe" });
}

function setUpNamespace(): string | undefined {
  try {
    ip("netns", "add", NS);
    ip("link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF);
    ip("link", "set", NS_IF, "netns", NS);
    ip("addr", "add", `${HOST_IP}/30`, "dev", HOST_IF);
    ip("link", "set", HOST_IF, "up");
    ip("netns", "exec", NS, "ip", "addr", "add", `${NS_IP}/30`, "dev", NS_IF);
    ip("netns", "exec", NS, "ip", "link", "set", NS_IF, "up");
    ip("netns", "exec", NS, "ip", "link", "set", "lo", "up");
    return undefined;
  } catch (e) {
    tearDownNamespace();
    return (e as { stderr?: Buffer }).stderr?.toString().trim() || String(e);
  }
}

function tearDownNamespace(): void {
  spawnSync("ip", ["link", "del", HOST_IF], { stdio: "ignore" });
  spawnSync("ip", ["netns", "del", NS], { stdio: "ignore" });
}

const problem = setUpNamespace();
if (problem) console.log(`protected-mode e2e skipped: cannot create a network namespace here (${problem})`);

const run = promisify(execFile);

/** curl (asynchronously: the server runs in this process) from inside the namespace, or from the host: [status, body]. */
async function curl(url: string, opts: { ns: boolean; method?: string; body?: string; headers?: string[] }): Promise<[number, string]> {
  const args = ["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20", "-X", opts.method ?? "GET", url];
  for (const h of opts.headers ?? []) args.push("-H", h);
  if (opts.body !== undefined) args.push("-H", "content-type: application/json", "--data-binary", opts.body);
  const cmd = opts.ns ? ["ip", ["netns", "exec", NS, "curl", ...args]] : ["curl", args];
  const { stdout: out } = await run(cmd[0] as string, cmd[1] as string[], { encoding: "utf8" });
  const nl = out.lastIndexOf("\n");
  return [Number(out.slice(nl + 1)), out.slice(0, nl)];
}

const GET_BODY = JSON.stringify({ key: { ownerUserId: "alice", type: 1, conversationId: "p" } });

describe.skipIf(problem !== undefined)("protected mode from a non-loopback client", () => {
  let locked: TestServer;
  let open: TestServer;
  beforeAll(async () => {
    locked = await startTestServer({ HOST: "0.0.0.0", LOG_LEVEL: "silent" });
    open = await startTestServer({ HOST: "0.0.0.0", CONVMARK_AUTH: "off" });
  });
  afterAll(async () => {
    await locked?.close();
    await open?.close();
    tearDownNamespace();
  });

  it("refuses Connect, REST and /metrics from another address, with a message saying why", async () => {
    const base = `http://${HOST_IP}:${locked.port}`;
    const [status, body] = await curl(`${base}/convmark.v1.MarkService/GetConversation`, { ns: true, method: "POST", body: GET_BODY });
    expect(status).toBe(403);
    expect(JSON.parse(body)).toMatchObject({ code: "permission_denied" });
    expect(body).toMatch(/protected mode/);
    expect((await curl(`${base}/v1/users/alice/conversations`, { ns: true }))[0]).toBe(403);
    expect((await curl(`${base}/metrics`, { ns: true }))[0]).toBe(403);
    // Not part of the unified API: the OpenAPI document and health stay reachable.
    expect((await curl(`${base}/openapi.json`, { ns: true }))[0]).toBe(200);
  });

  it("refuses a loopback client whose Host is not a loopback name (DNS rebinding)", async () => {
    const base = `http://127.0.0.1:${locked.port}`;
    expect((await curl(`${base}/v1/users/alice/conversations`, { ns: false, headers: ["Host: rebind.example.com"] }))[0]).toBe(403);
    expect((await curl(`${base}/v1/users/alice/conversations`, { ns: false, headers: [`Host: localhost:${locked.port}`] }))[0]).toBe(200);
    expect((await curl(`${base}/v1/users/alice/conversations`, { ns: false }))[0]).toBe(200);
    expect((await curl(`${base}/metrics`, { ns: false }))[0]).toBe(200);
  });

  it("CONVMARK_AUTH=off opens the API to the other address", async () => {
    const base = `http://${HOST_IP}:${open.port}`;
    const [status] = await curl(`${base}/convmark.v1.MarkService/UpdateConversations`, {
      ns: true,
      method: "POST",
      body: JSON.stringify({ updates: [{ key: { ownerUserId: "alice", type: 1, conversationId: "p" }, setMarks: [1] }] }),
    });
    expect(status).toBe(200);
    expect((await curl(`${base}/v1/users/alice/conversations/1/p`, { ns: true }))[0]).toBe(200);
  });
});
