// Issue 7, items 2 and 3, against the real server on loopback: sockets whose HTTP/2 session hit a
// protocol error are closed (also at shutdown), the protocol sniff is a deadline, and the number
// of concurrent connections is capped.
import * as net from "node:net";
import { describe, expect, it } from "vitest";
import { frame, PREFACE } from "../support/h2-frames.js";
import { startTestServer, type TestServer } from "../support/harness.js";

const SETTINGS = frame(4, 0, 0, Buffer.alloc(0));
/** SETTINGS whose length is not a multiple of 6: a connection error (FRAME_SIZE_ERROR). */
const BAD_SETTINGS = frame(4, 0, 0, Buffer.from([1, 2, 3, 4, 5]));
/** HEADERS (END_HEADERS, no END_STREAM) for POST / on stream 1: HPACK static :method POST, :scheme http, :path /, :authority "x". */
const OPEN_REQUEST = frame(1, 0x4, 1, Buffer.from([0x83, 0x86, 0x84, 0x41, 0x01, 0x78]));

interface Conn {
  socket: net.Socket;
  closed: boolean;
  received: Buffer[];
}

function connect(port: number, first?: Buffer): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const c: Conn = { socket: net.connect(port, "127.0.0.1"), closed: false, received: [] };
    c.socket.on("data", (d: Buffer) => c.received.push(d));
    c.socket.on("close", () => (c.closed = true));
    c.socket.on("error", () => {});
    c.socket.once("connect", () => {
      if (first) c.socket.write(first);
      resolve(c);
    });
    c.socket.once("error", reject);
  });
}

async function waitFor(cond: () => boolean, ms: number): Promise<number> {
  const start = Date.now();
  while (!cond() && Date.now() - start < ms) await new Promise((r) => setTimeout(r, 200));
  return Date.now() - start;
}

/** Whether the bytes the server sent contain a GOAWAY frame (type 7). */
function sawGoaway(c: Conn): boolean {
  const b = Buffer.concat(c.received);
  for (let at = 0; at + 9 <= b.length; at += 9 + b.readUIntBE(at, 3)) if (b[at + 3] === 7) return true;
  return false;
}

describe("HTTP/2 sessions that hit a protocol error are closed (item 2)", () => {
  it("a preface followed by a malformed SETTINGS frame gets GOAWAY and then its socket is closed", async () => {
    const server = await startTestServer();
    try {
      const conns = await Promise.all(Array.from({ length: 20 }, () => connect(server.port, Buffer.concat([PREFACE, BAD_SETTINGS]))));
      await waitFor(() => conns.every(sawGoaway), 5_000);
      expect(conns.every(sawGoaway)).toBe(true);
      await waitFor(() => conns.every((c) => c.closed), 40_000);
      expect(conns.filter((c) => c.closed).length).toBe(20);
      // The server still serves.
      const health = await fetch(`${server.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect(health.status).toBe(200);
    } finally {
      await server.close();
    }
  }, 60_000);

  it("shutdown does not wait its grace period for such sessions, even with a stream left open", async () => {
    const server: TestServer = await startTestServer({ CONVMARK_SHUTDOWN_GRACE_MS: "30000" });
    const conns = await Promise.all(Array.from({ length: 10 }, () => connect(server.port, Buffer.concat([PREFACE, SETTINGS, OPEN_REQUEST]))));
    await new Promise((r) => setTimeout(r, 300));
    for (const c of conns) c.socket.write(BAD_SETTINGS);
    await waitFor(() => conns.every(sawGoaway), 5_000);
    const start = Date.now();
    await server.close();
    expect(Date.now() - start).toBeLessThan(8_000);
    await waitFor(() => conns.every((c) => c.closed), 2_000);
    expect(conns.every((c) => c.closed)).toBe(true);
  }, 60_000);
});

describe("connection limits (item 3)", () => {
  it("the protocol sniff is a deadline: a preface sent a byte every 2 s does not keep sockets open", async () => {
    const server = await startTestServer();
    try {
      const conns = await Promise.all(Array.from({ length: 20 }, () => connect(server.port)));
      let sent = 0;
      const drip = setInterval(() => {
        for (const c of conns) if (!c.closed) c.socket.write(PREFACE.subarray(sent, sent + 1));
        sent++;
      }, 2_000);
      try {
        const took = await waitFor(() => conns.every((c) => c.closed), 20_000);
        expect(conns.filter((c) => c.closed).length).toBe(20);
        expect(took).toBeLessThan(16_000); // the 10 s deadline plus margin
        expect(sent).toBeLessThan(PREFACE.length);
      } finally {
        clearInterval(drip);
      }
    } finally {
      await server.close();
    }
  }, 30_000);

  it("CONVMARK_MAX_CONNECTIONS caps concurrent connections; the rest are closed at once and counted", async () => {
    const server = await startTestServer({ CONVMARK_MAX_CONNECTIONS: "20" });
    try {
      const conns: Conn[] = [];
      for (let i = 0; i < 30; i++) conns.push(await connect(server.port));
      await waitFor(() => conns.filter((c) => c.closed).length >= 10, 3_000);
      expect(conns.filter((c) => c.closed).length).toBe(10);
      for (const c of conns) c.socket.destroy();
      await new Promise((r) => setTimeout(r, 200));
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toMatch(/convmark_listener_refusals_total\{kind="connection_refused",reason="max_connections"\} 10/);
    } finally {
      await server.close();
    }
  }, 30_000);
});
