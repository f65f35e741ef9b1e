/**
 * The console in real headless browsers against the real server: Debian's Chromium (driven by
 * playwright-core over CDP) and Debian's Firefox ESR (driven by puppeteer-core over WebDriver BiDi;
 * neither tool downloads a browser). The page as `npm run build` builds it, writes through the UI
 * read back over gRPC, writes over gRPC and a vendor dialect seen live, refusals shown in words, and
 * a screenshot that is not blank. Both browsers are in this one file so the console is built once.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { SignJWT } from "jose";
import { chromium, type Browser, type Page } from "playwright-core";
import puppeteer, { type Browser as BidiBrowser, type Page as BidiPage } from "puppeteer-core";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConversationType,
  GetConversationRequestSchema,
  GetConversationResponseSchema,
  MarkService,
  UpdateConversationsRequestSchema,
  UpdateConversationsResponseSchema,
} from "../../gen/convmark/v1/mark_service_pb.js";
import { grpcClient, type GrpcTestClient } from "../support/grpc.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.log(`console browser tests not run: ${CHROMIUM} is missing (apt-get install -y chromium)`);
const FIREFOX = "/usr/bin/firefox-esr";
const hasFirefox = existsSync(FIREFOX);
if (!hasFirefox) console.log(`console Firefox tests not run: ${FIREFOX} is missing (apt-get install -y firefox-esr)`);

/** The few browser globals the page functions use (this file is type-checked without the DOM library). */
interface Browserish {
  document: {
    activeElement: unknown;
    createElement(tag: "canvas"): {
      width: number;
      height: number;
      getContext(kind: "2d"): { drawImage(img: unknown, x: number, y: number): void; getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null;
    };
  };
  Image: new () => { src: string; width: number; height: number; decode(): Promise<void> };
}

/** Runs in the page: decodes a PNG and counts its distinct colours (a blank page has one or two). */
async function pngColours(b64: string): Promise<{ size: number[]; distinct: number }> {
  const { Image, document } = globalThis as unknown as Browserish;
  const img = new Image();
  img.src = `data:image/png;base64,${b64}`;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = canvas.getContext("2d")!;
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, img.width, img.height).data;
  const seen = new Set<number>();
  for (let i = 0; i < data.length; i += 4) seen.add((data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!);
  return { size: [img.width, img.height], distinct: seen.size };
}

const direct = (owner: string, conversationId: string) => ({ ownerUserId: owner, type: ConversationType.DIRECT, conversationId });

// Exactly what `npm run build` produces for the console (dist/console), once for the file.
beforeAll(async () => {
  if (hasChromium || hasFirefox) await build({ configFile: "console/vite.config.ts", logLevel: "error" });
}, 120_000);

describe.skipIf(!hasChromium)("the console in headless Chromium", () => {
  let server: TestServer;
  let browser: Browser;
  let g: GrpcTestClient;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    server = await startTestServer({ CONVMARK_MAX_MARKED_PER_OWNER: "3", OPENIM_SECRET: "openIM123" });
    g = grpcClient(server.url);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    g?.close();
    await server?.close();
  });

  async function open(path: string): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`${server.url}${path}`);
    return page;
  }

  const readBack = async (owner: string, id: string) =>
    (await g.unary(MarkService, "GetConversation", GetConversationRequestSchema, GetConversationResponseSchema, { key: direct(owner, id) })).conversation!;

  it("GET / links the console, and /console?user=alice opens alice's conversations (deep link)", async () => {
    await server.marks.updateConversations({ updates: [{ key: direct("alice", "bob"), setMarks: [1, 33], customMark: "vip", addLabels: ["work"] }] });
    const landing = await open("/");
    await landing.getByRole("link", { name: "Console" }).click();
    await landing.waitForURL(/\/console$/);
    await expect.poll(() => landing.locator("#user").evaluate((el) => el === (globalThis as unknown as Browserish).document.activeElement)).toBe(true);
    await landing.close();

    const page = await open("/console?user=alice");
    const row = page.locator('tr[data-key="1/bob"]');
    await row.waitFor();
    expect(await row.locator(".chip[data-mark]").allTextContents()).toEqual(["star", "33"]);
    expect(await row.locator("td.custom").textContent()).toBe("vip");
    expect(await row.locator("td.labels").textContent()).toBe("work");
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it("sets a mark through the UI (keyboard only) and the server has it over gRPC", async () => {
    const page = await open("/console?user=carol");
    await page.locator("caption").filter({ hasText: "carol has no conversations" }).waitFor();
    await page.locator("#open-id").fill("dave");
    await page.locator("#open-id").press("Enter");
    await page.locator("#editor[open]").waitFor();
    // The editor opens focused on the first mark: Space ticks "star"; Tab moves on.
    await page.keyboard.press("Space");
    await page.locator("#e-labels").fill("friends, 家人");
    await page.locator("#e-save").press("Enter");
    await page.locator('tr[data-key="1/dave"]').waitFor();
    const c = await readBack("carol", "dave");
    expect(c.marks).toEqual([1]);
    expect([...c.labels].sort()).toEqual(["friends", "家人"]);
    expect(await page.locator('tr[data-key="1/dave"] .chip-star').textContent()).toBe("star");
    await page.close();
  });

  it("shows a refused write in words (the status message and reason), not a blank page", async () => {
    // The owner may mark 3 conversations; the fourth is refused with RESOURCE_EXHAUSTED.
    await g.unary(MarkService, "UpdateConversations", UpdateConversationsRequestSchema, UpdateConversationsResponseSchema, {
      updates: ["a", "b", "c"].map((id) => ({ key: direct("erin", id), setMarks: [2] })),
    });
    const page = await open("/console?user=erin");
    await page.locator('tr[data-key="1/c"]').waitFor();
    await page.locator("#open-id").fill("d");
    await page.locator("#open-form button[type=submit]").click();
    await page.locator("#e-mark-1").check();
    await page.locator("#e-save").click();
    const err = page.locator("#editor-error");
    await err.waitFor({ state: "visible" });
    expect(await err.textContent()).toMatch(/^Refused: ResourceExhausted: .+\(OWNER_MARKED_LIMIT\)$/);
    expect((await readBack("erin", "d").catch((e: Error) => e)) instanceof Error).toBe(true);
    await page.locator("#e-cancel").click();

    // A bad filter is refused in the page itself, also in words.
    await page.locator("#f-marks-any").fill("sparkle");
    await page.locator("#f-marks-any").press("Enter");
    expect(await page.locator("#error").textContent()).toContain('"sparkle" is not a mark');
    await page.close();
  });

  it("changes a row live, without a reload, when gRPC or a vendor dialect writes", async () => {
    await server.marks.updateConversations({ updates: [{ key: direct("judy", "kim"), setMarks: [2] }] });
    const page = await open("/console?user=judy");
    const row = page.locator('tr[data-key="1/kim"]');
    await row.waitFor();
    await page.locator("#live.on").waitFor();
    await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 42));

    // A service writes over gRPC: the row changes in place.
    await g.unary(MarkService, "UpdateConversations", UpdateConversationsRequestSchema, UpdateConversationsResponseSchema, {
      updates: [{ key: direct("judy", "kim"), setMarks: [1], clearMarks: [2], customMark: "from grpc" }],
    });
    await expect.poll(() => row.locator(".chip[data-mark]").allTextContents(), { timeout: 15_000 }).toEqual(["star"]);
    expect(await row.locator("td.custom").textContent()).toBe("from grpc");

    // OpenIM's set_conversations (a vendor dialect) pins a new conversation: it appears on top.
    const token = (await (
      await fetch(`${server.url}/auth/get_admin_token`, {
        method: "POST",
        headers: { "content-type": "application/json", operationID: "op1" },
        body: JSON.stringify({ secret: "openIM123", userID: "imAdmin" }),
      })
    ).json()) as { data: { token: string } };
    const res = await fetch(`${server.url}/conversation/set_conversations`, {
      method: "POST",
      headers: { "content-type": "application/json", operationID: "op2", token: token.data.token },
      body: JSON.stringify({ userIDs: ["judy"], conversation: { conversationID: "si_judy_lee", conversationType: 1, userID: "lee", isPinned: true } }),
    });
    expect(((await res.json()) as { errCode: number }).errCode).toBe(0);
    const lee = page.locator('tr[data-key="1/lee"]');
    await lee.waitFor({ timeout: 15_000 });
    expect(await page.locator("#rows tr").first().getAttribute("data-key")).toBe("1/lee");
    expect(await lee.locator("td").nth(4).textContent()).toBe("pinned");

    // A delete elsewhere removes the row.
    await server.marks.deleteConversations({ keys: [direct("judy", "kim")] });
    await row.waitFor({ state: "detached", timeout: 15_000 });
    // Still the same page: nothing reloaded it.
    expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(42);
    await page.close();
  });

  it("misses no write that commits while the page lists (it takes the feed's cursor first, then lists)", async () => {
    await server.marks.updateConversations({ updates: [{ key: direct("walt", "a"), setMarks: [2] }] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    let wrote = false;
    // The list is answered as the server read it, but only after two writes committed behind it:
    // the page must get them from the feed, and not let the (older) list overwrite them.
    await page.route("**/convmark.v1.MarkService/ListConversations", async (route) => {
      const response = await route.fetch();
      if (!wrote) {
        wrote = true;
        await g.unary(MarkService, "UpdateConversations", UpdateConversationsRequestSchema, UpdateConversationsResponseSchema, {
          updates: [
            { key: direct("walt", "a"), customMark: "late" },
            { key: direct("walt", "b"), setMarks: [1] },
          ],
        });
        await new Promise((r) => setTimeout(r, 1_500)); // time for the feed to deliver them first
      }
      await route.fulfill({ response });
    });
    const listed = page.waitForResponse("**/convmark.v1.MarkService/ListConversations", { timeout: 30_000 });
    await page.goto(`${server.url}/console?user=walt`);
    await listed;
    expect(wrote).toBe(true);
    await page.locator("caption").filter({ hasText: "walt: " }).waitFor();
    await new Promise((r) => setTimeout(r, 500)); // let the page act on the (older) list
    await expect.poll(() => page.locator('tr[data-key="1/a"] td.custom').textContent(), { timeout: 15_000 }).toBe("late");
    expect(await page.locator('tr[data-key="1/b"] .chip[data-mark]').allTextContents()).toEqual(["star"]);
    expect(await page.locator("#rows tr").count()).toBe(2);
    await page.close();
  });

  it("deletes through the UI, and shows the directory with a group's members", async () => {
    await server.marks.updateConversations({ updates: [{ key: direct("mallory", "x1"), setMarks: [3] }] });
    const page = await open("/console?user=mallory");
    await page.getByRole("button", { name: "Edit direct x1" }).click();
    await page.locator("#e-delete").click();
    await page.locator("#e-delete").click();
    await page.locator('tr[data-key="1/x1"]').waitFor({ state: "detached" });
    expect((await server.marks.batchGetConversations({ keys: [direct("mallory", "x1")] })).conversations[0]!.version).toBe(0n);

    const dir = `${server.url}/convmark.v1.DirectoryService`;
    const post = (m: string, body: unknown) => fetch(`${dir}/${m}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    await post("RegisterUsers", { userIds: ["mallory", "nina"] });
    await post("CreateGroup", { groupId: "night-shift", memberUserIds: ["mallory", "nina"] });
    await page.getByRole("button", { name: "Directory" }).click();
    await page.locator("#d-group").fill("night-shift");
    await page.locator("#d-group").press("Enter");
    await page.locator("#d-group-result ul.members li").nth(1).waitFor();
    expect(await page.locator("#d-group-result ul.members li").allTextContents()).toEqual(["mallory", "nina"]);
    await page.locator("#d-users").fill("nina, olga");
    await page.locator("#d-users").press("Enter");
    await page.locator("#d-users-table tbody tr").nth(1).waitFor();
    expect(await page.locator("#d-users-table tbody td:first-of-type").allTextContents()).toEqual(["registered", "not registered"]);
    await page.close();
  });

  it("filters by marks and pages through the results", async () => {
    await server.marks.updateConversations({
      updates: Array.from({ length: 30 }, (_, i) => ({ key: direct("frank", `p${String(i).padStart(2, "0")}`), settings: { pinned: i % 2 === 0 } })),
    });
    const page = await open("/console?user=frank");
    await page.locator("#rows tr").first().waitFor();
    await page.locator("#f-pinned").selectOption("yes");
    await page.locator("#f-page-size").selectOption("25");
    await page.locator("#filters button[type=submit]").click();
    await expect.poll(() => page.locator("#rows tr").count()).toBe(15);
    await page.locator("#f-pinned").selectOption("");
    await page.locator("#filters button[type=submit]").click();
    await expect.poll(() => page.locator("#rows tr").count()).toBe(25);
    await page.locator("#next-page").click();
    await expect.poll(() => page.locator("#rows tr").count()).toBe(5);
    await page.locator("#prev-page").click();
    await expect.poll(() => page.locator("#rows tr").count()).toBe(25);
    await page.close();
  });

  it("takes a screenshot that is not blank", async () => {
    await server.marks.updateConversations({
      updates: [
        { key: direct("grace", "heidi"), setMarks: [1, 2], customMark: "VIP customer", addLabels: ["support"], settings: { pinned: true, receiveOption: 3 } },
        { key: { ownerUserId: "grace", type: ConversationType.GROUP, conversationId: "team-eng" }, setMarks: [3, 40], addLabels: ["work", "eng"] },
        { key: direct("grace", "ivan"), setMarks: [4] },
      ],
    });
    const page = await open("/console?user=grace");
    await page.locator('tr[data-key="2/team-eng"]').waitFor();
    const png = await page.screenshot({ fullPage: false });
    const dir = join("test-artifacts");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "console.png"), png);
    // Decode it in the browser itself and count its colours: a blank page has one or two.
    const colours = await page.evaluate(pngColours, png.toString("base64"));
    expect(colours.size).toEqual([1280, 720]);
    expect(colours.distinct).toBeGreaterThan(50);
    await page.close();
  });
});

describe.skipIf(!hasChromium)("the console with bearer tokens", () => {
  const secret = "console-test-secret-0123456789abcdef012345";
  let server: TestServer;
  let browser: Browser;
  beforeAll(async () => {
    server = await startTestServer({ CONVMARK_AUTH_JWT_SECRET: secret });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it("asks for a token in words, keeps it in session storage (not the URL), and shows what a token may not do", async () => {
    const key = new TextEncoder().encode(secret);
    const service = await new SignJWT({ sub: "ops", scope: "convmark:service" }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("10m").sign(key);
    await server.marks.updateConversations({ updates: [{ key: direct("alice", "bob"), setMarks: [2] }] }, { headers: { authorization: `Bearer ${service}` } });
    const alice = await new SignJWT({ sub: "alice" }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("10m").sign(key);

    const page = await browser.newPage();
    await page.goto(`${server.url}/console?user=alice`);
    const error = page.locator("#error");
    await error.waitFor({ state: "visible" });
    expect(await error.textContent()).toMatch(/^Unauthenticated: .+ Sign in with a token\.$/);

    await page.locator("#token").fill(alice);
    await page.locator("#token").press("Enter");
    await page.locator('tr[data-key="1/bob"]').waitFor();
    expect(await error.isHidden()).toBe(true);
    expect(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem("convmark.token"))).toBe(alice);
    expect(page.url()).not.toContain("token");
    expect(await page.locator("#auth-state").textContent()).toBe("signed in with a token");

    // Reloading the tab keeps the sign-in; another user's conversations are refused in words.
    await page.goto(`${server.url}/console?user=mallory`);
    await error.waitFor({ state: "visible" });
    expect(await error.textContent()).toMatch(/^PermissionDenied: .+ This token may not do that\.$/);
    await page.close();
  });
});

describe.skipIf(!hasFirefox)("the console in headless Firefox", () => {
  let server: TestServer;
  let browser: BidiBrowser;
  let g: GrpcTestClient;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    server = await startTestServer({ CONVMARK_MAX_MARKED_PER_OWNER: "3" });
    g = grpcClient(server.url);
    // Debian's Firefox ESR over WebDriver BiDi; puppeteer-core never downloads a browser.
    // The viewport is set at launch: page.setViewport() also sends emulation.setScreenOrientationOverride,
    // which Firefox 140 ESR does not know (puppeteer-core 24.43 then fails the call).
    browser = await puppeteer.launch({ browser: "firefox", protocol: "webDriverBiDi", executablePath: FIREFOX, headless: true, defaultViewport: { width: 1280, height: 720 } });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    g?.close();
    await server?.close();
  });

  async function open(path: string): Promise<BidiPage> {
    const page = await browser.newPage();
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    await page.goto(`${server.url}${path}`);
    return page;
  }
  const text = (page: BidiPage, sel: string) => page.$eval(sel, (el) => (el as unknown as { textContent: string }).textContent);
  const texts = (page: BidiPage, sel: string) => page.$$eval(sel, (els) => els.map((el) => (el as unknown as { textContent: string }).textContent));
  const readBack = async (owner: string, id: string) =>
    (await g.unary(MarkService, "GetConversation", GetConversationRequestSchema, GetConversationResponseSchema, { key: direct(owner, id) })).conversation!;
  const grpcWrite = (updates: unknown[]) =>
    g.unary(MarkService, "UpdateConversations", UpdateConversationsRequestSchema, UpdateConversationsResponseSchema, { updates } as never);

  it("loads a deep link, sets a mark through the UI (keyboard) and the server has it over gRPC", async () => {
    await server.marks.updateConversations({ updates: [{ key: direct("alice", "bob"), setMarks: [1, 33], customMark: "vip" }] });
    const page = await open("/console?user=alice");
    await page.waitForSelector('tr[data-key="1/bob"]');
    expect(await texts(page, 'tr[data-key="1/bob"] .chip[data-mark]')).toEqual(["star", "33"]);
    expect(await text(page, 'tr[data-key="1/bob"] td.custom')).toBe("vip");

    await page.type("#open-id", "dave");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#editor[open]");
    // The editor opens focused on the first mark: Space ticks "star".
    await page.keyboard.press(" ");
    await page.type("#e-labels", "friends, 家人");
    await page.focus("#e-save");
    await page.keyboard.press("Enter");
    await page.waitForSelector('tr[data-key="1/dave"] .chip-star');
    const c = await readBack("alice", "dave");
    expect(c.marks).toEqual([1]);
    expect([...c.labels].sort()).toEqual(["friends", "家人"]);
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it("changes a row live, without a reload, when gRPC writes", async () => {
    await server.marks.updateConversations({ updates: [{ key: direct("judy", "kim"), setMarks: [2] }] });
    const page = await open("/console?user=judy");
    await page.waitForSelector('tr[data-key="1/kim"]');
    await page.waitForSelector("#live.on");
    await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 42));
    await grpcWrite([{ key: direct("judy", "kim"), setMarks: [1], clearMarks: [2], customMark: "from grpc" }]);
    await expect.poll(() => texts(page, 'tr[data-key="1/kim"] .chip[data-mark]'), { timeout: 15_000 }).toEqual(["star"]);
    expect(await text(page, 'tr[data-key="1/kim"] td.custom')).toBe("from grpc");
    await grpcWrite([{ key: direct("judy", "lee"), settings: { pinned: true } }]);
    await page.waitForSelector('tr[data-key="1/lee"]', { timeout: 15_000 });
    expect(await page.$eval("#rows tr", (el) => (el as unknown as { getAttribute(n: string): string }).getAttribute("data-key"))).toBe("1/lee");
    expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(42);
    await page.close();
  });

  it("shows a refused write in words, not a blank page", async () => {
    await grpcWrite(["a", "b", "c"].map((id) => ({ key: direct("erin", id), setMarks: [2] })));
    const page = await open("/console?user=erin");
    await page.waitForSelector('tr[data-key="1/c"]');
    await page.type("#open-id", "d");
    await page.click("#open-form button[type=submit]");
    await page.waitForSelector("#editor[open]");
    await page.click("#e-mark-1");
    await page.click("#e-save");
    await page.waitForSelector("#editor-error:not([hidden])");
    expect(await text(page, "#editor-error")).toMatch(/^Refused: ResourceExhausted: .+\(OWNER_MARKED_LIMIT\)$/);
    expect((await readBack("erin", "d").catch((e: Error) => e)) instanceof Error).toBe(true);
    await page.close();
  });

  it("takes a screenshot that is not blank", async () => {
    await server.marks.updateConversations({
      updates: [
        { key: direct("grace", "heidi"), setMarks: [1, 2], customMark: "VIP customer", addLabels: ["support"], settings: { pinned: true } },
        { key: { ownerUserId: "grace", type: ConversationType.GROUP, conversationId: "team-eng" }, setMarks: [3, 40], addLabels: ["work"] },
      ],
    });
    const page = await open("/console?user=grace");
    await page.waitForSelector('tr[data-key="2/team-eng"]');
    const png = Buffer.from(await page.screenshot());
    mkdirSync("test-artifacts", { recursive: true });
    writeFileSync(join("test-artifacts", "console-firefox.png"), png);
    const colours = await page.evaluate(pngColours, png.toString("base64"));
    expect(colours.size).toEqual([1280, 720]);
    expect(colours.distinct).toBeGreaterThan(50);
    await page.close();
  });
});
