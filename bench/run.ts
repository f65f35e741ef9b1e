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
import { closedLoop, drainTasks, GrpcPool, httpLoad, type CallOutcome, type RawSlice } from "./load.js";
import { benchSync, benchWatch, formatFeed, type SyncFigures, type WatchFigures } from "./feed.js";
import { formatProfile, newestProfile, summarizeProfile } from "./profile.js";
import { buildResults, formatReport, machineInfo, type MemoryFigures, type RowInfo, type RowId } from "./report.js";
import { heapFromMetrics, startServer, type BenchServer } from "./server.js";
import { RowTotals } from "./stats.js";
import { prepareVendor, VENDOR_SERVER_ENV, VENDORS, type VendorName, type VendorRoute } from "./vendors.js";
import {
  bulkSpecs,
  checkHealthResponse,
  listResponseChecker,
  checkUpdateJson,
  checkUpdateResponse,
  healthCheckBytes,
  listRequestBytes,
  OwnerBatchPool,
  PATHS,
  SingleUpdatePool,
  toValidUpdates,
  updateRequestBytes,
  updateRequestJson,
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
  /** Conversations stored in total for the List and memory rows. */
  readonly stored: number;
  readonly bulkBatch: number;
  readonly bulkInFlight: number;
  readonly listSeconds: number;
  readonly grpcChannels: number;
  /** Measure only these rows (for profiling one path). */
  readonly only?: readonly RowId[];
}

const FULL: Settings = {
  quick: false,
  profile: false,
  concurrency: 32,
  sliceSeconds: 4,
  rounds: 2,
  warmupSeconds: 2,
  stored: 1_000_000,
  bulkBatch: 10_000,
  bulkInFlight: 3,
  listSeconds: 10,
  grpcChannels: 4,
};

const QUICK: Settings = { ...FULL, quick: true, sliceSeconds: 2, rounds: 1, warmupSeconds: 1, stored: 100_000, listSeconds: 2 };

const LIST_OWNER = "bulk-0000";
const CONVS_PER_BULK_OWNER = 1000;
/** Bulk conversation j carries mark 5 when j % 10 == 0: 100 of the List owner's 1000 match. */
const LIST_FILTER_MARKS = [5];
const LIST_PAGE_SIZE = 100;

const ALL_ROWS: readonly RowId[] = [
  "echo_grpc",
  "echo_connect",
  "update1_grpc",
  "update1_connect",
  "update100_grpc",
  "storage100",
  "zego",
  "tencent",
  "openim",
  ...VENDORS.filter((v) => v !== "zego" && v !== "tencent" && v !== "openim"),
  "bulk",
  "list",
];

const USAGE = `usage: npm run bench [-- options]
  --quick          100k stored conversations, shorter phases (about a minute)
  --profile        run the server under node --cpu-prof (profiles and a summary in bench/profiles)
  --only=ROW,...   measure only these rows (${ALL_ROWS.join(", ")}); the feed rows (watch, sync) need
                   the full set of rows or --only=list
  --seconds=N      seconds per measured slice
Runs with --profile or --only write bench/profiles/results.json instead of bench/results.json.`;

function parseArgs(argv: string[]): Settings {
  let settings: Settings = argv.includes("--quick") ? QUICK : FULL;
  for (const a of argv) {
    const [name, value] = a.split("=", 2) as [string, string | undefined];
    if (name === "--quick") continue;
    else if (name === "--profile") settings = { ...settings, profile: true };
    else if (name === "--only" && value) {
      const only = value.split(",").map((x) => x.trim()) as RowId[];
      const bad = only.find((x) => !ALL_ROWS.includes(x));
      if (bad) usage(`unknown row ${bad}`);
      settings = { ...settings, only };
    } else if (name === "--seconds" && value && Number(value) > 0) settings = { ...settings, sliceSeconds: Number(value), listSeconds: Number(value) };
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
  const cleanup = async () => {
    pool?.close();
    await store?.close();
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  };
  process.once("SIGINT", () => {
    void cleanup().finally(() => process.exit(130));
  });

  try {
    log(`starting convmark (${settings.quick ? "quick" : "full"} run${settings.profile ? ", profiling" : ""})`);
    server = await startServer({
      repoRoot: REPO_ROOT,
      dataDir: join(work, "server"),
      env: {
        ...VENDOR_SERVER_ENV,
        // The bulk owners and the update pools hold more marked conversations than Tencent's 1000.
        CONVMARK_MAX_MARKED_PER_OWNER: "10000000",
        CONVMARK_MAX_UPDATES_PER_REQUEST: String(Math.max(20_000, settings.bulkBatch)),
      },
      ...(settings.profile ? { cpuProfileDir: profileDir } : {}),
    });
    const srv = server;
    const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, srv.died]);
    log(`convmark pid ${srv.pid} on ${srv.url}`);
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
    const c = settings.concurrency;
    const grpcCall = (path: string, bytes: Buffer, check: (res: Buffer) => CallOutcome) => grpcPool.unary(path, bytes).then(check);
    const connectUrl = srv.url;
    const connectHeaders = { "content-type": "application/json", "connect-protocol-version": "1" };

    const runners: Record<RowId, ((seconds: number) => Promise<RawSlice>) | undefined> = {
      echo_grpc: (s) => closedLoop(c, s, () => grpcCall(PATHS.healthCheck, healthCheckBytes, checkHealthResponse)),
      echo_connect: (s) =>
        httpLoad({
          url: connectUrl,
          connections: c,
          seconds: s,
          request: { method: "POST", path: PATHS.healthCheck, headers: connectHeaders, body: "{}" },
          verify: (b) => b.includes('"SERVING"'),
        }),
      update1_grpc: (s) => closedLoop(c, s, () => grpcCall(PATHS.update, updateRequestBytes([update1.next()]), (r) => checkUpdateResponse(r, 1))),
      update1_connect: (s) =>
        httpLoad({
          url: connectUrl,
          connections: c,
          seconds: s,
          request: {
            method: "POST",
            path: PATHS.update,
            headers: connectHeaders,
            body: updateRequestJson([update1.next()]),
            setupRequest: (req) => ({ ...req, body: updateRequestJson([update1.next()]) }),
          },
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
      return (s: number) => httpLoad({ url: connectUrl, connections: c, seconds: s, request: route.request, verify: route.verify });
    }

    const totals = new Map<RowId, RowTotals>();
    const measure = async (id: RowId, run: () => Promise<RawSlice>, serverSide = true): Promise<void> => {
      const cpu0 = process.cpuUsage();
      const srvCpu0 = srv.cpuSeconds();
      const raw = await guard(run());
      const cpu = process.cpuUsage(cpu0);
      const t = totals.get(id) ?? new RowTotals();
      t.add({
        ...raw,
        loadCpuSeconds: (cpu.user + cpu.system) / 1e6,
        ...(serverSide ? { serverCpuSeconds: srv.cpuSeconds() - srvCpu0 } : {}),
      });
      if (raw.firstError) t.firstError ??= raw.firstError;
      totals.set(id, t);
    };

    // Rows compared with each other run in alternation, so drifting background load hits both alike.
    const groups: RowId[][] = [
      ["echo_grpc", "update1_grpc"],
      ["echo_connect", "update1_connect", "zego", "tencent", "openim"],
      ["update100_grpc", "storage100"],
      // The read-back and CRUD routes, side by side with the echo they are compared with.
      ["echo_connect", ...VENDORS.filter((v) => v !== "zego" && v !== "tencent" && v !== "openim")],
    ];
    for (const group of groups) {
      const rows = group.filter((id) => runners[id] && (!settings.only || settings.only.includes(id)));
      for (const id of rows) {
        log(`warm-up ${id} (${settings.warmupSeconds} s)`);
        await guard(runners[id]!(settings.warmupSeconds));
      }
      for (let r = 0; r < settings.rounds; r++) {
        for (const id of rows) {
          log(`measure ${id}, round ${r + 1}/${settings.rounds} (${settings.sliceSeconds} s)`);
          await measure(id, () => runners[id]!(settings.sliceSeconds), id !== "storage100");
        }
      }
    }

    async function fillAndList(): Promise<{ stored: number; memory: MemoryFigures }> {
      // ---- fill the store to its target size through the real API ----
      const countRows = () => {
        const db = new Database(srv.dbPath, { readonly: true, fileMustExist: true });
        try {
          return Number((db.prepare("SELECT count(*) AS n FROM conversations").get() as { n: number }).n);
        } finally {
          db.close();
        }
      };
      const rssBeforeBulk = srv.memory().rssMb;
      const before = countRows();
      const toLoad = Math.max(CONVS_PER_BULK_OWNER, settings.stored - before);
      log(`bulk load: ${before} conversations stored, adding ${toLoad} in requests of ${settings.bulkBatch}`);
      const batches = bulkBatches(toLoad, settings.bulkBatch);
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
      const stored = countRows();
      log(`bulk load done: ${stored} conversations stored`);
      await new Promise((r) => setTimeout(r, settings.quick ? 1000 : 2000));
      const afterBulk = srv.memory();
      const heap = await heapFromMetrics(srv.url);
      log(`server RSS ${afterBulk.rssMb.toFixed(1)} MiB (peak ${afterBulk.hwmMb.toFixed(1)} MiB)`);

      // ---- List latency: one request in flight, so the percentiles are service time, not queueing ----
      const listBytes = listRequestBytes(LIST_OWNER, LIST_FILTER_MARKS, LIST_PAGE_SIZE);
      const checkList = listResponseChecker(LIST_PAGE_SIZE);
      const listCall = () => grpcCall(PATHS.list, listBytes, checkList);
      log("warm-up list");
      await guard(closedLoop(1, settings.warmupSeconds, listCall));
      log(`measure list (${settings.listSeconds} s)`);
      await measure("list", () => closedLoop(1, settings.listSeconds, listCall));

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
      return { stored, memory };
    }

    let stored = 0;
    let memory: MemoryFigures | undefined;
    if (!settings.only || settings.only.includes("bulk") || settings.only.includes("list")) {
      ({ stored, memory } = await fillAndList());
    }
    // ---- the change feed (bench/feed.ts): Sync on the full store, then 10,000 live watchers ----
    let watch: WatchFigures | undefined;
    let sync: SyncFigures | undefined;
    if (!settings.only || settings.only.includes("list")) {
      const target = `127.0.0.1:${srv.port}`;
      if (stored >= CONVS_PER_BULK_OWNER) {
        log(`measure sync (${settings.listSeconds} s)`);
        sync = await guard(benchSync({ target, owner: LIST_OWNER, expected: CONVS_PER_BULK_OWNER, stored, seconds: settings.listSeconds }));
      }
      watch = await guard(
        benchWatch({ target, server: srv, watchers: 10_000, connections: 12, updatesPerSecond: 1000, seconds: settings.quick ? 5 : 15, log }),
      );
    }
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
        storedTarget: settings.stored,
        bulkBatch: settings.bulkBatch,
        bulkInFlight: settings.bulkInFlight,
        listSeconds: settings.listSeconds,
        grpcChannels: settings.grpcChannels,
        ...(settings.only ? { only: settings.only.join(",") } : {}),
      },
      machine,
      rows: Object.fromEntries(
        ALL_ROWS.map((id) => [id, rowInfo(id)]),
      ) as Record<RowId, RowInfo>,
      stored,
      memory,
      seconds,
    });
    console.log(formatReport(results));
    console.log(formatFeed(watch, sync));
    const withFeed = {
      ...results,
      ...(watch ? { watch } : {}),
      ...(sync ? { sync, ...(sync.stored >= 1_000_000 ? { sync_p99_ms_1m: sync.p99_ms } : {}) } : {}),
    };

    const partial = settings.profile || settings.only !== undefined;
    if (partial) mkdirSync(profileDir, { recursive: true });
    const outPath = partial ? join(profileDir, "results.json") : join(BENCH_DIR, "results.json");
    writeFileSync(`${outPath}.tmp`, `${JSON.stringify(withFeed, null, 2)}\n`);
    renameSync(`${outPath}.tmp`, outPath);
    log(`wrote ${outPath} (${seconds.toFixed(0)} s in all)`);

    if (settings.profile) {
      const file = newestProfile(profileDir, startedAt, srv.pid);
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

/** Lazily built requests: `count` conversations, 1000 per owner, LIST_OWNER first with exactly 1000. */
function bulkBatches(count: number, batchSize: number): (() => UpdateSpec[])[] {
  const out: (() => UpdateSpec[])[] = [];
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    out.push(() => {
      const specs: UpdateSpec[] = [];
      for (let i = start; i < end; ) {
        const owner = Math.floor(i / CONVS_PER_BULK_OWNER);
        const from = i % CONVS_PER_BULK_OWNER;
        const to = Math.min(CONVS_PER_BULK_OWNER, from + (end - i));
        specs.push(...bulkSpecs(`bulk-${String(owner).padStart(4, "0")}`, from, to));
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
