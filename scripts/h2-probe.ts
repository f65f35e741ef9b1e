/**
 * Health-check latency of another client during an HTTP/2 attack, repeatably (the figures in
 * docs/reliability.md): `npx tsx scripts/h2-probe.ts [--mode non-reading|rapid-reset] [--page-size 1000] [--seconds 8] [--sessions 2]`
 *
 * Starts the real server (src/main.ts, its own process), stores 1,000 conversations of one owner
 * (200-character custom marks, 2 labels), runs scripts/h2-attack.ts against it from a third process
 * and meanwhile sends grpc.health.v1.Health/Check every 100 ms on its own HTTP/2 connection. Prints
 * one JSON line: probe latencies (p50, p99, worst), failures, the server's largest RSS, what the
 * attacker saw.
 */
import { parseArgs } from "node:util";
import { spawn } from "node:child_process";
import * as http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { MarkService } from "../gen/convmark/v1/mark_service_pb.js";
import { startServerProcess } from "../test/support/server-process.js";
const { values } = parseArgs({ options: { mode: { type: "string", default: "non-reading" }, "page-size": { type: "string", default: "1000" }, seconds: { type: "string", default: "8" }, sessions: { type: "string", default: "2" } } });
const server = await startServerProcess({ CONVMARK_MAX_MARKED_PER_OWNER: "100000" });
const marks = createClient(MarkService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
for (let b = 0; b < 10; b++) await marks.updateConversations({ updates: Array.from({ length: 100 }, (_, i) => ({ key: { ownerUserId: "big", type: 1, conversationId: `c${b}-${i}` }, setMarks: [1], customMark: "x".repeat(200), labels: ["l1", "l2"] })) });
const session = http2.connect(server.url); session.on("error", () => {});
const lat: number[] = []; let failed = 0; let stop = false; let rssMax = 0;
const loop = (async () => { while (!stop) { const t = performance.now(); const ok = await new Promise<boolean>((resolve) => { const st = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/json" }); let s = 0; st.on("response", (h) => (s = Number(h[":status"]))); st.on("data", () => {}); st.on("close", () => resolve(s === 200)); st.on("error", () => resolve(false)); st.end("{}"); }); lat.push(performance.now() - t); if (!ok) failed++; rssMax = Math.max(rssMax, server.rss()); await new Promise((r) => setTimeout(r, 100)); } })();
const mode = values.mode;
const child = spawn(process.execPath, ["--import", "tsx", "scripts/h2-attack.ts", mode, "--url", server.url, "--seconds", values.seconds, "--sessions", values.sessions, "--owner", "big", "--page-size", values["page-size"]], { stdio: ["ignore", "pipe", "inherit"] });
let out = ""; child.stdout.on("data", (d: Buffer) => (out += d));
await new Promise((r) => child.once("exit", r)); await new Promise((r) => setTimeout(r, 1000)); stop = true; await loop; session.close();
lat.sort((a, b) => a - b);
console.log(JSON.stringify({ mode, probes: lat.length, failed, p50: Math.round(lat[lat.length >> 1]!), p99: Math.round(lat[Math.floor(lat.length * 0.99)]!), worst: Math.round(lat[lat.length - 1]!), rssMaxMB: rssMax >> 20, attack: JSON.parse(out) }));
await server.stop();
