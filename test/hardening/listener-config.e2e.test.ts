// Issue 7: the listener's bounds are configuration (CONVMARK_HTTP2_*, CONVMARK_SNIFF_TIMEOUT_MS,
// CONVMARK_IDLE_TIMEOUT_MS), against the real server process: what is set is what the listener
// enforces, and a bad value stops the start (exit code 2) naming the variable.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { frame, PREFACE } from "../support/h2-frames.js";
import { freePort, startServerProcess } from "../support/server-process.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** HEADERS (END_HEADERS, no END_STREAM: the request stays open) for POST / on `stream`: HPACK static :method POST, :scheme http, :path /, :authority "x". */
const openRequest = (stream: number) => frame(1, 0x4, stream, Buffer.from([0x83, 0x86, 0x84, 0x41, 0x01, 0x78]));

interface Frame {
  type: number;
  stream: number;
  payload: Buffer;
}

function framesOf(bytes: Buffer): Frame[] {
  const out: Frame[] = [];
  for (let at = 0; at + 9 <= bytes.length; ) {
    const len = bytes.readUIntBE(at, 3);
    out.push({ type: bytes[at + 3]!, stream: bytes.readUInt32BE(at + 5) & 0x7fffffff, payload: bytes.subarray(at + 9, at + 9 + len) });
    at += 9 + len;
  }
  return out;
}

/** Opens `n` streams on one raw HTTP/2 connection; after a while, the frames the server sent. */
async function openStreams(port: number, n: number): Promise<Frame[]> {
  const socket = net.connect(port, "127.0.0.1");
  const received: Buffer[] = [];
  socket.on("data", (d: Buffer) => received.push(d));
  socket.on("error", () => {});
  await new Promise((r) => socket.once("connect", r));
  const streams = Array.from({ length: n }, (_, i) => openRequest(2 * i + 1));
  socket.write(Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0)), ...streams]));
  await new Promise((r) => setTimeout(r, 1000));
  socket.destroy();
  return framesOf(Buffer.concat(received));
}

const REFUSED_STREAM = 7;
const PROTOCOL_ERROR = 1;

/** Streams the server refused: RST_STREAM(REFUSED_STREAM), or all past the last GOAWAY's last stream ID. */
function refused(frames: Frame[], n: number): number[] {
  const out = new Set<number>();
  for (const f of frames) if (f.type === 3 && f.payload.readUInt32BE(0) === REFUSED_STREAM) out.add(f.stream);
  const goaway = frames.find((f) => f.type === 7 && f.payload.readUInt32BE(4) === PROTOCOL_ERROR);
  if (goaway) for (let i = 0; i < n; i++) if (2 * i + 1 > (goaway.payload.readUInt32BE(0) & 0x7fffffff)) out.add(2 * i + 1);
  return [...out].sort((a, b) => a - b);
}

/** The server's SETTINGS_MAX_CONCURRENT_STREAMS (id 3) in its first SETTINGS frame. */
function maxConcurrentStreams(frames: Frame[]): number | undefined {
  const s = frames.find((f) => f.type === 4 && f.stream === 0 && f.payload.length > 0);
  for (let at = 0; s && at + 6 <= s.payload.length; at += 6) if (s.payload.readUInt16BE(at) === 3) return s.payload.readUInt32BE(at + 2);
  return undefined;
}

describe("listener bounds from the environment (real server processes)", () => {
  it("CONVMARK_HTTP2_MAX_CONCURRENT_STREAMS=5: the 6th concurrent stream of a connection is refused, the first 5 are not", async () => {
    const server = await startServerProcess({ CONVMARK_HTTP2_MAX_CONCURRENT_STREAMS: "5" });
    try {
      const frames = await openStreams(server.port, 6);
      expect(maxConcurrentStreams(frames)).toBe(5);
      expect(refused(frames, 6)).toEqual([11]);
      // The connection's refusal is its own: the server serves others.
      const health = await fetch(`${server.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect(health.status).toBe(200);
    } finally {
      await server.stop();
    }
    // The default (100) takes all 6: it is the setting that refuses.
    const defaults = await startServerProcess({});
    try {
      const frames = await openStreams(defaults.port, 6);
      expect(maxConcurrentStreams(frames)).toBe(100);
      expect(refused(frames, 6)).toEqual([]);
    } finally {
      await defaults.stop();
    }
  }, 90_000);

  it("CONVMARK_SNIFF_TIMEOUT_MS=500: a connection that sends nothing is closed after about half a second", async () => {
    const server = await startServerProcess({ CONVMARK_SNIFF_TIMEOUT_MS: "500" });
    try {
      const silent = await Promise.all(
        Array.from({ length: 5 }, async () => {
          const socket = net.connect(server.port, "127.0.0.1");
          socket.on("error", () => {});
          await new Promise((r) => socket.once("connect", r));
          const t0 = Date.now();
          return new Promise<number>((resolve) => {
            socket.once("close", () => resolve(Date.now() - t0));
            setTimeout(() => {
              socket.destroy();
              resolve(Infinity);
            }, 5_000).unref();
          });
        }),
      );
      // Not closed before the deadline; closed well before the 10 s default.
      for (const ms of silent) {
        expect(ms).toBeGreaterThanOrEqual(450);
        expect(ms).toBeLessThan(5_000);
      }
    } finally {
      await server.stop();
    }
  }, 60_000);

  it("a bad value stops the start with exit code 2 and a message naming the variable", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "convmark-badcfg-"));
    try {
      for (const [name, value] of [
        ["CONVMARK_HTTP2_MAX_CONCURRENT_STREAMS", "many"],
        ["CONVMARK_SNIFF_TIMEOUT_MS", "0"],
      ] as const) {
        const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/main.ts")], {
          cwd: ROOT,
          env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", PORT: String(await freePort()), HOST: "127.0.0.1", CONVMARK_DATA_DIR: dataDir, CONVMARK_WORKERS: "1", [name]: value },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.stderr.on("data", (d: Buffer) => (out += d.toString()));
        const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
        expect(code).toBe(2);
        expect(out).toContain(name);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
