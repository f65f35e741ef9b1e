/**
 * `npm run bench [-- --quick] [-- --profile]`: starts convmark (embedded SQLite store) as its own
 * process, drives it from this process over loopback, prints a table with ratios and PASS/MISS per
 * target, and writes bench/results.json. See docs/performance.md.
 */
import { ResultView } from "../gen/convmark/v1/mark_service_pb.js";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import Database from "better-sqlite3";
import { openSqliteStore } from "../src/store/sqlite-store.js";
import type { MarkStore } from "../src/store/store.js";
import { closedLoop, drainTasks, GrpcPool, httpLoad, nodeFlagList, splitArg, type CallOutcome, type RawSlice } from "./load.js";
import { benchCrossProcess, benchSync, benchWatch, formatFeed, type CrossProcessFigures, type SyncFigures, type WatchFigures } from "./feed.js";
import { formatProfile, newestProfile, summarizeProfile } from "./profile.js";
import { openRawSqlite, rawUpserter, startCeilings, type CeilingServer } from "./ceiling-server.js";
import { buildResults, formatReport, machineInfo, type LevelFigures, type LevelKey, type MemoryFigures, type RowInfo, type RowId } from "./report.js";
import { copyOwners } from "./replicate.js";
import { buildServer, handledWithin, heapFromMetrics, startServer, type BenchServer } from "./server.js";
import { runListClient } from "./list-client.js";
import { RowTotals, type ClientStalls } from "./stats.js";
import { prepareVendor, VENDOR_SERVER_ENV, VENDORS, ZEGO_BENCH_RATE, ZEGO_ROUTES, type VendorName, type VendorRoute } from "./vendors.js";
import {
  bulkSpecs,
  checkHealthResponse,
  checkUpdateJson,
  checkUpdateResponse,
  healthCheckBytes,
  OwnerBatchPool,
  PATHS,
  SingleUpdatePool,
  toValidUpdates,
  updateRequestBytes,
  connectUpdateRequest,
  type UpdateSpec,
} from "./workloads.js";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const BENCH_DIR = join(REPO_ROOT, "bench");

interface Settings {
  readonly quick: boolean;
  readonly profile: boolean;
  /** Requests in flight for the throughput rows. */
  readonly concurrency: number;
  /** Seconds per measured slice; each row gets `rounds` slices, interleaved with the rows it is compared with. */
  readonly sliceSeconds: number;
  readonly rounds: number;
  /** Unmeasured seconds per row before its first slice (JIT, connections, caches). */
  readonly warmupSeconds: number;
  /** The same for the vendor read-back and CRUD routes (20 rows, each compared with the echo only). */
  readonly routes: { readonly sliceSeconds: number; readonly rounds: number; readonly warmupSeconds: number };
  /** Levels up to this many stored conversations are loaded through the API (the bulk row), the rest copied (bench/replicate.ts). */
  readonly apiUpTo: number;
  /** The change feed's watch row: streams, and seconds of each of its two write phases. */
  readonly watchers: number;
  readonly watchSeconds: number;
  /** Stored conversations at which List p99 and RSS are measured, in order; the first is loaded through the API. */
  readonly levels: readonly Level[];
  /** Server processes (CONVMARK_WORKERS); undefined: the server's default, one per core. */
  readonly workers?: number;
  readonly bulkBatch: number;
  readonly bulkInFlight: number;
  readonly listSeconds: number;
  readonly grpcChannels: number;
  /** Measure only these rows (for profiling one path). */
  readonly only?: readonly RowId[];
  /** Extra node flags for the server process (its workers inherit them): V8 settings under test. */
  readonly nodeFlags?: readonly string[];
}

const FULL: Settings = {
  quick: false,
  profile: false,
  concurrency: 32,
  sliceSeconds: 3,
  rounds: 2,
  warmupSeconds: 1,
  routes: { sliceSeconds: 1.5, rounds: 2, warmupSeconds: 0.5 },
  apiUpTo: 1_000_000,
  watchers: 10_000,
  watchSeconds: 10,
  levels: [
    { key: "100k", stored: 100_000 },
    { key: "1m", stored: 1_000_000 },
    { key: "10m", stored: 10_000_000 },
  ],
  bulkBatch: 10_000,
  bulkInFlight: 3,
  listSeconds: 8,
  grpcChannels: 4,
};

const QUICK: Settings = {
  ...FULL,
  quick: true,
  sliceSeconds: 1,
  rounds: 1,
  warmupSeconds: 0.3,
  routes: { sliceSeconds: 0.5, rounds: 1, warmupSeconds: 0.2 },
  apiUpTo: 100_000,
  watchers: 1_000,
  watchSeconds: 2,
  levels: FULL.levels.slice(0, 2),
  listSeconds: 1.5,
};

/** The listener's HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS (src/server/listener.ts): Watch streams per connection. */
const STREAMS_PER_CONNECTION = 100;

interface Level {
  readonly key: LevelKey;
  readonly stored: number;
}

const LIST_OWNER = "bulk-00000";
const CONVS_PER_BULK_OWNER = 1000;
/** Bulk conversation j carries mark 5 when j % 10 == 0: 100 of the List owner's 1000 match. */
const LIST_FILTER_MARKS = [5];
const LIST_PAGE_SIZE = 100;

const ALL_ROWS: readonly RowId[] = [
  "node_http_echo",
  "bare_connect_echo",
  "echo_grpc",
  "echo_connect",
  "echo_connect_paced",
  "update1_grpc",
  "update1_connect",
  "update100_grpc",
  "storage100",
  "sqlite_raw100",
  "zego",
  "tencent",
  "openim",
  ...VENDORS.filter((v) => v !== "zego" && v !== "tencent" && v !== "openim"),
  "bulk",
  "list",
];

const USAGE = `usage: npm run bench [-- options]
  --quick          List/RSS at 100k and 1M stored (not 10M), shorter phases (at most 90 s)
  --workers=N      server processes (CONVMARK_WORKERS); default: the server's own, one per core
  --profile        run the server under node --cpu-prof (profiles and a summary in bench/profiles)
  --only=ROW,...   measure only these rows (${ALL_ROWS.join(", ")}); the feed rows (watch, sync) need
                   the full set of rows or --only=list
  --seconds=N      seconds per measured slice
  --node-flags="F" extra node flags for the server (e.g. "--max-semi-space-size=32"), recorded in
                   the results' settings; such runs write bench/profiles/results.json
  --levels=K,...   the List/RSS levels to fill (of 100k, 1m, 10m, in order), e.g. --levels=100k,1m
                   with the full run's settings (1M through the API) but without the 10M copy
Runs with --profile, --only, --node-flags or --levels write bench/profiles/results.json instead of
bench/results.json.`;

function parseArgs(argv: string[]): Settings {
  let settings: Settings = argv.includes("--quick") ? QUICK : FULL;
  for (const a of argv) {
    const [name, value] = splitArg(a);
    if (name === "--quick") continue;
    else if (name === "--profile") settings = { ...settings, profile: true };
    else if (name === "--workers" && value && Number.isInteger(Number(value)) && Number(value) >= 1) settings = { ...settings, workers: Number(value) };
    else if (name === "--only" && value) {
      const only = value.split(",").map((x) => x.trim()) as RowId[];
      const bad = only.find((x) => !ALL_ROWS.includes(x));
      if (bad) usage(`unknown row ${bad}`);
      settings = { ...settings, only };
    } else if (name === "--seconds" && value && Number(value) > 0) {
      const seconds = Number(value);
      settings = { ...settings, sliceSeconds: seconds, listSeconds: seconds, routes: { ...settings.routes, sliceSeconds: seconds } };
    }
    else if (name === "--node-flags" && value !== undefined) settings = { ...settings, nodeFlags: nodeFlagList(value) };
    else if (name === "--levels" && value) {
      const keys = value.split(",").map((x) => x.trim());
      const levels = FULL.levels.filter((l) => keys.includes(l.key));
      const bad = keys.find((k) => !FULL.levels.some((l) => l.key === k));
      if (bad || levels.length === 0) usage(`unknown level ${bad ?? value} (levels: ${FULL.levels.map((l) => l.key).join(", ")})`);
      settings = { ...settings, levels };
    }
    else if (name === "--help" || name === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else usage(`unknown option ${a}`);
  }
  return settings;
}

function usage(problem: string): never {
  console.error(`${problem}\n${USAGE}`);
  process.exit(2);
}

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

async function main(): Promise<void> {
  const settings = parseArgs(process.argv.slice(2));
  const t0 = performance.now();
  const machine = machineInfo();
  const work = mkdtempSync(join(tmpdir(), "convmark-bench-"));
  const profileDir = join(BENCH_DIR, "profiles");
  if (settings.profile) mkdirSync(profileDir, { recursive: true });
  const startedAt = Date.now();

  let server: BenchServer | undefined;
  let pool: GrpcPool | undefined;
  let store: MarkStore | undefined;
  let ceilings: CeilingServer | undefined;
  let rawDb: Database.Database | undefined;
  const cleanup = async () => {
    pool?.close();
    await store?.close();
    rawDb?.close();
    await ceilings?.stop();
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  };
  process.once("SIGINT", () => {
    void cleanup().finally(() => process.exit(130));
  });

  try {
    log(`starting convmark (${settings.quick ? "quick" : "full"} run${settings.profile ? ", profiling" : ""})`);
    const building = buildServer(REPO_ROOT);
    building.catch(() => {});
    const ceilingsStarting = startCeilings(REPO_ROOT);
    ceilingsStarting.catch(() => {});
    server = await startServer({
      repoRoot: REPO_ROOT,
      dataDir: join(work, "server"),
      env: {
        ...VENDOR_SERVER_ENV,
        // The bulk owners and the update pools hold more marked conversations than Tencent's 1000.
        CONVMARK_MAX_MARKED_PER_OWNER: "10000000",
        CONVMARK_MAX_UPDATES_PER_REQUEST: String(Math.max(20_000, settings.bulkBatch)),
        ...(settings.workers ? { CONVMARK_WORKERS: String(settings.workers) } : {}),
      },
      ...(settings.profile ? { cpuProfileDir: profileDir } : {}),
      ...(settings.nodeFlags ? { nodeFlags: settings.nodeFlags } : {}),
    });
    const srv = server;
    const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, srv.died]);
    log(`convmark pid ${srv.pid} on ${srv.url}, serving processes ${srv.servingPids().join(" ")}`);
    ceilings = await ceilingsStarting;
    const ceil = ceilings;
    log(`ceilings pid ${ceil.pid}: node:http echo on ${ceil.echoPort}, bare connect-node on ${ceil.connectPort}`);
    rawDb = openRawSqlite(join(work, "raw-ceiling.db"));
    const rawUpsert = rawUpserter(rawDb);
    const rssAtStart = srv.memory().rssMb;

    const grpcPool = (pool = new GrpcPool(`127.0.0.1:${srv.port}`, settings.grpcChannels));
    await guard(grpcPool.ready());
    store = openSqliteStore({ path: join(work, "storage-ceiling.db"), limits: { maxMarkedPerOwner: 10_000_000, maxLabelsPerConversation: 32 } });
    const inProcessStore = store;

    const vendorRoutes = new Map<VendorName, VendorRoute>();
    const unavailable = new Map<RowId, string>();
    for (const v of VENDORS) {
      const p = await guard(prepareVendor(v, srv.url));
      if (p.ok) vendorRoutes.set(v, p.route);
      else {
        unavailable.set(v, p.reason);
        log(`${v}: not available (${p.reason})`);
      }
    }

    // ---- the workloads, one function per row ----
    const update1 = new SingleUpdatePool("u1", 100, 100);
    const update100 = new OwnerBatchPool("u100", 200, 100);
    const storage100 = new OwnerBatchPool("s100", 200, 100);
    const raw100 = new OwnerBatchPool("r100", 200, 100);
    const c = settings.concurrency;
    const grpcCall = (path: string, bytes: Buffer, check: (res: Buffer) => CallOutcome) => grpcPool.unary(path, bytes).then(check);
    const connectUrl = srv.url;
    const connectHeaders = { "content-type": "application/json", "connect-protocol-version": "1" };

    const runners: Record<RowId, ((seconds: number) => Promise<RawSlice>) | undefined> = {
      node_http_echo: (s) =>
        httpLoad({
          url: `http://127.0.0.1:${ceil.echoPort}`,
          connections: c,
          seconds: s,
          request: { method: "POST", path: "/", headers: { "content-type": "application/json" }, body: "{}" },
          verify: (b) => b.includes('"SERVING"'),
        }),
      bare_connect_echo: (s) =>
        httpLoad({
          url: `http://127.0.0.1:${ceil.connectPort}`,
          connections: c,
          seconds: s,
          request: { method: "POST", path: PATHS.healthCheck, headers: connectHeaders, body: "{}" },
          verify: (b) => b.includes('"SERVING"'),
        }),
      echo_grpc: (s) => closedLoop(c, s, () => grpcCall(PATHS.healthCheck, healthCheckBytes, checkHealthResponse)),
      echo_connect: (s) =>
        httpLoad({
          url: connectUrl,
          connections: c,
          seconds: s,
          request: { method: "POST", path: PATHS.healthCheck, headers: connectHeaders, body: "{}" },
          verify: (b) => b.includes('"SERVING"'),
        }),
      // The echo at the ZEGO rows' rate: what their server CPU per request is compared with.
      echo_connect_paced: (s) =>
        httpLoad({
          url: connectUrl,
          connections: c,
          seconds: s,
          overallRate: ZEGO_BENCH_RATE,
          request: { method: "POST", path: PATHS.healthCheck, headers: connectHeaders, body: "{}" },
          verify: (b) => b.includes('"SERVING"'),
        }),
      update1_grpc: (s) => closedLoop(c, s, () => grpcCall(PATHS.update, updateRequestBytes([update1.next()]), (r) => checkUpdateResponse(r, 1))),
      update1_connect: (s) =>
        httpLoad({
          url: connectUrl,
          connections: c,
          seconds: s,
          request: connectUpdateRequest(update1),
          verify: checkUpdateJson,
        }),
      update100_grpc: (s) =>
        closedLoop(c, s, () => {
          const specs = update100.next();
          return grpcCall(PATHS.update, updateRequestBytes(specs), (r) => checkUpdateResponse(r, specs.length));
        }),
      storage100: (s) =>
        closedLoop(1, s, async () => {
          const outcomes = await inProcessStore.applyUpdates(toValidUpdates(storage100.next()));
          const ok = outcomes.filter((o) => o.ok && o.changed).length;
          return ok === outcomes.length ? { units: ok } : { error: `${outcomes.length - ok} of ${outcomes.length} updates not applied` };
        }),
      sqlite_raw100: (s) =>
        closedLoop(1, s, async () => {
          const specs = raw100.next();
          return { units: rawUpsert(specs) };
        }),
      zego: vendorRunner(vendorRoutes.get("zego")),
      tencent: vendorRunner(vendorRoutes.get("tencent")),
      openim: vendorRunner(vendorRoutes.get("openim")),
      bulk: undefined,
      list: undefined,
      ...(Object.fromEntries(VENDORS.filter((v) => v !== "zego" && v !== "tencent" && v !== "openim").map((v) => [v, vendorRunner(vendorRoutes.get(v))])) as Record<
        Exclude<VendorName, "zego" | "tencent" | "openim">,
        ((seconds: number) => Promise<RawSlice>) | undefined
      >),
    };
    function vendorRunner(route: VendorRoute | undefined) {
      if (!route) return undefined;
      // ZEGO's per-AppId limit (the server's highest, 1000/s) is below what the server answers:
      // driven flat out, most ZEGO calls would be refused (660300005), which measures the limiter,
      // not the route. Its routes run at ZEGO_BENCH_RATE, and their ratio is CPU per request.
      const rate = ZEGO_ROUTES.includes(route.name) ? { overallRate: ZEGO_BENCH_RATE } : {};
      return (s: number) => httpLoad({ url: connectUrl, connections: c, seconds: s, request: route.request, verify: route.verify, ...rate });
    }

    const totals = new Map<RowId, RowTotals>();
    // Whose CPU is the row's "server CPU": convmark's processes, the ceilings' process, or none (in process).
    const serverOf = (id: RowId): (() => number) | undefined =>
      id === "storage100" || id === "sqlite_raw100" ? undefined : id === "node_http_echo" || id === "bare_connect_echo" ? () => ceil.cpuSeconds() : () => srv.cpuSeconds();
    const measure = async (id: RowId, run: () => Promise<RawSlice>): Promise<void> => {
      const serverCpu = serverOf(id);
      const cpu0 = process.cpuUsage();
      const srvCpu0 = serverCpu?.();
      const raw = await guard(run());
      const cpu = process.cpuUsage(cpu0);
      const t = totals.get(id) ?? new RowTotals();
      t.add({
        ...raw,
        loadCpuSeconds: (cpu.user + cpu.system) / 1e6,
        ...(serverCpu ? { serverCpuSeconds: serverCpu() - srvCpu0! } : {}),
      });
      if (raw.firstError) t.firstError ??= raw.firstError;
      totals.set(id, t);
    };

    // Rows compared with each other run in alternation, so drifting background load hits both alike.
    const main = { sliceSeconds: settings.sliceSeconds, rounds: settings.rounds, warmupSeconds: settings.warmupSeconds };
    const groups: { rows: RowId[]; timing: Settings["routes"] }[] = [
      { rows: ["echo_grpc", "update1_grpc"], timing: main },
      { rows: ["node_http_echo", "bare_connect_echo", "echo_connect", "update1_connect", "tencent", "openim"], timing: main },
      { rows: ["update100_grpc", "storage100", "sqlite_raw100"], timing: main },
      // The read-back and CRUD routes, side by side with the echo they are compared with.
      { rows: ["echo_connect", ...VENDORS.filter((v) => v !== "tencent" && v !== "openim" && !ZEGO_ROUTES.includes(v))], timing: settings.routes },
      // The ZEGO routes and the echo, all at ZEGO_BENCH_RATE (see vendorRunner).
      { rows: ["echo_connect_paced", ...ZEGO_ROUTES], timing: main },
    ];
    for (const { rows: group, timing } of groups) {
      const rows = group.filter((id) => runners[id] && (!settings.only || settings.only.includes(id)));
      for (const id of rows) {
        log(`warm-up ${id} (${timing.warmupSeconds} s)`);
        await guard(runners[id]!(timing.warmupSeconds));
      }
      for (let r = 0; r < timing.rounds; r++) {
        for (const id of rows) {
          log(`measure ${id}, round ${r + 1}/${timing.rounds} (${timing.sliceSeconds} s)`);
          await measure(id, () => runners[id]!(timing.sliceSeconds));
        }
      }
    }

    const countRows = () => {
      const db = new Database(srv.dbPath, { readonly: true, fileMustExist: true });
      try {
        return Number((db.prepare("SELECT count(*) AS n FROM conversations").get() as { n: number }).n);
      } finally {
        db.close();
      }
    };

    /** Through the real API: UpdateConversations over gRPC in requests of bulkBatch (the "bulk" row). */
    const loadThroughApi = async (toLoad: number, firstIndex: number) => {
      const batches = bulkBatches(firstIndex, toLoad, settings.bulkBatch);
      await measure("bulk", () =>
        drainTasks(
          settings.bulkInFlight,
          batches.map((batch) => () => {
            const specs = batch();
            // An importer needs no state back: status-only results, as a real bulk loader would ask.
            return grpcCall(PATHS.update, updateRequestBytes(specs, ResultView.STATUS), (r) => checkUpdateResponse(r, specs.length));
          }),
        ),
      );
    };

    /** Bulk rows written by the bench through the same SQLite store adapter on the server's file (safe across processes). */
    const loadThroughStore = async (toLoad: number, firstIndex: number) => {
      const direct = openSqliteStore({ path: srv.dbPath, limits: { maxMarkedPerOwner: 10_000_000, maxLabelsPerConversation: 32 } });
      try {
        for (const batch of bulkBatches(firstIndex, toLoad, 20_000)) {
          const outcomes = await direct.applyUpdates(toValidUpdates(batch()));
          const bad = outcomes.find((o) => !o.ok);
          if (bad) throw new Error(`direct load failed: ${JSON.stringify(bad)}`);
        }
      } finally {
        await direct.close();
      }
    };

    /**
     * Past the API-loaded levels: loading 10M through the API (or the store adapter) would take most
     * of the time budget and measure nothing the bulk row does not. Whole bulk owners are copies of
     * the List owner's rows as the store wrote them (bench/replicate.ts); a partly filled owner at
     * either end goes through the store adapter. Then a sample of the copies is read back through
     * the adapter and compared with what the bulk load writes.
     */
    const loadByCopy = async (toLoad: number, firstIndex: number) => {
      const per = CONVS_PER_BULK_OWNER;
      const end = firstIndex + toLoad;
      const firstWhole = Math.ceil(firstIndex / per);
      const endWhole = Math.max(firstWhole, Math.floor(end / per));
      if (firstWhole * per > firstIndex) await loadThroughStore(Math.min(end, firstWhole * per) - firstIndex, firstIndex);
      const copied = copyOwners({ dbPath: srv.dbPath, template: LIST_OWNER, perOwner: per, from: firstWhole, to: endWhole, printfName: "bulk-%05d" });
      if (endWhole * per < end && endWhole * per >= firstIndex) await loadThroughStore(end - endWhole * per, endWhole * per);
      if (endWhole > firstWhole) await checkCopies(firstWhole, endWhole);
      return copied;
    };
    const checkCopies = async (from: number, to: number) => {
      const direct = openSqliteStore({ path: srv.dbPath, limits: { maxMarkedPerOwner: 10_000_000, maxLabelsPerConversation: 32 } });
      try {
        for (const k of [from, Math.floor((from + to) / 2), to - 1]) {
          const owner = `bulk-${String(k).padStart(5, "0")}`;
          const specs = bulkSpecs(owner, 0, CONVS_PER_BULK_OWNER);
          if ((await direct.head(owner)) !== BigInt(CONVS_PER_BULK_OWNER)) throw new Error(`copied owner ${owner}: stream head is not ${CONVS_PER_BULK_OWNER}`);
          for (const j of [0, 1, 5, 10, 25, 999]) {
            const want = toValidUpdates([specs[j]!])[0]!;
            const got = await direct.get(want.key);
            const ok =
              got !== undefined &&
              got.marks === want.setMask &&
              got.version === 1n &&
              got.position === BigInt(j + 1) &&
              JSON.stringify(got.labels) === JSON.stringify(want.addLabels);
            if (!ok) throw new Error(`copied owner ${owner}, conversation ${j}: ${JSON.stringify(got, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`);
          }
        }
      } finally {
        await direct.close();
      }
    };

    async function fillAndList(): Promise<{ stored: number; memory: MemoryFigures; levels: LevelFigures[] }> {
      const rssBeforeBulk = srv.memory().rssMb;
      let afterBulk = srv.memory();
      let heap: Awaited<ReturnType<typeof heapFromMetrics>>;
      const figures: LevelFigures[] = [];
      let stored = countRows();
      for (const [i, level] of settings.levels.entries()) {
        // Bulk conversations are numbered from 0 (owner bulk-0000 first); the update pools' rows come on top.
        const toLoad = Math.max(i === 0 ? CONVS_PER_BULK_OWNER : 0, level.stored - stored);
        const firstIndex = loadedBulk;
        const api = i === 0 || level.stored <= settings.apiUpTo;
        const t = performance.now();
        log(`level ${level.key}: ${stored} conversations stored, adding ${toLoad} ${api ? `through the API in requests of ${settings.bulkBatch}` : "as copies of the List owner's rows"}`);
        if (api) await loadThroughApi(toLoad, firstIndex);
        else await guard(loadByCopy(toLoad, firstIndex));
        loadedBulk += toLoad;
        stored = countRows();
        log(`level ${level.key}: ${stored} stored (${((performance.now() - t) / 1000).toFixed(1)} s)`);
        await new Promise((r) => setTimeout(r, settings.quick ? 1000 : 2000));
        const mem = srv.memory();
        if (api) {
          afterBulk = mem;
          heap = await heapFromMetrics(srv.url);
        }
        log(`level ${level.key}: server RSS ${mem.rssMb.toFixed(1)} MiB (largest serving process; peak ${mem.hwmMb.toFixed(1)} MiB)`);

        // List latency: one request in flight, so the percentiles are service time, not queueing,
        // from a client process of its own (bench/list-client.ts), whose stalls are its own.
        log(`warm-up and measure list (${level.key}, ${settings.warmupSeconds} + ${settings.listSeconds} s, bench/list-client.ts)`);
        const before = totals.get("list");
        totals.delete("list");
        const handled0 = await handledWithin(srv.url, "ListConversations", 0.01);
        let listClient: ClientStalls | undefined;
        await measure("list", async () => {
          const out = await runListClient({ port: srv.port, owner: LIST_OWNER, mark: LIST_FILTER_MARKS[0]!, pageSize: LIST_PAGE_SIZE, warmupSeconds: settings.warmupSeconds, seconds: settings.listSeconds });
          listClient = out.stalls;
          return out.slice;
        });
        const handled1 = await handledWithin(srv.url, "ListConversations", 0.01);
        const listServerWithin10ms =
          handled0 && handled1 && handled1.count > handled0.count ? (handled1.within - handled0.within) / (handled1.count - handled0.count) : undefined;
        const lt = totals.get("list")!;
        if (i < settings.levels.length - 1 && before) totals.set("list", before);
        // The live footprint at this size: V8 returns memory on its own schedule (after a long quiet
        // load it has shrunk, after the API load it has not), so levels compare after a full GC.
        const gcOk = await guard(srv.collectGarbage());
        await new Promise((r) => setTimeout(r, 500));
        const rssAfterGcMb = gcOk ? srv.memory().rssMb : Number.NaN;
        log(`level ${level.key}: server RSS after a full GC ${rssAfterGcMb.toFixed(1)} MiB`);
        figures.push({ key: level.key, stored, rssMb: mem.rssMb, rssAfterGcMb, listP50Ms: lt.latencies.percentile(50), listP99Ms: lt.latencies.percentile(99), listErrors: lt.errors, ...(listClient ? { listClient } : {}), ...(listServerWithin10ms !== undefined ? { listServerWithin10ms } : {}) });
        await syncAtLevel(level.key, stored);
      }

      // What the server holds once the garbage of the bulk requests is gone (live data, not GC slack).
      const endMb = srv.memory().rssMb;
      const collected = await guard(srv.collectGarbage());
      await new Promise((r) => setTimeout(r, 1000));
      const afterGc = collected ? srv.memory().rssMb : undefined;
      const heapAfterGc = collected ? await heapFromMetrics(srv.url) : undefined;
      if (!collected) log("could not force a GC in the server (inspector); the after-GC figures are missing");
      else log(`server RSS after a full GC ${afterGc!.toFixed(1)} MiB`);
      const memory: MemoryFigures = {
        startMb: rssAtStart,
        beforeBulkMb: rssBeforeBulk,
        afterBulkMb: afterBulk.rssMb,
        peakMb: afterBulk.hwmMb,
        endMb,
        ...(afterGc !== undefined ? { afterGcMb: afterGc } : {}),
        ...(heap ? { heap } : {}),
        ...(heapAfterGc ? { heapAfterGc } : {}),
      };
      return { stored, memory, levels: figures };
    }

    // ---- the change feed's sync row (bench/feed.ts), at the 1M level (the issue's figure) and at 10M:
    // right after that level's List row and full GC, nothing else running in the server or here.
    const syncs = new Map<LevelKey, SyncFigures>();
    async function syncAtLevel(key: LevelKey, storedNow: number): Promise<void> {
      if (key === "100k" || (settings.only && !settings.only.includes("list"))) return;
      const seconds = Math.max(settings.listSeconds, 3);
      log(`measure sync (${key}, ${seconds} s, at least 500 calls)`);
      syncs.set(key, await guard(benchSync({ target: `127.0.0.1:${srv.port}`, owner: LIST_OWNER, expected: CONVS_PER_BULK_OWNER, stored: storedNow, seconds, server: srv })));
    }

    let loadedBulk = 0;
    let stored = 0;
    let memory: MemoryFigures | undefined;
    let levels: LevelFigures[] = [];
    if (!settings.only || settings.only.includes("bulk") || settings.only.includes("list")) {
      ({ stored, memory, levels } = await fillAndList());
    }
    // ---- the change feed (bench/feed.ts): sync was measured at its levels; now 10,000 live watchers ----
    let watch: WatchFigures | undefined;
    let crossProcess: CrossProcessFigures | undefined;
    if (!settings.only || settings.only.includes("list")) {
      const target = `127.0.0.1:${srv.port}`;
      const connections = Math.ceil(settings.watchers / STREAMS_PER_CONNECTION);
      watch = await guard(benchWatch({ target, server: srv, watchers: settings.watchers, connections, updatesPerSecond: 1000, seconds: settings.watchSeconds, log }));
      log("measure watch_cross_process (writes from this process on the server's SQLite file)");
      crossProcess = await guard(benchCrossProcess({ target, dbPath: srv.dbPath, watchers: 100, updatesPerSecond: 50, seconds: settings.quick ? 3 : 10 }));
    }
    const servingPids = srv.servingPids();
    pool.close();
    pool = undefined;
    await server.stop();
    const seconds = (performance.now() - t0) / 1000;

    const rowInfo = (id: RowId): RowInfo => ({ totals: totals.get(id), unavailable: unavailable.get(id) });
    const results = buildResults({
      settings: {
        quick: settings.quick,
        profile: settings.profile,
        concurrency: settings.concurrency,
        sliceSeconds: settings.sliceSeconds,
        rounds: settings.rounds,
        warmupSeconds: settings.warmupSeconds,
        routeSliceSeconds: settings.routes.sliceSeconds,
        routeRounds: settings.routes.rounds,
        apiUpTo: settings.apiUpTo,
        watchers: settings.watchers,
        watchSeconds: settings.watchSeconds,
        levels: settings.levels.map((l) => l.key).join(","),
        ...(settings.workers ? { workers: settings.workers } : {}),
        server_processes: servingPids.length,
        bulkBatch: settings.bulkBatch,
        bulkInFlight: settings.bulkInFlight,
        listSeconds: settings.listSeconds,
        grpcChannels: settings.grpcChannels,
        ...(settings.only ? { only: settings.only.join(",") } : {}),
        ...(settings.nodeFlags ? { node_flags: settings.nodeFlags.join(" ") } : {}),
      },
      machine,
      rows: Object.fromEntries(
        ALL_ROWS.map((id) => [id, rowInfo(id)]),
      ) as Record<RowId, RowInfo>,
      stored,
      memory,
      levels,
      seconds,
    });
    console.log(formatReport(results));
    console.log(formatFeed(watch, [...syncs.values()]));
    const withFeed = {
      ...results,
      ...(watch ? { watch } : {}),
      ...(crossProcess ? { watch_cross_process: crossProcess, watch_cross_process_p99_ms: crossProcess.p99_ms } : {}),
      // `sync`: the issue's row, 1M stored; `sync_10m`: the same with 10M stored (full runs).
      ...(syncs.get("1m") ? { sync: syncs.get("1m"), sync_p99_ms_1m: syncs.get("1m")!.p99_ms } : {}),
      ...(syncs.get("10m") ? { sync_10m: syncs.get("10m"), sync_p99_ms_10m: syncs.get("10m")!.p99_ms } : {}),
    };

    const defaultLevels = (settings.quick ? QUICK : FULL).levels;
    const partial =
      settings.profile ||
      settings.only !== undefined ||
      settings.nodeFlags !== undefined ||
      settings.levels.map((l) => l.key).join() !== defaultLevels.map((l) => l.key).join();
    if (partial) mkdirSync(profileDir, { recursive: true });
    const outPath = partial ? join(profileDir, "results.json") : join(BENCH_DIR, "results.json");
    writeFileSync(`${outPath}.tmp`, `${JSON.stringify(withFeed, null, 2)}\n`);
    renameSync(`${outPath}.tmp`, outPath);
    log(`wrote ${outPath} (${seconds.toFixed(0)} s in all)`);

    if (settings.profile) {
      const file = newestProfile(profileDir, startedAt, servingPids[0]);
      if (file) {
        const summary = formatProfile(summarizeProfile(file));
        writeFileSync(join(profileDir, "summary.txt"), `${summary}\n`);
        console.log(`\n${summary}`);
      } else {
        log(`no .cpuprofile appeared in ${profileDir}`);
      }
    }
  } finally {
    await cleanup();
  }
}

/** Lazily built requests for bulk conversations firstIndex.., 1000 per owner, LIST_OWNER (index 0..999) first. */
function bulkBatches(firstIndex: number, count: number, batchSize: number): (() => UpdateSpec[])[] {
  const out: (() => UpdateSpec[])[] = [];
  const last = firstIndex + count;
  for (let start = firstIndex; start < last; start += batchSize) {
    const end = Math.min(last, start + batchSize);
    out.push(() => {
      const specs: UpdateSpec[] = [];
      for (let i = start; i < end; ) {
        const owner = Math.floor(i / CONVS_PER_BULK_OWNER);
        const from = i % CONVS_PER_BULK_OWNER;
        const to = Math.min(CONVS_PER_BULK_OWNER, from + (end - i));
        specs.push(...bulkSpecs(`bulk-${String(owner).padStart(5, "0")}`, from, to));
        i += to - from;
      }
      return specs;
    });
  }
  return out;
}

main().catch((e: unknown) => {
  console.error(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
