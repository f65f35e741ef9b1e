/**
 * `npx tsx bench/ab.ts [--base=DIR] [--flags="NODE FLAGS"] [--workers=1,2] [--rows=update100,...] [--seconds=N] [--rounds=N]`:
 * server CPU per operation of a few rows, side by side, for before/after comparisons on a shared
 * machine. Every subject (this tree and DIR, each with every worker count given) runs as its own
 * server at once, as `npm start` does (bench/server.ts); the rows are driven against the subjects in
 * turn, slice after slice, so background load hits all of them alike. CPU is summed over each
 * server's processes (primary and workers, /proc), and shown per operation (per update for the
 * update rows), with the primary's share apart. `--flags` adds this tree once more as the subject
 * `flags`, its server run with those node flags (e.g. `--flags="--max-semi-space-size=32"`).
 *
 * Rows (the same workloads as bench/run.ts): update100 (UpdateConversations x100 over gRPC),
 * update1c (x1 over Connect JSON, HTTP/1.1), update1g (x1 over gRPC), echo_grpc and echo_connect
 * (grpc.health.v1.Health/Check), echo_connect_paced (the same at ZEGO_BENCH_RATE), and every vendor
 * route of bench/vendors.ts by its name (zego, tencent, openim, openim_get_full_conversation_ids, ...;
 * `--rows=vendors` for all of them; the ZEGO ones paced at ZEGO_BENCH_RATE as in bench/run.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { closedLoop, flags, GrpcPool, httpLoad, nodeFlagList, type RawSlice } from "./load.js";
import { procCpuSeconds, startServer, type BenchServer } from "./server.js";
import { prepareVendor, VENDOR_SERVER_ENV, VENDORS, ZEGO_BENCH_RATE, ZEGO_ROUTES, type VendorName } from "./vendors.js";
import {
  checkHealthResponse,
  checkUpdateJson,
  checkUpdateResponse,
  healthCheckBytes,
  OwnerBatchPool,
  PATHS,
  SingleUpdatePool,
  updateRequestBytes,
  connectUpdateRequest,
} from "./workloads.js";

const args = flags(process.argv.slice(2));
const seconds = Number(args.get("seconds") ?? 3);
const rounds = Number(args.get("rounds") ?? 3);
const warmup = Number(args.get("warmup") ?? 2);
const workerCounts = (args.get("workers") ?? "2").split(",").map(Number);
const rows = (args.get("rows") ?? "update100").split(",").flatMap((r) => (r === "vendors" ? [...VENDORS] : [r]));
const base = args.get("base");
const flagsArg = args.get("flags");
const nodeFlags = flagsArg === undefined ? undefined : nodeFlagList(flagsArg);
/** --profile=DIR: every server process runs under node --cpu-prof, its profiles in DIR/<subject>. */
const profileDir = args.get("profile");
const HERE = resolve(fileURLToPath(new URL("..", import.meta.url)));
const IN_FLIGHT = 32;

interface Subject {
  readonly name: string;
  readonly server: BenchServer;
  readonly pool: GrpcPool;
  readonly run: Record<string, (s: number) => Promise<RawSlice>>;
}

async function subject(name: string, root: string, workers: number, dir: string, flags?: readonly string[]): Promise<Subject> {
  const server = await startServer({
    repoRoot: root,
    dataDir: join(dir, name),
    env: { ...VENDOR_SERVER_ENV, CONVMARK_WORKERS: String(workers), CONVMARK_MAX_MARKED_PER_OWNER: "10000000", CONVMARK_MAX_UPDATES_PER_REQUEST: "20000" },
    ...(profileDir ? { cpuProfileDir: join(resolve(profileDir), name.replace("/", "-")) } : {}),
    ...(flags ? { nodeFlags: flags } : {}),
  });
  const pool = new GrpcPool(`127.0.0.1:${server.port}`, 4);
  await pool.ready();
  const u100 = new OwnerBatchPool("u100", 200, 100);
  const u1 = new SingleUpdatePool("u1", 100, 100);
  const connectHeaders = { "content-type": "application/json", "connect-protocol-version": "1" };
  const call = (path: string, bytes: Buffer, check: (b: Buffer) => ReturnType<typeof checkHealthResponse>) => pool.unary(path, bytes).then(check);
  const vendorRuns: Record<string, (s: number) => Promise<RawSlice>> = {};
  for (const v of VENDORS.filter((x) => rows.includes(x))) {
    const p = await prepareVendor(v as VendorName, server.url);
    if (!p.ok) throw new Error(`${name}: ${v} is not available: ${p.reason}`);
    const rate = ZEGO_ROUTES.includes(v) ? { overallRate: ZEGO_BENCH_RATE } : {};
    vendorRuns[v] = (s) => httpLoad({ url: server.url, connections: IN_FLIGHT, seconds: s, request: p.route.request, verify: p.route.verify, ...rate });
  }
  // Health/Check over Connect JSON, closed loop or paced at `rate` requests/s (the ZEGO rows' pace).
  const echoConnect = (seconds: number, rate?: number) =>
    httpLoad({
      url: server.url,
      connections: IN_FLIGHT,
      seconds,
      request: { method: "POST", path: PATHS.healthCheck, headers: connectHeaders, body: "{}" },
      verify: (b) => b.includes('"SERVING"'),
      ...(rate === undefined ? {} : { overallRate: rate }),
    });
  return {
    name,
    server,
    pool,
    run: {
      ...vendorRuns,
      echo_connect_paced: (s) => echoConnect(s, ZEGO_BENCH_RATE),
      update100: (s) =>
        closedLoop(IN_FLIGHT, s, () => {
          const specs = u100.next();
          return call(PATHS.update, updateRequestBytes(specs), (r) => checkUpdateResponse(r, specs.length));
        }),
      update1g: (s) => closedLoop(IN_FLIGHT, s, () => call(PATHS.update, updateRequestBytes([u1.next()]), (r) => checkUpdateResponse(r, 1))),
      echo_grpc: (s) => closedLoop(IN_FLIGHT, s, () => call(PATHS.healthCheck, healthCheckBytes, checkHealthResponse)),
      update1c: (s) =>
        httpLoad({
          url: server.url,
          connections: IN_FLIGHT,
          seconds: s,
          request: connectUpdateRequest(u1),
          verify: checkUpdateJson,
        }),
      echo_connect: (s) => echoConnect(s),
    },
  };
}

interface Totals {
  units: number;
  errors: number;
  wall: number;
  cpu: number;
  primaryCpu: number;
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "convmark-ab-"));
  const subjects: Subject[] = [];
  try {
    const roots: [string, string, (readonly string[])?][] = base ? [["base", resolve(base)], ["this", HERE]] : [["this", HERE]];
    if (nodeFlags) roots.push(["flags", HERE, nodeFlags]);
    for (const [label, root, flags] of roots) {
      for (const w of workerCounts) subjects.push(await subject(`${label}/w${w}`, root, w, dir, flags));
    }
    const totals = new Map<string, Totals>();
    const startLoad = loadavg()[0]!;
    const t0 = new Date().toISOString();
    for (const row of rows) {
      for (const s of subjects) await s.run[row]!(warmup);
      for (let r = 0; r < rounds; r++) {
        for (const s of subjects) {
          const c0 = s.server.cpuSeconds();
          const p0 = procCpuSeconds(s.server.pid);
          const slice = await s.run[row]!(seconds);
          const cpu = s.server.cpuSeconds() - c0;
          const primary = procCpuSeconds(s.server.pid) - p0;
          if (args.has("split")) console.error(`${row} ${s.name}: worker CPU ${s.server.servingPids().map((p) => procCpuSeconds(p).toFixed(1)).join(" / ")} s so far`);
          const key = `${row} ${s.name}`;
          const t = totals.get(key) ?? { units: 0, errors: 0, wall: 0, cpu: 0, primaryCpu: 0 };
          t.units += slice.units;
          t.errors += slice.errors;
          t.wall += slice.seconds;
          t.cpu += cpu;
          t.primaryCpu += primary;
          totals.set(key, t);
        }
      }
    }
    console.log(`ab ${t0} .. ${new Date().toISOString()}, load ${startLoad.toFixed(2)} -> ${loadavg()[0]!.toFixed(2)}; ${rounds} x ${seconds} s per row and subject after ${warmup} s`);
    console.log("row                       units/s   errors   server CPU   CPU µs/unit   of it primary µs");
    for (const [key, t] of totals) {
      console.log(
        `${key.padEnd(24)} ${(t.units / t.wall).toFixed(0).padStart(8)} ${String(t.errors).padStart(8)} ${((100 * t.cpu) / t.wall).toFixed(0).padStart(10)}% ${((1e6 * t.cpu) / t.units).toFixed(1).padStart(12)} ${((1e6 * t.primaryCpu) / t.units).toFixed(2).padStart(14)}`,
      );
    }
  } finally {
    for (const s of subjects) {
      s.pool.close();
      await s.server.stop();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
