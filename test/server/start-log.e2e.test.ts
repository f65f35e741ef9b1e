/** First contact: `convmark serve` on a terminal prints readable lines; without one, JSON lines. */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../support/ports.js";

const dataDir = mkdtempSync(join(tmpdir(), "convmark-startlog-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
// util-linux's script(1) gives the server a pseudo-terminal as stdout.
const hasScript = spawnSync("script", ["--version"]).status === 0;
if (!hasScript) console.log("terminal start-log test not run: script(1) from util-linux is missing");

/** Starts the server (command line `argv`), collects its output until `until` matches, then stops it. */
async function firstLines(argv: string[], env: Record<string, string>, until: RegExp): Promise<string> {
  const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.on("close", () => r()));
  const end = Date.now() + 30_000;
  while (!until.test(out) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  child.kill("SIGTERM");
  await exited;
  return out;
}

describe("start-up lines", () => {
  const env = (port: number) => ({
    PORT: String(port),
    HOST: "127.0.0.1",
    CONVMARK_DATA_DIR: dataDir,
    OPENIM_SECRET: "openIM123",
    LOG_LEVEL: "info",
    FORCE_COLOR: "0",
  });

  it("are JSON when stdout is not a terminal, with URL, store, data dir, auth, dialects, console and OpenAPI", async () => {
    const port = await freePort();
    // The worker's start line (msg exactly "convmark listening"); with several workers the primary's
    // "convmark listening (all workers)" may come first on the shared stdout.
    const out = await firstLines([process.execPath, "bin/convmark.js", "serve"], env(port), /"msg":"convmark listening"/);
    const line = out.split("\n").find((l) => l.includes('"msg":"convmark listening"'))!;
    const j = JSON.parse(line) as Record<string, unknown>;
    expect(j).toMatchObject({
      url: `http://127.0.0.1:${port}`,
      store: "sqlite",
      dataDir,
      dialects: ["openim"],
      console: `http://127.0.0.1:${port}/console`,
      openapi: `http://127.0.0.1:${port}/openapi.json`,
    });
    expect(typeof j.auth).toBe("string");
  });

  it.skipIf(!hasScript)("are readable sentences on a terminal (pino-pretty), not JSON", async () => {
    const port = await freePort();
    const cmd = `${process.execPath} bin/convmark.js serve`;
    const out = await firstLines(["script", "-qfec", cmd, "/dev/null"], env(port), /health: http\S+\/healthz/);
    const lines = out.split(/\r?\n/).filter((l) => l.trim());
    expect(lines.some((l) => l.trim().startsWith("{"))).toBe(false);
    expect(out).toContain(`convmark listening on http://127.0.0.1:${port} (host 127.0.0.1)`);
    expect(out).toContain(`store: embedded SQLite in ${dataDir}`);
    expect(out).toMatch(/auth: \S+/);
    expect(out).toContain("vendor dialects configured: openim (not configured, answering auth errors: zego, tencent)");
    expect(out).toMatch(/console: (not built \(run npm run build\), would be at )?http:\/\/127\.0\.0\.1:\d+\/console/);
    expect(out).toContain(`API description: http://127.0.0.1:${port}/openapi.json`);
    expect(out).toMatch(/INFO/);
  });
});
