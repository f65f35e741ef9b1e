/**
 * Graceful shutdown under load, repeatably: `npx tsx scripts/shutdown.ts [--writers 16] [--watchers 8] [--slow 4] [--grace-ms 10000]`
 *
 * Starts the real server (src/main.ts, its own process, embedded SQLite in a temporary directory),
 * then keeps it busy: `writers` callers writing in a loop (half Connect JSON on HTTP/1.1, half gRPC
 * on h2c, each write a new conversation), `watchers` open WatchConversations streams (half Connect
 * on HTTP/1.1, half gRPC), and `slow` HTTP/1.1 uploads whose body is only half sent when SIGTERM
 * arrives (the rest follows 1 s later). After SIGTERM it reports what completed: calls in flight at
 * the signal and how they ended, how the streams ended, whether the slow uploads were answered, the
 * exit code and the time to exit; then restarts on the same data directory and checks that every
 * acknowledged write is there. Prints one JSON line; exits 1 if an in-flight call was lost, a
 * stream did not end cleanly, the exit code was not 0, the exit took longer than the grace period
 * allows, or an acknowledged write is missing.
 */
import * as http from "node:http";
import { parseArgs } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ConversationType, MarkService } from "../gen/convmark/v1/mark_service_pb.js";
import { startServerProcess } from "../test/support/server-process.js";

const { values } = parseArgs({ options: { writers: { type: "string", default: "16" }, watchers: { type: "string", default: "8" }, slow: { type: "string", default: "4" }, "grace-ms": { type: "string", default: "10000" } } });
const graceMs = Number(values["grace-ms"]);
const env = { CONVMARK_SHUTDOWN_GRACE_MS: String(graceMs), CONVMARK_MAX_MARKED_PER_OWNER: "10000000" };
const server = await startServerProcess(env);
const clients = [createClient(MarkService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })), createClient(MarkService, createGrpcTransport({ baseUrl: server.url }))];

let signalled = false;
const acknowledged: string[] = [];
const inFlightAtSignal = new Set<Promise<unknown>>();
const outcome = { before: { ok: 0, failed: 0 }, inFlightAtSignal: { ok: 0, refused: 0, lost: 0, errors: {} as Record<string, number> }, afterSignal: { ok: 0, refused: 0 } };
let seq = 0;
let stop = false;
const writer = async (w: number) => {
  const client = clients[w % 2]!;
  while (!stop) {
    const id = `s${seq++}`;
    const startedBefore = !signalled;
    const call = client.updateConversations({ updates: [{ key: { ownerUserId: `o${w}`, type: ConversationType.DIRECT, conversationId: id }, setMarks: [5] }] }, { timeoutMs: 30_000 });
    if (startedBefore) inFlightAtSignal.add(call);
    try {
      const r = await call;
      const ok = (r.results[0]?.status?.code ?? 0) === 0;
      if (ok) acknowledged.push(`o${w}|${id}`);
      if (!startedBefore) outcome.afterSignal.ok++;
      else if (signalled) outcome.inFlightAtSignal[ok ? "ok" : "lost"]++;
      else outcome.before[ok ? "ok" : "failed"]++;
    } catch (e) {
      const code = ConnectError.from(e).code;
      if (!startedBefore) outcome.afterSignal.refused++;
      else if (signalled) {
        // Sent before the signal, answered after it: only an answer counts; a refusal (UNAVAILABLE,
        // never started) is acceptable, anything else is a lost call.
        const name = Code[code];
        outcome.inFlightAtSignal.errors[name] = (outcome.inFlightAtSignal.errors[name] ?? 0) + 1;
        outcome.inFlightAtSignal[code === Code.Unavailable ? "refused" : "lost"]++;
      } else outcome.before.failed++;
      if (signalled) return;
    } finally {
      inFlightAtSignal.delete(call);
    }
  }
};

const streams = { opened: 0, endedOk: 0, endedUnavailable: 0, endedOther: {} as Record<string, number>, messages: 0 };
const watcher = async (w: number) => {
  const client = clients[w % 2]!;
  streams.opened++;
  try {
    for await (const _ of client.watchConversations({ ownerUserId: `o${w % Number(values.writers)}` })) streams.messages++;
    streams.endedOk++;
  } catch (e) {
    const code = ConnectError.from(e).code;
    if (code === Code.Unavailable) streams.endedUnavailable++;
    else streams.endedOther[Code[code]] = (streams.endedOther[Code[code]] ?? 0) + 1;
  }
};

const slowResults: (number | string)[] = [];
const slowUpload = (i: number) =>
  new Promise<void>((resolve) => {
    const body = JSON.stringify({ updates: [{ key: { ownerUserId: "slow", type: "CONVERSATION_TYPE_DIRECT", conversationId: `slow${i}` }, setMarks: [6] }] });
    const req = http.request(`${server.url}/convmark.v1.MarkService/UpdateConversations`, { method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => {
        slowResults.push(res.statusCode ?? 0);
        if (res.statusCode === 200 && !text.includes('"code"')) acknowledged.push(`slow|slow${i}`);
        resolve();
      });
    });
    req.on("error", (e) => {
      slowResults.push(e.message);
      resolve();
    });
    req.setTimeout(30_000, () => req.destroy(new Error("no answer within 30 s")));
    req.write(body.slice(0, body.length >> 1));
    slowParts.push(() => req.end(body.slice(body.length >> 1)));
  });
const slowParts: (() => void)[] = [];

const watchers = Array.from({ length: Number(values.watchers) }, (_, i) => watcher(i));
const writers = Array.from({ length: Number(values.writers) }, (_, i) => writer(i));
await new Promise((r) => setTimeout(r, 2000));
const slow = Array.from({ length: Number(values.slow) }, (_, i) => slowUpload(i));
await new Promise((r) => setTimeout(r, 300));
const inFlight = inFlightAtSignal.size;
signalled = true;
const stopped = server.stop({ signal: "SIGTERM", keepData: true });
setTimeout(() => slowParts.forEach((f) => f()), 1000);
const exit = await stopped;
stop = true;
// Every client must be done soon after the exit (calls have 30 s timeouts; this bounds the rest).
const clientsSettled = await Promise.race([
  Promise.allSettled([...writers, ...watchers, ...slow]).then(() => true),
  new Promise<boolean>((r) => setTimeout(() => r(false), 40_000).unref()),
]);

// Everything acknowledged must be there after a restart on the same data directory.
const again = await startServerProcess(env, { dataDir: server.dataDir });
const reader = createClient(MarkService, createConnectTransport({ baseUrl: again.url, httpVersion: "1.1" }));
let missing = 0;
for (const a of acknowledged) {
  const [owner, id] = a.split("|") as [string, string];
  try {
    await reader.getConversation({ key: { ownerUserId: owner, type: ConversationType.DIRECT, conversationId: id } }, { timeoutMs: 30_000 });
  } catch {
    missing++;
  }
}
await again.stop();
const slowAnswered = slowResults.filter((s) => s === 200).length;
const pass = clientsSettled && outcome.inFlightAtSignal.lost === 0 && Object.keys(streams.endedOther).length === 0 && exit.code === 0 && exit.ms < graceMs + 5000 && missing === 0 && slowAnswered === slowResults.length;
console.log(
  JSON.stringify({
    pass,
    graceMs,
    clientsSettled,
    exit: { code: exit.code, signal: exit.signal, ms: Math.round(exit.ms) },
    callsInFlightAtSignal: inFlight,
    calls: outcome,
    streams,
    slowUploads: { sent: slowResults.length, answered200: slowAnswered, results: slowResults },
    acknowledgedWrites: acknowledged.length,
    missingAfterRestart: missing,
  }),
);
process.exit(pass ? 0 : 1);
