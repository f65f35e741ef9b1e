/**
 * `npm run fuzz [-- --per-target N --seed S]`: the fuzz suite of test/hardening/fuzz.e2e.test.ts at
 * full length (default 2,200 bodies for each of the 47 targets, about 100,000 in all) against a fresh
 * server on loopback with the embedded store in a temporary directory. Prints the figures that
 * docs/reliability.md records; exits 1 on any failure.
 */
import { parseArgs } from "node:util";
import { startTestServer } from "../test/support/harness.js";
import { fuzz } from "../test/support/fuzzer.js";

const { values } = parseArgs({ options: { "per-target": { type: "string", default: "2200" }, seed: { type: "string", default: "1" }, concurrency: { type: "string", default: "16" }, statuses: { type: "boolean", default: false } } });
const CREDS = {
  zego: { appId: 1234567890, secret: "0123456789abcdef0123456789abcdef" },
  tencent: { sdkAppId: 1400000000, key: "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e", admin: "administrator" },
  openim: { secret: "openIM123", admin: "imAdmin" },
};
const server = await startTestServer({
  ZEGO_APP_ID: String(CREDS.zego.appId),
  ZEGO_SERVER_SECRET: CREDS.zego.secret,
  ZEGO_RATE_LIMIT_PER_SECOND: "1000",
  TENCENT_SDKAPPID: String(CREDS.tencent.sdkAppId),
  TENCENT_SECRET_KEY: CREDS.tencent.key,
  TENCENT_RATE_LIMIT_PER_SECOND: "100000",
  OPENIM_SECRET: CREDS.openim.secret,
  OPENIM_SECRET_FAILURES_PER_MINUTE: "1000000",
});
const rss0 = process.memoryUsage().rss;
let rssMax = rss0;
const mem = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage().rss)), 500);
const report = await fuzz({ url: server.url, seed: Number(values.seed), perTarget: Number(values["per-target"]), concurrency: Number(values.concurrency), ...CREDS }, (done, total) => {
  if (done % 10_000 === 0) process.stderr.write(`${done}/${total}\n`);
});
clearInterval(mem);
const health = await fetch(`${server.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
global.gc?.();
await new Promise((r) => setTimeout(r, 1000));
const mb = (n: number) => Math.round(n / 2 ** 20);
console.log(
  JSON.stringify(
    {
      seed: Number(values.seed),
      targets: Object.keys(report.byTarget).length,
      requests: report.requests,
      failures: report.failureCount,
      hangs: report.hangs,
      maxLatencyMs: Math.round(report.maxLatencyMs),
      seconds: Math.round(report.elapsedMs / 1000),
      healthAfter: ((await health.json()) as { status: string }).status,
      rssStartMB: mb(rss0),
      rssMaxMB: mb(rssMax),
      rssEndMB: mb(process.memoryUsage().rss),
      firstFailures: report.failures.slice(0, 5),
    },
    null,
    1,
  ),
);
if (values.statuses) console.log(JSON.stringify(report.byTarget, null, 1));
await server.close();
process.exit(report.failureCount === 0 && report.hangs === 0 ? 0 : 1);
