/** convmark as an operator runs it: `npm start` (tsx src/main.ts) in its own process. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { ConversationType, MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { HealthCheckResponse_ServingStatus, HealthCheckRequestSchema, HealthCheckResponseSchema, Health } from "../../gen/grpc/health/v1/health_pb.js";
import { grpcClient } from "../support/grpc.js";
import { freePort } from "../support/ports.js";

const dataDir = mkdtempSync(join(tmpdir(), "convmark-proc-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function start(env: Record<string, string>, nodeArgs: string[] = []): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", "src/main.ts"], {
    env: { ...process.env, HOST: "127.0.0.1", CONVMARK_DATA_DIR: dataDir, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** The live child processes of `pid` (Linux /proc). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function waitFor(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs `fn`; a failure carries the tail of the server's output (what it logged before the failure). */
async function withOutput(output: () => string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    // A new error, so the output is in its stack too (reporters print the stack, made with the message).
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(`${why}\nthe server's output:\n${output().slice(-2500)}`, { cause: e });
  }
}

describe("the convmark process", () => {
  it("serves, shuts down gracefully on SIGTERM (exit 0), and keeps its data for the next start", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const first = start({ PORT: String(port) });
    const marks = createClient(MarkService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
    const key = { ownerUserId: "proc", type: ConversationType.GROUP, conversationId: "g" };
    await withOutput(first.output, async () => {
      await waitFor(() => first.output().includes("convmark listening"));
      const g = grpcClient(url);
      const health = await g.unary(Health, "Check", HealthCheckRequestSchema, HealthCheckResponseSchema, { service: "convmark.v1.MarkService" });
      expect(health.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      g.close();
      await marks.updateConversations({ updates: [{ key, setMarks: [7] }] });
      first.child.kill("SIGTERM");
      expect(await first.exited).toBe(0);
      expect(first.output()).toContain("shutdown complete");
    });

    const second = start({ PORT: String(port) });
    await withOutput(second.output, async () => {
      await waitFor(() => second.output().includes("convmark listening"));
      expect((await marks.getConversation({ key })).conversation?.marks).toEqual([7]);
      second.child.kill("SIGINT");
      expect(await second.exited).toBe(0);
    });
  });

  it("refuses to start on invalid configuration with a clear message", async () => {
    const bad = start({ PORT: "not-a-port" });
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toMatch(/invalid configuration: PORT/);
  });
});

/**
 * A cluster worker that fails at once, before any worker listens (a --import module the workers
 * inherit through execArgv; node:cluster numbers the workers it forks 1, 2, ...).
 */
const failWorker = (id: number) => [
  "--import",
  `data:text/javascript,${encodeURIComponent(`import cluster from "node:cluster"; if (cluster.worker?.id === ${id}) { console.error("planted: worker ${id} fails to start"); process.exit(3); }`)}`,
];

describe("the convmark process with two workers", () => {
  it("replaces a worker that failed to start once another worker listens, and serves with both", async () => {
    const port = await freePort();
    const server = start({ PORT: String(port), CONVMARK_WORKERS: "2" }, failWorker(2));
    await withOutput(server.output, async () => {
      await waitFor(() => server.output().includes("convmark listening (all workers)"), 40_000);
      expect(server.output()).toContain("planted: worker 2 fails to start");
      expect(server.output()).toMatch(/a worker failed to start; waiting for the others/);
      expect(server.output()).toMatch(/a worker failed to start; starting a replacement now that another listens/);
      const marks = createClient(MarkService, createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1" }));
      expect((await marks.listConversations({ ownerUserId: "nobody" })).conversations).toEqual([]);
      // The workers run with the young generation the primary sized (src/server/heap.ts).
      const workers = childPids(server.child.pid!);
      expect(workers.length).toBeGreaterThanOrEqual(2);
      for (const pid of workers) {
        const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
        expect(argv).toEqual(expect.arrayContaining(["--min-semi-space-size=32", "--max-semi-space-size=32"]));
      }
      server.child.kill("SIGTERM");
      expect(await server.exited).toBe(0);
    });
  });

  it("stops at once, exit 1, when no worker can start (the port is taken)", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      const server = start({ PORT: String(port), CONVMARK_WORKERS: "2" });
      await withOutput(server.output, async () => {
        expect(await server.exited).toBe(1);
        expect(server.output()).toMatch(/EADDRINUSE/);
        expect(server.output()).toMatch(/no worker could start; stopping/);
        expect(server.output()).not.toMatch(/starting a replacement/);
      });
    } finally {
      taken.close();
    }
  });
});
