// readJsonBody (src/dialects/http.ts), the vendor routes' body reader, against a real node:http
// server on loopback: what it accepts and refuses, and that its UTF-8 check and BOM handling answer
// exactly as the WHATWG decoder (TextDecoder, fatal) does, on documented edge cases and seeded bytes.
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readJsonBody, type BodyResult } from "../../src/dialects/http.js";
import { prng } from "../support/prng.js";

const MAX = 64;
let server: Server;
let port = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    void readJsonBody(req, MAX).then((r) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(r));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** POSTs bytes (with content-length, or chunked) and returns what readJsonBody made of them. */
function send(body: Uint8Array, chunked = false): Promise<BodyResult> {
  return new Promise((resolve, reject) => {
    const req = request({ port, host: "127.0.0.1", method: "POST", path: "/", headers: chunked ? {} : { "content-length": body.length } }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve(JSON.parse(Buffer.concat(parts).toString()) as BodyResult));
    });
    req.on("error", reject);
    if (chunked) for (const b of body) req.write(Buffer.of(b));
    req.end(chunked ? undefined : Buffer.from(body));
  });
}

/** What the reader must answer, from the WHATWG decoder and JSON.parse. */
function expected(body: Uint8Array): BodyResult {
  let raw: string;
  try {
    raw = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    return { ok: false, problem: "not_utf8", message: "request body is not valid UTF-8" };
  }
  try {
    return { ok: true, json: JSON.parse(raw) as unknown, raw };
  } catch (e) {
    return { ok: false, problem: "malformed_json", message: `request body is not valid JSON: ${(e as Error).message}` };
  }
}

describe("readJsonBody", () => {
  it("parses JSON, drops one leading BOM, and refuses invalid UTF-8 and malformed JSON", async () => {
    const cases: [string, number[]][] = [
      ["an object", [...Buffer.from('{"a":[1,"é"]}')]],
      ["a leading BOM (dropped)", [0xef, 0xbb, 0xbf, ...Buffer.from('{"a":1}')]],
      ["two BOMs (the second is not JSON)", [0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf, ...Buffer.from("{}")]],
      ["a BOM alone", [0xef, 0xbb, 0xbf]],
      ["0xff", [0x7b, 0xff, 0x7d]],
      ["an encoded surrogate (ED A0 80)", [0x22, 0xed, 0xa0, 0x80, 0x22]],
      ["an overlong slash (C0 AF)", [0x22, 0xc0, 0xaf, 0x22]],
      ["a truncated sequence (E2 82)", [0x22, 0xe2, 0x82]],
      ["above U+10FFFF (F4 90 80 80)", [0x22, 0xf4, 0x90, 0x80, 0x80, 0x22]],
      ["malformed JSON", [...Buffer.from('{"a":')]],
      ["empty", []],
    ];
    for (const [name, bytes] of cases) expect(await send(Uint8Array.from(bytes)), name).toEqual(expected(Uint8Array.from(bytes)));
    expect((await send(Uint8Array.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]))).ok).toBe(true);
    expect((await send(Uint8Array.from([0x22, 0xed, 0xa0, 0x80, 0x22]))).ok).toBe(false);
  });

  it("answers as the WHATWG decoder and JSON.parse do on seeded bytes, whole or one byte a chunk", async () => {
    const rnd = prng(11);
    const alphabet = [0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2c, 0x31, 0x61, 0xef, 0xbb, 0xbf, 0xc3, 0xa9, 0xed, 0xa0, 0x80, 0xf0, 0x9f, 0x98, 0xc0, 0xff];
    let accepted = 0;
    for (let i = 0; i < 300; i++) {
      const n = Math.floor(rnd() * 12);
      const body = Uint8Array.from({ length: n }, () => alphabet[Math.floor(rnd() * alphabet.length)]!);
      // Valid JSON strings now and then, so both answers occur.
      const bytes = i % 3 === 0 ? Uint8Array.from([0x22, ...body.filter((b) => b !== 0x22 && b !== 0x5c), 0x22]) : body;
      const got = await send(bytes, i % 2 === 1);
      expect(got, Buffer.from(bytes).toString("hex")).toEqual(expected(bytes));
      if (got.ok) accepted++;
    }
    expect(accepted).toBeGreaterThan(20);
  });

  it("refuses a body over the limit, declared or streamed", async () => {
    const big = new Uint8Array(MAX + 1).fill(0x20);
    expect(await send(big)).toEqual({ ok: false, problem: "too_large", message: `request body is ${MAX + 1} bytes, at most ${MAX} allowed` });
    expect(await send(big, true)).toEqual({ ok: false, problem: "too_large", message: `request body exceeds ${MAX} bytes` });
  });
});
