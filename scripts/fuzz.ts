/**
 * `npm run fuzz [-- --per-route N --per-shared-route N --per-vendor-rpc N --per-rest-route N --seed S --concurrency N --statuses]`:
 * the fuzz suite of test/hardening/fuzz.e2e.test.ts at full length (default 2,800 bodies to each
 * route the issue names — every MarkService method over its four framings, every vendor route —,
 * 200 per shared route and per REST operation, 100 per vendor RPC method: about 103,600; routes as
 * in test/support/fuzzer.ts) against
 * the real server in its own process (as `npm start` runs it: dist/, built first if stale; `--tsx`:
 * src/main.ts through tsx instead), embedded store in a temporary directory, --expose-gc. Prints
 * the figures that docs/reliability.md records, with the server's memory after a full GC before
 * and after; exits 1 on any failure. `--runs N` fuzzes the same server N times
 * (seeds seed … seed+N-1) and reads its memory after each run and again 5 s after the last.
 * `--only REGEX` keeps the targets whose name matches (e.g. '^grpc ', '^(zego|tencent|openim) ');
 * `--node-arg F` (repeatable) passes a flag to the server's node, after FUZZ_SERVER_NODE_ARGS (so
 * `--node-arg=--max-semi-space-size=16` replaces its young generation); `--tsx` runs src/main.ts through tsx.
 */
import { parseArgs } from "node:util";
import { fuzz, FUZZ_CREDENTIALS, FUZZ_SERVER_ENV, FUZZ_SERVER_NODE_ARGS } from "../test/support/fuzzer.js";
import { startServerProcess } from "../test/support/server-process.js";

const { values } = parseArgs({
  options: {
    "per-route": { type: "string", default: "2800" },
    "per-shared-route": { type: "string", default: "200" },
    "per-vendor-rpc": { type: "string", default: "100" },
    "per-rest-route": { type: "string", default: "200" },
    seed: { type: "string", default: "1" },
    concurrency: { type: "string", default: "32" },
    statuses: { type: "boolean", default: false },
    runs: { type: "string", default: "1" },
    only: { type: "string" },
    "node-arg": { type: "string", multiple: true, default: [] },
    tsx: { type: "boolean", default: false },
  },
});
const server = await startServerProcess(FUZZ_SERVER_ENV, { exposeGc: true, nodeArgs: [...FUZZ_SERVER_NODE_ARGS, ...values["node-arg"]], built: !values.tsx });
const only = values.only === undefined ? {} : { only: new RegExp(values.only) };
const before = await server.memory();
let rssMax = server.rss();
const mem = setInterval(() => (rssMax = Math.max(rssMax, server.rss())), 500);
const cpu0 = server.cpuMs();
const mb = (n: number) => Math.round(n / 2 ** 20);
const m = (r: typeof before) => ({ rss: mb(r.usage.rss), heapUsed: mb(r.usage.heapUsed), heapTotal: mb(r.usage.heapTotal), external: mb(r.usage.external), arrayBuffers: mb(r.usage.arrayBuffers), mallocedMemory: mb(r.heap.malloced_memory), newSpace: mb(r.spaces.find((s) => s.space_name === "new_space")?.space_size ?? 0) });
const metricsLines = async () => (await (await fetch(`${server.url}/metrics`)).text()).split("\n").length;
const afterRuns: object[] = [];
for (let run = 1; run < Number(values.runs); run++) {
  const r = await fuzz({ url: server.url, seed: Number(values.seed) + run, perRoute: Number(values["per-route"]), perSharedRoute: Number(values["per-shared-route"]), perVendorRpc: Number(values["per-vendor-rpc"]), perRestRoute: Number(values["per-rest-route"]), concurrency: Number(values.concurrency), ...only, ...FUZZ_CREDENTIALS });
  afterRuns.push({ run, requests: r.requests, failures: r.failureCount, ...m(await server.memory()), metricsLines: await metricsLines() });
}
const report = await fuzz(
  { url: server.url, seed: Number(values.seed), perRoute: Number(values["per-route"]), perSharedRoute: Number(values["per-shared-route"]), perVendorRpc: Number(values["per-vendor-rpc"]), perRestRoute: Number(values["per-rest-route"]), concurrency: Number(values.concurrency), ...only, ...FUZZ_CREDENTIALS },
  (done, total) => {
    if (done % 10_000 === 0) process.stderr.write(`${done}/${total}\n`);
  },
);
clearInterval(mem);
const serverCpuMs = server.cpuMs() - cpu0;
const health = await fetch(`${server.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
const rssBeforeGc = server.rss();
const after = await server.memory();
const lines = await metricsLines();
await new Promise((r) => setTimeout(r, 5000));
const idle = await server.memory();
console.log(
  JSON.stringify(
    {
      seed: Number(values.seed),
      routes: Object.keys(report.byRoute).length,
      requests: report.requests,
      byTransport: report.byTransport,
      failures: report.failureCount,
      hangs: report.hangs,
      h2Hangs: report.h2Hangs,
      clientLagMaxMs: report.clientLagMaxMs,
      maxLatencyMs: Math.round(report.maxLatencyMs),
      seconds: Math.round(report.elapsedMs / 100) / 10,
      serverCpuUsPerRequest: Math.round((serverCpuMs * 1000) / report.requests),
      healthAfter: ((await health.json()) as { status: string }).status,
      memoryMB: { startAfterGc: m(before), ...(afterRuns.length ? { afterEarlierRuns: afterRuns } : {}), rssMax: mb(rssMax), rssEndBeforeGc: mb(rssBeforeGc), endAfterGc: m(after), fiveSecondsLaterAfterGc: m(idle) },
      metricsLines: lines,
      firstFailures: report.failures.slice(0, 5),
    },
    null,
    1,
  ),
);
if (values.statuses) console.log(JSON.stringify(report.byTarget, null, 1));
await server.stop();
process.exit(report.failureCount === 0 && report.hangs === 0 ? 0 : 1);
