/**
 * `npx tsx scripts/reject-cpu.ts [--bodies N] [--root DIR]`: server CPU (utime + stime of the server
 * process, /proc/PID/stat) per malformed body that the server refuses, by kind, against the real
 * server (src/main.ts, one worker) of this tree or of the checkout at --root (to compare builds).
 * docs/reliability.md "## Fuzzing" quotes it.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { bodies: { type: "string", default: "3000" }, root: { type: "string" } } });
const root = values.root ?? fileURLToPath(new URL("..", import.meta.url));
const { startServerProcess } = (await import(`${root}/test/support/server-process.ts`)) as typeof import("../test/support/server-process.js");
const server = await startServerProcess({});
const N = Number(values.bodies);
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const U = "/convmark.v1.MarkService/ListConversations";
const h1 = (body: Buffer | string, type: string) => new Promise<number>((resolve, reject) => {
  const b = Buffer.from(body);
  const r = http.request(`${server.url}${U}`, { method: "POST", agent, headers: { "content-type": type, "content-length": String(b.length) } }, (res) => { res.resume(); res.on("end", () => resolve(res.statusCode!)); });
  r.on("error", reject); r.end(b);
});
const session = http2.connect(server.url);
const env = (p: Buffer) => { const b = Buffer.alloc(5 + p.length); b.writeUInt32BE(p.length, 1); p.copy(b, 5); return b; };
const g = (body: Buffer) => new Promise<string>((resolve) => {
  const st = session.request({ ":method": "POST", ":path": U, "content-type": "application/grpc", te: "trailers" });
  let s = "?"; st.on("trailers", (t) => (s = String(t["grpc-status"]))); st.on("response", (h) => { if (h["grpc-status"]) s = String(h["grpc-status"]); });
  st.resume(); st.on("close", () => resolve(s)); st.end(body);
});
const kinds: [string, () => Promise<unknown>][] = [
  ["connect-json syntax", () => h1('{"ownerUserId":"al', "application/json")],
  ["connect-json shape", () => h1('{"ownerUserId":5}', "application/json")],
  ["connect-proto truncated", () => h1(Buffer.from([0x0a, 0xff]), "application/proto")],
  ["grpc truncated", () => g(env(Buffer.from([0x0a, 0xff])))],
];
const out: Record<string, unknown> = {};
for (const [name, send] of kinds) {
  for (let i = 0; i < 300; i++) await send(); // warm-up
  const c0 = server.cpuMs(); const t0 = performance.now();
  let answer: unknown;
  for (let i = 0; i < N; i += 8) { const rs = await Promise.all(Array.from({ length: 8 }, send)); answer = rs[0]; }
  out[name] = { answer, serverCpuUsPerBody: Math.round(((server.cpuMs() - c0) * 1000) / N), wallMs: Math.round(performance.now() - t0) };
}
console.log(JSON.stringify({ root, N, out }));
session.close(); agent.destroy(); await server.stop();
