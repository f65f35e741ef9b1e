/**
 * Microbench of the generated binary codecs (src/codec): protobuf-es toBinary against the generated
 * encoders (encodeMessage) on the two hot responses, a SyncConversations page of 1,000 changes and
 * an UpdateConversations(100) response with full results; protobuf-es fromBinary against the
 * generated decoders (decodeMessage) on the Sync page (what a Sync client decodes) and on an
 * UpdateConversations(100) request (what the server decodes per x100 call). Rows alternate in short rounds so background
 * load hits both sides alike; the figure is the median round. Standalone: `npx tsx bench/codec.ts
 * [rounds]`. `npx tsx bench/codec.ts --steps [stored]` instead times one SyncConversations call's
 * steps in process on the sync row's data (bench/feed.ts loadSyncOwners, default 1,000,000 stored).
 */
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { SyncConversationsResponseSchema, UpdateConversationsRequestSchema, UpdateConversationsResponseSchema, type SyncConversationsResponse, type UpdateConversationsResponse } from "../gen/convmark/v1/mark_service_pb.js";
import { decodeMessage } from "../src/codec/decode.js";
import { encodeMessage } from "../src/codec/encode.js";
import type { ConversationRecord } from "../src/domain/conversation.js";
import { recordToProto } from "../src/service/convert.js";
import { changeToProto } from "../src/service/mark-service.js";
import { bulkSpecs, updateRequestBytes } from "./workloads.js";

/** One owner's conversations as the sync bench loads them (bench/feed.ts --sync). */
function record(j: number): ConversationRecord {
  return {
    key: { owner: "sync-00000", type: 1, conversationId: `conv-${j}` },
    marks: BigInt(1 + (j % 7)),
    customMark: `custom-${j}`,
    labels: [`label-${j % 5}`],
    settings: j % 10 === 0 ? { pinned: true } : {},
    version: BigInt(1 + j),
    updateTimeMs: 1_764_600_000_000 + j,
    position: BigInt(j),
  };
}

export function syncPage(n = 1000): SyncConversationsResponse {
  return {
    $typeName: "convmark.v1.SyncConversationsResponse",
    changes: Array.from({ length: n }, (_, j) => changeToProto({ record: record(j), deleted: false } as Parameters<typeof changeToProto>[0])),
    nextCursor: "AAAAAAAAA-g.c3luYy0wMDAwMA",
    hasMore: false,
    reset: false,
  };
}

export function updateResponse(n = 100): UpdateConversationsResponse {
  return {
    $typeName: "convmark.v1.UpdateConversationsResponse",
    results: Array.from({ length: n }, (_, j) => ({
      $typeName: "convmark.v1.UpdateResult" as const,
      status: { $typeName: "google.rpc.Status" as const, code: 0, message: "", details: [] },
      conversation: recordToProto(record(j)),
      changed: true,
    })),
  };
}

function timeIt(fn: () => void, iterations: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - t0) / 1e3 / iterations; // µs per call
}

/** JSON.stringify replacer that keeps bigints (the decoders' int64 fields) comparable. */
const big = (_: string, v: unknown) => (typeof v === "bigint" ? `${v}n` : v);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Row {
  name: string;
  fn: () => void;
  items: number;
  times: number[];
}

export function benchCodec(rounds = 15): { name: string; us_per_call: number; us_per_item: number }[] {
  const sync = syncPage();
  const update = updateResponse();
  const syncBytes = toBinary(SyncConversationsResponseSchema, sync);
  const same = <D extends DescMessage>(schema: D, m: MessageShape<D>) => {
    if (!Buffer.from(encodeMessage(schema, m)).equals(Buffer.from(toBinary(schema, m)))) throw new Error(`${schema.typeName}: encodeMessage differs from toBinary`);
  };
  same(SyncConversationsResponseSchema, sync);
  same(UpdateConversationsResponseSchema, update);
  const updateBytes = updateRequestBytes(bulkSpecs("codec-owner", 0, 100));
  const decodes = <D extends DescMessage>(schema: D, bytes: Uint8Array) => {
    if (JSON.stringify(decodeMessage(schema, bytes), big) !== JSON.stringify(fromBinary(schema, bytes), big)) throw new Error(`${schema.typeName}: decodeMessage differs from fromBinary`);
  };
  decodes(SyncConversationsResponseSchema, syncBytes);
  decodes(UpdateConversationsRequestSchema, updateBytes);
  const rows: Row[] = [
    { name: "toBinary Sync(1000 changes)", fn: () => toBinary(SyncConversationsResponseSchema, sync), items: 1000, times: [] },
    { name: "encodeMessage Sync(1000 changes)", fn: () => encodeMessage(SyncConversationsResponseSchema, sync), items: 1000, times: [] },
    { name: "toBinary Update(100 results)", fn: () => toBinary(UpdateConversationsResponseSchema, update), items: 100, times: [] },
    { name: "encodeMessage Update(100 results)", fn: () => encodeMessage(UpdateConversationsResponseSchema, update), items: 100, times: [] },
    { name: "fromBinary Sync(1000 changes) (client)", fn: () => fromBinary(SyncConversationsResponseSchema, syncBytes), items: 1000, times: [] },
    { name: "decodeMessage Sync(1000 changes) (client)", fn: () => decodeMessage(SyncConversationsResponseSchema, syncBytes), items: 1000, times: [] },
    { name: "fromBinary Update request(100 updates)", fn: () => fromBinary(UpdateConversationsRequestSchema, updateBytes), items: 100, times: [] },
    { name: "decodeMessage Update request(100 updates)", fn: () => decodeMessage(UpdateConversationsRequestSchema, updateBytes), items: 100, times: [] },
  ];
  for (const r of rows) timeIt(r.fn, 20); // warm-up
  for (let round = 0; round < rounds; round++) {
    for (const r of rows) r.times.push(timeIt(r.fn, r.items === 1000 ? 20 : 200));
  }
  return rows.map((r) => ({ name: r.name, us_per_call: median(r.times), us_per_item: median(r.times) / r.items }));
}

/** The steps of one Sync call of 1,000 changes (store, service literals, encoding, the client's decode), ms, median of `calls`. */
async function syncSteps(stored: number, calls = 60): Promise<void> {
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { create } = await import("@bufbuild/protobuf");
  const { openSqliteStore } = await import("../src/store/sqlite-store.js");
  const { readFeed } = await import("../src/service/watch-session.js");
  const { loadSyncOwners } = await import("./feed.js");
  const work = mkdtempSync(join(tmpdir(), "convmark-codec-steps-"));
  const store = openSqliteStore({ path: join(work, "marks.db"), limits: { maxMarkedPerOwner: 10_000_000, maxLabelsPerConversation: 32 } });
  try {
    const t0 = performance.now();
    await loadSyncOwners(store, stored, () => {});
    console.log(`loaded ${stored} conversations in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    const steps: Record<string, number[]> = { "store (readFeed)": [], "service (create, changeToProto)": [], "toBinary": [], "encodeMessage": [], "client fromBinary": [] };
    for (let i = 0; i < calls + 5; i++) {
      let t = performance.now();
      const lap = (name: string) => {
        const now = performance.now();
        if (i >= 5) steps[name]!.push(now - t);
        t = now;
      };
      const page = await readFeed(store, "sync-00000", 0n, 1000);
      lap("store (readFeed)");
      const res = create(SyncConversationsResponseSchema, { changes: page.changes.map(changeToProto), nextCursor: "x", hasMore: page.hasMore, reset: page.reset });
      lap("service (create, changeToProto)");
      toBinary(SyncConversationsResponseSchema, res);
      lap("toBinary");
      const bytes = encodeMessage(SyncConversationsResponseSchema, res);
      lap("encodeMessage");
      if (fromBinary(SyncConversationsResponseSchema, bytes).changes.length !== 1000) throw new Error("expected 1,000 changes");
      lap("client fromBinary");
    }
    for (const [name, xs] of Object.entries(steps)) console.log(`${name.padEnd(34)} p50 ${median(xs).toFixed(2).padStart(7)} ms  p99 ${[...xs].sort((a, b) => a - b)[Math.ceil(xs.length * 0.99) - 1]!.toFixed(2).padStart(7)} ms`);
  } finally {
    await store.close();
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}` && process.argv[2] === "--steps") {
  const { loadavg } = await import("node:os");
  console.log(`sync steps ${new Date().toISOString()}, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  await syncSteps(Number(process.argv[3] ?? 1_000_000));
  console.log(`load average at the end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
} else if (import.meta.url === `file://${process.argv[1]}`) {
  const rounds = Number(process.argv[2] ?? 15);
  const { loadavg } = await import("node:os");
  console.log(`codec bench ${new Date().toISOString()}, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}, ${rounds} rounds`);
  const out = benchCodec(rounds);
  for (const r of out) console.log(`${r.name.padEnd(40)} ${r.us_per_call.toFixed(1).padStart(9)} µs/call ${r.us_per_item.toFixed(2).padStart(7)} µs/item`);
  const by = (n: string) => out.find((r) => r.name.startsWith(n))!.us_per_call;
  console.log(`encode speed-up: Sync ${(by("toBinary Sync") / by("encodeMessage Sync")).toFixed(1)}x, Update ${(by("toBinary Update") / by("encodeMessage Update")).toFixed(1)}x`);
  console.log(`decode speed-up: Sync ${(by("fromBinary Sync") / by("decodeMessage Sync")).toFixed(1)}x, Update request ${(by("fromBinary Update request") / by("decodeMessage Update request")).toFixed(1)}x`);
  console.log(`load average at the end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
}
