// Issue 7, item 5, against the real server on loopback: a malformed request message is the
// client's fault (INVALID_ARGUMENT, HTTP 400 for Connect) in every protocol, logged and counted.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { gzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConvmark, type RunningConvmark } from "../../src/bootstrap.js";

const BAD = Buffer.from([0x0a, 0xff]); // field 1, length 255, no bytes: "premature EOF"
const UPDATE = "/convmark.v1.MarkService/UpdateConversations";
const WATCH = "/grpc.health.v1.Health/Watch";

const envelope = (payload: Buffer, flags = 0) => {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
};

describe("malformed request messages are INVALID_ARGUMENT, logged and counted (item 5)", () => {
  let running: RunningConvmark;
  let dataDir: string;
  const lines: Record<string, unknown>[] = [];
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "convmark-malformed-"));
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString("utf8").split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    running = await startConvmark({ PORT: "0", HOST: "127.0.0.1", CONVMARK_DATA_DIR: dataDir }, { logger: pino({ level: "info" }, sink) });
  });
  afterAll(async () => {
    await running?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const post = (path: string, contentType: string, body: Buffer | string, headers: Record<string, string> = {}) =>
    fetch(`${running.url}${path}`, { method: "POST", headers: { "content-type": contentType, ...headers }, body });

  it("Connect binary: HTTP 400 invalid_argument instead of 500 internal (the issue's curl)", async () => {
    const r = await post(UPDATE, "application/proto", BAD);
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({ code: "invalid_argument", message: "parse binary: premature EOF" });
  });

  it("Connect binary, gzip-compressed: the same", async () => {
    const r = await post(UPDATE, "application/proto", gzipSync(BAD), { "content-encoding": "gzip" });
    expect(r.status).toBe(400);
    expect(await r.json()).toMatchObject({ code: "invalid_argument" });
  });

  it("gRPC (grpc-js over h2c): INVALID_ARGUMENT instead of INTERNAL", async () => {
    const client = new grpc.Client(new URL(running.url).host, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.makeUnaryRequest(UPDATE, (b: Buffer) => b, (b: Buffer) => b, BAD, (e) => resolve(e)),
      );
      expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err?.details).toContain("premature EOF");
    } finally {
      client.close();
    }
  });

  it("gRPC-Web: grpc-status 3", async () => {
    const r = await post(UPDATE, "application/grpc-web+proto", envelope(BAD), { "x-grpc-web": "1" });
    const body = Buffer.from(await r.arrayBuffer());
    const status = r.headers.get("grpc-status") ?? /grpc-status: ?(\d+)/.exec(body.toString("latin1"))?.[1];
    expect(status).toBe("3");
  });

  it("gRPC-Web: a message flagged compressed without grpc-encoding, or not compressed as named, is grpc-status 3 (found by the fuzzer)", async () => {
    const valid = Buffer.from([0x0a, 0x00]);
    for (const [headers, body] of [
      [{}, envelope(valid, 1)],
      [{ "grpc-encoding": "gzip" }, envelope(valid, 1)],
    ] as const) {
      const r = await post("/convmark.v1.MarkService/SyncConversations", "application/grpc-web+proto", body, { "x-grpc-web": "1", ...headers });
      const text = Buffer.from(await r.arrayBuffer()).toString("latin1");
      expect(r.headers.get("grpc-status") ?? /grpc-status: ?(\d+)/.exec(text)?.[1]).toBe("3");
    }
  });

  it("a server-streaming method (Health.Watch over Connect streaming) refuses it as invalid_argument", async () => {
    const r = await post(WATCH, "application/connect+proto", envelope(Buffer.from([0x0a, 0x05, 0x61])));
    const body = Buffer.from(await r.arrayBuffer());
    expect(body.toString("utf8")).toContain('"code":"invalid_argument"');
  });

  it("valid calls are unaffected, and the refused ones reach the log and /metrics", async () => {
    const ok = await post("/grpc.health.v1.Health/Check", "application/proto", Buffer.alloc(0));
    expect(ok.status).toBe(200);
    const json = await post(UPDATE, "application/json", "{oops");
    expect(json.status).toBe(400);
    const metrics = await (await fetch(`${running.url}/metrics`)).text();
    const counted = /grpc_server_handled_total\{grpc_type="unary",grpc_service="convmark\.v1\.MarkService",grpc_method="UpdateConversations",grpc_code="InvalidArgument"\} (\d+)/.exec(metrics);
    expect(Number(counted?.[1])).toBeGreaterThanOrEqual(5);
    const logged = lines.filter((l) => l.msg === "rpc" && l.procedure === UPDATE && l.code === "InvalidArgument");
    expect(logged.some((l) => String(l.err).includes("premature EOF"))).toBe(true);
    expect(logged.some((l) => String(l.err).includes("JSON"))).toBe(true);
    expect(metrics).not.toMatch(/grpc_server_handled_total\{[^}]*grpc_code="Internal"/);
  });
});
