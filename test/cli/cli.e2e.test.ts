/**
 * The real `convmark` CLI against real servers on loopback, each command its own process.
 *
 * Most commands run the CLI's sources bundled once per file with esbuild (the same code bin/convmark.js
 * runs through tsx, without tsx compiling it again in every process); `bin/convmark.js` itself runs
 * in the --help sweep, the token test and as `npx convmark`. Tests run concurrently (each has its own
 * owners), and commands of one test in parallel where they are independent.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "esbuild";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConversationType } from "../../gen/convmark/v1/mark_service_pb.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const BIN = "bin/convmark.js";
/** The bundle lives inside the project, so its imports resolve from the project's node_modules. */
const BUNDLE_DIR = resolve("dist", `cli-test-${process.pid}`);
const BUNDLE = join(BUNDLE_DIR, "main.js");

beforeAll(async () => {
  mkdirSync(BUNDLE_DIR, { recursive: true });
  // Split at the CLI's dynamic imports, so a command loads only what it needs, as from the sources.
  await build({ entryPoints: ["src/cli/main.ts"], bundle: true, splitting: true, platform: "node", format: "esm", packages: "external", outdir: BUNDLE_DIR, logLevel: "error" });
}, 60_000);
afterAll(() => rmSync(BUNDLE_DIR, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI as a user would: its own process, optional stdin, no terminal (`bin`: through bin/convmark.js). */
function cli(args: string[], opts: { input?: string; env?: Record<string, string>; bin?: boolean } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [opts.bin ? BIN : BUNDLE, ...args], {
      env: { ...process.env, CONVMARK_TOKEN: "", ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? "");
  });
}

/** Runs a few CLI processes at a time (the machine has two cores, shared). */
async function inBatches<T>(jobs: (() => Promise<T>)[], width = 4): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < jobs.length; i += width) out.push(...(await Promise.all(jobs.slice(i, i + width).map((j) => j()))));
  return out;
}

const direct = (owner: string, conversationId: string) => ({ ownerUserId: owner, type: ConversationType.DIRECT, conversationId });

describe.concurrent("the convmark CLI", () => {
  let server: TestServer;
  let url: string;
  beforeAll(async () => {
    server = await startTestServer({ CONVMARK_MAX_MARKED_PER_OWNER: "4" });
    url = server.url;
  });
  afterAll(async () => {
    await server?.close();
  });

  it("has --help for every command (exit 0) and exits 2 on bad usage", async () => {
    const commands = [
      [], ["serve"], ["get"], ["list"], ["set"], ["clear"], ["label"], ["label", "add"], ["label", "remove"], ["custom-mark"], ["pin"], ["delete"],
      ["watch"], ["sync"], ["users"], ["users", "show"], ["users", "register"], ["users", "unregister"], ["groups"], ["groups", "show"],
      ["groups", "create"], ["groups", "add-members"], ["groups", "remove-members"], ["groups", "dismiss"], ["health"], ["export"], ["import"],
    ];
    // The first through bin/convmark.js, as npx runs it.
    const helps = await inBatches(commands.map((c, i) => () => cli([...c, "--help"], { bin: i === 0 })));
    helps.forEach((r, i) => {
      expect(r.code, commands[i]!.join(" ")).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: convmark ${commands[i]!.join(" ")}`.trimEnd()));
    });
    expect(helps[0]!.stdout).toContain("Exit codes: 0 ok, 1 a call or some items failed, 2 bad usage.");

    const bad = await inBatches(
      [
        ["frobnicate"],
        ["set", "alice", "direct", "bob", "sparkle", "--url", url],
        ["get", "alice", "channel", "bob", "--url", url],
        ["get", "alice"],
        ["list", "alice", "--pinned", "--not-pinned", "--url", url],
        ["list", "alice", "--protocol", "smoke"],
        ["import", "--batch-size", "10001", "--url", url],
        ["health", "--url", "ftp://x"],
      ].map((a) => () => cli(a)),
    );
    for (const r of bad) expect(r.code, r.stderr).toBe(2);
    expect(bad[0]!.stderr).toContain("unknown command 'frobnicate'");
    expect(bad[1]!.stderr).toContain('"sparkle" is not a mark');
    expect(bad[2]!.stderr).toContain('must be "direct" or "group"');
    expect(bad[3]!.stderr).toContain("missing required argument");
    expect(bad[6]!.stderr).toContain("must be an integer 1..10000");
  });

  it("writes marks, labels, custom mark and pin, and reads them back over both protocols", async () => {
    for (const protocol of ["grpc", "connect"]) {
      const owner = `cli-${protocol}`;
      const o = ["--url", url, "--protocol", protocol];
      const set = await cli(["set", owner, "direct", "bob", "star", "33,unread", ...o]);
      expect(set.code, set.stderr).toBe(0);
      expect(set.stdout).toMatch(/^TYPE +CONVERSATION +MARKS/);
      expect(set.stdout).toContain("star,unread,33");
      expect((await cli(["label", "add", owner, "direct", "bob", "work", "vip", ...o])).code).toBe(0);
      expect((await cli(["label", "remove", owner, "direct", "bob", "vip", ...o])).code).toBe(0);
      expect((await cli(["custom-mark", owner, "direct", "bob", "星标", ...o])).code).toBe(0);
      expect((await cli(["pin", owner, "group", "g1", ...o])).code).toBe(0);
      expect((await cli(["clear", owner, "direct", "bob", "unread", ...o])).code).toBe(0);
      const again = await cli(["clear", owner, "direct", "bob", "unread", ...o]);
      expect(again.stdout).toContain("unchanged");

      const c = (await server.marks.getConversation({ key: direct(owner, "bob") })).conversation!;
      expect(c.marks).toEqual([1, 33]);
      expect(c.labels).toEqual(["work"]);
      expect(c.customMark).toBe("星标");

      const got = await cli(["get", owner, "direct", "bob", "--json", ...o]);
      expect(got.code).toBe(0);
      expect(JSON.parse(got.stdout)).toMatchObject({ key: { ownerUserId: owner, conversationId: "bob" }, marks: [1, 33], customMark: "星标", markBits: String((1n << 32n) | 1n) });

      const pinned = JSON.parse((await cli(["list", owner, "--pinned", "--json", ...o])).stdout) as { conversations: { key: { conversationId: string } }[] };
      expect(pinned.conversations.map((x) => x.key.conversationId)).toEqual(["g1"]);
      const table = await cli(["list", owner, ...o]);
      expect(table.stdout.split("\n")[0]).toMatch(/^TYPE +CONVERSATION +MARKS +CUSTOM +LABELS +PINNED +RECEIVE +VERSION +UPDATED$/);
      expect(table.stdout).toMatch(/direct +bob +star,33 +"星标" +work +no/);
    }
  });

  it("lists with filters, pages and --all", async () => {
    await server.marks.updateConversations({
      updates: Array.from({ length: 12 }, (_, i) => ({
        key: direct("pager", `c${String(i).padStart(2, "0")}`),
        ...(i < 4 ? { setMarks: [i + 1] } : {}),
        settings: { pinned: i % 3 === 0 },
      })),
    });
    const page1 = await cli(["list", "pager", "--page-size", "5", "--url", url]);
    expect(page1.stdout.trim().split("\n")).toHaveLength(1 + 5 + 1);
    const token = /more: --page-token (\S+)/.exec(page1.stdout)?.[1];
    expect(token).toBeTruthy();
    const page2 = await cli(["list", "pager", "--page-size", "5", "--page-token", token!, "--json", "--url", url]);
    const p2 = JSON.parse(page2.stdout) as { conversations: unknown[]; nextPageToken?: string };
    expect(p2.conversations).toHaveLength(5);
    expect(p2.nextPageToken).toBeTruthy();
    const all = JSON.parse((await cli(["list", "pager", "--page-size", "5", "--all", "--json", "--url", url])).stdout) as { conversations: unknown[]; nextPageToken?: string };
    expect(all.conversations).toHaveLength(12);
    expect(all.nextPageToken).toBeUndefined();
    const marked = JSON.parse((await cli(["list", "pager", "--marks-any", "star,unread", "--not-pinned", "--json", "--url", url])).stdout) as {
      conversations?: { key: { conversationId: string } }[];
    };
    // c00 (star) is pinned (0 % 3 == 0), c01 (unread) is not.
    expect(marked.conversations?.map((x) => x.key.conversationId)).toEqual(["c01"]);
    const starOrFold = JSON.parse((await cli(["list", "pager", "--marks-any", "star,fold", "--json", "--url", url])).stdout) as {
      conversations: { key: { conversationId: string } }[];
    };
    expect(starOrFold.conversations.map((x) => x.key.conversationId).sort()).toEqual(["c00", "c02"]);
  });

  it("exits 1 with the status in words when the server refuses, or is not there", async () => {
    const owner = "capped";
    for (const id of ["a", "b", "c", "d"]) expect((await cli(["set", owner, "direct", id, "star", "--url", url])).code).toBe(0);
    const refused = await cli(["set", owner, "direct", "e", "star", "--url", url]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/ResourceExhausted: .*\(OWNER_MARKED_LIMIT\)/);
    const missing = await cli(["get", owner, "direct", "nobody", "--url", url]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("NotFound: conversation not found");
    const down = await cli(["health", "--url", "http://127.0.0.1:9"]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain("is convmark running at http://127.0.0.1:9?");
    const ok = await cli(["health", "--url", url]);
    expect([ok.code, ok.stdout.trim()]).toEqual([0, "SERVING"]);
  });

  it("manages the directory: users and groups with members", async () => {
    const reg = await cli(["users", "register", "ann", "ben", "--url", url]);
    expect(reg.code, reg.stderr).toBe(0);
    expect(reg.stdout).toMatch(/ann +ok +yes/);
    const shown = JSON.parse((await cli(["users", "show", "ann", "zed", "--json", "--url", url])).stdout) as { users: { userId: string; registered?: boolean }[] };
    expect(shown.users.map((u) => [u.userId, u.registered ?? false])).toEqual([["ann", true], ["zed", false]]);
    expect((await cli(["groups", "create", "crew", "ann", "--url", url])).code).toBe(0);
    expect((await cli(["groups", "add-members", "crew", "ben", "--url", url])).code).toBe(0);
    const group = await cli(["groups", "show", "crew", "--url", url]);
    expect(group.stdout).toMatch(/crew +active +2/);
    expect(group.stdout).toContain("members: ann, ben");
    const dismissed = await cli(["groups", "dismiss", "crew", "--json", "--url", url]);
    expect(JSON.parse(dismissed.stdout)).toMatchObject({ groupId: "crew", dismissed: true });
  });

  it("export → import into an empty server reproduces every conversation exactly (version, time, empty records, vendor ID, order)", async () => {
    const source = await startTestServer();
    const target = await startTestServer();
    try {
      const seeded = await source.marks.updateConversations({
        updates: [
          { key: direct("exp-a", "x"), setMarks: [1, 64], customMark: 'c\n"q"', addLabels: ["l1", "标签"], vendorConversationId: "si_exp-a_x", settings: { pinned: true, receiveOption: 2, privateChat: true, burnDurationSeconds: 30, attachedInfo: "ai", ex: "{}" } },
          { key: { ownerUserId: "exp-a", type: ConversationType.GROUP, conversationId: "g" }, setMarks: [4], vendorConversationId: "sg_g" },
          { key: direct("exp-a", "y"), settings: { pinned: false, receiveOption: 3 } },
          { key: direct("exp-a", "emptied"), setMarks: [2], addLabels: ["t"] },
          { key: direct("exp-a", "gone"), setMarks: [3] },
          ...Array.from({ length: 4 }, (_, i) => ({ key: direct("exp-b", `p${i}`), addLabels: [`n${i}`] })),
        ],
      });
      expect(seeded.results.every((r) => (r.status?.code ?? 0) === 0)).toBe(true);
      await new Promise((r) => setTimeout(r, 5)); // later writes get later update times
      // A record that exists with nothing set (version 2), a bumped version, and a deleted one (not exported).
      await source.marks.updateConversations({
        updates: [
          { key: direct("exp-a", "emptied"), clearMarks: [2], removeLabels: ["t"] },
          { key: direct("exp-b", "p1"), addLabels: ["again"] },
        ],
      });
      await source.marks.deleteConversations({ keys: [direct("exp-a", "gone")] });

      // Every owner (through the feed), as a backup takes it.
      const all = await cli(["export", "--url", source.url]);
      expect(all.code, all.stderr).toBe(0);
      expect(all.stderr).toContain("exported 8 conversations");
      const exported = all.stdout.trim().split("\n");
      const parsed = exported.map((l) => JSON.parse(l) as { key: { ownerUserId: string; conversationId: string }; version: string; updateTime: string; vendorConversationId?: string });
      expect(parsed.find((c) => c.key.conversationId === "emptied")).toEqual({ key: { ownerUserId: "exp-a", type: "CONVERSATION_TYPE_DIRECT", conversationId: "emptied" }, version: "2", updateTime: expect.any(String) });
      expect(parsed.find((c) => c.key.conversationId === "x")?.vendorConversationId).toBe("si_exp-a_x");

      const [one, imp] = await Promise.all([
        cli(["export", "--user", "exp-b", "--url", source.url]),
        cli(["import", "--batch-size", "3", "--url", target.url], { input: exported.slice(0, 5).join("\n") + "\n" }),
      ]);
      expect(one.stdout.trim().split("\n")).toEqual(exported.filter((l) => l.includes('"ownerUserId":"exp-b"')));
      // An import cut off after five lines, then run again in full: what is in is skipped.
      expect(imp.code, imp.stderr).toBe(0);
      expect(imp.stderr).toContain("read 5, written 5, skipped (already in) 0, failed 0");
      const rest = await cli(["import", "--resume", "--json", "--url", target.url], { input: exported.join("\n") });
      expect(rest.code, rest.stderr).toBe(0);
      expect(JSON.parse(rest.stdout)).toMatchObject({ read: 8, written: 3, skipped: 5, failed: 0 });

      // Byte for byte the same lines, in the same order; the same list order per owner.
      const [back, listA, listA2] = await Promise.all([
        cli(["export", "--url", target.url]),
        cli(["list", "exp-a", "--all", "--json", "--url", source.url]),
        cli(["list", "exp-a", "--all", "--json", "--url", target.url]),
      ]);
      expect(back.stdout.trim().split("\n")).toEqual(exported);
      expect(listA2.stdout).toBe(listA.stdout);
      expect((JSON.parse(listA.stdout) as { conversations: unknown[] }).conversations).toHaveLength(4);

      // The target's own newer state wins over the backup's older one.
      await target.marks.updateConversations({ updates: [{ key: direct("exp-a", "x"), setMarks: [2], addLabels: ["extra"] }] });
      const again = JSON.parse((await cli(["import", "--json", "--url", target.url], { input: exported.join("\n") })).stdout) as { written: number; skipped: number };
      expect(again).toMatchObject({ written: 0, skipped: 8 });
      const x = (await target.marks.getConversation({ key: direct("exp-a", "x") })).conversation!;
      expect([x.version, x.marks, [...x.labels].sort()]).toEqual([2n, [1, 2, 64], ["extra", "l1", "标签"]]);

      const bad = await cli(["import", "--url", target.url], {
        input: ["{not json", JSON.stringify({ key: { ownerUserId: "z", conversationId: "q" } }), JSON.stringify({ key: direct("z", "ok"), marks: [99] }), exported[0]].join("\n"),
      });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain("read 4, written 0, skipped (already in) 1, failed 3");
      expect(bad.stderr).toMatch(/failures by reason: invalid_line 2, \S+ 1/);
      expect(bad.stderr).toMatch(/line 1: invalid_line: not a Conversation in JSON/);
      expect(bad.stderr).toMatch(/line 3 z\/direct\/ok: .*mark/);
    } finally {
      await Promise.all([target.close(), source.close()]);
    }
  });

  it("deletes, syncs from a cursor, and watches changes live from --cursor", async ({ expect }) => {
    const owner = "feedy";
    const start = await cli(["sync", "--user", owner, "--json", "--url", url]);
    expect(start.code, start.stderr).toBe(0);
    const cursor = (JSON.parse(start.stdout) as { nextCursor: string }).nextCursor;
    expect(cursor).toBeTruthy();
    await server.marks.updateConversations({ updates: [{ key: direct(owner, "a"), setMarks: [1] }, { key: direct(owner, "b"), setMarks: [2] }] });
    const del = await cli(["delete", owner, "direct", "a", "never", "--url", url]);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toMatch(/a +deleted/);
    expect(del.stdout).toMatch(/never +nothing to delete/);

    const synced = await cli(["sync", "--user", owner, "--cursor", cursor, "--url", url]);
    expect(synced.code, synced.stderr).toBe(0);
    expect(synced.stdout).toMatch(/feedy +direct\/a +v\d+ +deleted/);
    expect(synced.stdout).toMatch(/feedy +direct\/b +v1 +marks=unread/);
    expect(synced.stderr).toMatch(/^next cursor: \S+/);

    // watch --cursor replays what came after the cursor, then goes on live; SIGINT ends it with 0.
    const child = spawn(process.execPath, [BUNDLE, "watch", "--user", owner, "--cursor", cursor, "--json", "--url", url], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    const changes = () =>
      out
        .split("\n")
        .filter((l) => l.trim())
        .flatMap((l) => (JSON.parse(l) as { changes: { conversation: { key: { conversationId: string }; marks?: number[] }; deleted?: boolean }[] }).changes);
    await expect.poll(() => changes().length, { timeout: 30_000 }).toBeGreaterThanOrEqual(2);
    await server.marks.updateConversations({ updates: [{ key: direct(owner, "c"), setMarks: [33] }] });
    await expect.poll(() => changes().some((c) => c.conversation.key.conversationId === "c" && c.conversation.marks?.[0] === 33), { timeout: 30_000 }).toBe(true);
    expect(changes().some((c) => c.conversation.key.conversationId === "a" && c.deleted === true)).toBe(true);
    child.kill("SIGINT");
    expect(await exited).toBe(0);
  });

  it("shows a progress bar on stderr when it is a terminal (script(1) gives it one)", async () => {
    if (spawnSync("script", ["--version"]).status !== 0) {
      console.log("progress bar test not run: script(1) from util-linux is missing");
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), "convmark-progress-"));
    try {
      const file = join(dir, "in.ndjson");
      writeFileSync(file, Array.from({ length: 250 }, (_, i) => JSON.stringify({ key: direct(`bar-${i % 5}`, `c${i}`), settings: { pinned: true } })).join("\n"));
      // Asynchronously: the server under test runs in this process and must keep answering.
      const r = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
        const child = spawn("script", ["-qfec", `${process.execPath} ${BUNDLE} import --batch-size 100 --url ${url} < ${file}`, "/dev/null"], {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, CONVMARK_TOKEN: "" },
        });
        let stdout = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.on("close", (status) => resolve({ status, stdout }));
      });
      expect(r.status, r.stdout).toBe(0);
      expect(r.stdout).toMatch(/import \|[█░]+\| 250\/250 lines · 250 written · 0 failed/);
      expect(r.stdout).toContain("read 250, written 250");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs as `npx convmark` from the project (package.json bin, through tsx, no build)", async () => {
    const out = await new Promise<Run>((resolve) => {
      execFile("npx", ["--no-install", "convmark", "health", "--url", url], { env: { ...process.env, CONVMARK_TOKEN: "" } }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(out.stderr).toBe("");
    expect([out.code, out.stdout.trim()]).toEqual([0, "SERVING"]);
  });
});

describe("the convmark CLI with bearer tokens", () => {
  const secret = "cli-test-secret-0123456789abcdef0123456789";
  const sign = (claims: Record<string, string>) =>
    new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setExpirationTime("10m").sign(new TextEncoder().encode(secret));
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ CONVMARK_AUTH_JWT_SECRET: secret });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("sends --token or CONVMARK_TOKEN as a bearer token; refusals are exit 1 in words", async () => {
    const url = server.url;
    const alice = await sign({ sub: "alice" });
    const service = await sign({ sub: "backup", scope: "convmark:service" });
    const [none, own] = await Promise.all([
      cli(["set", "alice", "direct", "bob", "star", "--url", url], { bin: true }),
      cli(["set", "alice", "direct", "bob", "star", "--token", alice, "--url", url], { bin: true }),
    ]);
    // What reads alice's conversation runs after the write.
    const [other, env, connect] = await inBatches([
      () => cli(["list", "bob", "--token", alice, "--url", url]),
      () => cli(["export", "--url", url], { env: { CONVMARK_TOKEN: service } }),
      () => cli(["get", "alice", "direct", "bob", "--protocol", "connect", "--url", url], { env: { CONVMARK_TOKEN: alice } }),
    ]);
    // Restoring versions is for services: a user token is refused even for its own conversations.
    const line = JSON.stringify({ key: direct("alice", "carl"), marks: [1], version: "3", updateTime: "2024-01-02T03:04:05.678Z" });
    const [userImport, serviceImport] = await Promise.all([
      cli(["import", "--token", alice, "--url", url], { input: line }),
      cli(["import", "--token", service, "--url", url], { input: line }),
    ]);
    expect(userImport.code).toBe(1);
    expect(userImport.stderr).toMatch(/PermissionDenied: RestoreConversations needs a service token/);
    expect(serviceImport.code, serviceImport.stderr).toBe(0);
    const carl = (await server.marks.getConversation({ key: direct("alice", "carl") }, { headers: { authorization: `Bearer ${service}` } })).conversation!;
    expect([carl.version, carl.updateTime?.seconds, carl.updateTime?.nanos]).toEqual([3n, BigInt(Date.parse("2024-01-02T03:04:05Z") / 1000), 678_000_000]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^convmark: Unauthenticated: /);
    expect(own.code, own.stderr).toBe(0);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/^convmark: PermissionDenied: /);
    expect(env.code, env.stderr).toBe(0);
    expect(env.stdout).toContain('"ownerUserId":"alice"');
    expect(connect.code, connect.stderr).toBe(0);
    expect(connect.stdout).toMatch(/marks +star/);
  });
});
