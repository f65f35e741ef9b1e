/** bench/report.ts: the vendor ratios against convmark's own echo and against the bare connect-node ceiling; the List levels' client stalls. */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { buildResults, formatReport, type LevelFigures, type RowId, type RowInfo } from "../../bench/report.js";
import { LatencyLog, RowTotals, watchClientStalls } from "../../bench/stats.js";
import { handledWithin } from "../../bench/server.js";
import { VENDORS, ZEGO_ROUTES } from "../../bench/vendors.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { startApp } from "../server/helpers.js";

/** A row measured for 10 s: `rps` requests per second, `cpuUs` server CPU µs per request. */
function row(rps: number, cpuUs: number): RowInfo {
  const t = new RowTotals();
  const requests = rps * 10;
  t.add({ requests, units: requests, errors: 0, seconds: 10, latencies: new LatencyLog(), serverCpuSeconds: (requests * cpuUs) / 1e6, loadCpuSeconds: 1 });
  return { totals: t, unavailable: undefined };
}

const OTHER_ROWS: RowId[] = ["node_http_echo", "bare_connect_echo", "echo_grpc", "echo_connect", "echo_connect_paced", "update1_grpc", "update1_connect", "update100_grpc", "storage100", "sqlite_raw100", "bulk", "list"];

function results(rows: Partial<Record<RowId, RowInfo>>, levels: LevelFigures[] = []) {
  const all = Object.fromEntries([...OTHER_ROWS, ...VENDORS].map((id) => [id, rows[id as RowId] ?? { totals: undefined, unavailable: undefined }])) as Record<RowId, RowInfo>;
  return buildResults({ settings: {}, machine: { os: "", cpu_model: "", cores: 2, node: "", mem_total_gb: 1, loadavg_at_start: [0, 0, 0] } as never, rows: all, stored: 0, memory: undefined, levels, seconds: 1 });
}

describe("vendor route ratios", () => {
  it("divide by the bare connect-node echo (req/s; ZEGO: per CPU-second), and the target names the slowest route", () => {
    const rows: Partial<Record<RowId, RowInfo>> = { bare_connect_echo: row(4000, 250), echo_connect: row(16000, 80), echo_connect_paced: row(800, 130) };
    // Every vendor route at 4,400 req/s, but tencent_get_list at 1,800; the ZEGO routes at 800/s (paced) with 400 µs per request.
    for (const v of VENDORS) rows[v] = ZEGO_ROUTES.includes(v) ? row(800, 400) : row(v === "tencent_get_list" ? 1800 : 4400, 200);
    const r = results(rows);
    expect(r.vendor_vs_connect_echo.tencent).toBeCloseTo(1.1, 3);
    expect(r.vendor_vs_connect_echo.tencent_get_list).toBeCloseTo(0.45, 3);
    expect(r.vendor_vs_connect_echo.zego).toBeCloseTo(250 / 400, 3);
    expect(r.vendor_vs_echo.tencent).toBeCloseTo(4400 / 16000, 3);
    expect(r.vendor_vs_echo.zego).toBeCloseTo(130 / 400, 3);
    const t = r.targets.find((x) => x.name.includes("bare connect-node echo (ZEGO"))!;
    expect(t.name).toContain("tencent_get_list");
    expect(t).toMatchObject({ value: 0.45, pass: false });
    rows.tencent_get_list = row(4400, 200);
    const again = results(rows).targets.find((x) => x.name.includes("bare connect-node echo (ZEGO"))!;
    expect(again.name).toContain("zego");
    expect(again).toMatchObject({ value: 0.625, pass: true });
  });
});

describe("List levels", () => {
  it("carry what stalled the bench process during the List row, in results.json and in the printed line", () => {
    const level = (key: LevelFigures["key"], listClient?: LevelFigures["listClient"]): LevelFigures => ({
      key,
      stored: 100_000,
      rssMb: 200,
      rssAfterGcMb: 110,
      listP50Ms: 2,
      listP99Ms: 9,
      listErrors: 0,
      ...(listClient ? { listClient } : {}),
    });
    const r = results({}, [{ ...level("100k", { loopDelayP99Ms: 4.5, gcOver5ms: 3, gcMaxMs: 17.25 }), listServerWithin10ms: 0.99876 }, level("1m")]);
    expect(r.list_client).toEqual({ "100k": { loop_delay_p99_ms: 4.5, gc_over_5ms: 3, gc_max_ms: 17.25 } });
    expect(r.list_server_within_10ms).toEqual({ "100k": 0.9988 });
    const line = formatReport(r).split("\n").find((l) => l.startsWith("by stored conversations:"))!;
    expect(line).toContain("100k: List p99 9.00 ms (p50 2.00), 99.88 % within 10 ms in the server's own histogram, client loop delay p99 4.50 ms, client GC pauses over 5 ms 3 (longest 17.25 ms), RSS");
    expect(line).toContain("1m: List p99 9.00 ms (p50 2.00), RSS");
  });

  it("watchClientStalls sees a blocked event loop and the collections of a burst of garbage", async () => {
    const stop = watchClientStalls();
    // Several blocked turns of the loop (the histogram's p99 needs more than one sample of them).
    for (let i = 0; i < 20; i++) {
      const until = performance.now() + 30;
      while (performance.now() < until);
      await new Promise((r) => setImmediate(r));
    }
    // Garbage enough for several young-generation collections (each one a "gc" performance entry).
    let kept = 0;
    for (let round = 0; round < 2000; round++) kept += Array.from({ length: 1000 }, (_, i) => ({ i, s: String(round * 1000 + i) })).length;
    await new Promise((r) => setTimeout(r, 50)); // GC entries are delivered asynchronously
    const s = stop();
    expect(kept).toBeGreaterThan(0);
    expect(s.loopDelayP99Ms).toBeGreaterThanOrEqual(25);
    expect(s.gcMaxMs).toBeGreaterThan(0);
  });
});

describe("handledWithin", () => {
  it("reads a method's handled calls, and those within a bucket's bound, from a real server's /metrics", async () => {
    const s = await startApp();
    try {
      const client = createClient(Health, createGrpcTransport({ baseUrl: s.baseUrl }));
      expect(await handledWithin(s.baseUrl, "Check", 10)).toEqual({ count: 0, within: 0 });
      for (let i = 0; i < 3; i++) await client.check({});
      const after = await handledWithin(s.baseUrl, "Check", 10);
      expect(after).toEqual({ count: 3, within: 3 });
      const fast = (await handledWithin(s.baseUrl, "Check", 0.001))!;
      expect(fast.count).toBe(3);
      expect(fast.within).toBeLessThanOrEqual(3);
      expect(await handledWithin(s.baseUrl, "ListConversations", 10)).toEqual({ count: 0, within: 0 });
    } finally {
      await s.app.close(1000);
    }
    expect(await handledWithin(s.baseUrl, "Check", 10)).toBeUndefined(); // closed: nothing to read
  });
});
