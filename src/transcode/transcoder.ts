/**
 * A REST gateway for Connect services, driven by their google.api.http annotations: it matches the
 * HTTP request to a route, builds the request message, calls the method through a Connect
 * Transport (so the server's interceptors run as for any other protocol) and writes JSON back,
 * server streams as newline-delimited JSON. It does not know the services it serves.
 */
import { toJson, type JsonValue, type JsonWriteOptions, type Registry } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type Transport } from "@connectrpc/connect";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { statusJson } from "./errors.js";
import { httpStatusFromCode } from "./http-status.js";
import { buildRequest } from "./request.js";
import { routesOf, type Route } from "./routes.js";
import { matchTemplate, specificity, splitPath, type Bindings } from "./template.js";
import type { DescMethodServerStreaming, DescMethodUnary, DescService } from "@bufbuild/protobuf";

export type TranscodeRequest = IncomingMessage | Http2ServerRequest;
export type TranscodeResponse = ServerResponse | Http2ServerResponse;

/** Writes an error response; the default writes google.rpc.Status JSON with grpc-gateway's HTTP status. */
export type ErrorWriter = (res: TranscodeResponse, err: ConnectError, route: Route | undefined) => void;

export interface TranscoderOptions {
  readonly services: readonly DescService[];
  /** How calls are made: an in-process transport with the server's interceptors, or a client transport. */
  readonly transport: Transport;
  /** Prints Any fields and error details; passed to fromJson/toJson. */
  readonly registry?: Registry;
  /** JSON output options (e.g. alwaysEmitImplicit). */
  readonly jsonWriteOptions?: Partial<Omit<JsonWriteOptions, "registry">>;
  /** Values for the call's context (e.g. the peer), computed per HTTP request. */
  readonly contextValues?: (req: TranscodeRequest) => ContextValues;
  /** Largest request body read. Default 4 MiB. */
  readonly maxBodyBytes?: number;
  /** Only paths starting with one of these are claimed (404s included). Default: every path a route could match. */
  readonly prefixes?: readonly string[];
  readonly writeError?: ErrorWriter;
}

export interface Transcoder {
  readonly routes: readonly Route[];
  /** Answers the request if it is ours and resolves true; resolves false (untouched) otherwise. */
  handle(req: TranscodeRequest, res: TranscodeResponse): Promise<boolean>;
}

/** Headers not forwarded to the call: hop-by-hop, framing, and those the transport sets itself. */
const DROPPED_HEADERS = new Set(["host", "connection", "content-length", "content-type", "transfer-encoding", "keep-alive", "upgrade", "te", "accept-encoding", "content-encoding"]);

/** Throws RouteConfigError for conflicting or invalid annotations. */
export function createTranscoder(opts: TranscoderOptions): Transcoder {
  const routes = routesOf(opts.services);
  const maxBodyBytes = opts.maxBodyBytes ?? 4 << 20;
  const prefixes = opts.prefixes ?? [...new Set(routes.map((r) => firstLiteral(r)))];
  const writeError = opts.writeError ?? ((res, err) => writeStatus(res, err, opts.registry));
  const writeOptions = { ...opts.jsonWriteOptions, ...(opts.registry ? { registry: opts.registry } : {}) };

  async function handle(req: TranscodeRequest, res: TranscodeResponse): Promise<boolean> {
    const url = new URL(req.url ?? "/", "http://transcoder.invalid");
    if (!prefixes.some((p) => p === "" || url.pathname === p || url.pathname.startsWith(p.endsWith("/") ? p : `${p}/`) || url.pathname.startsWith(`${p}:`))) {
      return false;
    }
    const split = splitPath(url.pathname);
    const method = (req.method ?? "GET").toUpperCase();
    let best: { route: Route; bindings: Bindings; rank: number[] } | undefined;
    const allowed = new Set<string>();
    if (split) {
      for (const route of routes) {
        const bindings = matchTemplate(route.template, split);
        if (!bindings) continue;
        allowed.add(route.httpMethod);
        if (route.httpMethod !== method && !(method === "HEAD" && route.httpMethod === "GET")) continue;
        const rank = specificity(route.template);
        if (!best || compareRank(rank, best.rank) > 0) best = { route, bindings, rank };
      }
    }
    if (!best) {
      if (allowed.size === 0) {
        writeError(res, new ConnectError(`no route for ${method} ${url.pathname}`, Code.NotFound), undefined);
      } else {
        res.setHeader("allow", [...allowed].sort().join(", "));
        writeJson(res, 405, { code: Code.Unimplemented, message: `${method} is not allowed on ${url.pathname}; allowed: ${[...allowed].sort().join(", ")}`, details: [] });
      }
      return true;
    }
    const { route, bindings } = best;
    try {
      const body = route.body ? await readJsonBody(req, maxBodyBytes) : undefined;
      const input = buildRequest(route, bindings, url.searchParams, body, opts.registry);
      const header = forwardedHeaders(req);
      const contextValues = opts.contextValues?.(req);
      const abort = new AbortController();
      res.on("close", () => abort.abort());
      const m = route.method;
      if (m.methodKind === "unary") {
        const out = await opts.transport.unary(m as DescMethodUnary, abort.signal, undefined, header, input, contextValues);
        writeJson(res, 200, responseJson(route, out.message, writeOptions));
        return true;
      }
      // Server streaming: headers go out with the first message (or the error, if it comes first).
      if (m.methodKind !== "server_streaming") throw new ConnectError("only unary and server-streaming methods are transcoded", Code.Unimplemented);
      const out = await opts.transport.stream(m as DescMethodServerStreaming, abort.signal, undefined, header, single(input), contextValues);
      let started = false;
      try {
        for await (const msg of out.message) {
          if (!started) {
            res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store", "x-content-type-options": "nosniff" });
            started = true;
          }
          write(res, `${JSON.stringify({ result: responseJson(route, msg, writeOptions) })}\n`);
        }
      } catch (e) {
        if (!started) throw e;
        // grpc-gateway's stream error envelope: one last line.
        if (!abort.signal.aborted) write(res, `${JSON.stringify({ error: statusJson(ConnectError.from(e), opts.registry) })}\n`);
      }
      if (!started) res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
      res.end();
      return true;
    } catch (e) {
      if (res.headersSent) res.end();
      else writeError(res, ConnectError.from(e), route);
      return true;
    }
  }
  return { routes, handle };
}

/** One NDJSON line (both response types have write(string); TypeScript cannot unify their overloads). */
function write(res: TranscodeResponse, line: string): void {
  (res as ServerResponse).write(line);
}

function compareRank(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function firstLiteral(r: Route): string {
  const s = r.template.segments[0];
  return s?.kind === "literal" ? `/${s.value}` : "";
}

async function* single<T>(x: T): AsyncIterable<T> {
  yield x;
}

function responseJson(route: Route, message: unknown, options: Partial<JsonWriteOptions>): JsonValue {
  const json = toJson(route.method.output, message as never, options) as Record<string, JsonValue>;
  if (!route.responseBody) return json;
  const f = route.responseBody;
  const v = json[f.jsonName];
  if (v !== undefined) return v;
  // An unset field is absent from toJson's output: send what its empty value looks like.
  return f.fieldKind === "list" ? [] : f.fieldKind === "map" || f.fieldKind === "message" ? {} : null;
}

function forwardedHeaders(req: TranscodeRequest): Headers {
  const h = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || k.startsWith(":") || DROPPED_HEADERS.has(k)) continue;
    for (const one of Array.isArray(v) ? v : [v]) h.append(k, one);
  }
  return h;
}

async function readJsonBody(req: TranscodeRequest, max: number): Promise<JsonValue | undefined> {
  const type = String(req.headers["content-type"] ?? "application/json").split(";")[0]!.trim().toLowerCase();
  const declared = Number(req.headers["content-length"] ?? NaN);
  if (declared > max) throw new ConnectError(`request body larger than ${max} bytes`, Code.ResourceExhausted);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new ConnectError(`request body larger than ${max} bytes`, Code.ResourceExhausted);
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  if (type !== "application/json" && !type.endsWith("+json")) {
    throw new ConnectError(`content-type ${type} is not accepted: send application/json`, Code.InvalidArgument);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as JsonValue;
  } catch (e) {
    throw new ConnectError(`request body is not valid JSON: ${(e as Error).message}`, Code.InvalidArgument);
  }
}

function writeJson(res: TranscodeResponse, status: number, body: JsonValue): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

/** The default error writer: grpc-gateway's HTTP status and a google.rpc.Status JSON body. */
export function writeStatus(res: TranscodeResponse, err: ConnectError, registry?: Registry): void {
  writeJson(res, httpStatusFromCode(err.code), statusJson(err, registry));
}
