/**
 * Caps under concurrency, repeatably: `npx tsx scripts/caps.ts [--cap 1000] [--labels 16] [--writers 64] [--rounds 3]`
 *
 * Starts the real server (src/main.ts, its own process, embedded SQLite in a temporary directory)
 * with CONVMARK_MAX_MARKED_PER_OWNER=cap and CONVMARK_MAX_LABELS_PER_CONVERSATION=labels, then per round:
 * - per-owner cap: 3 × cap writes, each marking a different new conversation of one owner, from
 *   `writers` concurrent callers spread over five ways in: Connect JSON on HTTP/1.1, Connect binary
 *   on h2c, gRPC (grpc-js), ZEGO SetConvMark, Tencent mark_contact;
 * - label limit: 3 × labels writes, each adding a different label to one conversation, over Connect
 *   JSON, Connect binary h2c and gRPC.
 * Afterwards everything is read back (ListConversations / GetConversation). Exact means: what was
 * acknowledged is exactly what is stored, and that is exactly the cap (the limit). Prints one JSON
 * line; exits 1 if a round is not exact. Every call has a timeout (--call-timeout-ms, counted per
 * way as `timeouts`), each round reports on stderr, and the run has a deadline (--deadline-s).
 */
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { ConversationType, MarkService, UpdateConversationsRequestSchema } from "../gen/convmark/v1/mark_service_pb.js";
import { FUZZ_CREDENTIALS as C, FUZZ_SERVER_ENV } from "../test/support/fuzzer.js";
import { startServerProcess } from "../test/support/server-process.js";

const { values } = parseArgs({
  options: {
    cap: { type: "string", default: "1000" },
    labels: { type: "string", default: "16" },
    writers: { type: "string", default: "64" },
    rounds: { type: "string", default: "3" },
    // Every call gets this long (a call that hangs is counted as a timeout, not waited for forever).
    "call-timeout-ms": { type: "string", default: "30000" },
    // The whole run: past it, what was measured so far is printed and the exit code is 1.
    "deadline-s": { type: "string", default: "600" },
  },
});
const callTimeoutMs = Number(values["call-timeout-ms"]);
const cap = Number(values.cap);
const labelLimit = Number(values.labels);
const writers = Number(values.writers);
const server = await startServerProcess({ ...FUZZ_SERVER_ENV, CONVMARK_MAX_MARKED_PER_OWNER: String(cap), CONVMARK_MAX_LABELS_PER_CONVERSATION: String(labelLimit) });
const json = createClient(MarkService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
const h2 = createClient(MarkService, createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true }));
const grpc = createClient(MarkService, createGrpcTransport({ baseUrl: server.url }));
const require = createRequire(import.meta.url);
const TLS = require("tls-sig-api-v2") as { Api: new (id: number, key: string) => { genUserSig(id: string, exp: number): string } };
const usersig = new TLS.Api(C.tencent.sdkAppId, C.tencent.key).genUserSig(C.tencent.admin, 86400);
let nonce = 0;

const post = async (url: string, body: unknown) =>
  (await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: AbortSignal.timeout(callTimeoutMs) })).json() as Promise<Record<string, unknown>>;
const unified = (client: typeof json) => async (owner: string, id: string, labels?: string[]) => {
  const r = await client.updateConversations(
    create(UpdateConversationsRequestSchema, { updates: [{ key: { ownerUserId: owner, type: ConversationType.DIRECT, conversationId: id }, ...(labels ? { addLabels: labels } : { setMarks: [3] }) }] }),
    { timeoutMs: callTimeoutMs },
  );
  return (r.results[0]?.status?.code ?? 0) === 0 && (r.results[0]?.changed ?? false);
};
/** One way in: true when the write was acknowledged. */
type Writer = (owner: string, id: string, labels?: string[]) => Promise<boolean>;
const markWays: Record<string, Writer> = {
  "connect-json-h1": unified(json),
  "connect-proto-h2": unified(h2),
  grpc: unified(grpc),
  zego: async (owner, id) => {
    const n = `caps${process.pid}x${nonce++}`;
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = createHash("md5").update(`${C.zego.appId}${n}${C.zego.secret}${ts}`).digest("hex");
    const q = new URLSearchParams({ Action: "SetConvMark", AppId: String(C.zego.appId), SignatureNonce: n, Timestamp: ts, SignatureVersion: "2.0", Signature: sig });
    const r = await post(`${server.url}/?${q}`, { FromUserId: owner, ConvMarkInfoList: [{ UserId: owner, SetMarkC2c: { [id]: { MarkContent: 3 } }, Action: true }] });
    return r.Code === 0 && (r.FailList as unknown[] | undefined)?.length === 0;
  },
  tencent: async (owner, id) => {
    const q = new URLSearchParams({ sdkappid: String(C.tencent.sdkAppId), identifier: C.tencent.admin, usersig, random: String(nonce++), contenttype: "json" });
    const r = await post(`${server.url}/v4/recentcontact/mark_contact?${q}`, { From_Account: owner, MarkItem: [{ OptType: 1, ContactItem: { Type: 1, To_Account: id }, SetMark: [3] }] });
    return r.ActionStatus === "OK" && (r.ResultItem as { ResultCode: number }[] | undefined)?.[0]?.ResultCode === 0;
  },
};
const labelWays: Record<string, Writer> = { "connect-json-h1": markWays["connect-json-h1"]!, "connect-proto-h2": markWays["connect-proto-h2"]!, grpc: markWays.grpc! };

async function race(n: number, ways: Record<string, Writer>, job: (i: number, w: Writer) => Promise<boolean>) {
  const names = Object.keys(ways);
  const acked: number[] = [];
  const byWay: Record<string, { sent: number; acknowledged: number; errors: number; timeouts: number }> = Object.fromEntries(
    names.map((k) => [k, { sent: 0, acknowledged: 0, errors: 0, timeouts: 0 }]),
  );
  let next = 0;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next < n) {
        const i = next++;
        const name = names[i % names.length]!;
        byWay[name]!.sent++;
        try {
          if (await job(i, ways[name]!)) {
            acked.push(i);
            byWay[name]!.acknowledged++;
          }
        } catch (e) {
          const timedOut = (e instanceof Error && (e.name === "TimeoutError" || /deadline|timed? ?out/i.test(e.message))) || (e as { code?: number }).code === 4;
          byWay[name]![timedOut ? "timeouts" : "errors"]++;
        }
      }
    }),
  );
  return { acked, byWay };
}

const rounds: unknown[] = [];
let exact = true;
const t0 = performance.now();
const report = () => ({ writers, exact, seconds: Math.round((performance.now() - t0) / 100) / 10, rounds });
// Never silent for long, never forever: progress on stderr, a deadline for the whole run.
const deadline = setTimeout(() => {
  console.log(JSON.stringify({ ...report(), exact: false, error: `not done within --deadline-s ${values["deadline-s"]}` }));
  void server.stop({ signal: "SIGKILL" }).finally(() => process.exit(1));
}, Number(values["deadline-s"]) * 1000);
deadline.unref();
for (let round = 0; round < Number(values.rounds); round++) {
  const owner = `cap-owner-${round}`;
  const marks = await race(3 * cap, markWays, (i, w) => w(owner, `c${i}`));
  const stored = new Set<string>();
  for (let token = ""; ; ) {
    const page = await json.listConversations({ ownerUserId: owner, pageSize: 1000, pageToken: token }, { timeoutMs: callTimeoutMs });
    for (const c of page.conversations) stored.add(c.key!.conversationId);
    token = page.nextPageToken;
    if (!token) break;
  }
  const ackedIds = new Set(marks.acked.map((i) => `c${i}`));
  const marksExact = stored.size === cap && ackedIds.size === cap && [...ackedIds].every((id) => stored.has(id));

  const lowner = `label-owner-${round}`;
  const labels = await race(3 * labelLimit, labelWays, (i, w) => w(lowner, "conv", [`l${i}`]));
  const got = (await json.getConversation({ key: { ownerUserId: lowner, type: ConversationType.DIRECT, conversationId: "conv" } }, { timeoutMs: callTimeoutMs })).conversation?.labels ?? [];
  const ackedLabels = new Set(labels.acked.map((i) => `l${i}`));
  const labelsExact = got.length === labelLimit && ackedLabels.size === labelLimit && got.every((l) => ackedLabels.has(l));
  exact &&= marksExact && labelsExact;
  rounds.push({
    round,
    perOwnerCap: { cap, attempted: 3 * cap, acknowledged: ackedIds.size, stored: stored.size, exact: marksExact, byWay: marks.byWay },
    labelLimit: { limit: labelLimit, attempted: 3 * labelLimit, acknowledged: ackedLabels.size, stored: got.length, exact: labelsExact, byWay: labels.byWay },
  });
  console.error(`caps: round ${round + 1}/${values.rounds} ${marksExact && labelsExact ? "exact" : "NOT exact"} after ${Math.round((performance.now() - t0) / 1000)} s`);
}
clearTimeout(deadline);
console.log(JSON.stringify(report()));
await server.stop();
process.exit(exact ? 0 : 1);
