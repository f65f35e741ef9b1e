/** bench/report.ts: the vendor ratios against convmark's own echo and against the bare connect-node ceiling. */
import { describe, expect, it } from "vitest";
import { buildResults, type RowId, type RowInfo } from "../../bench/report.js";
import { LatencyLog, RowTotals } from "../../bench/stats.js";
import { VENDORS, ZEGO_ROUTES } from "../../bench/vendors.js";

/** A row measured for 10 s: `rps` requests per second, `cpuUs` server CPU µs per request. */
function row(rps: number, cpuUs: number): RowInfo {
  const t = new RowTotals();
  const requests = rps * 10;
  t.add({ requests, units: requests, errors: 0, seconds: 10, latencies: new LatencyLog(), serverCpuSeconds: (requests * cpuUs) / 1e6, loadCpuSeconds: 1 });
  return { totals: t, unavailable: undefined };
}

const OTHER_ROWS: RowId[] = ["node_http_echo", "bare_connect_echo", "echo_grpc", "echo_connect", "echo_connect_paced", "update1_grpc", "update1_connect", "update100_grpc", "storage100", "sqlite_raw100", "bulk", "list"];

function results(rows: Partial<Record<RowId, RowInfo>>) {
  const all = Object.fromEntries([...OTHER_ROWS, ...VENDORS].map((id) => [id, rows[id as RowId] ?? { totals: undefined, unavailable: undefined }])) as Record<RowId, RowInfo>;
  return buildResults({ settings: {}, machine: { os: "", cpu_model: "", cores: 2, node: "", mem_total_gb: 1, loadavg_at_start: [0, 0, 0] } as never, rows: all, stored: 0, memory: undefined, levels: [], seconds: 1 });
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
