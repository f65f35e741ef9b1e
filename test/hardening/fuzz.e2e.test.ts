// Issue 7: the bounded fuzz suite. 40 seeded bodies per target (1,880 in all) (every target is a route
// and an auth variant: Connect JSON and binary, gRPC frames over h2c, every vendor route signed and
// badly signed) against the real server on loopback. `npm run fuzz` runs the same with ≥ 100,000.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/harness.js";
import { fuzz, type FuzzConfig } from "../support/fuzzer.js";

const CREDS = {
  zego: { appId: 1234567890, secret: "0123456789abcdef0123456789abcdef" },
  tencent: { sdkAppId: 1400000000, key: "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e", admin: "administrator" },
  openim: { secret: "openIM123", admin: "imAdmin" },
};

describe("fuzzing every route (bounded)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      ZEGO_APP_ID: String(CREDS.zego.appId),
      ZEGO_SERVER_SECRET: CREDS.zego.secret,
      ZEGO_RATE_LIMIT_PER_SECOND: "1000",
      TENCENT_SDKAPPID: String(CREDS.tencent.sdkAppId),
      TENCENT_SECRET_KEY: CREDS.tencent.key,
      TENCENT_RATE_LIMIT_PER_SECOND: "100000",
      OPENIM_SECRET: CREDS.openim.secret,
      OPENIM_SECRET_FAILURES_PER_MINUTE: "1000000",
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("no 5xx, no INTERNAL, vendor envelopes only, no hang; the server stays up and gives its memory back", async () => {
    const rss0 = process.memoryUsage().rss;
    const cfg: FuzzConfig = { url: server.url, seed: 7, perTarget: 40, concurrency: 16, ...CREDS };
    const report = await fuzz(cfg);
    expect(report.requests).toBeGreaterThan(1800);
    expect(report.failures).toEqual([]);
    expect(report.failureCount).toBe(0);
    expect(report.hangs).toBe(0);
    const health = await fetch(`${server.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(await health.json()).toEqual({ status: "SERVING" });
    global.gc?.();
    await new Promise((r) => setTimeout(r, 500));
    expect((process.memoryUsage().rss - rss0) / 2 ** 20).toBeLessThan(200);
  }, 60_000);
});
