/** GET / (the landing page), /healthz, /docs and /console on the shared port, next to ZEGO's POST /?Action=…. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSite } from "../../src/server/site.js";
import type { NodeServerRequest, NodeServerResponse } from "../../src/server/listener.js";
import { startTestServer, type TestServer } from "../support/harness.js";

describe("the pages on the shared port", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ZEGO_APP_ID: "1234567890", ZEGO_SERVER_SECRET: "0123456789abcdef0123456789abcdef" });
  });
  afterAll(async () => {
    await server.close();
  });

  it("GET / answers a short HTML page linking the console, /openapi.json, /metrics, health and the docs", async () => {
    const res = await fetch(`${server.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    const html = await res.text();
    for (const href of ["/console", "/openapi.json", "/metrics", "/healthz", "/docs"]) expect(html).toContain(`href="${href}"`);
    const head = await fetch(`${server.url}/`, { method: "HEAD" });
    expect([head.status, await head.text()]).toEqual([200, ""]);
  });

  it("the links it gives answer: /healthz, /metrics, /docs", async () => {
    const health = await fetch(`${server.url}/healthz`);
    expect([health.status, await health.text()]).toEqual([200, "SERVING\n"]);
    expect((await fetch(`${server.url}/metrics`)).status).toBe(200);
    const docs = await fetch(`${server.url}/docs`);
    expect(docs.status).toBe(200);
    expect(await docs.text()).toMatch(/^# convmark/);
    expect((await fetch(`${server.url}/docs/dialects.md`)).status).toBe(200);
    for (const bad of ["/docs/../package.json", "/docs/%2e%2e/package.json", "/docs/nope.md", "/docs/x.ts"]) {
      expect((await fetch(`${server.url}${bad}`)).status, bad).toBe(404);
    }
  });

  it("leaves ZEGO's POST /?Action=SetConvMark (and a GET with Action) to ZEGO", async () => {
    const post = await fetch(`${server.url}/?Action=SetConvMark&AppId=1234567890`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    const body = (await post.json()) as { Code: number };
    expect(body.Code).not.toBe(0); // ZEGO's own refusal of an unsigned call, in ZEGO's envelope
    const get = await fetch(`${server.url}/?Action=SetConvMark`);
    expect(get.headers.get("content-type") ?? "").not.toContain("text/html");
  });
});

describe("the console route", () => {
  const dir = mkdtempSync(join(tmpdir(), "convmark-site-"));
  let http: Server;
  let base: string;
  let consoleDir = join(dir, "missing");
  beforeAll(async () => {
    mkdirSync(join(dir, "built", "assets"), { recursive: true });
    writeFileSync(join(dir, "built", "index.html"), "<!doctype html><title>c</title>");
    writeFileSync(join(dir, "built", "assets", "app-1234.js"), "console.log(1)");
    writeFileSync(join(dir, "secret.txt"), "no");
    http = createServer((req, res) => {
      const site = createSite({ consoleDir });
      const url = new URL(req.url ?? "/", "http://x");
      if (!site(req as NodeServerRequest, res as NodeServerResponse, url)) res.writeHead(418).end();
    });
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
  });
  afterAll(() => {
    http.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("says in words that the console is not built", async () => {
    consoleDir = join(dir, "missing");
    const res = await fetch(`${base}/console`);
    expect(res.status).toBe(503);
    expect(await res.text()).toContain("Run <code>npm run build</code>");
  });

  it("serves the build: index for views and deep links, hashed assets cached, nothing outside, other paths not ours", async () => {
    consoleDir = join(dir, "built");
    for (const path of ["/console", "/console/", "/console?user=alice", "/console/directory"]) {
      const res = await fetch(`${base}${path}`);
      expect([path, res.status, res.headers.get("content-type")]).toEqual([path, 200, "text/html; charset=utf-8"]);
      expect(res.headers.get("cache-control")).toBe("no-cache");
    }
    const js = await fetch(`${base}/console/assets/app-1234.js`);
    expect([js.status, js.headers.get("content-type"), js.headers.get("cache-control")]).toEqual([200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"]);
    expect(await js.text()).toBe("console.log(1)");
    expect((await fetch(`${base}/console/assets/missing.js`)).status).toBe(404);
    expect((await fetch(`${base}/console/..%2fsecret.txt`)).status).toBe(404);
    expect((await fetch(`${base}/console/assets/..%2f..%2fsecret.txt`)).status).toBe(404);
    expect((await fetch(`${base}/console/%E0%A4%A`)).status).toBe(400);
    expect((await fetch(`${base}/consoles`)).status).toBe(418);
    expect((await fetch(`${base}/console`, { method: "POST" })).status).toBe(418);
  });
});
