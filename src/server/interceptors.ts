// Server interceptors (one log line and metrics per RPC) and the /metrics HTTP route.
import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryRequest, type StreamRequest } from "@connectrpc/connect";
import type { Logger } from "pino";
import { Counter, Histogram, type Registry } from "prom-client";
import type { NodeHandlerFn } from "./listener.js";

/** Called once per RPC when it ends: after the unary response, or when a response stream finishes or is abandoned. */
type RpcObserver = (info: { procedure: string; code: Code | "OK"; durationMs: number; error?: ConnectError }) => void;

/** Runs `observe` exactly once per RPC, including streaming RPCs (timed until their stream ends). */
function observingInterceptor(observe: RpcObserver): Interceptor {
  return (next) => async (req: UnaryRequest | StreamRequest) => {
    const procedure = `/${req.service.typeName}/${req.method.name}`;
    const start = performance.now();
    const done = (error?: unknown): void => {
      const durationMs = performance.now() - start;
      if (error === undefined) {
        observe({ procedure, code: "OK", durationMs });
      } else {
        const err = ConnectError.from(error);
        observe({ procedure, code: err.code, durationMs, error: err });
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
    return { ...res, message: observeStream(res, done) } satisfies StreamResponse;
  };
}

async function* observeStream<T>(res: { message: AsyncIterable<T> }, done: (error?: unknown) => void): AsyncIterable<T> {
  let finished = false;
  try {
    yield* res.message;
    finished = true;
    done();
  } catch (e) {
    finished = true;
    done(e);
    throw e;
  } finally {
    // The consumer stopped early (client went away).
    if (!finished) done(new ConnectError("stream abandoned", Code.Canceled));
  }
}

/** gRPC-style code name: "OK", "NotFound", "Internal", ... */
export function codeName(code: Code | "OK"): string {
  return code === "OK" ? "OK" : Code[code];
}

// Codes that point at a server problem rather than at the caller.
const serverSide = new Set<Code>([Code.Unknown, Code.Internal, Code.Unavailable, Code.DataLoss, Code.Unimplemented]);

/** One structured log line per RPC: procedure, code, durationMs (and the error message when not OK). */
export function createLoggingInterceptor(logger: Logger): Interceptor {
  return observingInterceptor(({ procedure, code, durationMs, error }) => {
    const fields = { procedure, code: codeName(code), durationMs: Math.round(durationMs * 1000) / 1000 };
    if (!error) logger.info(fields, "rpc");
    else if (serverSide.has(error.code)) logger.error({ ...fields, err: error.rawMessage }, "rpc");
    else logger.info({ ...fields, err: error.rawMessage }, "rpc");
  });
}

export interface RpcMetricsOptions {
  /** Metric name prefix. Default "rpc_server_". */
  prefix?: string;
  /** Histogram buckets in seconds. */
  buckets?: number[];
}

/**
 * Counter `<prefix>handled_total{procedure,code}` and histogram `<prefix>handling_seconds{procedure,code}`
 * in the given registry (reused if they already exist there, so two apps can share a registry).
 */
export function createMetricsInterceptor(registry: Registry, opts: RpcMetricsOptions = {}): Interceptor {
  const prefix = opts.prefix ?? "rpc_server_";
  const labelNames = ["procedure", "code"] as const;
  const counterName = `${prefix}handled_total`;
  const histogramName = `${prefix}handling_seconds`;
  const counter =
    (registry.getSingleMetric(counterName) as Counter<(typeof labelNames)[number]> | undefined) ??
    new Counter({ name: counterName, help: "RPCs completed on the server, by procedure and status code.", labelNames, registers: [registry] });
  const histogram =
    (registry.getSingleMetric(histogramName) as Histogram<(typeof labelNames)[number]> | undefined) ??
    new Histogram({
      name: histogramName,
      help: "RPC duration on the server in seconds (streams: until the stream ends).",
      labelNames,
      buckets: opts.buckets ?? [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
  return observingInterceptor(({ procedure, code, durationMs }) => {
    const labels = { procedure, code: codeName(code) };
    counter.inc(labels);
    histogram.observe(labels, durationMs / 1000);
  });
}

/**
 * Wraps a handler so that `GET <path>` (default /metrics) serves the registry in Prometheus text format,
 * over HTTP/1.1 or HTTP/2; every other request goes to `handler`.
 */
export function withMetricsEndpoint(handler: NodeHandlerFn, registry: Registry, path = "/metrics"): NodeHandlerFn {
  return (req, res) => {
    const url = req.url ?? "";
    const pathname = url.split("?", 1)[0];
    if (pathname !== path || (req.method !== "GET" && req.method !== "HEAD")) {
      handler(req, res);
      return;
    }
    registry.metrics().then(
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
