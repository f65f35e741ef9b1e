/**
 * WatchConversations over gRPC on HTTP/2, served without connect-node: the route thousands of
 * long-lived watchers of internal services use. connect-node's per-call machinery (context,
 * interceptor chain, async generators per envelope transform, header objects) costs tens of KB per
 * open stream; here a watcher is its HTTP/2 stream plus a WatchSession (owner, cursor, pending
 * changes, one timer), each change is encoded to protobuf once and its bytes shared by every
 * response that carries it, and frames are written straight onto the stream, which is where
 * backpressure is read (a client that stops reading makes the session hold changes, then end
 * with RESOURCE_EXHAUSTED).
 *
 * Everything else a call gets from the Connect stack is kept: the same authentication (bearer
 * tokens, protected mode) and owner check (watchSpecOf, shared with the connect-node route), the
 * same log line and grpc_server_* metrics (createRpcRecorder), grpc-timeout, gzip-compressed
 * requests, malformed requests as INVALID_ARGUMENT, graceful shutdown (the hub ends the stream
 * with status OK). Connect, gRPC-Web and gRPC over HTTP/1.1 go on to connect-node unchanged.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type * as http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { ConversationChangeSchema, MarkService, WatchConversationsRequestSchema } from "../../gen/convmark/v1/mark_service_pb.js";
import type { Authenticator } from "../auth/authenticate.js";
import { peerOf } from "../auth/peer.js";
import { decodeMessage } from "../codec/decode.js";
import { encodeMessage } from "../codec/encode.js";
import { withoutStack } from "../domain/stackless.js";
import type { Change } from "../store/store.js";
import { feedCursorEncoder } from "../service/feed-cursor.js";
import { changeToProto, watchSpecOf, type MarkServiceDeps } from "../service/mark-service.js";
import { startWatch, type WatchHandle } from "../service/watch-session.js";
import type { NodeHandlerFn, NodeServerRequest } from "./listener.js";

export const WATCH_PATH = `/${MarkService.typeName}/${MarkService.method.watchConversations.name}`;

export interface WatchRouteOptions {
  readonly deps: Pick<MarkServiceDeps, "store" | "limits" | "feed" | "heartbeatMs">;
  readonly authenticate: Authenticator;
  /** createRpcRecorder(logger, registry): one log line and the grpc_server_* metrics per call. */
  readonly record: (method: typeof MarkService.method.watchConversations) => (error?: unknown) => void;
  /** Largest request message accepted (default 64 KiB: an owner ID and a cursor). */
  readonly maxRequestBytes?: number;
}

const GRPC_CONTENT_TYPE = /^application\/grpc(?:\+proto)?(?:;|$)/i;

/** True for a request this route serves: gRPC (protobuf) on HTTP/2 for WatchConversations. */
export function isLeanWatchRequest(req: NodeServerRequest): boolean {
  if (req.httpVersionMajor !== 2 || req.method !== "POST") return false;
  const url = req.url ?? "";
  if (url !== WATCH_PATH && !url.startsWith(`${WATCH_PATH}?`)) return false;
  return GRPC_CONTENT_TYPE.test(req.headers["content-type"] ?? "");
}

// ---- protobuf framing: WatchConversationsResponse { repeated ConversationChange changes = 1; string cursor = 2; }

const varintSize = (n: number) => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[at++] = n;
  return at;
}

// Each change's bytes, made once: every watcher of the owner (and of every owner) sends the same ones.
const encodedChanges = new WeakMap<Change, Uint8Array>();

function encodedChange(c: Change): Uint8Array {
  let b = encodedChanges.get(c);
  if (b === undefined) {
    b = encodeMessage(ConversationChangeSchema, changeToProto(c));
    encodedChanges.set(c, b);
  }
  return b;
}

/** One gRPC length-prefixed message holding a WatchConversationsResponse. */
export function watchResponseFrame(changes: readonly Change[], cursor: string): Buffer {
  const parts = changes.map(encodedChange);
  const cursorBytes = Buffer.byteLength(cursor);
  let size = 1 + varintSize(cursorBytes) + cursorBytes;
  for (const p of parts) size += 1 + varintSize(p.length) + p.length;
  const buf = Buffer.allocUnsafe(5 + size);
  buf[0] = 0; // not compressed
  buf.writeUInt32BE(size, 1);
  let at = 5;
  for (const p of parts) {
    buf[at++] = 0x0a; // field 1, length-delimited
    at = writeVarint(buf, at, p.length);
    buf.set(p, at);
    at += p.length;
  }
  buf[at++] = 0x12; // field 2, length-delimited
  at = writeVarint(buf, at, cursorBytes);
  buf.write(cursor, at, "utf8");
  return buf;
}

// ---- gRPC status in trailers (grpc-message percent-encoded, as the gRPC HTTP/2 spec has it)

function statusHeaders(error: ConnectError | undefined): Record<string, string> {
  if (!error) return { "grpc-status": "0" };
  return { "grpc-status": String(error.code), "grpc-message": encodeURIComponent(error.rawMessage) };
}

/** grpc-timeout: "<1..8 digits><unit>"; undefined when absent, NaN when malformed. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return Number.NaN;
  const unitMs = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }[m[2] as "H"];
  return Number(m[1]) * unitMs;
}

function decodeRequest(body: Buffer, encoding: string | undefined): { ownerUserId: string; cursor: string } {
  if (body.length < 5) throw new ConnectError("protocol error: missing request message", Code.InvalidArgument);
  const flags = body[0]!;
  const len = body.readUInt32BE(1);
  if (body.length !== 5 + len) throw new ConnectError("protocol error: a server-streaming call takes exactly one request message", Code.InvalidArgument);
  let payload = body.subarray(5);
  if (flags & 1) {
    if (encoding !== "gzip") throw new ConnectError(`protocol error: compressed message, but grpc-encoding is ${encoding ?? "absent"}`, Code.InvalidArgument);
    try {
      payload = gunzipSync(payload, { maxOutputLength: 1 << 20 });
    } catch {
      throw new ConnectError("protocol error: the gzip-compressed request message does not decompress", Code.InvalidArgument);
    }
  }
  try {
    return decodeMessage(WatchConversationsRequestSchema, payload);
  } catch (e) {
    throw new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.InvalidArgument);
  }
}

/** Wraps `next`: gRPC WatchConversations calls on HTTP/2 are served here, every other request goes on. */
export function leanWatchRoute(opts: WatchRouteOptions): (next: NodeHandlerFn) => NodeHandlerFn {
  const maxRequestBytes = opts.maxRequestBytes ?? 64 << 10;
  return (next) => (req, res) => {
    if (!isLeanWatchRequest(req)) return next(req, res);
    serveWatch(req as http2.Http2ServerRequest, res as http2.Http2ServerResponse, opts, maxRequestBytes);
  };
}

function serveWatch(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, opts: WatchRouteOptions, maxRequestBytes: number): void {
  const done = opts.record(MarkService.method.watchConversations);
  const stream = req.stream;
  let handle: WatchHandle | undefined;
  let finished = false;
  let deadline: NodeJS.Timeout | undefined;
  const contentType = { "content-type": "application/grpc+proto", "grpc-accept-encoding": "gzip" };

  const headers = () => {
    if (!res.headersSent) res.writeHead(200, contentType);
  };
  const end = (error?: ConnectError) => {
    if (finished) return;
    finished = true;
    if (deadline) clearTimeout(deadline);
    handle?.close();
    if (!stream.destroyed && !stream.closed) {
      if (res.headersSent) {
        res.addTrailers(statusHeaders(error));
        res.end();
      } else {
        // Trailers-Only: the status in the one HEADERS frame.
        res.writeHead(200, { ...contentType, ...statusHeaders(error) });
        res.end();
      }
    }
    done(error);
  };
  // The client went away (cancelled, reset, connection lost) before the stream ended.
  res.once("close", () => {
    if (finished) return;
    finished = true;
    if (deadline) clearTimeout(deadline);
    handle?.close();
    done(new ConnectError("stream abandoned", Code.Canceled));
  });
  stream.on("error", () => {}); // a reset stream; 'close' follows

  const timeoutMs = parseGrpcTimeout(req.headers["grpc-timeout"] as string | undefined);
  if (timeoutMs !== undefined) {
    if (Number.isNaN(timeoutMs)) return end(new ConnectError(`protocol error: invalid grpc-timeout "${String(req.headers["grpc-timeout"])}"`, Code.InvalidArgument));
    deadline = setTimeout(() => end(new ConnectError("the deadline (grpc-timeout) has passed", Code.DeadlineExceeded)), Math.max(1, timeoutMs));
    deadline.unref();
  }
  const encoding = req.headers["grpc-encoding"] as string | undefined;
  if (encoding !== undefined && encoding !== "identity" && encoding !== "gzip") {
    return end(new ConnectError(`grpc-encoding ${encoding} is not supported (gzip, identity)`, Code.Unimplemented));
  }

  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxRequestBytes) {
      req.off("data", onData);
      req.resume(); // read and drop the rest; the stream stays usable for the answer
      end(new ConnectError(`request message larger than ${maxRequestBytes} bytes`, Code.ResourceExhausted));
      return;
    }
    chunks.push(chunk);
  };
  req.on("data", onData);
  req.once("end", () => {
    if (finished) return;
    void begin(Buffer.concat(chunks, size));
  });

  const begin = async (body: Buffer) => {
    try {
      const msg = withoutStack(() => decodeRequest(body, encoding)); // its refusals are answered, not logged
      const caller = await opts.authenticate(req.headers.authorization, peerOf(req));
      if (finished) return;
      const spec = watchSpecOf(opts.deps, msg, caller);
      const cursorOf = feedCursorEncoder(spec.owner);
      handle = startWatch(spec, {
        ready: () => !stream.writableNeedDrain,
        send(changes, cursor) {
          if (finished || stream.destroyed) return;
          headers();
          res.write(watchResponseFrame(changes, cursorOf(cursor)));
        },
        end,
      });
      if (!finished) stream.on("drain", () => handle?.drained());
    } catch (e) {
      end(ConnectError.from(e));
    }
  };
}
