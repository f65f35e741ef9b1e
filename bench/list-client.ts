/**
 * The List latency row's client, in a process of its own: `node --import tsx bench/list-client.ts
 * PORT OWNER MARK PAGE_SIZE WARMUP_S SECONDS` calls ListConversations over gRPC (one channel, one
 * call in flight, the bench's request and response check) for WARMUP_S, then measures for SECONDS,
 * and prints one JSON line: the slice (latencies in ms) and what stalled this process meanwhile.
 *
 * Why a process: the bench process has by then driven every other row and the bulk load, and each
 * of its calls waited behind its own work. Side by side at 100k stored (`npm run bench -- --only=list
 * --levels=100k`, two runs each, 2026-12-03): List p50 1.81 / 1.86 ms and p99 7.21 / 6.90 ms from
 * the bench process, 1.31 / 1.30 and 5.38 / 5.28 ms from this one (docs/performance.md, "Whose
 * tail is List's p99").
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { closedLoop, GrpcPool, type RawSlice } from "./load.js";
import { LatencyLog, watchClientStalls, type ClientStalls } from "./stats.js";
import { listRequestBytes, listResponseChecker, PATHS } from "./workloads.js";

/** The child's one line: its slice, latencies as an array, and its stalls. */
type ListClientOutput = Omit<RawSlice, "latencies"> & { readonly latenciesMs: number[]; readonly stalls: ClientStalls };

/** Runs the List client in its own process against the server on 127.0.0.1:port; resolves with its slice and stalls. */
export async function runListClient(o: { port: number; owner: string; mark: number; pageSize: number; warmupSeconds: number; seconds: number }): Promise<{ slice: RawSlice; stalls: ClientStalls }> {
  const args = [o.port, o.owner, o.mark, o.pageSize, o.warmupSeconds, o.seconds].map(String);
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), ...args], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", resolve);
  });
  if (code !== 0) throw new Error(`bench/list-client.ts exited with code ${code}: ${stderr.trim().split("\n", 1)[0] ?? ""}`);
  const { latenciesMs, stalls, ...rest } = JSON.parse(stdout.trim()) as ListClientOutput;
  const latencies = new LatencyLog();
  for (const ms of latenciesMs) latencies.add(ms);
  return { slice: { ...rest, latencies }, stalls };
}

async function main(): Promise<void> {
  const [port, owner, mark, pageSize, warmup, seconds] = process.argv.slice(2);
  const numbers = [port, mark, pageSize, warmup, seconds].map(Number);
  if (!owner || numbers.some((n) => !Number.isFinite(n) || n <= 0)) {
    throw new Error("usage: bench/list-client.ts PORT OWNER MARK PAGE_SIZE WARMUP_S SECONDS");
  }
  const [p, m, size, warm, secs] = numbers as [number, number, number, number, number];
  const pool = new GrpcPool(`127.0.0.1:${p}`, 1);
  await pool.ready(3000); // the server is up: the bench started it
  const request = listRequestBytes(owner, [m], size);
  const check = listResponseChecker(size);
  const call = () => pool.unary(PATHS.list, request).then(check, (e: unknown) => ({ error: String(e) }));
  await closedLoop(1, warm, call);
  const stop = watchClientStalls();
  const slice = await closedLoop(1, secs, call);
  const stalls = stop();
  pool.close();
  const { latencies, ...rest } = slice;
  const out: ListClientOutput = { ...rest, latenciesMs: latencies.toArray(), stalls };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
