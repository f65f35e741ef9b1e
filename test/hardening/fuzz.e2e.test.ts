// Issue 7: the bounded fuzz suite. The real server (src/main.ts) runs in its own process (so that it
// has a core of its own, and its memory is its own), with --expose-gc; the seeded fuzzer sends
// 1,500 bodies to every route with a request message of its own (a route is one parsing path: each
// MarkService method in each protocol — Connect JSON, Connect binary, gRPC, gRPC-Web —,
// WatchConversations in each protocol, every ZEGO Action, every Tencent route, OpenIM's writes,
// token and incremental routes), 100 to the routes that share a request shape (DirectoryService in
// each protocol, the other OpenIM reads, unknown Actions and paths) and to every /v1 REST operation
// of gen/openapi/openapi.json, 150 each, and 75 to each vendor RPC method: 83,400 bodies in three
// bursts, so that the server's memory after the third is judged against the second (a plateau: on
// Node 24 the allocators' retained pages reach theirs after one burst or after two).
// `npm run fuzz` runs the same at ≥ 100,000. Route definition and counts: docs/reliability.md.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fuzz, FUZZ_CREDENTIALS, FUZZ_SERVER_ENV, listenerOpen, type FuzzReport } from "../support/fuzzer.js";
import { startServerProcess, type MemoryReading, type ServerProcess } from "../support/server-process.js";

/** Live JS heap after a full GC may grow by this much over all bursts (caches filling, compiled code). */
const HEAP_BOUND_MB = 40;
/**
 * RSS after the third burst may exceed RSS after the second by this much: the allocators' retained
 * pages plateau (Node 24's V8 keeps the young generation it grew to, ~105 MB on this load, and its
 * native heap settles near 350 MB after the first or the second burst: docs/reliability.md), a leak
 * keeps growing with every burst. Same on Node 20 and 24.
 */
const PLATEAU_MB = 40;
/** RSS after all bursts may exceed the start by this much (Node 24 ~200 MB, Node 20 ~80 MB measured). */
const RSS_BOUND_MB = 260;
/** How long the server may take, idle after a burst, to give its memory back. */
const RSS_SETTLE_MS = 20_000;

describe("fuzzing every route (bounded)", () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServerProcess(FUZZ_SERVER_ENV, { exposeGc: true });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("no 5xx, no INTERNAL, vendor envelopes only, no hang; the server stays up and its memory plateaus after one burst", async () => {
    const before = await server.memory();
    expect(before.gc).toBe(true);
    const mb = (n: number) => n / 2 ** 20;
    // Idle until RSS is within `bound` of `base` (freed pages go back within seconds), at most RSS_SETTLE_MS.
    const settle = async (base: number, bound: number) => {
      let m = await server.memory();
      for (const by = Date.now() + RSS_SETTLE_MS; mb(m.usage.rss - base) >= bound && Date.now() < by; ) {
        await new Promise((r) => setTimeout(r, 1000));
        m = await server.memory();
      }
      return m;
    };
    // convmark_listener_open (connections, sessions, streams, requests), where the server has it:
    // back to at most its start after each burst (the fuzzer has closed its sockets and sessions;
    // the harness's own idle sockets may close meanwhile). A leak leaves more open.
    const openAtStart = await listenerOpen(server.url);
    const settledOpen = async () => {
      let now = await listenerOpen(server.url);
      const over = () => Object.entries(now ?? {}).filter(([k, v]) => v > (openAtStart?.[k] ?? 0));
      for (const by = Date.now() + 5000; over().length > 0 && Date.now() < by; now = await listenerOpen(server.url)) await new Promise((r) => setTimeout(r, 200));
      return Object.fromEntries(over());
    };
    // Three bursts of 500 bodies per route each (seeds 7, 8 and 9): 1,500 per route in all.
    const reports: FuzzReport[] = [];
    const readings: MemoryReading[] = [];
    for (const seed of [7, 8, 9]) {
      const report = await fuzz({ url: server.url, seed, perRoute: 500, perSharedRoute: 50, perVendorRpc: 25, perRestRoute: 50, concurrency: 32, ...FUZZ_CREDENTIALS });
      console.log(
        `fuzz (seed ${seed}): ${report.requests} bodies to ${Object.keys(report.byRoute).length} routes in ${(report.elapsedMs / 1000).toFixed(1)} s ` +
          `(${JSON.stringify(report.byTransport)}), max latency ${Math.round(report.maxLatencyMs)} ms`,
      );
      expect(report.failures).toEqual([]);
      expect(report.failureCount).toBe(0);
      expect(report.hangs).toBe(0);
      expect(await settledOpen(), JSON.stringify(openAtStart)).toEqual({});
      reports.push(report);
      readings.push(await settle(readings.length > 1 ? readings[1]!.usage.rss : before.usage.rss, readings.length > 1 ? PLATEAU_MB : RSS_BOUND_MB));
    }
    const sent = (route: string) => reports.reduce((n, r) => n + (r.byRoute[route]?.requests ?? 0), 0);
    for (const protocol of ["connect-json", "connect-proto", "grpc", "grpc-web"]) expect(sent(`${protocol} convmark.v1.MarkService/UpdateConversations`)).toBe(1500);
    for (const protocol of ["connect-stream-json", "connect-stream-proto", "grpc", "grpc-web"]) expect(sent(`${protocol} convmark.v1.MarkService/WatchConversations`)).toBe(1500);
    expect(sent("tencent /v4/recentcontact/mark_contact")).toBe(1500);
    expect(sent("rest GET /v1/users/{owner_user_id}/conversations:watch")).toBe(150);
    // Every WatchConversations protocol saw valid watches (answered, then cancelled by the fuzzer) and refusals.
    for (const protocol of ["connect-stream-json", "connect-stream-proto", "grpc", "grpc-web"]) {
      const statuses = reports.map((r) => r.byRoute[`${protocol} convmark.v1.MarkService/WatchConversations`]!.statuses);
      expect(statuses.some((st) => (st.stream ?? 0) > 0), protocol).toBe(true);
    }
    expect(reports.reduce((n, r) => n + r.requests, 0)).toBeGreaterThan(80_000);
    const health = await fetch(`${server.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(await health.json()).toEqual({ status: "SERVING" });
    const [first, second, after] = readings as [MemoryReading, MemoryReading, MemoryReading];
    console.log(
      `fuzz: server after GC (Node ${process.versions.node}): heap used ${mb(before.usage.heapUsed).toFixed(0)} → ${mb(first.usage.heapUsed).toFixed(0)} → ${mb(second.usage.heapUsed).toFixed(0)} → ${mb(after.usage.heapUsed).toFixed(0)} MB, ` +
        `RSS ${mb(before.usage.rss).toFixed(0)} → ${mb(first.usage.rss).toFixed(0)} → ${mb(second.usage.rss).toFixed(0)} → ${mb(after.usage.rss).toFixed(0)} MB`,
    );
    expect(mb(after.usage.heapUsed - before.usage.heapUsed)).toBeLessThan(HEAP_BOUND_MB);
    expect(mb(after.usage.rss - second.usage.rss)).toBeLessThan(PLATEAU_MB);
    expect(mb(after.usage.rss - before.usage.rss)).toBeLessThan(RSS_BOUND_MB);
  }, 300_000);
});
