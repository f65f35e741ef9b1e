/** The results: bench/results.json and the printed table with ratios and targets. */
import { readFileSync } from "node:fs";
import * as os from "node:os";
import { round, type ClientStalls, type RowTotals } from "./stats.js";
import { VENDORS, VENDOR_LABELS, ZEGO_BENCH_RATE, ZEGO_ROUTES, type VendorName } from "./vendors.js";

export type RowId =
  | Exclude<VendorName, "zego" | "tencent" | "openim">
  | "node_http_echo"
  | "bare_connect_echo"
  | "echo_grpc"
  | "echo_connect"
  | "echo_connect_paced"
  | "update1_grpc"
  | "update1_connect"
  | "update100_grpc"
  | "storage100"
  | "sqlite_raw100"
  | "zego"
  | "tencent"
  | "openim"
  | "bulk"
  | "list";

interface RowMeta {
  readonly label: string;
  readonly protocol: string;
  /** "updates": the row's throughput is counted in updates, not requests. */
  readonly unit: "requests" | "updates";
}

const ROWS: Record<RowId, RowMeta> = {
  node_http_echo: { label: "node:http JSON echo (ceiling)", protocol: "HTTP/1.1, 1 proc", unit: "requests" },
  bare_connect_echo: { label: "bare connect-node Health (ceiling)", protocol: "Connect JSON h1, 1 proc", unit: "requests" },
  echo_grpc: { label: "Health/Check (echo)", protocol: "gRPC h2c", unit: "requests" },
  echo_connect: { label: "Health/Check (echo)", protocol: "Connect JSON h1", unit: "requests" },
  echo_connect_paced: { label: "Health/Check (echo), paced", protocol: `Connect JSON h1, ${ZEGO_BENCH_RATE}/s`, unit: "requests" },
  update1_grpc: { label: "UpdateConversations x1", protocol: "gRPC h2c", unit: "requests" },
  update1_connect: { label: "UpdateConversations x1", protocol: "Connect JSON h1", unit: "requests" },
  update100_grpc: { label: "UpdateConversations x100", protocol: "gRPC h2c", unit: "updates" },
  storage100: { label: "store.applyUpdates x100", protocol: "in process", unit: "updates" },
  sqlite_raw100: { label: "raw SQLite upserts x100 (ceiling)", protocol: "in process", unit: "updates" },
  zego: { label: "ZEGO SetConvMark", protocol: `REST JSON h1, ${ZEGO_BENCH_RATE}/s`, unit: "requests" },
  tencent: { label: "Tencent mark_contact", protocol: "REST JSON h1", unit: "requests" },
  openim: { label: "OpenIM set_conversations", protocol: "REST JSON h1", unit: "requests" },
  bulk: { label: "bulk load x10000", protocol: "gRPC h2c", unit: "updates" },
  list: { label: "ListConversations marks_any", protocol: "gRPC h2c", unit: "requests" },
  ...(Object.fromEntries(
    VENDORS.filter((v) => v !== "zego" && v !== "tencent" && v !== "openim").map((v) => [
      v,
      { label: VENDOR_LABELS[v], protocol: ZEGO_ROUTES.includes(v) ? `REST JSON h1, ${ZEGO_BENCH_RATE}/s` : "REST JSON h1", unit: "requests" },
    ]),
  ) as Record<Exclude<VendorName, "zego" | "tencent" | "openim">, RowMeta>),
};

const SKIPPED = "not measured in this run";

export interface RowInfo {
  readonly totals: RowTotals | undefined;
  /** Why the row could not be measured (a vendor route not served yet). */
  readonly unavailable: string | undefined;
}

export interface Machine {
  readonly os: string;
  readonly cpu_model: string;
  readonly cores: number;
  readonly cpu_quota?: string;
  readonly node: string;
  readonly mem_total_gb: number;
  readonly loadavg_at_start: number[];
}

export function machineInfo(): Machine {
  let distro = "";
  try {
    distro = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? "";
  } catch {
    // not Linux, or no os-release
  }
  let quota: string | undefined;
  try {
    const max = readFileSync("/sys/fs/cgroup/cpu.max", "utf8").trim();
    if (!max.startsWith("max")) {
      const [q, p] = max.split(" ").map(Number);
      quota = `${(q! / p!).toFixed(2)} CPUs (cgroup)`;
    }
  } catch {
    // no cgroup v2 limit visible
  }
  return {
    os: `${distro ? `${distro}, ` : ""}${os.type()} ${os.release()} ${os.arch()}`,
    cpu_model: os.cpus()[0]?.model ?? "unknown",
    cores: os.availableParallelism(),
    ...(quota ? { cpu_quota: quota } : {}),
    node: process.version,
    mem_total_gb: round(os.totalmem() / 2 ** 30, 1),
    loadavg_at_start: os.loadavg().map((x) => round(x, 2)),
  };
}

export type LevelKey = "100k" | "1m" | "10m";

/** List latency and server memory with a given number of conversations stored. */
export interface LevelFigures {
  readonly key: LevelKey;
  readonly stored: number;
  /** Largest VmRSS over the serving processes, after loading this level (before its List row). */
  readonly rssMb: number;
  /** The same after two forced full GCs in every serving process (after the List row). */
  readonly rssAfterGcMb: number;
  readonly listP50Ms: number;
  readonly listP99Ms: number;
  readonly listErrors: number;
  /** What stalled the List client (bench/list-client.ts) during the level's List row (its latencies include them). */
  readonly listClient?: ClientStalls;
  /** The share of the level's List calls the server itself handled within 10 ms (its grpc_server_handling_seconds histogram). */
  readonly listServerWithin10ms?: number;
}

interface HeapFigures {
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
}

/** Server resident memory (MiB, /proc/<pid>/status) at points of the run. */
export interface MemoryFigures {
  readonly startMb: number;
  readonly beforeBulkMb: number;
  /** After the bulk load and 2 s idle: the RSS target's figure. */
  readonly afterBulkMb: number;
  /** VmHWM after the bulk load. */
  readonly peakMb: number;
  /** After the List row (the end of the load). */
  readonly endMb: number;
  /** After two forced full GCs at the end: the live footprint. */
  readonly afterGcMb?: number;
  readonly heap?: HeapFigures;
  readonly heapAfterGc?: HeapFigures;
}

export interface ResultRow {
  readonly label: string;
  readonly protocol: string;
  readonly available: boolean;
  readonly reason?: string;
  readonly requests_per_s?: number;
  readonly updates_per_s?: number;
  readonly p50_ms?: number;
  readonly p99_ms?: number;
  readonly requests?: number;
  readonly errors?: number;
  readonly first_error?: string;
  readonly seconds?: number;
  /** Server CPU over the row's slices, in % of one core. */
  readonly server_cpu_pct?: number;
  /** Load generator (this process) CPU, in % of one core. */
  readonly load_cpu_pct?: number;
  /**
   * Requests (updates for update rows) per CPU second of the process doing the work: the server, or
   * this process for the in-process store row. Less sensitive to CPU stolen by other processes.
   */
  readonly per_cpu_s?: number;
  /** CPU µs per unit (request, or update for update rows) of the process doing the work, summed over all its processes. */
  readonly server_cpu_us_per_op?: number;
}

export interface Target {
  readonly name: string;
  readonly value: number | null;
  /** For ratio targets: the ratio per CPU second (diagnostic). */
  readonly per_cpu_s?: number | null;
  readonly op: ">=" | "<=" | "<";
  readonly target: number;
  /** null: not measured. */
  readonly pass: boolean | null;
}

export interface Results {
  readonly quick: boolean;
  readonly profiled: boolean;
  readonly date: string;
  readonly machine: Machine & { loadavg_at_end: number[] };
  readonly settings: Record<string, number | boolean | string>;
  readonly stored_conversations: number;
  readonly rows: Record<RowId, ResultRow>;
  readonly ratios: {
    update1_vs_echo_grpc: number | null;
    update1_vs_echo_connect: number | null;
    update100_vs_storage: number | null;
    zego_vs_echo: number | null;
    tencent_vs_echo: number | null;
    openim_vs_echo: number | null;
    update1_connect_all_workers_vs_bare_connect_echo: number | null;
    update100_vs_raw_sqlite: number | null;
    bare_connect_echo_vs_node_http_echo: number | null;
  };
  /** Every vendor route's req/s / convmark's own Connect JSON echo's (the lean unary route; null: not available). */
  readonly vendor_vs_echo: Partial<Record<VendorName, number | null>>;
  /**
   * Every vendor route against the framework's ceiling, the bare connect-node echo (ceilings.connect_echo_rps):
   * req/s / its req/s; ZEGO's paced routes: requests per server CPU-second / its (issue 12's "Connect echo").
   */
  readonly vendor_vs_connect_echo: Partial<Record<VendorName, number | null>>;
  /** How the ZEGO routes' ratios (zego_vs_echo and the zego_* entries of vendor_vs_echo) are defined. */
  readonly zego_ratio_basis: string;
  readonly ceilings: { node_http_echo_rps: number | null; connect_echo_rps: number | null; sqlite_upserts_per_s: number | null };
  /** Server CPU per update in the UpdateConversations(100) row, summed over all server processes (µs). */
  readonly cpu_us_per_update_100: number | null;
  /** Server CPU per operation of every row (µs); in-process rows: the bench process's CPU. */
  readonly cpu_us_per_op: Partial<Record<RowId, number>>;
  readonly list_p99_ms: Partial<Record<LevelKey, number>>;
  readonly list_p50_ms: Partial<Record<LevelKey, number>>;
  /** The List client's own stalls during each level's List row: event-loop delay p99, GC pauses over 5 ms, the longest (absent in older results). */
  readonly list_client?: Partial<Record<LevelKey, { loop_delay_p99_ms: number; gc_over_5ms: number; gc_max_ms: number }>>;
  /** The share of each level's List calls the server handled within 10 ms, by its own histogram (absent in older results). */
  readonly list_server_within_10ms?: Partial<Record<LevelKey, number>>;
  /** Per server process (the largest), after loading each level. */
  readonly rss_mb: Partial<Record<LevelKey, number>>;
  /** Per server process (the largest), after two forced full GCs at each level: the live footprint. */
  readonly rss_after_gc_mb: Partial<Record<LevelKey, number>>;
  readonly stored_at_level: Partial<Record<LevelKey, number>>;
  /** The same ratios per CPU second of the working process (diagnostic; the targets use `ratios`). */
  readonly ratios_per_cpu_s: Results["ratios"];
  readonly memory_mb: null | {
    rss_at_start: number;
    rss_before_bulk: number;
    rss_after_bulk: number;
    rss_peak: number;
    rss_at_end: number;
    rss_after_full_gc: number | null;
    heap_used_after_bulk: number | null;
    heap_total_after_bulk: number | null;
    external_after_bulk: number | null;
    heap_used_after_full_gc: number | null;
  };
  readonly targets: Target[];
  readonly duration_s: number;
}

function resultRow(id: RowId, info: RowInfo): ResultRow {
  const meta = ROWS[id];
  const t = info.totals;
  if (!t) return { label: meta.label, protocol: meta.protocol, available: false, reason: info.unavailable ?? SKIPPED };
  const cpu = t.hasServerCpu ? t.serverCpuSeconds : t.loadCpuSeconds;
  const perCpu = cpu > 0 ? t.units / cpu : undefined;
  const okRequests = meta.unit === "updates" ? t.rps * (t.requests > 0 ? (t.requests - t.errors) / t.requests : 0) : t.unitsPerSecond;
  return {
    label: meta.label,
    protocol: meta.protocol,
    available: true,
    requests_per_s: round(okRequests, 1),
    ...(meta.unit === "updates" ? { updates_per_s: round(t.unitsPerSecond, 0) } : {}),
    p50_ms: round(t.latencies.percentile(50), 3),
    p99_ms: round(t.latencies.percentile(99), 3),
    requests: t.requests,
    errors: t.errors,
    ...(t.firstError ? { first_error: t.firstError } : {}),
    seconds: round(t.seconds, 2),
    ...(t.hasServerCpu ? { server_cpu_pct: round((100 * t.serverCpuSeconds) / t.seconds, 0) } : {}),
    load_cpu_pct: round((100 * t.loadCpuSeconds) / t.seconds, 0),
    ...(perCpu !== undefined ? { per_cpu_s: round(perCpu, 0) } : {}),
    ...(cpu > 0 && t.units > 0 ? { server_cpu_us_per_op: round((cpu * 1e6) / t.units, 1) } : {}),
  };
}

const ratio = (a: number | undefined, b: number | undefined): number | null =>
  a !== undefined && b !== undefined && b > 0 ? round(a / b, 3) : null;

export function buildResults(input: {
  settings: Record<string, number | boolean | string>;
  machine: Machine;
  rows: Record<RowId, RowInfo>;
  stored: number;
  memory: MemoryFigures | undefined;
  levels: readonly LevelFigures[];
  seconds: number;
}): Results {
  const rows = Object.fromEntries(Object.entries(input.rows).map(([id, info]) => [id, resultRow(id as RowId, info)])) as Record<RowId, ResultRow>;
  const rps = (id: RowId) => rows[id].requests_per_s;
  const cpuRate = (id: RowId) => rows[id].per_cpu_s;
  const ratios = {
    update1_vs_echo_grpc: ratio(rps("update1_grpc"), rps("echo_grpc")),
    update1_vs_echo_connect: ratio(rps("update1_connect"), rps("echo_connect")),
    update100_vs_storage: ratio(rows.update100_grpc.updates_per_s, rows.storage100.updates_per_s),
    // ZEGO's own per-AppId limit caps its throughput below the echo's: its rows run paced, and the
    // ratio is requests per server CPU-second against the echo paced at the same rate.
    zego_vs_echo: ratio(cpuRate("zego"), cpuRate("echo_connect_paced")),
    tencent_vs_echo: ratio(rps("tencent"), rps("echo_connect")),
    openim_vs_echo: ratio(rps("openim"), rps("echo_connect")),
    update1_connect_all_workers_vs_bare_connect_echo: ratio(rps("update1_connect"), rps("bare_connect_echo")),
    update100_vs_raw_sqlite: ratio(rows.update100_grpc.updates_per_s, rows.sqlite_raw100.updates_per_s),
    bare_connect_echo_vs_node_http_echo: ratio(rps("bare_connect_echo"), rps("node_http_echo")),
  };
  const ratiosPerCpu = {
    update1_vs_echo_grpc: ratio(cpuRate("update1_grpc"), cpuRate("echo_grpc")),
    update1_vs_echo_connect: ratio(cpuRate("update1_connect"), cpuRate("echo_connect")),
    update100_vs_storage: ratio(cpuRate("update100_grpc"), cpuRate("storage100")),
    zego_vs_echo: ratio(cpuRate("zego"), cpuRate("echo_connect_paced")),
    tencent_vs_echo: ratio(cpuRate("tencent"), cpuRate("echo_connect")),
    openim_vs_echo: ratio(cpuRate("openim"), cpuRate("echo_connect")),
    update1_connect_all_workers_vs_bare_connect_echo: ratio(cpuRate("update1_connect"), cpuRate("bare_connect_echo")),
    update100_vs_raw_sqlite: ratio(cpuRate("update100_grpc"), cpuRate("sqlite_raw100")),
    bare_connect_echo_vs_node_http_echo: ratio(cpuRate("bare_connect_echo"), cpuRate("node_http_echo")),
  };
  const vendorRatios = Object.fromEntries(
    VENDORS.map((v) => [v, ZEGO_ROUTES.includes(v) ? ratio(cpuRate(v), cpuRate("echo_connect_paced")) : ratio(rps(v), rps("echo_connect"))]),
  ) as Partial<Record<VendorName, number | null>>;
  const vendorCeilingRatios = Object.fromEntries(
    VENDORS.map((v) => [v, ZEGO_ROUTES.includes(v) ? ratio(cpuRate(v), cpuRate("bare_connect_echo")) : ratio(rps(v), rps("bare_connect_echo"))]),
  ) as Partial<Record<VendorName, number | null>>;
  const slowest = (r: Partial<Record<VendorName, number | null>>) => {
    const measured = Object.entries(r).filter((e): e is [VendorName, number] => e[1] !== null);
    return { measured: measured.length, slowest: measured.length ? measured.reduce((a, b) => (b[1] < a[1] ? b : a)) : undefined };
  };
  const { measured: measuredVendors, slowest: slowestVendor } = slowest(vendorRatios);
  const { slowest: slowestVsCeiling } = slowest(vendorCeilingRatios);
  const mem = input.memory;
  const byLevel = <T>(f: (l: LevelFigures) => T) => Object.fromEntries(input.levels.map((l) => [l.key, f(l)])) as Partial<Record<LevelKey, T>>;
  const listP99 = byLevel((l) => round(l.listP99Ms, 3));
  const rssMb = byLevel((l) => round(l.rssMb, 1));
  const rssAfterGc = byLevel((l) => (Number.isNaN(l.rssAfterGcMb) ? null : round(l.rssAfterGcMb, 1)));
  const at = <T>(o: Partial<Record<LevelKey, T>>, k: LevelKey): T | null => o[k] ?? null;
  const div = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? round(a / b, 3) : null);
  const cpuPerOp = Object.fromEntries(
    (Object.keys(rows) as RowId[]).flatMap((id) => (rows[id].server_cpu_us_per_op !== undefined ? [[id, rows[id].server_cpu_us_per_op]] : [])),
  ) as Partial<Record<RowId, number>>;
  const mb = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? null : round(x, 1));
  const target = (name: string, value: number | null, op: Target["op"], t: number, perCpu?: number | null): Target => ({
    name,
    value,
    ...(perCpu !== undefined ? { per_cpu_s: perCpu } : {}),
    op,
    target: t,
    pass: value === null || Number.isNaN(value) ? null : op === ">=" ? value >= t : op === "<" ? value < t : value <= t,
  });
  return {
    quick: input.settings.quick === true,
    profiled: input.settings.profile === true,
    date: new Date().toISOString(),
    machine: { ...input.machine, loadavg_at_end: os.loadavg().map((x) => round(x, 2)) },
    settings: input.settings,
    stored_conversations: input.stored,
    rows,
    ratios,
    ratios_per_cpu_s: ratiosPerCpu,
    vendor_vs_echo: vendorRatios,
    vendor_vs_connect_echo: vendorCeilingRatios,
    zego_ratio_basis: `requests per server CPU-second, each ZEGO route and the Connect echo driven at ${ZEGO_BENCH_RATE} requests/s (under the server's ZEGO limit; ZEGO documents 20/s per AppId), route / echo`,
    ceilings: {
      node_http_echo_rps: rps("node_http_echo") ?? null,
      connect_echo_rps: rps("bare_connect_echo") ?? null,
      sqlite_upserts_per_s: rows.sqlite_raw100.updates_per_s ?? null,
    },
    cpu_us_per_update_100: rows.update100_grpc.server_cpu_us_per_op ?? null,
    cpu_us_per_op: cpuPerOp,
    list_p99_ms: listP99,
    list_p50_ms: byLevel((l) => round(l.listP50Ms, 3)),
    list_server_within_10ms: Object.fromEntries(input.levels.flatMap((l) => (l.listServerWithin10ms !== undefined ? [[l.key, round(l.listServerWithin10ms, 4)]] : []))),
    list_client: Object.fromEntries(
      input.levels.flatMap((l) => (l.listClient ? [[l.key, { loop_delay_p99_ms: l.listClient.loopDelayP99Ms, gc_over_5ms: l.listClient.gcOver5ms, gc_max_ms: l.listClient.gcMaxMs }]] : [])),
    ),
    rss_mb: rssMb,
    rss_after_gc_mb: Object.fromEntries(Object.entries(rssAfterGc).filter(([, v]) => v !== null)) as Partial<Record<LevelKey, number>>,
    stored_at_level: byLevel((l) => l.stored),
    memory_mb: !mem ? null : {
      rss_at_start: round(mem.startMb, 1),
      rss_before_bulk: round(mem.beforeBulkMb, 1),
      rss_after_bulk: round(mem.afterBulkMb, 1),
      rss_peak: round(mem.peakMb, 1),
      rss_at_end: round(mem.endMb, 1),
      rss_after_full_gc: mb(mem.afterGcMb),
      heap_used_after_bulk: mb(mem.heap?.heapUsedMb),
      heap_total_after_bulk: mb(mem.heap?.heapTotalMb),
      external_after_bulk: mb(mem.heap?.externalMb),
      heap_used_after_full_gc: mb(mem.heapAfterGc?.heapUsedMb),
    },
    targets: [
      target("UpdateConversations(1) / echo, gRPC", ratios.update1_vs_echo_grpc, ">=", 0.7, ratiosPerCpu.update1_vs_echo_grpc),
      target("UpdateConversations(1) / echo, Connect JSON", ratios.update1_vs_echo_connect, ">=", 0.7, ratiosPerCpu.update1_vs_echo_connect),
      target("UpdateConversations(100) / storage ceiling", ratios.update100_vs_storage, ">=", 0.5, ratiosPerCpu.update100_vs_storage),
      target(`ZEGO SetConvMark / Connect JSON echo, CPU per request at ${ZEGO_BENCH_RATE}/s`, ratios.zego_vs_echo, ">=", 0.5, ratiosPerCpu.zego_vs_echo),
      target("Tencent mark_contact / Connect JSON echo", ratios.tencent_vs_echo, ">=", 0.5, ratiosPerCpu.tencent_vs_echo),
      target("OpenIM set_conversations / Connect JSON echo", ratios.openim_vs_echo, ">=", 0.5, ratiosPerCpu.openim_vs_echo),
      target(
        `slowest vendor route (${slowestVendor?.[0] ?? "none"}) / Connect JSON echo, ${measuredVendors} of ${VENDORS.length} routes (ZEGO: CPU per request)`,
        slowestVendor?.[1] ?? null,
        ">=",
        0.5,
      ),
      target(
        `slowest vendor route (${slowestVsCeiling?.[0] ?? "none"}), all workers / bare connect-node echo (ZEGO: CPU per request)`,
        slowestVsCeiling?.[1] ?? null,
        ">=",
        0.5,
      ),
      target("UpdateConversations(1) Connect, all workers / bare connect-node echo", ratios.update1_connect_all_workers_vs_bare_connect_echo, ">=", 1.5, ratiosPerCpu.update1_connect_all_workers_vs_bare_connect_echo),
      target("UpdateConversations(100) gRPC / raw SQLite upserts", ratios.update100_vs_raw_sqlite, ">=", 0.2, ratiosPerCpu.update100_vs_raw_sqlite),
      target("server CPU µs per update, UpdateConversations(100)", rows.update100_grpc.server_cpu_us_per_op ?? null, "<=", 12),
      target("List p99 ms, 10M stored", at(listP99, "10m"), "<=", 10),
      target("List p99 10M / 100k", div(at(listP99, "10m"), at(listP99, "100k")), "<=", 1.5),
      target("server RSS MB per process, 1M stored", at(rssMb, "1m"), "<=", 250),
      target("server RSS after full GC 10M / 1M", div(at(rssAfterGc, "10m"), at(rssAfterGc, "1m")), "<", 1.2),
    ],
    duration_s: round(input.seconds, 1),
  };
}

const num = (x: number | undefined, digits = 0) =>
  x === undefined || Number.isNaN(x) ? "-" : x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

function table(header: string[], body: string[][], rightAlign: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (rightAlign[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

/** Markdown-friendly text: the rows, the ratios and the targets. */
export function formatReport(r: Results): string {
  const m = r.machine;
  const out: string[] = [];
  out.push(
    `convmark bench${r.quick ? " (QUICK: fewer stored conversations, shorter phases)" : ""}${r.profiled ? " (PROFILED: slower)" : ""}, ${r.date}`,
    `machine: ${m.os}; ${m.cpu_model}, ${m.cores} cores${m.cpu_quota ? `, ${m.cpu_quota}` : ""}; Node ${m.node}; load average at start ${m.loadavg_at_start.join(" ")}`,
    `settings: ${r.settings.concurrency} in flight, ${r.settings.rounds} x ${r.settings.sliceSeconds} s per row after ${r.settings.warmupSeconds} s warm-up; List/RSS at ${String(r.settings.levels ?? "")} stored; convmark serving processes: ${String(r.settings.server_processes ?? "?")}`,
    "",
  );
  const ids = Object.keys(r.rows) as RowId[];
  out.push(
    table(
      ["row", "protocol", "req/s", "updates/s", "p50 ms", "p99 ms", "errors", "server CPU", "load CPU", "per CPU-s", "CPU µs/op"],
      ids.map((id) => {
        const row = r.rows[id];
        if (!row.available) return [row.label, row.protocol, row.reason === SKIPPED ? "skipped" : "not available", "", "", "", "", "", "", "", ""];
        return [
          row.label,
          row.protocol,
          num(row.requests_per_s),
          num(row.updates_per_s),
          num(row.p50_ms, 2),
          num(row.p99_ms, 2),
          num(row.errors),
          row.server_cpu_pct === undefined ? "-" : `${row.server_cpu_pct}%`,
          `${row.load_cpu_pct}%`,
          num(row.per_cpu_s),
          num(row.server_cpu_us_per_op, 1),
        ];
      }),
      [false, false, true, true, true, true, true, true, true, true, true],
    ),
  );
  const missing = ids.filter((id) => !r.rows[id].available && r.rows[id].reason !== SKIPPED);
  for (const id of missing) out.push(`  ${r.rows[id].label}: not available: ${r.rows[id].reason}`);
  for (const id of ids) {
    const row = r.rows[id];
    if (row.available && row.errors) out.push(`  ${row.label} (${row.protocol}): ${row.errors} errors, first: ${row.first_error ?? "?"}`);
  }
  out.push(
    "",
    r.memory_mb
      ? `server RSS (MB): ${num(r.memory_mb.rss_at_start, 1)} at start, ${num(r.memory_mb.rss_before_bulk, 1)} before the bulk load, ` +
        `${num(r.memory_mb.rss_after_bulk, 1)} after it (peak ${num(r.memory_mb.rss_peak, 1)}), ${num(r.memory_mb.rss_at_end, 1)} at the end; ` +
        `V8 heap after it ${num(r.memory_mb.heap_used_after_bulk ?? undefined, 1)} used of ${num(r.memory_mb.heap_total_after_bulk ?? undefined, 1)}, ` +
        `external ${num(r.memory_mb.external_after_bulk ?? undefined, 1)}; ` +
        `after a forced full GC: RSS ${num(r.memory_mb.rss_after_full_gc ?? undefined, 1)}, V8 heap used ${num(r.memory_mb.heap_used_after_full_gc ?? undefined, 1)}`
      : "server RSS: not measured (no bulk load in this run)",
    `by stored conversations: ${
      (Object.keys(r.list_p99_ms ?? {}) as LevelKey[])
        .map((k) => {
          const c = r.list_client?.[k];
          const w = r.list_server_within_10ms?.[k];
          const server = w !== undefined ? `, ${num(w * 100, 2)} % within 10 ms in the server's own histogram` : "";
          const client = c ? `, client loop delay p99 ${num(c.loop_delay_p99_ms, 2)} ms, client GC pauses over 5 ms ${c.gc_over_5ms} (longest ${num(c.gc_max_ms, 2)} ms)` : "";
          return `${k}: List p99 ${num(r.list_p99_ms[k], 2)} ms (p50 ${num(r.list_p50_ms[k], 2)})${server}${client}, RSS ${num(r.rss_mb[k], 1)} MB (${num(r.rss_after_gc_mb?.[k], 1)} after full GC)`;
        })
        .join("; ") || "not measured"
    }`,
    `ceilings: node:http echo ${num(r.ceilings?.node_http_echo_rps ?? undefined)} req/s, bare connect-node ${num(r.ceilings?.connect_echo_rps ?? undefined)} req/s, raw SQLite ${num(r.ceilings?.sqlite_upserts_per_s ?? undefined)} upserts/s; server CPU per update (x100) ${num(r.cpu_us_per_update_100 ?? undefined, 1)} µs`,
    "",
    table(
      ["target", "value", "goal", "result", "per CPU-s"],
      r.targets.map((t) => [
        t.name,
        t.value === null ? "n/a" : num(t.value, t.name.includes("MB") || t.name.includes(" ms") ? 1 : 2),
        `${t.op} ${t.target}`,
        t.pass === null ? "n/a" : t.pass ? "PASS" : "MISS",
        t.per_cpu_s === undefined ? "" : t.per_cpu_s === null ? "n/a" : num(t.per_cpu_s, 2),
      ]),
      [false, true, false, false, true],
    ),
  );
  if (r.quick) out.push("", "(quick run: List and RSS measured at 100k and 1M stored only; the 10M targets are n/a)");
  return out.join("\n");
}

// `tsx bench/report.ts [results.json]`: print a results file again (bench/results.json by default).
if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2] ?? new URL("./results.json", import.meta.url).pathname;
  console.log(formatReport(JSON.parse(readFileSync(file, "utf8")) as Results));
}
