import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { UpdateConversationsResponseSchema, UpdateResultSchema, UpdateConversationsRequestSchema } from "../gen/convmark/v1/mark_service_pb.js";
import { StatusSchema } from "../gen/google/rpc/status_pb.js";
import { recordToProto } from "../src/service/convert.js";
import { openSqliteStore } from "../src/store/sqlite-store.js";
import { validateUpdate } from "../src/domain/validate.js";
import { DEFAULT_LIMITS } from "../src/domain/limits.js";

const store = openSqliteStore({ path: "/tmp/mb/x.db", limits: { maxMarkedPerOwner: 1e9, maxLabelsPerConversation: 32 } });
let n = 0;
const mkReq = () => create(UpdateConversationsRequestSchema, { updates: Array.from({ length: 100 }, (_, i) => ({ key: { ownerUserId: `o${n % 1000}`, type: 1, conversationId: `c${n++}` }, setMarks: [1 + (i % 64), 3] })) });
const bin = toBinary(UpdateConversationsRequestSchema, mkReq());
async function time(label: string, f: () => unknown | Promise<unknown>, iters = 300) {
  for (let i = 0; i < 30; i++) await f();
  const t = performance.now();
  for (let i = 0; i < iters; i++) await f();
  console.log(label, ((performance.now() - t) / iters).toFixed(3), "ms");
}
await time("decode req", () => fromBinary(UpdateConversationsRequestSchema, bin));
const req = mkReq();
await time("validate", () => req.updates.map((u) => validateUpdate(u, DEFAULT_LIMITS)));
await time("store", async () => { const r = mkReq(); await store.applyUpdates(r.updates.map((u) => validateUpdate(u, DEFAULT_LIMITS) as never)); });
const outs = await store.applyUpdates(mkReq().updates.map((u) => validateUpdate(u, DEFAULT_LIMITS) as never));
const build = () => create(UpdateConversationsResponseSchema, { results: outs.map((o) => create(UpdateResultSchema, { status: create(StatusSchema, { code: 0, message: "" }), conversation: o.ok ? recordToProto(o.record) : undefined, changed: true })) });
await time("build", build);
const resp = build();
await time("toBinary", () => toBinary(UpdateConversationsResponseSchema, resp));
const noSettings = create(UpdateConversationsResponseSchema, { results: resp.results.map((r) => ({ ...r, conversation: r.conversation ? { ...r.conversation, settings: undefined } : undefined })) });
await time("toBinary no settings", () => toBinary(UpdateConversationsResponseSchema, noSettings));
const noStatus = create(UpdateConversationsResponseSchema, { results: noSettings.results.map((r) => ({ ...r, status: undefined })) });
await time("toBinary no settings/status", () => toBinary(UpdateConversationsResponseSchema, noStatus));
const noTime = create(UpdateConversationsResponseSchema, { results: noStatus.results.map((r) => ({ ...r, conversation: r.conversation ? { ...r.conversation, updateTime: undefined } : undefined })) });
await time("toBinary no settings/status/time", () => toBinary(UpdateConversationsResponseSchema, noTime));
await time("toBinary writeUnknownFields false", () => toBinary(UpdateConversationsResponseSchema, resp, { writeUnknownFields: false }));
