// The dual-protocol listener: sniffing, timeouts, hostile input and graceful close, on real sockets.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { MarkService } from "../../gen/convmark/v1/mark_service_pb.js";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { createDualProtocolServer, type DualProtocolServer, type DualProtocolServerOptions, type NodeHandlerFn } from "../../src/server/listener.js";
import { sleep, startApp, type Started } from "./helpers.js";

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

const echo: NodeHandlerFn = (req, res) => {
  res.writeHead(200, { "content-type": "text/plain" });
  res.end(`HTTP/${req.httpVersion} ${req.method} ${req.url}`);
};

async function listen(handler: NodeHandlerFn = echo, opts?: DualProtocolServerOptions): Promise<{ server: DualProtocolServer; port: number }> {
  const server = createDualProtocolServer(handler, opts);
  const { port } = await server.listen(0, "127.0.0.1");
  cleanups.push(() => server.close(500));
  return { server, port };
}

async function app(...args: Parameters<typeof startApp>): Promise<Started> {
  const s = await startApp(...args);
  cleanups.push(() => s.app.close(500));
  return s;
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => resolve(s));
    s.setNoDelay(true);
    s.on("error", reject);
    cleanups.push(() => void s.destroy());
  });
}

/** Everything the server sends until it closes the connection (or timeoutMs passes). */
function readUntilClose(socket: net.Socket, timeoutMs = 5_000): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on("data", (d: Buffer) => chunks.push(d));
    const timer = setTimeout(() => resolve({ data: Buffer.concat(chunks), closed: false }), timeoutMs);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), closed: true });
    });
  });
}

function firstData(socket: net.Socket, timeoutMs = 3_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no data")), timeoutMs);
    socket.once("data", (d: Buffer) => {
      clearTimeout(timer);
      resolve(d);
    });
  });
}

/**
 * A TCP proxy that forwards the first `sliceBytes` client bytes of every connection in 1..3 byte
 * pieces with a pause after each, so the server's first reads are tiny.
 */
async function slicingProxy(target: number, sliceBytes = 40): Promise<{ port: number; pieces: number[] }> {
  const pieces: number[] = [];
  const open = new Set<net.Socket>();
  const proxy = net.createServer((client) => {
    open.add(client);
    client.once("close", () => open.delete(client));
    client.setNoDelay(true);
    const upstream = net.connect(target, "127.0.0.1");
    upstream.setNoDelay(true);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    upstream.pipe(client);
    let forwarded = 0;
    let queue = Promise.resolve();
    client.on("data", (chunk: Buffer) => {
      queue = queue.then(async () => {
        let offset = 0;
        while (offset < chunk.length && forwarded < sliceBytes) {
          const n = Math.min(1 + ((forwarded * 7) % 3), chunk.length - offset, sliceBytes - forwarded);
          upstream.write(chunk.subarray(offset, offset + n));
          pieces.push(n);
          offset += n;
          forwarded += n;
          await sleep(3);
        }
        if (offset < chunk.length) upstream.write(chunk.subarray(offset));
      });
    });
    client.on("end", () => void queue.then(() => upstream.end()));
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  cleanups.push(() => {
    // Clients keep their connections alive; cut them so close() can finish.
    for (const c of open) c.destroy();
    return new Promise<void>((r) => proxy.close(() => r()));
  });
  return { port: (proxy.address() as net.AddressInfo).port, pieces };
}

describe("protocol sniffing", () => {
  it("serves HTTP/1.1 and h2c on the same port", async () => {
    const { port } = await listen();
    expect(await (await fetch(`http://127.0.0.1:${port}/a`)).text()).toBe("HTTP/1.1 GET /a");
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => void session.close());
    const body = await new Promise<string>((resolve, reject) => {
      const st = session.request({ ":path": "/b" });
      let b = "";
      st.setEncoding("utf8");
      st.on("data", (d: string) => (b += d));
      st.on("end", () => resolve(b));
      st.on("error", reject);
    });
    expect(body).toBe("HTTP/2.0 GET /b");
  });

  it("routes correctly when the preface arrives byte by byte on a raw socket", async () => {
    const { port } = await listen();
    const s = await connect(port);
    for (const b of PREFACE) {
      s.write(Buffer.from([b]));
      await sleep(2);
    }
    s.write(EMPTY_SETTINGS);
    const frame = await firstData(s);
    // The server's first frame is its SETTINGS frame (type 4 at offset 3, stream 0).
    expect(frame[3]).toBe(4);
    expect(frame.readUInt32BE(5) & 0x7fffffff).toBe(0);
  });

  it("a lone first 'P' followed by 'OST' is HTTP/1.1, not HTTP/2", async () => {
    const { port } = await listen();
    const s = await connect(port);
    const reply = readUntilClose(s, 3_000);
    s.write("P");
    await sleep(30);
    s.write("OS");
    await sleep(30);
    s.write("T /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    const { data } = await reply;
    expect(data.toString()).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(data.toString()).toContain("HTTP/1.1 POST /p");
  });

  it("gRPC and HTTP/1.1 requests work through a proxy that delivers the first bytes in 1-3 byte pieces", async () => {
    const s = await app(() => {}, []);
    const proxy = await slicingProxy(s.port);

    const grpcClient = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${proxy.port}` }));
    expect((await grpcClient.check({})).status).toBe(ServingStatus.SERVING);

    const res = await fetch(`http://127.0.0.1:${proxy.port}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(await res.json()).toEqual({ status: "SERVING" });
    expect(proxy.pieces.length).toBeGreaterThan(20);
    expect(Math.max(...proxy.pieces)).toBeLessThanOrEqual(3);
  });
});

describe("hostile and broken clients", () => {
  it("garbage bytes, malformed HTTP/1.1, a broken h2 session and early resets do not take the server down", async () => {
    const s = await app(() => {}, []);

    // Binary garbage: the HTTP/1 parser answers 400 and closes.
    const g = await connect(s.port);
    const gReply = readUntilClose(g);
    g.write(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a, 0x80, 0x81]));
    const garbage = await gReply;
    expect(garbage.closed).toBe(true);
    expect(garbage.data.toString()).toMatch(/^HTTP\/1\.1 400/);

    // A header line without a colon.
    const m = await connect(s.port);
    const mReply = readUntilClose(m);
    m.write("GET / HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n");
    expect((await mReply).data.toString()).toMatch(/^HTTP\/1\.1 400/);

    // A valid preface followed by junk frames: the session is torn down (GOAWAY), nothing else.
    const h = await connect(s.port);
    const hReply = readUntilClose(h);
    h.write(Buffer.concat([PREFACE, Buffer.from("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff garbage", "latin1")]));
    const h2res = await hReply;
    expect(h2res.closed).toBe(true);

    // A preface prefix, then EOF / reset while still sniffing.
    const p = await connect(s.port);
    const pClosed = readUntilClose(p);
    p.end("PRI * HT");
    expect((await pClosed).closed).toBe(true);
    const r = await connect(s.port);
    r.write("PR");
    r.resetAndDestroy();

    await sleep(50);
    const client = createClient(Health, createGrpcTransport({ baseUrl: s.baseUrl }));
    expect((await client.check({})).status).toBe(ServingStatus.SERVING);
    const ok = await fetch(`${s.baseUrl}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(ok.status).toBe(200);
  });
});

describe("timeouts", () => {
  it("drops a connection that never finishes its first bytes (sniff timeout)", async () => {
    const { port } = await listen(echo, { sniffTimeoutMs: 200 });
    const s = await connect(port);
    const t0 = Date.now();
    s.write("PRI *");
    const { closed } = await readUntilClose(s, 3_000);
    expect(closed).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
  });

  it("drops an HTTP/1.1 slowloris that trickles headers (headers timeout)", async () => {
    const { port } = await listen(echo, { headersTimeoutMs: 500, requestTimeoutMs: 1_000 });
    const s = await connect(port);
    const t0 = Date.now();
    const result = readUntilClose(s, 6_000);
    s.write("GET / HTTP/1.1\r\nHost: x\r\n");
    const trickle = setInterval(() => {
      if (!s.destroyed) s.write("X-A: b\r\n");
    }, 100);
    try {
      const { closed, data } = await result;
      expect(closed).toBe(true);
      expect(data.toString()).toMatch(/^HTTP\/1\.1 408/);
      expect(Date.now() - t0).toBeLessThan(4_000);
    } finally {
      clearInterval(trickle);
    }
  });

  it("GOAWAYs an idle HTTP/2 session", async () => {
    const { port } = await listen(echo, { http2IdleTimeoutMs: 200 });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => void session.destroy());
    const goaway = new Promise<void>((resolve) => session.once("goaway", () => resolve()));
    await goaway;
    await new Promise<void>((resolve) => (session.closed ? resolve() : session.once("close", () => resolve())));
  });
});

describe("graceful close", () => {
  it("lets in-flight gRPC (h2) and Connect (HTTP/1.1) requests finish, refuses new connections", async () => {
    let started = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = await app(
      (router) =>
        router.service(MarkService, {
          async getConversation(req) {
            started++;
            await gate;
            return { conversation: { key: req.key, version: 1n } };
          },
        }),
      [MarkService],
    );
    const grpcClient = createClient(MarkService, createGrpcTransport({ baseUrl: s.baseUrl }));
    const viaGrpc = grpcClient.getConversation({ key: { ownerUserId: "a" } });
    const viaH1 = fetch(`${s.baseUrl}/convmark.v1.MarkService/GetConversation`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: { ownerUserId: "b" } }),
    });
    while (started < 2) await sleep(5);

    let closed = false;
    const closing = s.app.close(10_000).then(() => (closed = true));
    await sleep(100);
    expect(closed).toBe(false);
    expect(s.app.health.get("")).toBe(ServingStatus.NOT_SERVING);
    // The listening socket is gone: new connections are refused.
    await expect(connect(s.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });

    release();
    const [g, h] = await Promise.all([viaGrpc, viaH1]);
    expect(g.conversation?.key?.ownerUserId).toBe("a");
    expect(h.status).toBe(200);
    expect(h.headers.get("connection")).not.toBe("keep-alive");
    expect(await h.json()).toMatchObject({ conversation: { key: { ownerUserId: "b" } } });
    await closing;
    expect(closed).toBe(true);
  });

  it("destroys requests still running when the grace period ends", async () => {
    const handler: NodeHandlerFn = (req) => {
      // Never answers.
      req.resume();
    };
    const { server, port } = await listen(handler);
    const h1 = new Promise<string>((resolve) => {
      const r = http.get({ host: "127.0.0.1", port, path: "/hang" }, () => resolve("response"));
      r.on("error", (e) => resolve(`error ${e.message}`));
    });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    const h2 = new Promise<string>((resolve) => {
      const st = session.request({ ":path": "/hang" });
      st.on("error", (e) => resolve(`error ${e.message}`));
      st.on("close", () => resolve("closed"));
    });
    while (server.inFlight < 2) await sleep(5);
    const t0 = Date.now();
    await server.close(300);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(2_000);
    expect(await h1).toMatch(/^error/);
    expect(await h2).toMatch(/error|closed/);
    expect(server.inFlight).toBe(0);
  });

  it("closes idle keep-alive connections right away", async () => {
    const { server, port } = await listen();
    const agent = new http.Agent({ keepAlive: true });
    cleanups.push(() => agent.destroy());
    await new Promise<void>((resolve, reject) => {
      http.get({ host: "127.0.0.1", port, path: "/", agent }, (res) => {
        res.resume();
        res.on("end", resolve);
      }).on("error", reject);
    });
    const t0 = Date.now();
    await server.close(5_000);
    expect(Date.now() - t0).toBeLessThan(1_000);
  });
});
