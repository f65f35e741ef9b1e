/**
 * `npx tsx scripts/fuzz-cpu.ts [--per-route N] [--seed S] [--node-arg F] [--family REGEX] [--workers N] [--tsx]`: the
 * bounded fuzz suite's cost per body by route family: server CPU (utime + stime of the server
 * process, /proc), the fuzzer's own CPU (process.cpuUsage) and wall time per body, one family at a
 * time against one server (in its own process, built as the suite runs it; `--tsx`: src/main.ts
 * through tsx; `--workers`: CONVMARK_WORKERS, default 1; server CPU summed over its workers). Bodies per route
 * as in one burst of the suite unless --per-route etc. are given. docs/reliability.md quotes it.
 */
import { parseArgs } from "node:util";
import { fuzz, FUZZ_CREDENTIALS, FUZZ_SERVER_ENV, FUZZ_SERVER_NODE_ARGS } from "../test/support/fuzzer.js";
import { startServerProcess } from "../test/support/server-process.js";

const { values } = parseArgs({
  options: {
    "per-route": { type: "string", default: "700" },
    "per-shared-route": { type: "string", default: "50" },
    "per-vendor-rpc": { type: "string", default: "15" },
    "per-rest-route": { type: "string", default: "30" },
    seed: { type: "string", default: "7" },
    family: { type: "string" },
    "node-arg": { type: "string", multiple: true, default: [] },
    workers: { type: "string", default: "1" },
    tsx: { type: "boolean", default: false },
  },
});
const FAMILIES: [string, RegExp | undefined][] = [
  ["all mixed (one burst of the suite)", undefined],
  ["connect-json MarkService", /^connect-json convmark\.v1\.MarkService\//],
  ["connect-proto MarkService", /^connect-proto convmark\.v1\.MarkService\//],
  ["grpc MarkService unary", /^grpc convmark\.v1\.MarkService\/(?!Watch)/],
  ["grpc-web MarkService unary", /^grpc-web convmark\.v1\.MarkService\/(?!Watch)/],
  ["WatchConversations", /^(connect-stream-json|connect-stream-proto|grpc|grpc-web) convmark\.v1\.MarkService\/WatchConversations/],
  ["DirectoryService (4 protocols)", /^\S+ convmark\.v1\.DirectoryService\//],
  ["REST", /^rest /],
  ["ZEGO", /^zego /],
  ["Tencent", /^tencent /],
  ["OpenIM", /^openim /],
  ["vendor RPC", /^connect-json vendor\./],
];
const server = await startServerProcess({ ...FUZZ_SERVER_ENV, CONVMARK_WORKERS: values.workers }, { exposeGc: true, nodeArgs: [...FUZZ_SERVER_NODE_ARGS, ...values["node-arg"]], built: !values.tsx });
const family = values.family === undefined ? undefined : new RegExp(values.family);
const rows: Record<string, unknown>[] = [];
let all = { bodies: 0, server: 0, client: 0, wall: 0 };
for (const [name, only] of FAMILIES) {
  if (family && !family.test(name)) continue;
  const s0 = server.cpuMs();
  const c0 = process.cpuUsage();
  const report = await fuzz({ url: server.url, seed: Number(values.seed), perRoute: Number(values["per-route"]), perSharedRoute: Number(values["per-shared-route"]), perVendorRpc: Number(values["per-vendor-rpc"]), perRestRoute: Number(values["per-rest-route"]), ...(only ? { only } : {}), ...FUZZ_CREDENTIALS });
  const c = process.cpuUsage(c0);
  const serverMs = server.cpuMs() - s0;
  const clientMs = (c.user + c.system) / 1000;
  const n = report.requests;
  if (only) all = { bodies: all.bodies + n, server: all.server + serverMs, client: all.client + clientMs, wall: all.wall + report.elapsedMs };
  if (report.failureCount > 0) console.error(name, JSON.stringify(report.failures.slice(0, 5), null, 1));
  rows.push({ family: name, bodies: n, serverUs: Math.round((serverMs * 1000) / n), clientUs: Math.round((clientMs * 1000) / n), wallUs: Math.round((report.elapsedMs * 1000) / n), failures: report.failureCount, hangs: report.hangs });
}
rows.push({ family: "all", bodies: all.bodies, serverUs: Math.round((all.server * 1000) / all.bodies), clientUs: Math.round((all.client * 1000) / all.bodies), wallUs: Math.round((all.wall * 1000) / all.bodies) });
console.table(rows);
await server.stop();
