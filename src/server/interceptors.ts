// Server interceptors (one log line and metrics per RPC) and the /metrics HTTP route.
import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryRequest, type StreamRequest } from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { Counter, Histogram, type Registry } from "prom-client";
import { withoutStack } from "../domain/stackless.js";
import type { NodeHandlerFn } from "./listener.js";

/** Called once per RPC when it ends: after the unary response, or when a response stream finishes or is abandoned. */
type RpcObserver = (info: { procedure: string; labels: RpcLabels; code: Code | "OK"; durationMs: number; error?: ConnectError }) => void;

interface RpcLabels {
  grpc_type: string;
  grpc_service: string;
  grpc_method: string;
}

function rpcLabels(req: UnaryRequest | StreamRequest): RpcLabels {
  return { grpc_type: grpcType(req.method.methodKind), grpc_service: req.service.typeName, grpc_method: req.method.name };
}

/** Runs `observe` exactly once per RPC, including streaming RPCs (timed until their stream ends). */
function observingInterceptor(observe: RpcObserver): Interceptor {
  return (next) => async (req: UnaryRequest | StreamRequest) => {
    const procedure = `/${req.service.typeName}/${req.method.name}`;
    const start = performance.now();
    const done = (error?: unknown): void => {
      const durationMs = performance.now() - start;
      const labels = rpcLabels(req);
      if (error === undefined) {
        observe({ procedure, labels, code: "OK", durationMs });
      } else {
        const err = ConnectError.from(error);
        observe({ procedure, labels, code: err.code, durationMs, error: err });
      }
    };
    let res;
    try {
      res = await next(req);
    } catch (e) {
      done(e);
      throw e;
    }
    if (!res.stream) {
      done();
      return res;
    }
    return { ...res, message: observeStream(res, done, req.signal) } satisfies StreamResponse;
  };
}

/** A client that went away (counted in the metrics, never logged with a stack). */
const abandoned = () => withoutStack(() => new ConnectError("stream abandoned", Code.Canceled));

/**
 * The response stream, calling `done` once when it ends: finished, failed, or abandoned by its
 * client. Abandoned is told by the call's signal (the client went away), not only by the consumer
 * stopping early: connect-node may never resume or return a response stream whose client left
 * during a write (Node neither completes nor fails a write to an HTTP/1.1 socket already destroyed
 * but not yet closed), and a generator that is never resumed never runs its `finally`.
 */
function observeStream<T>(res: { message: AsyncIterable<T> }, done: (error?: unknown) => void, signal: AbortSignal): AsyncIterable<T> {
  let finished = false;
  const finish = (error?: unknown): void => {
    if (finished) return;
    finished = true;
    signal.removeEventListener("abort", onAbort);
    done(error);
  };
  const onAbort = (): void => finish(abandoned());
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return (async function* () {
    try {
      yield* res.message;
      finish();
    } catch (e) {
      finish(e);
      throw e;
    } finally {
      // The consumer stopped early (client went away).
      finish(abandoned());
    }
  })();
}

/** gRPC-style code name: "OK", "NotFound", "Internal", ... */
export function codeName(code: Code | "OK"): string {
  return code === "OK" ? "OK" : Code[code];
}

// Codes that point at a server problem rather than at the caller.
const serverSide = new Set<Code>([Code.Unknown, Code.Internal, Code.Unavailable, Code.DataLoss, Code.Unimplemented]);

/** One structured log line per RPC: procedure, code, durationMs (and the error message when not OK). */
export function createLoggingInterceptor(logger: Logger): Interceptor {
  return observingInterceptor(rpcLogger(logger));
}

function rpcLogger(logger: Logger): RpcObserver {
  return ({ procedure, code, durationMs, error }) => {
    const fields = { procedure, code: codeName(code), durationMs: Math.round(durationMs * 1000) / 1000 };
    if (!error) logger.info(fields, "rpc");
    else if (serverSide.has(error.code)) logger.error({ ...fields, err: error.rawMessage }, "rpc");
    else logger.info({ ...fields, err: error.rawMessage }, "rpc");
  };
}

export interface RpcMetricsOptions {
  /** Histogram buckets in seconds. */
  buckets?: number[];
}

/** go-grpc-prometheus' grpc_type label. */
function grpcType(kind: DescMethod["methodKind"]): string {
  switch (kind) {
    case "unary":
      return "unary";
    case "client_streaming":
      return "client_stream";
    case "server_streaming":
      return "server_stream";
    default:
      return "bidi_stream";
  }
}

function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/**
 * The metrics dashboards for gRPC servers expect (the names and labels of go-grpc-prometheus, for
 * every protocol served: gRPC, gRPC-Web, Connect, and the vendor routes' in-process calls):
 * counter `grpc_server_started_total{grpc_type,grpc_service,grpc_method}`, counter
 * `grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}` and histogram
 * `grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}`, in the given registry (reused
 * if they already exist there, so two apps can share a registry).
 */
export function createMetricsInterceptor(registry: Registry, opts: RpcMetricsOptions = {}): Interceptor {
  const { started, observer } = rpcMetrics(registry, opts);
  const observe = observingInterceptor(observer);
  return (next) => {
    const inner = observe(next);
    return (req) => {
      started.inc(rpcLabels(req));
      return inner(req);
    };
  };
}

function rpcMetrics(registry: Registry, opts: RpcMetricsOptions) {
  const base = ["grpc_type", "grpc_service", "grpc_method"] as const;
  const withCode = [...base, "grpc_code"] as const;
  const started = metric(
    registry,
    "grpc_server_started_total",
    () => new Counter({ name: "grpc_server_started_total", help: "Total number of RPCs started on the server.", labelNames: base, registers: [registry] }),
  );
  const handled = metric(
    registry,
    "grpc_server_handled_total",
    () =>
      new Counter({
        name: "grpc_server_handled_total",
        help: "Total number of RPCs completed on the server, regardless of success or failure.",
        labelNames: withCode,
        registers: [registry],
      }),
  );
  const seconds = metric(
    registry,
    "grpc_server_handling_seconds",
    () =>
      new Histogram({
        name: "grpc_server_handling_seconds",
        help: "Histogram of response latency (seconds) of RPCs handled by the server (streams: until the stream ends).",
        labelNames: base,
        buckets: opts.buckets ?? [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers: [registry],
      }),
  );
  const observer: RpcObserver = ({ labels, code, durationMs }) => {
    handled.inc({ ...labels, grpc_code: codeName(code) });
    seconds.observe(labels, durationMs / 1000);
  };
  return { started, handled, seconds, observer };
}

/**
 * For RPCs served outside connect-node (the lean Watch and unary routes): the same log line and
 * grpc_server_* metrics the logging and metrics interceptors give a call. Call it when the RPC
 * starts; call what it returns once, when the RPC ends (with its error, if any). The labelled
 * children of the metrics are kept per method (and code), so a call costs no label hashing.
 */
export function createRpcRecorder(logger: Logger, registry: Registry): (method: DescMethod) => (error?: unknown) => void {
  const log = rpcLogger(logger);
  const { started, handled, seconds } = rpcMetrics(registry, {});
  type Children = { labels: RpcLabels; procedure: string; started: { inc(): void }; seconds: { observe(v: number): void }; handled: Map<string, { inc(): void }> };
  const perMethod = new WeakMap<DescMethod, Children>();
  const childrenOf = (method: DescMethod): Children => {
    let c = perMethod.get(method);
    if (c === undefined) {
      const labels: RpcLabels = { grpc_type: grpcType(method.methodKind), grpc_service: method.parent.typeName, grpc_method: method.name };
      c = { labels, procedure: `/${method.parent.typeName}/${method.name}`, started: started.labels(labels), seconds: seconds.labels(labels), handled: new Map() };
      perMethod.set(method, c);
    }
    return c;
  };
  return (method) => {
    const c = childrenOf(method);
    c.started.inc();
    const start = performance.now();
    let done = false;
    return (error) => {
      if (done) return;
      done = true;
      const durationMs = performance.now() - start;
      const err = error === undefined ? undefined : ConnectError.from(error);
      const code = err === undefined ? ("OK" as const) : err.code;
      log(err === undefined ? { procedure: c.procedure, labels: c.labels, code, durationMs } : { procedure: c.procedure, labels: c.labels, code, durationMs, error: err });
      const name = codeName(code);
      let h = c.handled.get(name);
      if (h === undefined) c.handled.set(name, (h = handled.labels({ ...c.labels, grpc_code: name })));
      h.inc();
      c.seconds.observe(durationMs / 1000);
    };
  };
}

/**
 * Wraps a handler so that `GET <path>` (default /metrics) serves the registry in Prometheus text format,
 * over HTTP/1.1 or HTTP/2; every other request goes to `handler`.
 */
export function withMetricsEndpoint(
  handler: NodeHandlerFn,
  registry: Registry,
  path = "/metrics",
  text: () => Promise<string> = () => registry.metrics(),
): NodeHandlerFn {
  return (req, res) => {
    const url = req.url ?? "";
    const pathname = url.split("?", 1)[0];
    if (pathname !== path || (req.method !== "GET" && req.method !== "HEAD")) {
      handler(req, res);
      return;
    }
    text().then(
      (text) => {
        res.writeHead(200, { "content-type": registry.contentType, "cache-control": "no-store" });
        if (req.method === "HEAD") res.end();
        else res.end(text);
      },
      () => {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("metrics collection failed\n");
      },
    );
  };
}
