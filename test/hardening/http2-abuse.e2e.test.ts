// Issue 7, item 4, against the real server in its own process: rapid reset and non-reading streams
// from a third process (scripts/h2-attack.ts) while this one probes Health/Check every 50 ms on its
// own connection. What the attacker cost is read from the server's /metrics (the ListConversations
// calls it started), not from the attacker's side; the probe latency is judged against a baseline
// taken in the same test just before, so a loaded machine raises both. With the session guard's
// bounds lifted (GUARD_OFF below) these checks fail; with them they hold at a load average of ~10.
import { spawn } from "node:child_process";
import * as http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";

/** Lifts every bound of the session guard (for checking that these tests fail without it). */
export const GUARD_OFF = {
  CONVMARK_HTTP2_MAX_RESETS_PER_SECOND: "1000000",
  CONVMARK_HTTP2_MAX_BUFFERED_BYTES: String(1 << 30),
  CONVMARK_HTTP2_PAUSE_BUFFERED_BYTES: String(1 << 30),
  CONVMARK_HTTP2_STALL_MS: "3600000",
};
const extraEnv: Record<string, string> = process.env.CONVMARK_TEST_GUARD_OFF === "1" ? GUARD_OFF : {};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Health/Check latencies on one HTTP/2 connection, every 50 ms for `ms`. */
async function probe(url: string, ms: number): Promise<{ latencies: number[]; failed: number }> {
  const session = http2.connect(url);
  session.on("error", () => {});
  const latencies: number[] = [];
  let failed = 0;
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const t = performance.now();
    const ok = await new Promise<boolean>((resolve) => {
      const st = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/json" });
      let status = 0;
      const timer = setTimeout(() => st.close(), 20_000);
      st.on("response", (h) => (status = Number(h[":status"])));
      st.on("data", () => {});
      st.on("close", () => {
        clearTimeout(timer);
        resolve(status === 200);
      });
      st.on("error", () => resolve(false));
      st.end("{}");
    });
    latencies.push(performance.now() - t);
    if (!ok) failed++;
    await sleep(50);
  }
  session.close();
  return { latencies, failed };
}

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)]!;

/** From the server's /metrics: ListConversations calls started, sessions the guard ended for rapid reset. */
async function serverCounts(url: string): Promise<{ started: number; rapidResetEnds: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return {
    started: Number(/^grpc_server_started_total\{[^}]*grpc_method="ListConversations"\} (\d+)$/m.exec(text)?.[1] ?? 0),
    rapidResetEnds: Number(/^convmark_listener_refusals_total\{kind="http2_session_ended",reason="rapid_reset"\} (\d+)$/m.exec(text)?.[1] ?? 0),
  };
}

interface Outcome {
  attack: Record<string, number>;
  /** ListConversations calls the server started during the attack (its /metrics). */
  started: number;
  /** Attacking sessions the server's guard ended for rapid reset (its /metrics). */
  rapidResetEnds: number;
  baseline: { p99: number; worst: number };
  during: { p99: number; worst: number; probes: number; failed: number };
}

async function underAttack(server: ServerProcess, mode: string, pageSize: number, seconds = 5): Promise<Outcome> {
  const base = await probe(server.url, 2_000);
  const before = await serverCounts(server.url);
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "scripts/h2-attack.ts", mode, "--url", server.url, "--seconds", String(seconds), "--sessions", "2", "--owner", "big", "--page-size", String(pageSize)],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => child.once("exit", r));
  await sleep(500); // the attack is under way
  const during = await probe(server.url, (seconds - 1) * 1000);
  await exited;
  const after = await serverCounts(server.url);
  const outcome: Outcome = {
    attack: JSON.parse(out) as Record<string, number>,
    started: after.started - before.started,
    rapidResetEnds: after.rapidResetEnds - before.rapidResetEnds,
    baseline: { p99: p99(base.latencies), worst: Math.max(...base.latencies) },
    during: { p99: p99(during.latencies), worst: Math.max(...during.latencies), probes: during.latencies.length, failed: during.failed },
  };
  console.log(JSON.stringify({ mode, pageSize, ...outcome }));
  return outcome;
}

/**
 * Health checks under attack: all answered, p99 within 30x the quiet p99 of the same run plus
 * 1 s (before the guard: 5-10 s; generous, so it holds on a loaded shared machine: at a load
 * average of 9, 1.4 s against a 57 ms baseline; what tells the guard's work apart are the
 * server-side counts).
 */
function expectServedAsUsual(o: Outcome): void {
  expect(o.during.failed).toBe(0);
  expect(o.during.probes).toBeGreaterThan(10);
  expect(o.during.p99, JSON.stringify(o)).toBeLessThan(30 * o.baseline.p99 + 1000);
}

describe("HTTP/2 abuse from one client does not stall the others (item 4)", () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServerProcess({ CONVMARK_MAX_MARKED_PER_OWNER: "100000", ...extraEnv });
    const marks = createClient(MarkService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    for (let b = 0; b < 5; b++) {
      await marks.updateConversations({
        updates: Array.from({ length: 100 }, (_, i) => ({ key: { ownerUserId: "big", type: 1, conversationId: `c${b}-${i}` }, setMarks: [1], customMark: "x".repeat(100), labels: ["l1", "l2"] })),
      });
    }
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("rapid reset: the attacker's sessions are ended, few of its streams start a call, health checks keep answering", async () => {
    const o = await underAttack(server, "rapid-reset", 20);
    expect(o.attack.resetsSent).toBeGreaterThan(1000);
    expect(o.attack.goaways).toBeGreaterThan(0);
    // Ended by the guard (200 resets per second), not only by nghttp2's own flood limit (~1,000 per session).
    expect(o.rapidResetEnds, JSON.stringify(o)).toBeGreaterThan(o.attack.sessionsOpened / 2);
    // A stream reset in the read that opened it never reaches a handler.
    expect(o.started, JSON.stringify(o)).toBeLessThan(o.attack.resetsSent / 10);
    expectServedAsUsual(o);
  }, 60_000);

  it("non-reading streams asking for big pages: no work starts while a session's responses lie unread", async () => {
    // 2 sessions of 100 streams (more are refused), each asking for all 500 conversations (~100 KB):
    // unbounded, every one is computed; bounded, a few per session until the client reads.
    const o = await underAttack(server, "non-reading", 500);
    expect(o.attack.streamsOpened).toBeGreaterThan(200);
    expect(o.started, JSON.stringify(o)).toBeLessThan(60);
    expectServedAsUsual(o);
  }, 60_000);
});
