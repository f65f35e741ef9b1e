/**
 * CONVMARK_WORKERS=2: the real `npm start` process as cluster primary with two workers on one port
 * and one SQLite file. Every request below goes over a new TCP connection, and node:cluster hands
 * connections to the workers in turn, so consecutive requests land on different workers (checked
 * from the per-RPC log lines, which carry the worker's pid). What must hold for the whole server:
 * one /metrics, the ZEGO replay cache, the vendor rate limit, the per-owner cap, the shutdown.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { APP_ID, DOC_EXAMPLE_BODY, SECRET, publicParams, setConvMarkUrl } from "../dialects/zego-fixtures.js";
import { freePort } from "../support/ports.js";

const RATE = 5;
const CAP = 20;
const dataDir = mkdtempSync(join(tmpdir(), "convmark-cluster-test-"));

/** One request on its own connection (no keep-alive agent), so the cluster picks a worker for it. */
function post(url: string, body: string, headers: Record<string, string> = { "content-type": "application/json" }): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: "POST", agent: false, headers: { ...headers, connection: "close" } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const get = (url: string) =>
  new Promise<string>((resolve, reject) => {
    request(url, { agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve(text));
    })
      .on("error", reject)
      .end();
  });

const children = (pid: number): number[] => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
};
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));

async function waitFor(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    // A server that has exited will not get there: say so at once, with what it printed.
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`the server exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}; its output:\n${out.slice(-4000)}`);
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; the server's output:\n${out.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let child: ChildProcess;
let out = "";
let exited: Promise<number | null>;
let url = "";

const logLines = () =>
  out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(port),
      CONVMARK_DATA_DIR: dataDir,
      CONVMARK_WORKERS: "2",
      CONVMARK_MAX_MARKED_PER_OWNER: String(CAP),
      LOG_LEVEL: "info",
      ZEGO_APP_ID: String(APP_ID),
      ZEGO_SERVER_SECRET: SECRET,
      ZEGO_RATE_LIMIT_PER_SECOND: String(RATE),
      OPENIM_SECRET: "openIM123",
      OPENIM_ADMIN_USER_IDS: "imAdmin",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  await waitFor(() => out.includes("convmark listening (all workers)"), "both workers listening", 50_000);
});

afterAll(async () => {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill("SIGKILL");
    await exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe("two workers, one server", () => {
  it("spreads connections over both workers and serves one /metrics aggregated over them", async () => {
    expect(children(child.pid!)).toHaveLength(2);
    const N = 12;
    for (let i = 0; i < N; i++) {
      const r = await post(`${url}/grpc.health.v1.Health/Check`, "{}");
      expect(r.text).toContain("SERVING");
    }
    await waitFor(() => logLines().filter((l) => l["procedure"] === "/grpc.health.v1.Health/Check").length >= N, "rpc log lines");
    const pids = new Set(logLines().filter((l) => l["procedure"] === "/grpc.health.v1.Health/Check").map((l) => l["pid"]));
    expect(pids.size).toBe(2);
    // Whichever worker answers, the figures are the whole server's (each worker saw only ~N/2).
    const labels = 'grpc_type="unary",grpc_service="grpc.health.v1.Health",grpc_method="Check"';
    for (let i = 0; i < 4; i++) {
      const text = await get(`${url}/metrics`);
      expect(text).toContain(`grpc_server_started_total{${labels}} ${N}`);
      expect(text).toContain(`grpc_server_handled_total{${labels},grpc_code="OK"} ${N}`);
      expect(text).toContain(`grpc_server_handling_seconds_count{${labels}} ${N}`);
    }
  });

  it("accepts a ZEGO SignatureNonce once, whichever worker sees it again", async () => {
    const params = publicParams();
    const answers: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await post(setConvMarkUrl(url, params), DOC_EXAMPLE_BODY);
      answers.push((JSON.parse(r.text) as { Code: number }).Code);
    }
    expect(answers[0]).toBe(0);
    expect(answers.slice(1)).toEqual([100000004, 100000004, 100000004, 100000004, 100000004]);
    // A fresh nonce on the next connection is fine.
    const again = await post(setConvMarkUrl(url, publicParams()), DOC_EXAMPLE_BODY);
    expect((JSON.parse(again.text) as { Code: number }).Code).toBe(0);
  });

  it("holds the vendor rate limit for the whole server, not per worker", async () => {
    // The limiter's window starts at the first call; a burst that fits in one second must get exactly RATE.
    for (let attempt = 0; ; attempt++) {
      await new Promise((r) => setTimeout(r, 1100));
      const t0 = Date.now();
      const codes = await Promise.all(
        Array.from({ length: 4 * RATE }, async () => (JSON.parse((await post(setConvMarkUrl(url, publicParams()), DOC_EXAMPLE_BODY)).text) as { Code: number }).Code),
      );
      const elapsed = Date.now() - t0;
      const ok = codes.filter((c) => c === 0).length;
      expect(codes.every((c) => c === 0 || c === 660300005)).toBe(true);
      // Two windows at most, on a slow machine; never a window per worker.
      expect(ok).toBeLessThanOrEqual(2 * RATE);
      if (elapsed < 900) {
        expect(ok).toBe(RATE);
        break;
      }
      if (attempt >= 3) throw new Error(`bursts took ${elapsed} ms; cannot check a per-second limit on this machine`);
    }
  });

  it("refuses a token kicked by OpenIM's force_logout on every worker", async () => {
    const call = async (path: string, body: string, token?: string) => {
      const headers: Record<string, string> = { "content-type": "application/json", operationID: String(Date.now()) };
      if (token) headers["token"] = token;
      return JSON.parse((await post(`${url}${path}`, body, headers)).text) as { errCode: number; data?: { token?: string } };
    };
    const admin = (await call("/auth/get_admin_token", '{"secret":"openIM123","userID":"imAdmin"}')).data!.token!;
    const user = (await call("/auth/get_user_token", '{"platformID":2,"userID":"kickme"}', admin)).data!.token!;
    // Before: the token works on both workers (consecutive connections alternate).
    for (let i = 0; i < 2; i++) expect((await call("/conversation/get_all_conversations", '{"ownerUserID":"kickme"}', user)).errCode).toBe(0);
    expect((await call("/auth/force_logout", '{"platformID":2,"userID":"kickme"}', admin)).errCode).toBe(0);
    const after: number[] = [];
    for (let i = 0; i < 4; i++) after.push((await call("/conversation/get_all_conversations", '{"ownerUserID":"kickme"}', user)).errCode);
    expect(after).toEqual([1506, 1506, 1506, 1506]);
  });

  it("keeps the per-owner cap exact when both workers write at once", async () => {
    const results = await Promise.all(
      Array.from({ length: 3 * CAP }, async (_, i) => {
        const body = JSON.stringify({ updates: [{ key: { ownerUserId: "capped", type: "CONVERSATION_TYPE_DIRECT", conversationId: `c${i}` }, setMarks: [1] }] });
        const r = await post(`${url}/convmark.v1.MarkService/UpdateConversations`, body, { "content-type": "application/json", "connect-protocol-version": "1" });
        expect(r.status).toBe(200);
        const res = JSON.parse(r.text) as { results: { status?: { code?: number }; changed?: boolean }[] };
        return res.results[0]!;
      }),
    );
    expect(results.filter((r) => !r.status?.code && r.changed).length).toBe(CAP);
    expect(results.filter((r) => r.status?.code).every((r) => r.status!.code === 9 || r.status!.code === 8)).toBe(true);
    const list = await post(
      `${url}/convmark.v1.MarkService/ListConversations`,
      JSON.stringify({ ownerUserId: "capped", pageSize: 1000 }),
      { "content-type": "application/json", "connect-protocol-version": "1" },
    );
    expect((JSON.parse(list.text) as { conversations: unknown[] }).conversations).toHaveLength(CAP);
  });

  it("delivers a change written by either worker to watchers on every worker, in the owner's order", async () => {
    // Four watchers, each on its own connection (its own agent): round-robin puts two on each worker.
    const watchers = Array.from({ length: 4 }, () => {
      const client = createClient(MarkService, createConnectTransport({ baseUrl: url, httpVersion: "1.1", nodeOptions: { agent: new Agent({ keepAlive: false }) } }));
      const abort = new AbortController();
      const seen: string[] = [];
      let opened = false;
      const done = (async () => {
        try {
          for await (const m of client.watchConversations({ ownerUserId: "watched" }, { signal: abort.signal })) {
            opened = true;
            for (const c of m.changes) seen.push(`${c.conversation!.key!.conversationId}@${c.conversation!.version}`);
          }
        } catch (e) {
          if (!abort.signal.aborted) throw e;
        }
      })();
      // Awaited below; this only keeps a failure elsewhere in the test from leaving it unhandled.
      done.catch(() => {});
      return { abort, seen, done, opened: () => opened };
    });
    await waitFor(() => watchers.every((w) => w.opened()), "every watch to open (its first heartbeat)");
    // Writes alternate between the workers too: one conversation five times, then four others.
    const write = async (id: string, mark: number) => {
      const body = JSON.stringify({ updates: [{ key: { ownerUserId: "watched", type: "CONVERSATION_TYPE_DIRECT", conversationId: id }, setMarks: [mark] }] });
      const r = await post(`${url}/convmark.v1.MarkService/UpdateConversations`, body, { "content-type": "application/json", "connect-protocol-version": "1" });
      expect(r.status).toBe(200);
    };
    for (let v = 1; v <= 5; v++) await write("same", v);
    for (const id of ["a", "b", "c", "d"]) await write(id, 1);
    // Every watcher ends with the stored state, in commit order, never an older state after a newer
    // one. Changes committed by the other worker reach a watcher through the feed's poll of the shared
    // file, which (as a catch-up does, docs/feed.md) may collapse a conversation's quick successive
    // versions into the latest: so "same" may skip versions, but only upwards.
    const complete = (seen: string[]) => seen.includes("same@5") && ["a@1", "b@1", "c@1", "d@1"].every((x) => seen.includes(x));
    await waitFor(() => watchers.every((w) => complete(w.seen)), "every watcher to reach the stored state", 15_000).catch((e: unknown) => {
      throw new Error(`${String(e)}; seen: ${JSON.stringify(watchers.map((w) => w.seen))}`);
    });
    for (const w of watchers) {
      const versions = w.seen.filter((x) => x.startsWith("same@")).map((x) => Number(x.split("@")[1]));
      expect(versions.at(-1)).toBe(5);
      for (let i = 1; i < versions.length; i++) expect(versions[i]!).toBeGreaterThan(versions[i - 1]!);
      expect(w.seen.slice(versions.length)).toEqual(["a@1", "b@1", "c@1", "d@1"]);
    }
    for (const w of watchers) w.abort.abort();
    await Promise.all(watchers.map((w) => w.done));
    // The watches really were spread over both workers (their log lines come when the streams end).
    await waitFor(() => logLines().filter((l) => l["procedure"] === "/convmark.v1.MarkService/WatchConversations").length >= 4, "watch log lines");
    const pids = new Set(logLines().filter((l) => l["procedure"] === "/convmark.v1.MarkService/WatchConversations").map((l) => l["pid"]));
    expect(pids.size).toBe(2);
  });

  it("replaces a worker that dies, then shuts every worker down on SIGTERM with exit code 0", async () => {
    const [victim] = children(child.pid!);
    process.kill(victim!, "SIGKILL");
    await waitFor(() => children(child.pid!).length === 2 && !children(child.pid!).includes(victim!), "a replacement worker");
    await waitFor(() => logLines().filter((l) => l["msg"] === "convmark listening").length >= 3, "the replacement listening");
    for (let i = 0; i < 4; i++) expect((await post(`${url}/grpc.health.v1.Health/Check`, "{}")).text).toContain("SERVING");
    const workers = children(child.pid!);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    for (const w of workers) expect(alive(w)).toBe(false);
    // Each worker drained and closed its store before the primary exited.
    expect(logLines().filter((l) => l["msg"] === "shutdown complete" && l["code"] === 0).length).toBe(3);
  });
});
