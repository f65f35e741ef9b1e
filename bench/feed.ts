/**
 * The change-feed rows of `npm run bench` (issue 8):
 * - `watch`: N concurrent WatchConversations streams (one per owner) over a few HTTP/2 connections
 *   while updates to those owners are written at a fixed rate; latency from just before the write
 *   is sent to the change arriving at its watcher (the write time travels in the custom mark).
 * - `sync_p99_ms_1m`: SyncConversations of one owner's 1,000 changes (page_size 1000) with the
 *   store full (1M conversations in a full run), one request in flight.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { performance } from "node:perf_hooks";
import {
  ConversationType,
  ResultView,
  SyncConversationsRequestSchema,
  SyncConversationsResponseSchema,
  UpdateConversationsRequestSchema,
  UpdateConversationsResponseSchema,
  WatchConversationsRequestSchema,
  WatchConversationsResponseSchema,
  type WatchConversationsResponse,
} from "../gen/convmark/v1/mark_service_pb.js";
import { grpcCodec } from "../src/codec/grpc-codec.js";
import type { MarkStore } from "../src/store/store.js";
import { watchClientStalls } from "./stats.js";

export interface WatchFigures {
  readonly watchers: number;
  readonly connections: number;
  readonly updates_per_second: number;
  readonly seconds: number;
  readonly writes: number;
  /** Writes whose update was not acknowledged as a change (failed call or result, or a no-op). */
  readonly unacknowledged_writes: number;
  readonly delivered: number;
  /** Acknowledged writes that never arrived, while a later write of the same conversation did (its server process read only the latest state). */
  readonly collapsed: number;
  /** Acknowledged writes that never arrived, nor anything written later to that conversation (within 5 s). */
  readonly lost: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
  readonly rss_mb: number;
  /** Server RSS with every stream open and idle, after a forced full GC (live memory, not GC slack). */
  readonly rss_idle_streams_after_gc_mb?: number;
  readonly cpu_us_per_change: number;
  readonly write_cpu_us_per_update: number;
  /** The bench process's event-loop delay p99 while measuring: it receives every stream, and a stalled client adds to every latency. */
  readonly client_loop_delay_p99_ms: number;
  /** Load average (1 min) at the start and the end of the measured phase: the machine is shared. */
  readonly load: readonly [number, number];
}

export interface SyncFigures {
  readonly stored: number;
  readonly changes_per_call: number;
  readonly calls: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
  /** Server CPU (all its processes) per call: what the server spends, apart from waiting. */
  readonly server_cpu_ms_per_call?: number;
  /** The bench process's CPU per call (the client's decoding): high values mean the client, not the server, sets the pace. */
  readonly client_cpu_ms_per_call: number;
  /** The bench process's event-loop delay p99 while measuring (a stalled client adds to every latency). */
  readonly client_loop_delay_p99_ms: number;
  /**
   * The bench process's own garbage-collection pauses while measuring (perf_hooks "gc" entries):
   * how many took over 5 ms and the longest. The client decodes every page of 1,000 changes inside
   * the timed call, and its scavenges of those pages land in the latencies (docs/performance.md,
   * "Where Sync's tail comes from").
   */
  readonly client_gc_over_5ms: number;
  readonly client_gc_max_ms: number;
  /** Load average (1 min) at the start and the end of the row: the machine is shared. */
  readonly load: readonly [number, number];
}

interface ServerProbe {
  memory(): { rssMb: number };
  cpuSeconds(): number;
  collectGarbage?(): Promise<boolean>;
}

const WATCH = "/convmark.v1.MarkService/WatchConversations";
const STREAMS_PER_CONNECTION = 100;
const UPDATE = "/convmark.v1.MarkService/UpdateConversations";
const SYNC = "/convmark.v1.MarkService/SyncConversations";

/** Opens one owner's Watch stream: `onLive` at its first message (the stream is live), `onChanges` with every message's changes. */
function openWatch(
  client: grpc.Client,
  ownerUserId: string,
  onLive: () => void,
  onChanges: (changes: WatchConversationsResponse["changes"]) => void,
): grpc.ClientReadableStream<WatchConversationsResponse> {
  const call = client.makeServerStreamRequest(
    WATCH,
    (m: ReturnType<typeof create<typeof WatchConversationsRequestSchema>>) => Buffer.from(toBinary(WatchConversationsRequestSchema, m)),
    (b: Buffer) => fromBinary(WatchConversationsResponseSchema, b),
    create(WatchConversationsRequestSchema, { ownerUserId }),
  );
  let first = true;
  call.on("data", (m: WatchConversationsResponse) => {
    if (first) {
      first = false;
      onLive();
    }
    onChanges(m.changes);
  });
  call.on("error", () => {});
  return call;
}

/** Waits until `live()` streams are live, failing after `ms`. */
async function untilLive(live: () => number, watchers: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (live() < watchers) {
    if (Date.now() > deadline) throw new Error(`only ${live()} of ${watchers} Watch streams became live`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

function clients(target: string, n: number, tag: string): grpc.Client[] {
  return Array.from(
    { length: n },
    (_, i) =>
      new grpc.Client(target, grpc.credentials.createInsecure(), {
        "grpc.use_local_subchannel_pool": 1,
        "grpc.primary_user_agent": `convmark-bench-${tag}/${i}`,
        "grpc.max_receive_message_length": -1,
      }),
  );
}

export async function benchWatch(opts: {
  target: string;
  server: ServerProbe;
  watchers: number;
  connections: number;
  updatesPerSecond: number;
  seconds: number;
  log: (m: string) => void;
}): Promise<WatchFigures> {
  // The server allows 100 concurrent streams per HTTP/2 connection (src/server/listener.ts, as
  // grpc-go, Envoy and nginx do): spread the watchers over enough connections to hold them.
  const connections = Math.max(opts.connections, Math.ceil(opts.watchers / STREAMS_PER_CONNECTION));
  const watchClients = clients(opts.target, connections, "watch");
  const [writer] = clients(opts.target, 1, "writer");
  const calls: grpc.ClientReadableStream<WatchConversationsResponse>[] = [];
  const latencies: number[] = [];
  let live = 0;
  let measuring = false;
  let delivered = 0;
  // What was written while measuring (conversation -> the custom marks written to it, in order) and
  // what arrived: a write that never arrived either was overwritten before its watcher's server
  // process read it (collapsed: a later write of that conversation arrived) or was lost.
  const written = new Map<string, string[]>();
  const seen = new Set<string>();
  const ownerOf = (i: number) => `watch-${String(i).padStart(5, "0")}`;
  try {
    opts.log(`watch: opening ${opts.watchers} streams over ${connections} connections`);
    for (let i = 0; i < opts.watchers; i++) {
      const client = watchClients[i % watchClients.length]!;
      calls.push(
        openWatch(client, ownerOf(i), () => live++, (changes) => {
          const now = performance.now();
          for (const c of changes) {
            const sent = Number(c.conversation?.customMark);
            if (measuring && Number.isFinite(sent)) {
              latencies.push(now - sent);
              delivered++;
              seen.add(`${c.conversation!.key!.ownerUserId}/${c.conversation!.key!.conversationId}/${c.conversation!.customMark}`);
            }
          }
        }),
      );
      if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
    }
    await untilLive(() => live, opts.watchers, 120_000);
    let idleAfterGc: number | undefined;
    if (opts.server.collectGarbage && (await opts.server.collectGarbage())) idleAfterGc = opts.server.memory().rssMb;
    opts.log(`watch: ${live} streams live (server RSS after GC ${idleAfterGc?.toFixed(1) ?? "?"} MB); writing ${opts.updatesPerSecond} updates/s for ${opts.seconds} s`);

    // Each 10 ms tick writes its share of the rate as one UpdateConversations call (1,000 updates/s
    // = 100 calls of 10), each update to a random owner: cheap for the writer, so what is measured
    // is the feed, not the cost of 1,000 unary calls per second.
    // Updates not acknowledged as changed (a failed call or result): not expected at any watcher.
    let unacknowledged = 0;
    const writeBatch = (ownerFor: () => string, count: number, n: number) =>
      new Promise<void>((resolve) => {
        const sent = String(performance.now());
        // Each conversation at most once per call: a second update with the same custom mark would be a no-op.
        const keys = new Set<string>();
        const updates = Array.from({ length: count }, (_, j) => {
          const conversationId = `c${(n + j) % 10}`;
          let o = ownerFor();
          for (let tries = 0; keys.has(`${o}/${conversationId}`) && tries < 100; tries++) o = ownerFor();
          keys.add(`${o}/${conversationId}`);
          return { key: { ownerUserId: o, type: ConversationType.DIRECT, conversationId }, customMark: sent };
        });
        const owners = updates.map((u) => u.key.ownerUserId);
        const req = create(UpdateConversationsRequestSchema, { resultView: ResultView.STATUS, updates });
        writer!.makeUnaryRequest(
          UPDATE,
          (m: typeof req) => Buffer.from(toBinary(UpdateConversationsRequestSchema, m)),
          (b: Buffer) => fromBinary(UpdateConversationsResponseSchema, b),
          req,
          (err, res) => {
            const changed = err || !res ? 0 : res.results.filter((r) => (r.status?.code ?? 0) === 0 && r.changed).length;
            if (measuring) {
              unacknowledged += owners.length - changed;
              res?.results.forEach((r, j) => {
                if ((r.status?.code ?? 0) !== 0 || !r.changed) return;
                const k = `${owners[j]}/${updates[j]!.key.conversationId}`;
                const list = written.get(k);
                if (list) list.push(sent);
                else written.set(k, [sent]);
              });
            }
            resolve();
          },
        );
      });
    const tickMs = 10;
    const writePhase = async (ownerFor: () => string): Promise<number> => {
      let writes = 0;
      const pending: Promise<void>[] = [];
      const t0 = performance.now();
      while (performance.now() - t0 < opts.seconds * 1000) {
        const due = Math.floor(((performance.now() - t0) / 1000) * opts.updatesPerSecond) + 1;
        if (due > writes) {
          pending.push(writeBatch(ownerFor, due - writes, writes));
          writes = due;
        }
        await new Promise((r) => setTimeout(r, tickMs));
      }
      await Promise.all(pending);
      return writes;
    };

    // Baseline: the same writes to owners nobody watches (server CPU of the writes alone).
    let b = 0;
    const cpuB0 = opts.server.cpuSeconds();
    await writePhase(() => `unwatched-${b++ % opts.watchers}`);
    const baselineCpu = opts.server.cpuSeconds() - cpuB0;

    const { loadavg } = await import("node:os");
    const { monitorEventLoopDelay } = await import("node:perf_hooks");
    const load0 = loadavg()[0]!;
    const loopDelay = monitorEventLoopDelay({ resolution: 1 });
    loopDelay.enable();
    const cpu0 = opts.server.cpuSeconds();
    measuring = true;
    const t0 = performance.now();
    const writes = await writePhase(() => ownerOf(Math.floor(Math.random() * opts.watchers)));
    loopDelay.disable();
    // Let the last changes arrive.
    const settle = Date.now() + 5000;
    while (delivered < writes - unacknowledged && Date.now() < settle) await new Promise((r) => setTimeout(r, 20));
    measuring = false;
    const cpu = opts.server.cpuSeconds() - cpu0;
    const rss = opts.server.memory().rssMb;
    let collapsed = 0;
    let lost = 0;
    for (const [k, sents] of written) {
      let later = false;
      for (let i = sents.length - 1; i >= 0; i--) {
        if (seen.has(`${k}/${sents[i]}`)) later = true;
        else if (later) collapsed++;
        else lost++;
      }
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const elapsed = (performance.now() - t0) / 1000;
    return {
      watchers: live,
      connections,
      updates_per_second: round(writes / Math.min(elapsed, opts.seconds), 0),
      seconds: opts.seconds,
      writes,
      unacknowledged_writes: unacknowledged,
      delivered,
      collapsed,
      lost,
      p50_ms: round(percentile(sorted, 50)),
      p99_ms: round(percentile(sorted, 99)),
      max_ms: round(sorted.at(-1) ?? NaN),
      rss_mb: round(rss, 1),
      ...(idleAfterGc !== undefined ? { rss_idle_streams_after_gc_mb: round(idleAfterGc, 1) } : {}),
      // The server CPU the watchers added over the same writes unwatched, per delivered change.
      cpu_us_per_change: round((Math.max(0, cpu - baselineCpu) * 1e6) / Math.max(1, delivered), 1),
      write_cpu_us_per_update: round((baselineCpu * 1e6) / Math.max(1, writes), 1),
      client_loop_delay_p99_ms: round(loopDelay.percentile(99) / 1e6),
      load: [round(load0), round(loadavg()[0]!)],
    };
  } finally {
    for (const c of calls) c.cancel();
    for (const c of [...watchClients, writer!]) c.close();
  }
}

/**
 * SyncConversations of one owner's `expected` changes, one call in flight. Sound as a latency figure
 * when: the server is warm (calls for at least a second first: JIT, SQLite's page cache, the
 * connection), there are enough calls for a p99 (at least `minCalls`, the row runs longer if need
 * be), and the client is not the bottleneck (its CPU per call and event-loop delay are reported
 * next to the latency; nothing else runs in this process meanwhile).
 */
export async function benchSync(opts: {
  target: string;
  owner: string;
  expected: number;
  stored: number;
  seconds: number;
  server?: Pick<ServerProbe, "cpuSeconds">;
  minCalls?: number;
}): Promise<SyncFigures> {
  const { loadavg } = await import("node:os");
  const [client] = clients(opts.target, 1, "sync");
  const req = Buffer.from(toBinary(SyncConversationsRequestSchema, create(SyncConversationsRequestSchema, { ownerUserId: opts.owner, pageSize: opts.expected })));
  // The page is decoded in the call's callback, inside the timed call, from the bytes grpc-js hands
  // over; grpc-js's own deserializer hook would keep the decoded page referenced from its call
  // objects, which the young generation's collections then copy and promote (about 1 MB per call
  // surviving every scavenge, and a scavenge over 5 ms every 10 calls: docs/performance.md).
  const decode = grpcCodec(SyncConversationsResponseSchema).deserialize;
  const call = () =>
    new Promise<number>((resolve, reject) => {
      client!.makeUnaryRequest(
        SYNC,
        (b: Buffer) => b,
        (b: Buffer) => b,
        req,
        (err, bytes) => (err || !bytes ? reject(err ?? new Error("no response")) : resolve(decode(bytes).changes.length)),
      );
    });
  try {
    const load0 = loadavg()[0]!;
    const warmEnd = performance.now() + 1000;
    for (let warm = 0; warm < 20 || performance.now() < warmEnd; warm++) await call();
    const minCalls = opts.minCalls ?? 500;
    const times: number[] = [];
    const stalls = watchClientStalls();
    const cpu0 = process.cpuUsage();
    const srv0 = opts.server?.cpuSeconds();
    const end = performance.now() + opts.seconds * 1000;
    while (performance.now() < end || times.length < minCalls) {
      const t = performance.now();
      const n = await call();
      times.push(performance.now() - t);
      if (n !== opts.expected) throw new Error(`SyncConversations returned ${n} changes, expected ${opts.expected}`);
    }
    const stalled = stalls();
    const cpu = process.cpuUsage(cpu0);
    const srv = srv0 !== undefined ? opts.server!.cpuSeconds() - srv0 : undefined;
    const sorted = times.sort((a, b) => a - b);
    return {
      stored: opts.stored,
      changes_per_call: opts.expected,
      calls: sorted.length,
      p50_ms: round(percentile(sorted, 50)),
      p99_ms: round(percentile(sorted, 99)),
      max_ms: round(sorted.at(-1)!),
      ...(srv !== undefined ? { server_cpu_ms_per_call: round((srv * 1000) / sorted.length) } : {}),
      client_cpu_ms_per_call: round((cpu.user + cpu.system) / 1000 / sorted.length),
      client_loop_delay_p99_ms: stalled.loopDelayP99Ms,
      client_gc_over_5ms: stalled.gcOver5ms,
      client_gc_max_ms: stalled.gcMaxMs,
      load: [round(load0), round(loadavg()[0]!)],
    };
  } finally {
    client!.close();
  }
}

export interface CrossProcessFigures {
  readonly watchers: number;
  readonly writes: number;
  readonly delivered: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly max_ms: number;
}

/**
 * `watch_cross_process_p99_ms`: changes written by another OS process (this one, the bench, with
 * its own SQLite connection to the server's file) reaching the server's watchers. Each write
 * carries its wall-clock send time (both processes read the same clock) in the custom mark.
 */
export async function benchCrossProcess(opts: { target: string; dbPath: string; watchers: number; updatesPerSecond: number; seconds: number }): Promise<CrossProcessFigures> {
  const { openSqliteStore } = await import("../src/store/sqlite-store.js");
  const { DEFAULT_LIMITS } = await import("../src/domain/limits.js");
  const store = openSqliteStore({ path: opts.dbPath, limits: DEFAULT_LIMITS });
  const [client] = clients(opts.target, 1, "cross");
  const calls: grpc.ClientReadableStream<WatchConversationsResponse>[] = [];
  const latencies: number[] = [];
  let live = 0;
  const ownerOf = (i: number) => `cross-${i}`;
  const wallNow = () => performance.timeOrigin + performance.now();
  try {
    for (let i = 0; i < opts.watchers; i++) {
      calls.push(
        openWatch(client!, ownerOf(i), () => live++, (changes) => {
          const now = wallNow();
          for (const c of changes) {
            const sent = Number(c.conversation?.customMark);
            if (Number.isFinite(sent) && sent > 0) latencies.push(now - sent);
          }
        }),
      );
    }
    await untilLive(() => live, opts.watchers, 30_000);
    let writes = 0;
    const t0 = performance.now();
    const gapMs = 1000 / opts.updatesPerSecond;
    while (performance.now() - t0 < opts.seconds * 1000) {
      // Not on a fixed grid: a poll interval in step with the writes would hide or double its cost.
      await new Promise((r) => setTimeout(r, gapMs * (0.5 + Math.random())));
      const owner = ownerOf(writes % opts.watchers);
      await store.applyUpdates([
        { key: { owner, type: 1, conversationId: `c${writes % 7}` }, setMask: 0n, clearMask: 0n, customMark: String(wallNow()), addLabels: [], removeLabels: [], settings: {} },
      ]);
      writes++;
    }
    const settle = Date.now() + 3000;
    while (latencies.length < writes && Date.now() < settle) await new Promise((r) => setTimeout(r, 20));
    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      watchers: opts.watchers,
      writes,
      delivered: latencies.length,
      p50_ms: round(percentile(sorted, 50)),
      p99_ms: round(percentile(sorted, 99)),
      max_ms: round(sorted.at(-1) ?? NaN),
    };
  } finally {
    for (const c of calls) c.cancel();
    client!.close();
    await store.close();
  }
}

/** The feed rows' lines; `syncs`: the sync row at each store size measured (the target is at 1M). */
export function formatFeed(w: WatchFigures | undefined, syncs: readonly SyncFigures[]): string {
  const lines = ["", "change feed"];
  if (w) {
    lines.push(
      `  watch: ${w.watchers} streams over ${w.connections} connections, ${w.updates_per_second} updates/s: p50 ${w.p50_ms} ms, p99 ${w.p99_ms} ms (target <= 100) ${w.p99_ms <= 100 ? "PASS" : "MISS"}; ` +
        `server RSS ${w.rss_mb} MB (target < 400) ${w.rss_mb < 400 ? "PASS" : "MISS"}; ${w.cpu_us_per_change} us server CPU per delivered change (the writes alone: ${w.write_cpu_us_per_update} us per update); ${w.delivered}/${w.writes} delivered (${w.unacknowledged_writes} not acknowledged, ${w.collapsed} collapsed, ${w.lost} lost); ` +
        `max ${w.max_ms} ms, client loop delay p99 ${w.client_loop_delay_p99_ms} ms, load ${w.load.join(" -> ")}`,
    );
  }
  for (const s of syncs) {
    const target = s.stored < 10_000_000 && s.stored >= 1_000_000 ? ` (target <= 20 at 1M) ${s.p99_ms <= 20 ? "PASS" : "MISS"}` : "";
    lines.push(
      `  sync: ${s.changes_per_call} changes of one owner, ${s.stored} stored: p50 ${s.p50_ms} ms, p99 ${s.p99_ms} ms${target}, max ${s.max_ms} ms; ${s.calls} calls; ` +
        `server CPU ${s.server_cpu_ms_per_call ?? "?"} ms/call, client CPU ${s.client_cpu_ms_per_call} ms/call, client loop delay p99 ${s.client_loop_delay_p99_ms} ms, client GC pauses over 5 ms ${s.client_gc_over_5ms ?? "?"} (longest ${s.client_gc_max_ms ?? "?"} ms), load ${s.load.join(" -> ")}`,
    );
  }
  return lines.join("\n");
}

/**
 * Only the watch row, against a fresh server: `npx tsx bench/feed.ts [watchers] [connections]
 * [updates/s] [seconds]` (defaults 10000 12 1000 15), for looking at the feed alone.
 */
async function feedOnly(): Promise<void> {
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  const { startServer } = await import("./server.js");
  const [watchers = 10_000, connections = 12, rate = 1000, seconds = 15] = process.argv.slice(2).map(Number);
  const work = mkdtempSync(join(tmpdir(), "convmark-feed-bench-"));
  // CONVMARK_WATCH_HEARTBEAT_MS from this shell reaches the server (e.g. to see the cost of heartbeats).
  const hb = process.env.CONVMARK_WATCH_HEARTBEAT_MS;
  const server = await startServer({
    repoRoot: fileURLToPath(new URL("..", import.meta.url)),
    dataDir: work,
    env: hb ? { CONVMARK_WATCH_HEARTBEAT_MS: hb } : {},
    ...(process.env.FEED_BENCH_PROFILE_DIR ? { cpuProfileDir: process.env.FEED_BENCH_PROFILE_DIR } : {}),
  });
  try {
    const log = (m: string) => console.log(`[feed ${new Date().toISOString().slice(11, 19)}] ${m}`);
    const rssIdle = server.memory().rssMb;
    const w = await benchWatch({ target: `127.0.0.1:${server.port}`, server, watchers, connections, updatesPerSecond: rate, seconds, log });
    console.log(formatFeed(w, []));
    log("watch_cross_process: 100 watchers, 50 updates/s written by this process on the server's SQLite file, 10 s");
    const x = await benchCrossProcess({ target: `127.0.0.1:${server.port}`, dbPath: server.dbPath, watchers: 100, updatesPerSecond: 50, seconds: 10 });
    console.log(`  cross-process: ${x.delivered}/${x.writes} delivered, p50 ${x.p50_ms} ms, p99 ${x.p99_ms} ms (target <= 100) ${x.p99_ms <= 100 ? "PASS" : "MISS"}, max ${x.max_ms} ms`);
    console.log(JSON.stringify({ rss_idle_mb: rssIdle, watch: w, watch_cross_process: x, watch_cross_process_p99_ms: x.p99_ms }));
  } finally {
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Fills a store with `stored` conversations, 1,000 per owner (`sync-00000`, ...), each with a mark,
 * a custom mark and a label: the sync row's data (also bench/codec.ts --steps).
 */
export async function loadSyncOwners(direct: MarkStore, stored: number, log: (m: string) => void): Promise<void> {
  for (let first = 0; first < stored; first += 20_000) {
    const batch = Array.from({ length: Math.min(20_000, stored - first) }, (_, j) => {
      const n = first + j;
      return {
        key: { owner: `sync-${String(Math.floor(n / 1000)).padStart(5, "0")}`, type: 1 as const, conversationId: `conv-${n % 1000}` },
        setMask: BigInt(1 + (n % 7)),
        clearMask: 0n,
        customMark: `custom-${n}`,
        addLabels: [`label-${n % 5}`],
        removeLabels: [],
        settings: {},
      };
    });
    const out = await direct.applyUpdates(batch);
    const bad = out.find((o) => !o.ok);
    if (bad) throw new Error(`load failed: ${JSON.stringify(bad)}`);
    if (first % 200_000 === 0) log(`loaded ${first + batch.length}`);
  }
}

/**
 * Only the sync row at a given store size: `npx tsx bench/feed.ts --sync [stored] [--keep=FILE]
 * [--from=FILE]` (default 1,000,000): the bench process loads `stored` conversations (1,000 per
 * owner, marks, a custom mark and a label each) through the SQLite store adapter on the server's
 * file, then measures SyncConversations of one owner's 1,000 changes over gRPC for 10 s (at least
 * 500 calls). --keep copies the loaded database to FILE at the end; --from starts from such a copy
 * instead of loading (for before/after runs side by side; `stored` must then say what FILE holds).
 */
async function syncOnly(stored: number, from: string | undefined, keep: string | undefined): Promise<void> {
  const { copyFileSync, mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  const { startServer } = await import("./server.js");
  const { openSqliteStore } = await import("../src/store/sqlite-store.js");
  const work = mkdtempSync(join(tmpdir(), "convmark-sync-bench-"));
  // A database this row loaded before (kept with --keep=FILE), copied in: repeated runs skip the load.
  if (from !== undefined) copyFileSync(from, join(work, "convmark.db"));
  const server = await startServer({
    repoRoot: fileURLToPath(new URL("..", import.meta.url)),
    dataDir: work,
    env: {},
    ...(process.env.FEED_BENCH_PROFILE_DIR ? { cpuProfileDir: process.env.FEED_BENCH_PROFILE_DIR } : {}),
  });
  const log = (m: string) => console.log(`[sync ${new Date().toISOString().slice(11, 19)}] ${m}`);
  try {
    if (from === undefined) {
      const direct = openSqliteStore({ path: server.dbPath, limits: { maxMarkedPerOwner: 10_000_000, maxLabelsPerConversation: 32 } });
      const t0 = performance.now();
      await loadSyncOwners(direct, stored, log);
      await direct.close();
      log(`loaded ${stored} conversations in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
    const s = await benchSync({ target: `127.0.0.1:${server.port}`, owner: "sync-00000", expected: 1000, stored, seconds: 10, server });
    console.log(formatFeed(undefined, [s]));
    console.log(JSON.stringify({ sync: s, ...(stored >= 1_000_000 ? { sync_p99_ms_1m: s.p99_ms } : {}) }));
  } finally {
    await server.stop();
    if (keep !== undefined) copyFileSync(join(work, "convmark.db"), keep);
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === (await import("node:url")).pathToFileURL(process.argv[1]).href) {
  const option = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const stored = Number(process.argv.slice(3).find((a) => !a.startsWith("--")) ?? 1_000_000);
  (process.argv[2] === "--sync" ? syncOnly(stored, option("from"), option("keep")) : feedOnly()).catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
