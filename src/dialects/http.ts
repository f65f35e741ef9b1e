/** Small HTTP helpers shared by the vendor REST gateways. */
import { isUtf8 } from "node:buffer";
import { withoutStack } from "../domain/stackless.js";
import type { GatewayRequest, GatewayResponse } from "./dialect.js";

export type BodyResult =
  | { readonly ok: true; readonly json: unknown; readonly raw: string }
  | { readonly ok: false; readonly problem: "too_large" | "malformed_json" | "not_utf8" | "aborted"; readonly message: string };

/**
 * Reads the whole body up to maxBytes and parses it as JSON. Never throws: the caller answers each
 * problem with the vendor's own error envelope. An oversized body is not read further.
 */
export async function readJsonBody(req: GatewayRequest, maxBytes: number): Promise<BodyResult> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxBytes) {
    req.resume();
    return { ok: false, problem: "too_large", message: `request body is ${declared} bytes, at most ${maxBytes} allowed` };
  }
  // Events rather than `for await`: leaving an async iterator early destroys the request, which
  // over HTTP/2 resets the stream instead of letting the server drop the rest of the body.
  const read = await new Promise<{ ok: true; body: Buffer } | Extract<BodyResult, { ok: false }>>((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (r: { ok: true; body: Buffer } | Extract<BodyResult, { ok: false }>) => {
      if (settled) return;
      settled = true;
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > maxBytes) {
        chunks.length = 0;
        // Keep reading (and dropping) the rest; the caller answers now.
        settle({ ok: false, problem: "too_large", message: `request body exceeds ${maxBytes} bytes` });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => settle({ ok: true, body: Buffer.concat(chunks) });
    const onError = (e: Error) => settle({ ok: false, problem: "aborted", message: `request body could not be read: ${e.message}` });
    const onClose = () => {
      if (!req.readableEnded) settle({ ok: false, problem: "aborted", message: "request body could not be read: the client went away" });
    };
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onError);
    req.once("close", onClose);
  });
  if (!read.ok) return read;
  if (!isUtf8(read.body)) return { ok: false, problem: "not_utf8", message: "request body is not valid UTF-8" };
  // A BOM is not part of the JSON text (as TextDecoder would drop it).
  const raw = read.body.toString("utf8", read.body[0] === 0xef && read.body[1] === 0xbb && read.body[2] === 0xbf ? 3 : 0);
  try {
    // JSON.parse's SyntaxError is answered to the client, never logged: no stack to capture.
    return { ok: true, json: withoutStack(() => JSON.parse(raw) as unknown), raw };
  } catch (e) {
    return { ok: false, problem: "malformed_json", message: `request body is not valid JSON: ${(e as Error).message}` };
  }
}

/** Writes a JSON response (HTTP/1.1 or HTTP/2 compatibility API). */
export function sendJson(res: GatewayResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}
