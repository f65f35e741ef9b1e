/**
 * Microbench of the binary response encoding (src/codec): protobuf-es toBinary against the generated
 * encoders (encodeMessage) on the two hot responses, a SyncConversations page of 1,000 changes and
 * an UpdateConversations(100) response with full results, plus protobuf-es fromBinary of the Sync
 * page (what the Sync bench's client spends decoding). Rows alternate in short rounds so background
 * load hits both sides alike; the figure is the median round. Standalone: `npx tsx bench/codec.ts
 * [rounds]`.
 */
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { SyncConversationsResponseSchema, UpdateConversationsResponseSchema, type SyncConversationsResponse, type UpdateConversationsResponse } from "../gen/convmark/v1/mark_service_pb.js";
import { encodeMessage } from "../src/codec/encode.js";
import type { ConversationRecord } from "../src/domain/conversation.js";
import { recordToProto } from "../src/service/convert.js";
import { changeToProto } from "../src/service/mark-service.js";

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
  const rows: Row[] = [
    { name: "toBinary Sync(1000 changes)", fn: () => toBinary(SyncConversationsResponseSchema, sync), items: 1000, times: [] },
    { name: "encodeMessage Sync(1000 changes)", fn: () => encodeMessage(SyncConversationsResponseSchema, sync), items: 1000, times: [] },
    { name: "toBinary Update(100 results)", fn: () => toBinary(UpdateConversationsResponseSchema, update), items: 100, times: [] },
    { name: "encodeMessage Update(100 results)", fn: () => encodeMessage(UpdateConversationsResponseSchema, update), items: 100, times: [] },
    { name: "fromBinary Sync(1000 changes) (client)", fn: () => fromBinary(SyncConversationsResponseSchema, syncBytes), items: 1000, times: [] },
  ];
  for (const r of rows) timeIt(r.fn, 20); // warm-up
  for (let round = 0; round < rounds; round++) {
    for (const r of rows) r.times.push(timeIt(r.fn, r.items === 1000 ? 20 : 200));
  }
  return rows.map((r) => ({ name: r.name, us_per_call: median(r.times), us_per_item: median(r.times) / r.items }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rounds = Number(process.argv[2] ?? 15);
  const { loadavg } = await import("node:os");
  console.log(`codec bench ${new Date().toISOString()}, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}, ${rounds} rounds`);
  const out = benchCodec(rounds);
  for (const r of out) console.log(`${r.name.padEnd(40)} ${r.us_per_call.toFixed(1).padStart(9)} µs/call ${r.us_per_item.toFixed(2).padStart(7)} µs/item`);
  const by = (n: string) => out.find((r) => r.name.startsWith(n))!.us_per_call;
  console.log(`speed-up: Sync ${(by("toBinary Sync") / by("encodeMessage Sync")).toFixed(1)}x, Update ${(by("toBinary Update") / by("encodeMessage Update")).toFixed(1)}x`);
  console.log(`load average at the end ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
}
