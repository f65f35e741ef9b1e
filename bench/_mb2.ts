import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { UpdateConversationsResponseSchema, UpdateResultSchema } from "../gen/convmark/v1/mark_service_pb.js";
import { StatusSchema } from "../gen/google/rpc/status_pb.js";
import { recordToProto } from "../src/service/convert.js";
import { openSqliteStore } from "../src/store/sqlite-store.js";
import { validateUpdate } from "../src/domain/validate.js";
import { DEFAULT_LIMITS } from "../src/domain/limits.js";
const store = openSqliteStore({ path: "/tmp/mb/y.db", limits: { maxMarkedPerOwner: 1e9, maxLabelsPerConversation: 32 } });
let n = 0;
const one = () => validateUpdate({ key: { ownerUserId: `o${n % 1000}`, type: 1, conversationId: `c${n++}` }, setMarks: [1], clearMarks: [], addLabels: [], removeLabels: [] }, DEFAULT_LIMITS) as never;
async function time(label: string, f: () => unknown | Promise<unknown>, iters = 3000) {
  for (let i = 0; i < 300; i++) await f();
  const t = performance.now();
  for (let i = 0; i < iters; i++) await f();
  console.log(label, (((performance.now() - t) / iters) * 1000).toFixed(1), "us");
}
await time("applyUpdates(1) sequential", () => store.applyUpdates([one()]));
await time("applyUpdates(1) x32 concurrent /call", async () => { await Promise.all(Array.from({ length: 32 }, () => store.applyUpdates([one()]))); }, 100);
const [o] = await store.applyUpdates([one()]);
const resp = create(UpdateConversationsResponseSchema, { results: [create(UpdateResultSchema, { status: create(StatusSchema, {}), conversation: o!.ok ? recordToProto(o!.record) : undefined, changed: true })] });
await time("toJsonString resp1", () => toJsonString(UpdateConversationsResponseSchema, resp));
await time("toBinary resp1", () => toBinary(UpdateConversationsResponseSchema, resp));
