/**
 * Unary calls of the unified API (MarkService, DirectoryService) over Connect (POST, JSON or
 * protobuf, HTTP/1.1 and HTTP/2), gRPC (HTTP/2) and binary gRPC-Web (both), served without connect-node's per-call
 * machinery: no web Headers objects, URL, AbortController, async-iterable pipeline or interceptor
 * chain per call. The request body is read with 'data' events, parsed once, the service
 * implementation is called directly and the answer written with one writeHead.
 *
 * It answers exactly as connect-node does, by construction rather than by imitation:
 * - served here: a known unary procedure, POST, a content type, compression and timeout header
 *   connect-node would accept, a body within readMaxBytes (and within its content-length), in one
 *   gRPC envelope that fills the body, that decompresses. Such a request whose message does not
 *   parse (JSON syntax or shape, bad UTF-8, truncated or ill-typed protobuf, a message flagged
 *   compressed without a grpc-encoding) is answered here too, as withRequestParseErrors
 *   (request-errors.ts) has connect-node answer it: INVALID_ARGUMENT with the same message
 *   (parseError there, the one rule), counted and logged through `record`, before auth. Anything
 *   else (GET, gRPC-Web text and JSON, gRPC on HTTP/1.1, other encodings, streaming methods,
 *   unknown paths, bad or several envelopes, oversize or undecompressable bodies) goes to `next`, with the bytes
 *   already read replayed in front of the rest of the body, so connect-node produces its own answer;
 * - for what is served: the auth rule of the auth interceptor (createCallAuthorizer), the log line
 *   and grpc_server_* metrics of the logging and metrics interceptors (createRpcRecorder), the same
 *   context values (peer, client address, caller), the same JSON options, compression negotiation
 *   (connect-node's own gzip and brotli, compressMinBytes), and connect's own error encoders
 *   (errorToJsonBytes, codeToHttpStatus, setTrailerStatus). Binary responses are encoded with
 *   encodeMessage (src/codec/encode.ts), byte-identical to protobuf-es's toBinary.
 * - deadlines: connect-node does not cut a unary call at its deadline (connect-timeout-ms and
 *   grpc-timeout only abort the handler context's signal); neither does this route.
 */
import {
  create,
  fromJsonString,
  toJsonString,
  type DescMessage,
  type DescMethod,
  type DescService,
  type JsonReadOptions,
  type JsonWriteOptions,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { compressionNegotiate, createDeadlineSignal, type Compression } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes, parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { isUtf8 } from "node:buffer";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import type { Readable } from "node:stream";
import { callerKey } from "../auth/caller.js";
import type { CallAuthorizer } from "../auth/interceptor.js";
import { peerKey, peerOf } from "../auth/peer.js";
import { decodeMessage } from "../codec/decode.js";
import { encodeMessage } from "../codec/encode.js";
import { withoutStack } from "../domain/stackless.js";
import { clientAddressContextValues } from "./client-address.js";
import { flaggedWithoutEncoding, malformedMessage, parseError } from "./request-errors.js";
import type { NodeHandlerFn, NodeServerRequest, NodeServerResponse } from "./listener.js";

export interface UnaryRouteOptions {
  /** The services whose unary methods are served here, with their implementations. */
  readonly services: readonly { readonly service: DescService; readonly impl: object }[];
  /** createCallAuthorizer(authenticate, ...): the auth interceptor's rule. */
  readonly authorize: CallAuthorizer;
  /** createRpcRecorder(logger, registry): one log line and the grpc_server_* metrics per call. */
  readonly record: (method: DescMethod) => (error?: unknown) => void;
  /** connect-node's readMaxBytes and compressMinBytes, as the app passes them. */
  readonly readMaxBytes: number;
  readonly compressMinBytes: number;
  /** The router's jsonOptions (the registry for google.protobuf.Any in error details). */
  readonly jsonOptions?: Partial<JsonReadOptions & JsonWriteOptions>;
  /** Compressions offered, in connect-node's order (default gzip, br, as connect-handler.ts). */
  readonly acceptCompression?: readonly Compression[];
}

type Impl = (input: unknown, ctx: HandlerContext) => unknown;

interface Route {
  readonly method: DescMethod;
  readonly impl: Impl;
}

type Protocol = "connect-json" | "connect-proto" | "grpc" | "grpc-web";

// connect-node's content types (protocol-connect / protocol-grpc content-type.ts), lower-cased.
const CONNECT_TYPES = new Map<string, Protocol>([
  ["application/json", "connect-json"],
  ["application/json; charset=utf-8", "connect-json"],
  ["application/json;charset=utf-8", "connect-json"],
  ["application/json; charset=utf8", "connect-json"],
  ["application/json;charset=utf8", "connect-json"],
  ["application/proto", "connect-proto"],
]);
const GRPC_TYPES = new Set(["application/grpc", "application/grpc+proto"]);
// gRPC-Web (protocol-grpc-web content-type.ts), binary only: HTTP/1.1 and HTTP/2.
const GRPC_WEB_TYPES = new Set(["application/grpc-web", "application/grpc-web+proto"]);

/** The unary procedures of `services` that have an implementation, by request path. */
function routesOf(services: UnaryRouteOptions["services"]): Map<string, Route> {
  const routes = new Map<string, Route>();
  for (const { service, impl } of services) {
    for (const method of service.methods) {
      if (method.methodKind !== "unary") continue;
      const fn = (impl as Record<string, unknown>)[method.localName];
      if (typeof fn !== "function") continue; // connect-node answers UNIMPLEMENTED
      routes.set(`/${service.typeName}/${method.name}`, { method, impl: (fn as Impl).bind(impl) });
    }
  }
  return routes;
}

const header = (req: NodeServerRequest, name: string): string | null => {
  const v = req.headers[name];
  return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
};

/**
 * The context a service implementation gets: what connect-node's createHandlerContext has, with
 * the costly parts (web Headers, the URL, the signal and its deadline timer) made on first use.
 */
class LeanContext implements HandlerContext {
  readonly requestMethod = "POST";
  private header?: Headers;
  private resHeader?: Headers;
  private resTrailer?: Headers;
  private controller?: AbortController;
  private deadline?: ReturnType<typeof createDeadlineSignal>;
  private readonly deadlineAt: number | undefined;
  constructor(
    readonly method: DescMethod,
    readonly protocolName: string,
    readonly values: ContextValues,
    private readonly req: NodeServerRequest,
    private readonly timeout: number | undefined,
  ) {
    this.deadlineAt = timeout === undefined ? undefined : Date.now() + timeout;
  }
  get service(): DescService {
    return this.method.parent;
  }
  get url(): string {
    const authority = "authority" in this.req ? (this.req as Http2ServerRequest).authority : this.req.headers.host;
    return new URL(this.req.url ?? "", `http://${authority}`).toString();
  }
  timeoutMs = (): number | undefined => (this.deadlineAt === undefined ? undefined : this.deadlineAt - Date.now());
  get requestHeader(): Headers {
    if (this.header === undefined) {
      this.header = new Headers();
      for (const [k, v] of Object.entries(this.req.headers)) {
        if (k.startsWith(":") || v === undefined) continue;
        for (const x of Array.isArray(v) ? v : [v]) this.header.append(k, x);
      }
    }
    return this.header;
  }
  get responseHeader(): Headers {
    return (this.resHeader ??= new Headers());
  }
  get responseTrailer(): Headers {
    return (this.resTrailer ??= new Headers());
  }
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const controller = (this.controller = new AbortController());
      this.deadline = createDeadlineSignal(this.timeout);
      this.deadline.signal.addEventListener("abort", () => controller.abort(this.deadline!.signal.reason), { once: true });
    }
    return this.controller.signal;
  }
  /** Headers and trailers the implementation set, if it touched them. */
  get setHeader(): Headers | undefined {
    return this.resHeader;
  }
  get setTrailer(): Headers | undefined {
    return this.resTrailer;
  }
  /** As connect-node's context.abort() when the call has been answered. */
  end(reason?: unknown): void {
    if (this.controller === undefined) return;
    this.deadline?.cleanup();
    this.controller.abort(reason);
  }
}

/** A Headers object as connect-node writes it (webHeaderToNodeHeaders: lower-case names, sorted). */
function nodeHeaders(h: Headers): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  h.forEach((value, key) => {
    const prev = o[key];
    if (prev === undefined) o[key] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else o[key] = [prev, value];
  });
  return o;
}

/** Wraps `next`: well-formed unary calls of the given services are served here, everything else goes on. */
export function leanUnaryRoute(opts: UnaryRouteOptions): (next: NodeHandlerFn) => NodeHandlerFn {
  const routes = routesOf(opts.services);
  const accept = [...(opts.acceptCompression ?? [compressionGzip, compressionBrotli])];
  const { readMaxBytes, compressMinBytes } = opts;
  const jsonRead: Partial<JsonReadOptions> = { ...opts.jsonOptions, ignoreUnknownFields: opts.jsonOptions?.ignoreUnknownFields ?? true };
  const jsonWrite: Partial<JsonWriteOptions> = jsonRead as Partial<JsonWriteOptions>;
  // parseError reads JSON with these options too (it spreads jsonOptions over ignoreUnknownFields: true).
  const sameJsonRead = jsonRead.ignoreUnknownFields === { ignoreUnknownFields: true, ...opts.jsonOptions }.ignoreUnknownFields;
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();

  return (next) => (req, res) => {
    if (req.method !== "POST") return next(req, res);
    const route = routes.get(req.url ?? "");
    if (route === undefined) return next(req, res);
    const contentType = (req.headers["content-type"] ?? "").toLowerCase();
    let protocol = CONNECT_TYPES.get(contentType);
    if (protocol === undefined && req.httpVersionMajor === 2 && GRPC_TYPES.has(contentType)) protocol = "grpc";
    if (protocol === undefined && GRPC_WEB_TYPES.has(contentType)) protocol = "grpc-web";
    if (protocol === undefined) return next(req, res);
    // gRPC and gRPC-Web: enveloped, grpc-* headers; they differ only in how the answer ends (trailers or a trailer frame).
    const grpc = protocol === "grpc" || protocol === "grpc-web";
    const web = protocol === "grpc-web";

    const negotiate = (encoding: string | null) =>
      grpc
        ? compressionNegotiate(accept, encoding, header(req, "grpc-accept-encoding"), "grpc-accept-encoding")
        : compressionNegotiate(accept, encoding, header(req, "accept-encoding"), "accept-encoding");
    let compression = negotiate(header(req, grpc ? "grpc-encoding" : "content-encoding"));
    if (compression.error) return next(req, res);
    const timeout = grpc ? parseGrpcTimeout(header(req, "grpc-timeout"), Number.MAX_SAFE_INTEGER) : parseConnectTimeout(header(req, "connect-timeout-ms"), Number.MAX_SAFE_INTEGER);
    if (timeout.error) return next(req, res);

    // connect-node's readAllBytes: a content-length above readMaxBytes, or not what arrives, is its error.
    let hint = -1;
    if (!grpc && req.headers["content-length"] !== undefined) {
      const n = parseInt(req.headers["content-length"], 10);
      if (Number.isSafeInteger(n) && n >= 0) {
        if (n > readMaxBytes) return next(req, res);
        hint = n;
      }
    }
    // gRPC: one envelope of at most readMaxBytes.
    const maxBody = grpc ? readMaxBytes + 5 : readMaxBytes;

    const chunks: Buffer[] = [];
    let size = 0;
    const stream = req as unknown as Readable;
    const detach = () => {
      stream.off("data", onData);
      stream.off("end", onEnd);
    };
    const handOff = (rest: boolean) => {
      detach();
      replay(req, chunks, rest);
      next(req, res);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > maxBody || (hint >= 0 && size > hint)) {
        stream.pause();
        handOff(true);
      }
    };
    const onEnd = () => {
      detach();
      if (hint >= 0 && size !== hint) return handOff(false);
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      void serve(body).then(undefined, (e: unknown) => {
        // A write after the client went away; nothing left to answer.
        if (!res.headersSent && !res.writableEnded) res.destroy(e instanceof Error ? e : undefined);
      });
    };
    stream.on("data", onData);
    stream.on("end", onEnd);

    const serve = async (body: Buffer): Promise<void> => {
      const parsed = await parse(body);
      if (parsed === undefined) return handOff(false);
      if ("malformed" in parsed) {
        // As rejectMalformedRequests: inside logging and metrics, before auth and the implementation.
        opts.record(route.method)(parsed.malformed);
        // connect-node answers it from a second run of the call without the request's encoding header.
        compression = negotiate(null);
        return web ? grpcWebError(res, undefined, parsed.malformed) : grpc ? grpcError(res, undefined, parsed.malformed) : connectError(res, undefined, parsed.malformed);
      }
      const input = parsed.input;
      const done = opts.record(route.method);
      const peer = peerOf(req);
      const values = clientAddressContextValues(req).set(peerKey, peer);
      const ctx = new LeanContext(route.method, web ? "grpc-web" : grpc ? "grpc" : "connect", values, req, timeout.timeoutMs);
      let output: MessageShape<DescMessage>;
      try {
        const caller = await opts.authorize(route.method.parent.typeName, header(req, "authorization"), peer);
        if (caller !== undefined) values.set(callerKey, caller);
        output = normalize(route.method.output, await route.impl(input, ctx));
        done();
      } catch (e) {
        done(e);
        ctx.end(e);
        const error = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
        return web ? grpcWebError(res, ctx, error) : grpc ? grpcError(res, ctx, error) : connectError(res, ctx, error);
      }
      ctx.end();
      if (grpc) return (web ? grpcWebAnswer : grpcAnswer)(res, ctx, encodeMessage(route.method.output, output));
      return connectAnswer(res, ctx, output);
    };

    /**
     * The request message, the INVALID_ARGUMENT a malformed one gets, or undefined when
     * connect-node should have the request (it will refuse it, in its own way).
     */
    const parse = async (body: Buffer): Promise<{ input: unknown } | { malformed: ConnectError } | undefined> => {
      let bytes: Uint8Array = body;
      if (grpc) {
        if (body.length < 5 || (body[0]! & ~1) !== 0 || body.readUInt32BE(1) !== body.length - 5) return undefined;
        bytes = body.subarray(5);
        if (body[0]! & 1) {
          if (!compression.request) return { malformed: flaggedWithoutEncoding() };
          try {
            bytes = await compression.request.decompress(bytes, readMaxBytes);
          } catch {
            return undefined;
          }
        }
      } else if (compression.request) {
        try {
          bytes = await compression.request.decompress(bytes, readMaxBytes);
        } catch {
          return undefined;
        }
      }
      if (bytes.byteLength > readMaxBytes) return undefined;
      const binary = protocol !== "connect-json";
      try {
        return { input: withoutStack(() => (binary ? decodeMessage(route.method.input, bytes) : fromJsonString(route.method.input, decoder.decode(bytes), jsonRead))) };
      } catch (e) {
        // What connect-node answers: withRequestParseErrors' parse of the same message (protobuf-es's
        // own, parseError). Without parsing it again where this parse was that one: the generated
        // binary decoders throw fromBinary's errors, messages included (test/codec/decode.test.ts),
        // and JSON in valid UTF-8 is the same text for the same fromJsonString (with other bytes the
        // strict decoder's error is the answer: parseError finds it).
        const malformed = binary || (sameJsonRead && isUtf8(bytes)) ? malformedMessage(e, binary) : parseError(route.method, bytes, binary, opts.jsonOptions ?? {});
        return malformed === undefined ? undefined : { malformed };
      }
    };

    const compressed = async (bytes: Uint8Array): Promise<Uint8Array | undefined> =>
      compression.response && bytes.byteLength >= compressMinBytes ? compression.response.compress(bytes) : undefined;

    const connectAnswer = async (r: NodeServerResponse, ctx: LeanContext, output: MessageShape<DescMessage>): Promise<void> => {
      const bytes = protocol === "connect-json" ? encoder.encode(toJsonString(route.method.output, output, jsonWrite)) : encodeMessage(route.method.output, output);
      const type = protocol === "connect-json" ? "application/json" : "application/proto";
      if (ctx.setHeader !== undefined || ctx.setTrailer !== undefined) {
        return connectWrite(r, 200, withContext(new Headers({ "content-type": type }), ctx), bytes);
      }
      const packed = await compressed(bytes);
      const body = packed ?? bytes;
      // The order connect-node's sorted Headers give.
      const headers: Record<string, string> = packed ? { "content-encoding": compression.response!.name } : {};
      headers["content-length"] = String(body.byteLength);
      headers["content-type"] = type;
      r.writeHead(200, headers);
      r.end(body);
    };

    const connectError = (r: NodeServerResponse, ctx: LeanContext | undefined, error: ConnectError): Promise<void> => {
      const h = withContext(new Headers(), ctx);
      h.set("content-type", "application/json");
      error.metadata.forEach((value, key) => h.set(key, value));
      return connectWrite(r, codeToHttpStatus(error.code), h, errorToJsonBytes(error, jsonWrite));
    };

    const connectWrite = async (r: NodeServerResponse, status: number, h: Headers, bytes: Uint8Array): Promise<void> => {
      const packed = await compressed(bytes);
      if (packed) h.set("content-encoding", compression.response!.name);
      const body = packed ?? bytes;
      h.set("content-length", String(body.byteLength));
      r.writeHead(status, nodeHeaders(h));
      r.end(body);
    };

    const grpcType = web ? "application/grpc-web+proto" : "application/grpc+proto";
    const grpcHeaders = (): Record<string, string> =>
      compression.response ? { "content-type": grpcType, "grpc-encoding": compression.response.name } : { "content-type": grpcType };

    /** An envelope as connect-node's transformCompressEnvelope leaves it: compressed (flag 1) from compressMinBytes on. */
    const envelope = async (flags: number, bytes: Uint8Array): Promise<Buffer> => {
      const packed = await compressed(bytes);
      const payload = packed ?? bytes;
      const frame = Buffer.allocUnsafe(5 + payload.byteLength);
      frame[0] = packed ? flags | 1 : flags;
      frame.writeUInt32BE(payload.byteLength, 1);
      frame.set(payload, 5);
      return frame;
    };

    // gRPC-Web: the status goes in a trailer frame at the end of the body (connect-node's trailerSerialize).
    const grpcWebTrailer = (ctx: LeanContext | undefined, error?: ConnectError): Promise<Buffer> => {
      const trailer = new Headers({ "grpc-status": "0" });
      if (ctx?.setTrailer) withHeaders(trailer, ctx.setTrailer);
      if (error) setTrailerStatus(trailer, error);
      return envelope(trailerFlag, trailerSerialize(trailer));
    };

    const grpcWebAnswer = async (r: NodeServerResponse, ctx: LeanContext, bytes: Uint8Array): Promise<void> => {
      const message = await envelope(0, bytes);
      const trailer = await grpcWebTrailer(ctx);
      r.writeHead(200, ctx.setHeader ? nodeHeaders(withHeaders(new Headers(grpcHeaders()), ctx.setHeader)) : grpcHeaders());
      r.write(message);
      r.end(trailer);
    };

    const grpcWebError = async (r: NodeServerResponse, ctx: LeanContext | undefined, error: ConnectError): Promise<void> => {
      const trailer = await grpcWebTrailer(ctx, error);
      r.writeHead(200, ctx?.setHeader ? nodeHeaders(withHeaders(new Headers(grpcHeaders()), ctx.setHeader)) : grpcHeaders());
      r.end(trailer);
    };

    const grpcAnswer = async (r: NodeServerResponse, ctx: LeanContext, bytes: Uint8Array): Promise<void> => {
      const packed = await compressed(bytes);
      const payload = packed ?? bytes;
      const frame = Buffer.allocUnsafe(5 + payload.byteLength);
      frame[0] = packed ? 1 : 0;
      frame.writeUInt32BE(payload.byteLength, 1);
      frame.set(payload, 5);
      const h = ctx.setHeader ? nodeHeaders(withHeaders(new Headers(grpcHeaders()), ctx.setHeader)) : grpcHeaders();
      const trailer = ctx.setTrailer ? nodeHeaders(withHeaders(new Headers({ "grpc-status": "0" }), ctx.setTrailer)) : { "grpc-status": "0" };
      r.writeHead(200, h);
      r.write(frame);
      (r as ServerResponse).addTrailers(trailer);
      r.end();
    };

    const grpcError = async (r: NodeServerResponse, ctx: LeanContext | undefined, error: ConnectError): Promise<void> => {
      const h = ctx?.setHeader ? nodeHeaders(withHeaders(new Headers(grpcHeaders()), ctx.setHeader)) : grpcHeaders();
      const trailer = new Headers({ "grpc-status": "0" });
      if (ctx?.setTrailer) withHeaders(trailer, ctx.setTrailer);
      setTrailerStatus(trailer, error);
      r.writeHead(200, h);
      (r as ServerResponse).addTrailers(nodeHeaders(trailer));
      r.end();
    };
  };
}

/** connect-node copies what the implementation set over its own headers (copyHeaders, then trailerMux for Connect). */
function withHeaders(target: Headers, from: Headers): Headers {
  from.forEach((value, key) => target.set(key, value));
  return target;
}

function withContext(target: Headers, ctx: LeanContext | undefined): Headers {
  if (ctx?.setHeader) withHeaders(target, ctx.setHeader);
  ctx?.setTrailer?.forEach((value, key) => target.append(`trailer-${key}`, value));
  return target;
}

/** As connect's normalize(): an implementation may return a message or an init object. */
function normalize(desc: DescMessage, value: unknown): MessageShape<DescMessage> {
  const v = value as { $typeName?: string } | undefined;
  if (v !== undefined && v !== null && v.$typeName === desc.typeName) return v as MessageShape<DescMessage>;
  return create(desc, (v ?? {}) as never);
}

/**
 * Hands a request whose body was partly or wholly read to connect-node: its body iterator (what
 * connect-node reads) yields the chunks read so far, then the rest of the stream if `rest`.
 */
function replay(req: NodeServerRequest, chunks: readonly Buffer[], rest: boolean): void {
  const readable = req as unknown as IncomingMessage & { iterator(o: { destroyOnReturn: boolean }): AsyncIterableIterator<Buffer> };
  const tail = rest ? readable.iterator({ destroyOnReturn: false }) : undefined;
  Object.defineProperty(req, Symbol.asyncIterator, {
    configurable: true,
    value: async function* () {
      yield* chunks;
      if (tail) yield* tail;
    },
  });
}
