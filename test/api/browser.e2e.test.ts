/**
 * A real cross-origin browser app: headless Chromium (Debian's chromium, driven by playwright-core)
 * loads a page from one origin and calls convmark on another with @connectrpc/connect-web.
 */
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { SignJWT } from "jose";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/harness.js";
import type { BrowserResult } from "./browser/client.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.log(`browser e2e skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);

const SECRET = "browser-test-secret-that-is-long-enough!!";

describe.skipIf(!haveChromium)("browser on another origin (connect-web in Chromium)", () => {
  let pages: Server;
  let pageOrigin: string;
  let convmark: TestServer;
  let browser: Browser;
  const requests: { method: string; url: string }[] = [];

  beforeAll(async () => {
    const bundle = await build({
      entryPoints: [fileURLToPath(new URL("./browser/client.ts", import.meta.url))],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      target: "es2022",
    });
    const js = bundle.outputFiles[0]!.text;
    pages = createServer((req, res) => {
      if (req.url === "/client.js") {
        res.writeHead(200, { "content-type": "text/javascript" });
        res.end(js);
      } else {
        res.writeHead(200, { "content-type": "text/html" });
        res.end('<!doctype html><title>convmark browser test</title><script type="module" src="/client.js"></script>');
      }
    });
    await new Promise<void>((r) => pages.listen(0, "127.0.0.1", r));
    pageOrigin = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`;
    convmark = await startTestServer({ CONVMARK_AUTH_JWT_SECRET: SECRET, CONVMARK_CORS_ORIGINS: pageOrigin });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await convmark?.close();
    await new Promise((r) => pages?.close(r));
  });

  it("calls unary and Connect GET methods and reads a WatchConversations stream over fetch", async () => {
    const token = await new SignJWT({ sub: "webuser" })
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(SECRET));
    const page = await browser.newPage();
    page.on("request", (r) => requests.push({ method: r.method(), url: r.url() }));
    await page.goto(pageOrigin);
    await page.waitForFunction(() => "convmarkTest" in globalThis);
    const result = (await page.evaluate(
      ([base, t]) => (globalThis as unknown as { convmarkTest: (b: string, t: string, o: string) => Promise<unknown> }).convmarkTest(base!, t!, "webuser"),
      [convmark.url, token],
    )) as BrowserResult;
    expect(result).toEqual({
      updated: 1,
      getViaHttpGet: [1, 3],
      watchFirstCursor: true,
      watchLive: ["b2"],
      otherUserCode: "7", // PERMISSION_DENIED
      noTokenCode: "16", // UNAUTHENTICATED
    });
    const get = requests.find((r) => r.url.includes("/convmark.v1.MarkService/GetConversation"));
    expect(get?.method).toBe("GET");
    await page.close();
  }, 60_000);
});
