// Wires the Connect handler (gRPC, gRPC-Web, Connect), health, reflection, logging, metrics and the
// dual-protocol listener into one app with a graceful shutdown.
import type { DescFile, DescService, Registry as Registry_ } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { peerKey, peerOf } from "../auth/peer.js";
import { clientAddressContextValues } from "./client-address.js";
import { createConnectHandler } from "./connect-handler.js";
import { rejectMalformedRequests } from "./request-errors.js";
import { createHealthRegistry, createHealthService, type HealthRegistry } from "./health.js";
import { createLoggingInterceptor, createMetricsInterceptor, withMetricsEndpoint } from "./interceptors.js";
import {
  createDualProtocolServer,
  registerListenerOpenGauge,
  type DualProtocolServerOptions,
  type NodeHandlerFn,
  type NodeServerRequest,
  type NodeServerResponse,
} from "./listener.js";
import { registerReflection, ServerReflectionV1, ServerReflectionV1alpha } from "./reflection.js";

export interface BuildAppOptions {
  /** Registers the application's services, e.g. `(r) => r.service(MarkService, impl)`. */
  routes: (router: ConnectRouter) => void;
  /** Descriptors of every service `routes` registers; used for health names and reflection. */
  services: readonly DescService[];
  logger: Logger;
  metricsRegistry: Registry;
  /** Responses at least this large are compressed when the client accepts it. Default 1 MiB. */
  compressMinBytes?: number;
  /** Maximum request message size. Default 32 MiB. */
  readMaxBytes?: number;
  /** Extra interceptors, run inside logging and metrics (so those see their errors). */
  interceptors?: Interceptor[];
  /** Timeouts of the listener. */
  listener?: DualProtocolServerOptions;
  /** Default grace period of close(). Default 10 s. */
  shutdownGraceMs?: number;
  /** Time between reporting NOT_SERVING and closing the listener, so load balancers can notice. Default 0. */
  drainDelayMs?: number;
  /** Path of the Prometheus endpoint, or false for none. Default "/metrics". */
  metricsPath?: string | false;
  /** What the endpoint serves; default the registry's own metrics (a cluster worker: the whole server's). */
  metricsText?: () => Promise<string>;
  /** Files reflection should describe beyond those of the services (e.g. extensions). */
  reflectionExtraFiles?: readonly DescFile[];
  /** Types that may appear in google.protobuf.Any fields (status details), so JSON can print them. */
  jsonRegistry?: Registry_;
  /**
   * The outermost layer (CORS, /openapi.json, the REST transcoder, guards): it sees every request
   * first and calls `next` (the vendor gateways, /metrics, Connect) for those it does not answer.
   * `app.health` is the registry the Health service answers from.
   */
  edge?: (next: NodeHandlerFn, app: { readonly health: HealthRegistry }) => NodeHandlerFn;
  /** Runs on close() after health reports NOT_SERVING and before the listener closes (end long streams here). */
  beforeClose?: () => void | Promise<void>;
  /**
   * REST routes (the vendor gateways), connect-node's `fallback`: called only for paths that are not
   * a registered procedure, so gRPC/Connect calls never pay for it. Resolves true when it answered.
   */
  gateway?: (req: NodeServerRequest, res: NodeServerResponse) => Promise<boolean>;
}

export interface App {
  /** The request handler (metrics route + Connect), usable with any http/http2 server. */
  readonly handler: NodeHandlerFn;
  readonly health: HealthRegistry;
  listen(port: number, host?: string): Promise<AddressInfo>;
  /** Reports NOT_SERVING, waits drainDelayMs, then closes the listener gracefully. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

export async function buildApp(opts: BuildAppOptions): Promise<App> {
  // Health and reflection describe themselves too, as grpc-go does.
  const served = dedupe([...opts.services, Health, ServerReflectionV1, ServerReflectionV1alpha]);
  const health = createHealthRegistry(served.map((s) => s.typeName));

  const connectHandler = createConnectHandler({
    logger: opts.logger,
    grpc: true,
    grpcWeb: true,
    connect: true,
    readMaxBytes: opts.readMaxBytes ?? 32 * 1024 * 1024,
    compressMinBytes: opts.compressMinBytes ?? 1024 * 1024,
    ...(opts.jsonRegistry ? { jsonOptions: { registry: opts.jsonRegistry } } : {}),
    ...(opts.gateway ? { fallback: gatewayFallback(opts.gateway, opts.logger) } : {}),
    // The peer (loopback or not) is what the auth interceptor's protected mode decides on.
    contextValues: (req) => clientAddressContextValues(req).set(peerKey, peerOf(req)),
    interceptors: [
      createLoggingInterceptor(opts.logger),
      createMetricsInterceptor(opts.metricsRegistry),
      rejectMalformedRequests,
      ...(opts.interceptors ?? []),
    ],
    routes(router) {
      opts.routes(router);
      router.service(Health, createHealthService(health));
      registerReflection(router, served, opts.reflectionExtraFiles);
    },
  });
  const metricsPath = opts.metricsPath ?? "/metrics";
  const withMetrics = metricsPath === false ? connectHandler : withMetricsEndpoint(connectHandler, opts.metricsRegistry, metricsPath, opts.metricsText);
  const handler = opts.edge ? opts.edge(withMetrics, { health }) : withMetrics;
  const server = createDualProtocolServer(handler, { onEvent: listenerEventReporter(opts.logger, opts.metricsRegistry), ...opts.listener });
  registerListenerOpenGauge(server, opts.metricsRegistry);

  let closing: Promise<void> | undefined;
  return {
    handler,
    health,
    listen: (port, host) => server.listen(port, host),
    close(graceMs = opts.shutdownGraceMs ?? 10_000) {
      closing ??= (async () => {
        health.shutdown();
        if (opts.drainDelayMs) await new Promise((resolve) => setTimeout(resolve, opts.drainDelayMs));
        await opts.beforeClose?.();
        await server.close(graceMs);
      })();
      return closing;
    },
  };
}

/** Unmatched paths go to the gateway; one it does not claim is a 404; one that throws is a bare 500, not a crash. */
function gatewayFallback(gateway: NonNullable<BuildAppOptions["gateway"]>, logger: Logger): NodeHandlerFn {
  return (req, res) => {
    gateway(req, res).then(
      (handled) => {
        if (handled) return;
        req.resume();
        res.writeHead(404);
        res.end();
      },
      (err: unknown) => {
        logger.error({ err, url: req.url }, "gateway failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end("internal error\n");
      },
    );
  };
}

/**
 * Refused connections and sessions ended for misbehaviour: counted (`convmark_listener_refusals_total`)
 * and logged as a warning at most once per 10 s per kind and reason, with the count since the last line.
 */
function listenerEventReporter(logger: Logger, registry: Registry): NonNullable<DualProtocolServerOptions["onEvent"]> {
  const name = "convmark_listener_refusals_total";
  const counter =
    (registry.getSingleMetric(name) as Counter<"kind" | "reason"> | undefined) ??
    new Counter({ name, help: "Connections refused and HTTP/2 sessions ended by the listener, by kind and reason.", labelNames: ["kind", "reason"], registers: [registry] });
  const pending = new Map<string, { count: number; last: number }>();
  return ({ kind, reason }) => {
    counter.inc({ kind, reason });
    const key = `${kind}/${reason}`;
    const now = Date.now();
    const p = pending.get(key) ?? { count: 0, last: 0 };
    p.count++;
    pending.set(key, p);
    if (now - p.last >= 10_000) {
      logger.warn({ kind, reason, count: p.count }, kind === "connection_refused" ? "connection refused" : "HTTP/2 session ended");
      p.count = 0;
      p.last = now;
    }
  };
}

function dedupe(services: readonly DescService[]): DescService[] {
  const byName = new Map<string, DescService>();
  for (const s of services) byName.set(s.typeName, s);
  return [...byName.values()];
}

/** The parts of `process` the shutdown handlers use; injectable for tests. */
export interface ShutdownProcess {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
  exit(code: number): void;
}

export interface ShutdownOptions {
  logger?: Logger;
  signals?: NodeJS.Signals[];
  process?: ShutdownProcess;
  /**
   * Other ways to ask for the shutdown (a cluster primary's message, its disconnect): each gets a
   * function that starts the shutdown unless it has started already (never counted as a second signal).
   */
  triggers?: ((start: (reason: string) => void) => void)[];
}

/**
 * First SIGTERM/SIGINT: health goes NOT_SERVING, the server closes gracefully (in-flight requests
 * finish), then onClosed runs (close the store there), then exit 0 (1 if any step failed).
 * A second signal exits 1 immediately. Returns a function that removes the handlers.
 */
export function installShutdownHandlers(
  app: Pick<App, "close">,
  onClosed: () => void | Promise<void>,
  opts: ShutdownOptions = {},
): () => void {
  const proc: ShutdownProcess = opts.process ?? process;
  const signals = opts.signals ?? ["SIGTERM", "SIGINT"];
  const log = opts.logger;
  let shuttingDown = false;

  const onSignal = (signal: NodeJS.Signals): void => {
    if (shuttingDown) {
      log?.warn({ signal }, "second signal, exiting immediately");
      proc.exit(1);
      return;
    }
    start(signal);
  };

  const start = (reason: string): void => {
    if (shuttingDown) return;
    shuttingDown = true;
    log?.info({ signal: reason }, "shutting down");
    void (async () => {
      let code = 0;
      try {
        await app.close();
      } catch (err) {
        code = 1;
        log?.error({ err }, "closing the server failed");
      }
      try {
        await onClosed();
      } catch (err) {
        code = 1;
        log?.error({ err }, "shutdown hook failed");
      }
      log?.info({ code }, "shutdown complete");
      proc.exit(code);
    })();
  };

  for (const t of opts.triggers ?? []) t(start);
  const handlers = new Map(signals.map((s) => [s, () => onSignal(s)] as const));
  // Stay subscribed after the first signal: the second one must reach us, not the default action.
  for (const [s, h] of handlers) proc.on(s, h);
  return () => {
    for (const [s, h] of handlers) proc.off(s, h);
  };
}
