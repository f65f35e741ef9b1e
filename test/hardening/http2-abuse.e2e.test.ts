// Issue 7, item 4, against the real server on loopback: rapid reset and non-reading streams from
// another process (scripts/h2-attack.ts) while this process probes Health/Check on its own
// connection. Bounded: 6 s of attack each, thresholds generous for a shared 2-core machine.
import { spawn } from "node:child_process";
import * as http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/harness.js";

interface Probe {
  latencies: number[];
  failed: number;
}

async function underAttack(server: TestServer, mode: string, pageSize: number): Promise<{ probe: Probe; attack: Record<string, number>; rssGrowthMB: number }> {
  const session = http2.connect(server.url);
  session.on("error", () => {});
  const probe: Probe = { latencies: [], failed: 0 };
  let stop = false;
  const rss0 = process.memoryUsage().rss;
  let rssMax = rss0;
  const loop = (async () => {
    while (!stop) {
      const t = performance.now();
      const ok = await new Promise<boolean>((resolve) => {
        const st = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/json" });
        let status = 0;
        st.on("response", (h) => (status = Number(h[":status"])));
        st.on("data", () => {});
        st.on("close", () => resolve(status === 200));
        st.on("error", () => resolve(false));
        st.end("{}");
      });
      probe.latencies.push(performance.now() - t);
      if (!ok) probe.failed++;
      rssMax = Math.max(rssMax, process.memoryUsage().rss);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const child = spawn(process.execPath, ["--import", "tsx", "scripts/h2-attack.ts", mode, "--url", server.url, "--seconds", "6", "--sessions", "2", "--owner", "big", "--page-size", String(pageSize)], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  await new Promise((r) => child.once("exit", r));
  await new Promise((r) => setTimeout(r, 1000));
  stop = true;
  await loop;
  session.close();
  return { probe, attack: JSON.parse(out) as Record<string, number>, rssGrowthMB: (rssMax - rss0) / 2 ** 20 };
}

describe("HTTP/2 abuse from one client does not stall the others (item 4)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ CONVMARK_MAX_MARKED_PER_OWNER: "100000" });
    for (let b = 0; b < 5; b++) {
      await server.marks.updateConversations({
        updates: Array.from({ length: 100 }, (_, i) => ({ key: { ownerUserId: "big", type: 1, conversationId: `c${b}-${i}` }, setMarks: [1], customMark: "x".repeat(100), labels: ["l1", "l2"] })),
      });
    }
  });
  afterAll(async () => {
    await server?.close();
  });

  it("rapid reset: the attacker's sessions are ended, health checks keep answering quickly", async () => {
    const r = await underAttack(server, "rapid-reset", 20);
    expect(r.attack.resetsSent).toBeGreaterThan(1000);
    expect(r.attack.goaways).toBeGreaterThan(0);
    expect(r.probe.failed).toBe(0);
    expect(r.probe.latencies.length).toBeGreaterThan(10);
    expect(Math.max(...r.probe.latencies)).toBeLessThan(3_000);
    expect(r.rssGrowthMB).toBeLessThan(300);
  }, 60_000);

  it("non-reading streams: at most 100 per session, the session is ended once its unread responses pile up", async () => {
    const r = await underAttack(server, "non-reading", 20);
    expect(r.attack.refused).toBeGreaterThan(0); // streams beyond SETTINGS_MAX_CONCURRENT_STREAMS
    expect(r.probe.failed).toBe(0);
    expect(Math.max(...r.probe.latencies)).toBeLessThan(3_000);
    expect(r.rssGrowthMB).toBeLessThan(400);
  }, 60_000);

  it("non-reading streams asking for big pages: no work starts while a session's responses lie unread, health checks stay fast", async () => {
    // 200 streams asking for all 500 conversations (~100 KB each): before, every one was computed
    // (seconds of CPU in one event loop); now a few per session until the client reads.
    const r = await underAttack(server, "non-reading", 500);
    expect(r.probe.failed).toBe(0);
    expect(r.probe.latencies.length).toBeGreaterThan(20);
    expect(Math.max(...r.probe.latencies)).toBeLessThan(1_500);
  }, 60_000);
});
