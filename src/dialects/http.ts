/** Small HTTP helpers shared by the vendor REST gateways. */
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
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) {
        req.resume();
        return { ok: false, problem: "too_large", message: `request body exceeds ${maxBytes} bytes` };
      }
      chunks.push(chunk);
    }
  } catch (e) {
    return { ok: false, problem: "aborted", message: `request body could not be read: ${(e as Error).message}` };
  }
  let raw: string;
  try {
    raw = new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    return { ok: false, problem: "not_utf8", message: "request body is not valid UTF-8" };
  }
  try {
    return { ok: true, json: JSON.parse(raw) as unknown, raw };
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
