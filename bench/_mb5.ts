import { MarkService, ListConversationsRequestSchema, ListConversationsResponseSchema } from "../gen/convmark/v1/mark_service_pb.js";
import { grpcClient } from "../test/support/grpc.js";
const g = grpcClient("http://127.0.0.1:18090");
const lat: number[] = [];
for (let i = 0; i < 400; i++) {
  const s = performance.now();
  const r = await g.unary(MarkService, "ListConversations", ListConversationsRequestSchema, ListConversationsResponseSchema, { ownerUserId: "bulk-0000", filter: { marksAny: [5] }, pageSize: 100 });
  if (i >= 100) lat.push(performance.now() - s);
  if (r.conversations.length !== 100) throw new Error("bad");
}
lat.sort((a, b) => a - b);
console.log("client p50", lat[150]!.toFixed(2), "p99", lat[Math.floor(300 * 0.99)]!.toFixed(2));
g.close();
