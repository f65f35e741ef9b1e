/**
 * Malformed request messages as the client's fault, logged and counted like other refused calls.
 *
 * connect-es parses a request before any interceptor runs, and reports a binary parse error as
 * INTERNAL (`parse binary: premature EOF`, HTTP 500) because the same serializer serves clients,
 * for which an unparsable *response* is an internal error. JSON parse errors are INVALID_ARGUMENT
 * but never reach the interceptors either, so neither kind is logged or counted in /metrics.
 *
 * `withRequestParseErrors` wraps each universal handler of the router. The request body is kept
 * (references to the chunks Connect reads anyway) until the handler has answered; only when the
 * interceptor chain never ran for a unary or server-streaming call does it parse the kept message
 * itself. If that parse fails, the call is run again with an empty message and the parse error in
 * a context value; `rejectMalformedRequests` (an interceptor inside logging and metrics) throws it as
 * INVALID_ARGUMENT, so Connect writes it in the caller's protocol (HTTP 400, grpc-status 3) and the
 * logging and metrics interceptors see it. Requests that parse cost nothing extra. A unary or
 * server-streaming request in an enveloped protocol with no message or more than one is the same
 * kind of client fault (connect-es says UNIMPLEMENTED): INVALID_ARGUMENT as well.
 */
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";
import { fromBinary, fromJsonString, type DescMethod, type JsonReadOptions } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, createContextValues, type Interceptor } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { withoutStack } from "../domain/stackless.js";

interface CallState {
  /** Set by rejectMalformedRequests when the interceptor chain runs. */
  ran: boolean;
  /** On the second run: the parse error to answer with. */
  malformed?: ConnectError;
}

const callStateKey = createContextKey<CallState | undefined>(undefined, { description: "request parse state" });

/**
 * The interceptor half: marks the call as having reached the interceptors and rethrows a recorded
 * parse error. For streaming requests (parsed lazily, while the implementation reads them) an
 * INTERNAL error raised by reading the request stream itself is the client's malformed input too.
 */
export const rejectMalformedRequests: Interceptor = (next) => async (req) => {
  const state = req.contextValues.get(callStateKey);
  if (state) {
    state.ran = true;
    if (state.malformed) throw state.malformed;
  }
  if (!req.stream) return next(req);
  try {
    return await next({ ...req, message: clientFaultOnReadError(req.message) });
  } catch (e) {
    throw clientFaultOnMessageCount(e);
  }
};

/**
 * connect-es checks that a unary or server-streaming request holds exactly one message and reports
 * a missing or extra one as UNIMPLEMENTED; for a server-streaming call the check runs inside the
 * interceptor chain (before the implementation). It is the client's malformed request.
 */
const WRONG_COUNT = /^protocol error: (missing|received extra) input message for (unary|server-streaming) method$/;

function clientFaultOnMessageCount(e: unknown): unknown {
  if (!(e instanceof ConnectError) || e.code !== Code.Unimplemented || !WRONG_COUNT.test(e.rawMessage)) return e;
  return new ConnectError(e.rawMessage, Code.InvalidArgument, e.metadata, undefined, e.cause);
}

async function* clientFaultOnReadError<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (e) {
    const err = ConnectError.from(e);
    if (err.code === Code.Internal) throw withoutStack(() => new ConnectError(err.rawMessage, Code.InvalidArgument, err.metadata, undefined, err.cause));
    throw e;
  }
}

interface Format {
  readonly enveloped: boolean;
  readonly binary: boolean;
  /** The header naming the compression of the message(s). */
  readonly encodingHeader: string;
}

/** The request format of the Connect, gRPC and gRPC-Web content types connect-node accepts. */
function requestFormat(contentType: string | null): Format | undefined {
  const ct = (contentType ?? "").toLowerCase().split(";", 1)[0]!.trim();
  let m = /^application\/(connect\+)?(json|proto)$/.exec(ct);
  if (m) return { enveloped: m[1] !== undefined, binary: m[2] === "proto", encodingHeader: m[1] ? "connect-content-encoding" : "content-encoding" };
  m = /^application\/grpc(-web)?(?:\+(json|proto))?$/.exec(ct);
  if (m) return { enveloped: true, binary: m[2] !== "json", encodingHeader: "grpc-encoding" };
  return undefined;
}

/** A body that does not decompress is answered to its client: zlib's error, whose stack its stream code reads, is made without one. */
function decompress(bytes: Uint8Array, encoding: string | null, maxBytes: number): Uint8Array {
  return withoutStack(() => {
    const opts = { maxOutputLength: maxBytes };
    switch ((encoding ?? "identity").toLowerCase()) {
      case "identity":
        return bytes;
      case "gzip":
        return gunzipSync(bytes, opts);
      case "br":
        return brotliDecompressSync(bytes, opts);
      case "deflate":
        return inflateSync(bytes, opts);
      default:
        throw new Error(`unsupported encoding ${encoding}`);
    }
  });
}

/**
 * The request's messages, undefined when they cannot be told apart (then nothing is remapped). A
 * message flagged compressed that cannot be decompressed (no grpc-encoding, or not what it names)
 * is the client's fault too: INVALID_ARGUMENT (Connect would answer INTERNAL).
 */
function messagesOf(body: Uint8Array, format: Format, encoding: string | null, maxBytes: number): Uint8Array[] | ConnectError | undefined {
  try {
    if (!format.enveloped) return [decompress(body, encoding, maxBytes)];
    const out: Uint8Array[] = [];
    let at = 0;
    // Connect may stop reading after the first envelope it cannot parse: a partial tail is ignored.
    while (body.length - at >= 5) {
      const flags = body[at]!;
      const len = new DataView(body.buffer, body.byteOffset + at + 1, 4).getUint32(0);
      if (body.length - at - 5 < len) break;
      const payload = body.subarray(at + 5, at + 5 + len);
      at += 5 + len;
      if (flags & 0x80 || flags & 0x02) continue; // trailers / end-stream frames carry no message
      if (flags & 0x01) {
        const name = (encoding ?? "identity").toLowerCase();
        if (name === "identity") return flaggedWithoutEncoding();
        try {
          out.push(decompress(payload, encoding, maxBytes));
        } catch (e) {
          if (!["gzip", "br", "deflate"].includes(name)) throw e;
          return new ConnectError(`message not ${name}-compressed as flagged: ${(e as Error).message}`, Code.InvalidArgument);
        }
      } else out.push(payload);
    }
    return out;
  } catch {
    return undefined; // a compression problem, which Connect reports itself
  }
}

/** A message flagged compressed in a request without an encoding (the lean unary route answers it too). */
export const flaggedWithoutEncoding = (): ConnectError => withoutStack(() => new ConnectError("message flagged compressed without an encoding", Code.InvalidArgument));

/**
 * Parses the message as Connect would; returns the error a client deserves, or undefined if it
 * parses. The lean unary route (unary-route.ts) answers its malformed requests with it too.
 */
export function parseError(method: DescMethod, message: Uint8Array, binary: boolean, jsonOptions: Partial<JsonReadOptions>): ConnectError | undefined {
  try {
    withoutStack(() => {
      if (binary) fromBinary(method.input, message);
      else fromJsonString(method.input, new TextDecoder("utf-8", { fatal: true }).decode(message), { ignoreUnknownFields: true, ...jsonOptions });
    });
    return undefined;
  } catch (e) {
    return malformedMessage(e, binary);
  }
}

/**
 * The INVALID_ARGUMENT of parseError, from the error the parse threw (its message). The lean unary
 * route calls it with its own parse's error where that parse is protobuf-es's (see there).
 */
export function malformedMessage(e: unknown, binary: boolean): ConnectError {
  const text = e instanceof Error ? e.message : String(e);
  return withoutStack(() => new ConnectError(binary ? `parse binary: ${text}` : text, Code.InvalidArgument));
}

/** One empty message in the request's framing, uncompressed. */
function emptyBody(format: Format): Uint8Array {
  const message = format.binary ? new Uint8Array(0) : new TextEncoder().encode("{}");
  if (!format.enveloped) return message;
  const framed = new Uint8Array(5 + message.length);
  new DataView(framed.buffer).setUint32(1, message.length);
  framed.set(message, 5);
  return framed;
}

interface Kept {
  chunks: Uint8Array[];
  size: number;
  /** The whole body was read (and kept). */
  complete: boolean;
}

async function* recording(body: AsyncIterable<Uint8Array>, kept: Kept, maxBytes: number): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    kept.size += chunk.length;
    if (kept.size <= maxBytes) kept.chunks.push(chunk);
    else kept.chunks.length = 0;
    yield chunk;
  }
  kept.complete = kept.size <= maxBytes;
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

function discard(res: UniversalServerResponse): void {
  const body = res.body;
  if (body && typeof body === "object" && Symbol.asyncIterator in body) {
    void (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]().return?.().catch(() => {});
  }
}

export interface RequestParseErrorOptions {
  readonly readMaxBytes: number;
  readonly jsonOptions?: Partial<JsonReadOptions>;
}

/** Wraps a universal handler as described above; the result is a handler for the same path. */
export function withRequestParseErrors(handler: UniversalHandler, opts: RequestParseErrorOptions): UniversalHandler {
  const kind = handler.method.methodKind;
  if (kind !== "unary" && kind !== "server_streaming") return handler;
  const wrapped = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    const format = requestFormat(req.header.get("content-type"));
    const body = req.body;
    if (!format || req.method !== "POST" || typeof body !== "object" || body === null || !(Symbol.asyncIterator in body)) return handler(req);
    const state: CallState = { ran: false };
    const contextValues = req.contextValues ?? createContextValues();
    contextValues.set(callStateKey, state);
    const kept: Kept = { chunks: [], size: 0, complete: false };
    const first = await handler({ ...req, contextValues, body: recording(body as AsyncIterable<Uint8Array>, kept, opts.readMaxBytes) });
    // Unary Connect reads the whole body before parsing; enveloped protocols may stop at the first message.
    if (state.ran || kept.size > opts.readMaxBytes || (!format.enveloped && !kept.complete)) return first;
    const bytes = Buffer.concat(kept.chunks);
    const messages = messagesOf(bytes, format, req.header.get(format.encodingHeader), opts.readMaxBytes);
    kept.chunks = [];
    if (messages === undefined || (Array.isArray(messages) && !format.enveloped && messages.length !== 1)) return first;
    let malformed: ConnectError | undefined;
    if (!Array.isArray(messages)) malformed = messages;
    else if (messages.length === 0) {
      // An empty body has no message; a truncated envelope keeps Connect's own (INVALID_ARGUMENT) answer.
      if (bytes.length > 0) return first;
      malformed = new ConnectError(`protocol error: missing input message for ${kind.replace("_", "-")} method`, Code.InvalidArgument);
    } else if (messages.length > 1) {
      malformed = new ConnectError(`protocol error: received extra input message for ${kind.replace("_", "-")} method`, Code.InvalidArgument);
    } else malformed = parseError(handler.method, messages[0]!, format.binary, opts.jsonOptions ?? {});
    if (!malformed) return first;
    discard(first);
    state.malformed = malformed;
    const header = new Headers(req.header);
    header.delete(format.encodingHeader);
    header.delete("content-length");
    return handler({ ...req, header, contextValues, body: once(emptyBody(format)) });
  };
  return Object.assign(wrapped, {
    requestPath: handler.requestPath,
    method: handler.method,
    service: handler.service,
    protocolNames: handler.protocolNames,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}
