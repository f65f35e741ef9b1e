import { createClient, createRouterTransport } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import { MarkService, ListConversationsResponseSchema, ListConversationsRequestSchema } from "../gen/convmark/v1/mark_service_pb.js";
import { openSqliteStore } from "../src/store/sqlite-store.js";
import { createMarkService } from "../src/service/mark-service.js";
import { recordToProto } from "../src/service/convert.js";
import { DEFAULT_LIMITS } from "../src/domain/limits.js";
import { maskOf } from "../src/domain/marks.js";
const store = openSqliteStore({ path: "/tmp/mb/list.db", limits: { maxMarkedPerOwner: 1e9, maxLabelsPerConversation: 32 } });
const impl = createMarkService({ store, limits: DEFAULT_LIMITS });
async function time(label: string, f: () => unknown, iters = 300) {
  for (let i = 0; i < 50; i++) await f();
  const lat: number[] = [];
  for (let i = 0; i < iters; i++) { const s = performance.now(); await f(); lat.push(performance.now() - s); }
  lat.sort((a, b) => a - b);
  console.log(label, "p50", lat[iters >> 1]!.toFixed(3), "p99", lat[Math.floor(iters * 0.99)]!.toFixed(3));
}
const filter = { marksAll: 0n, marksAny: maskOf([5]), marksNone: 0n, labelsAny: [] };
await time("store.list", () => store.list({ owner: "bulk-0000", filter, limit: 100 }));
const page = await store.list({ owner: "bulk-0000", filter, limit: 100 });
await time("recordToProto x100", () => page.records.map(recordToProto));
const resp = create(ListConversationsResponseSchema, { conversations: page.records.map(recordToProto) });
await time("toBinary", () => toBinary(ListConversationsResponseSchema, resp));
const req = create(ListConversationsRequestSchema, { ownerUserId: "bulk-0000", filter: { marksAny: [5] }, pageSize: 100 });
await time("impl.listConversations", () => impl.listConversations(req, {} as never));
const client = createClient(MarkService, createRouterTransport((r) => r.service(MarkService, impl)));
await time("router transport list", () => client.listConversations(req));
