// Issue 7: `convmark_listener_open{kind}` on /metrics says what the listener holds open, summed over
// the cluster's workers, so a test (or an operator) can tell that nothing is left after a burst.
// Against the real server process with two workers.
import * as http from "node:http";
import * as http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";

const HEALTH_WATCH = "/grpc.health.v1.Health/Watch";
const envelope = (payload: Buffer) => {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
};

type Kind = "connection" | "session" | "stream" | "request";

/** One scrape on its own connection (closed after), so the scrape itself is one connection and one request. */
function scrape(port: number): Promise<Record<Kind, number>> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/metrics", agent: false, headers: { connection: "close" } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => {
        const out = { connection: NaN, session: NaN, stream: NaN, request: NaN };
        for (const m of text.matchAll(/^convmark_listener_open\{kind="(\w+)"\} (\d+)$/gm)) out[m[1] as Kind] = Number(m[2]);
        resolve(out);
      });
    });
    req.on("error", reject);
  });
}

async function until(port: number, cond: (o: Record<Kind, number>) => boolean, ms: number): Promise<Record<Kind, number>> {
  const start = Date.now();
  for (;;) {
    const o = await scrape(port);
    if (cond(o) || Date.now() - start > ms) return o;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("convmark_listener_open (two cluster workers)", () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServerProcess({ CONVMARK_WORKERS: "2", CONVMARK_SHUTDOWN_GRACE_MS: "1000" });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("counts the connections, sessions, streams and requests of a burst, and returns to what it was before", async () => {
    const SESSIONS = 12;
    const STREAMS = 5;
    const H1 = 10;
    // Before: the scrape's own connection and request, and the keep-alive connection of the start-up
    // health check (fetch keeps it for the server's keep-alive timeout).
    const before = await scrape(server.port);
    expect(before).toMatchObject({ session: 0, stream: 0, request: 1 });
    expect(before.connection).toBeGreaterThanOrEqual(1);
    expect(before.connection).toBeLessThanOrEqual(2);
    const sessions: http2.ClientHttp2Session[] = [];
    const h1: http.ClientRequest[] = [];
    try {
      for (let i = 0; i < SESSIONS; i++) {
        const s = http2.connect(server.url);
        s.on("error", () => {});
        sessions.push(s);
        for (let j = 0; j < STREAMS; j++) {
          const st = s.request({ ":method": "POST", ":path": HEALTH_WATCH, "content-type": "application/grpc+proto", te: "trailers" });
          st.on("error", () => {});
          st.resume();
          st.end(envelope(Buffer.alloc(0)));
        }
      }
      for (let i = 0; i < H1; i++) {
        const r = http.request({ host: "127.0.0.1", port: server.port, path: HEALTH_WATCH, method: "POST", agent: false, headers: { "content-type": "application/connect+json" } });
        r.on("error", () => {});
        r.on("response", (res) => res.resume());
        r.end(envelope(Buffer.from("{}")));
        h1.push(r);
      }
      // The streams are requests too.
      const expected = {
        connection: before.connection + SESSIONS + H1,
        session: SESSIONS,
        stream: SESSIONS * STREAMS,
        request: before.request + SESSIONS * STREAMS + H1,
      };
      const during = await until(server.port, (o) => (Object.keys(expected) as Kind[]).every((k) => o[k] === expected[k]), 15_000);
      // Connections are dealt round-robin over both workers: the gauge is their sum.
      expect(during).toEqual(expected);
    } finally {
      for (const s of sessions) s.destroy();
      for (const r of h1) r.destroy();
    }
    const after = await until(server.port, (o) => o.connection <= before.connection && o.session === 0 && o.stream === 0 && o.request === 1, 15_000);
    expect(after).toMatchObject({ session: 0, stream: 0, request: 1 });
    expect(after.connection).toBeLessThanOrEqual(before.connection);
  }, 60_000);
});
